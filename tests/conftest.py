"""Shared fixtures: the real servers, a fresh bucket on one, s3stream and boto3 clients for it.

SeaweedFS comes from the ``s3stream.testing`` pytest plugin (``s3stream_local_s3``); moto and
rclone are started here, each once per session and only when a test first needs it. A test
module marked ``every_server`` runs each of its tests against all three (ids ``[seaweedfs]``,
``[moto]``, ``[rclone]``); everywhere else ``server`` is SeaweedFS.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest
from fake_s3 import FakeS3
from support import boto_client, list_open_uploads

from s3stream import Credentials, Retry, S3Client
from s3stream.testing import LocalS3, Moto, Rclone, temporary_bucket

SERVER_NAMES = ("seaweedfs", "moto", "rclone")


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", "every_server: run once against each local S3 server (seaweedfs, moto, rclone)"
    )


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if "server" in metafunc.fixturenames and metafunc.definition.get_closest_marker(
        "every_server"
    ):
        # Session scope: pytest groups the tests by server, so each runs through in one go.
        metafunc.parametrize("server", SERVER_NAMES, indirect=True, scope="session")


@pytest.fixture(scope="session")
def moto_s3() -> Iterator[LocalS3]:
    """moto_server with IAM authentication on, for the whole session (started on first use)."""
    with Moto() as s3:
        yield s3


@pytest.fixture(scope="session")
def rclone_s3() -> Iterator[LocalS3]:
    """``rclone serve s3`` with ``--auth-key``, for the whole session (started on first use)."""
    with Rclone() as s3:
        yield s3


@pytest.fixture(scope="session")
def server(request: pytest.FixtureRequest) -> LocalS3:
    """The real S3 server under test: this test's parameter, or SeaweedFS when it has none."""
    name = getattr(request, "param", "seaweedfs")
    fixture = {"seaweedfs": "s3stream_local_s3", "moto": "moto_s3", "rclone": "rclone_s3"}[name]
    local: LocalS3 = request.getfixturevalue(fixture)
    assert local.name == name
    return local


@pytest.fixture(scope="session")
def boto(server: LocalS3) -> Any:
    """An independent S3 client (boto3) used as the oracle that reads back what we wrote."""
    return boto_client(server)


@pytest.fixture
def bucket(server: LocalS3, boto: Any) -> Iterator[str]:
    """A fresh bucket on the real server; after the test, no multipart upload may be open."""
    with temporary_bucket(server) as name:
        yield name
        open_uploads = list_open_uploads(server, boto, name)
        assert open_uploads == [], f"multipart uploads left open: {open_uploads}"


@pytest.fixture
async def s3(server: LocalS3) -> AsyncIterator[S3Client]:
    async with S3Client(
        endpoint=server.endpoint, region=server.region, credentials=server.credentials
    ) as client:
        yield client


# --------------------------------------------------------------- the fault-injecting fake


def make_client(fake: FakeS3, delays: list[float], **kwargs: Any) -> S3Client:
    """A client for ``fake`` whose backoff only records its delays (no test sleeps) and
    whose jitter is fixed (``rand() == 0.5``), with 3 attempts unless told otherwise."""

    async def sleep(delay: float) -> None:
        delays.append(delay)

    kwargs.setdefault("retry", Retry(attempts=3))
    return S3Client(
        endpoint=fake.endpoint, region="us-east-1", credentials=Credentials("AK", "SK"),
        sleep=sleep, rand=lambda: 0.5, **kwargs,
    )


@pytest.fixture
async def fake() -> AsyncIterator[FakeS3]:
    """The in-process fake S3 (one bucket, ``bucket``), stopped after the test."""
    async with FakeS3(bucket="bucket") as server:
        yield server


@pytest.fixture
def delays() -> list[float]:
    return []


@pytest.fixture
async def client(fake: FakeS3, delays: list[float]) -> AsyncIterator[S3Client]:
    async with make_client(fake, delays) as c:
        yield c
