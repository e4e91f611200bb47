"""s3stream.testing: the local SeaweedFS server really is an S3 that checks signatures."""

from __future__ import annotations

import glob
import os
import socket
import time
from collections.abc import Iterator

import pytest
from botocore.exceptions import ClientError
from support import boto_client

from s3stream import testing as s3testing
from s3stream._credentials import Credentials
from s3stream.testing import LocalS3, SeaweedFS, local_s3

# The plugin's bucket fixture, available here even when s3stream is not installed (and so
# its pytest11 entry point is not loaded); it runs on the server of the override below.
s3stream_bucket = s3testing.s3stream_bucket


@pytest.fixture(scope="module")
def server() -> Iterator[LocalS3]:
    with local_s3(buckets=["alpha"]) as s3:
        yield s3


@pytest.fixture(scope="module")
def s3stream_local_s3(server: LocalS3) -> LocalS3:
    """One server for this module instead of the plugin's own session-wide one."""
    return server


def _port(s3: LocalS3) -> int:
    return int(s3.endpoint.rsplit(":", 1)[1])


def test_endpoint_is_loopback(server: LocalS3) -> None:
    assert server.endpoint.startswith("http://127.0.0.1:")
    assert server.region == "us-east-1"
    assert os.path.isdir(server.data_dir)


def test_list_buckets_shows_requested_bucket(server: LocalS3) -> None:
    names = [b["Name"] for b in boto_client(server).list_buckets()["Buckets"]]
    assert "alpha" in names


def test_put_and_get_object(server: LocalS3) -> None:
    client = boto_client(server)
    body = os.urandom(100_000)
    client.put_object(Bucket="alpha", Key="dir/object.bin", Body=body)
    got = client.get_object(Bucket="alpha", Key="dir/object.bin")
    assert got["Body"].read() == body


def test_wrong_secret_is_rejected(server: LocalS3) -> None:
    wrong = Credentials(server.credentials.access_key_id, "not-the-secret")
    with pytest.raises(ClientError) as info:
        boto_client(server, wrong).list_buckets()
    assert info.value.response["Error"]["Code"] == "SignatureDoesNotMatch"
    assert info.value.response["ResponseMetadata"]["HTTPStatusCode"] == 403


def test_unknown_access_key_is_rejected(server: LocalS3) -> None:
    stranger = Credentials("AKIDSOMEBODYELSE0001", server.credentials.secret_access_key)
    with pytest.raises(ClientError) as info:
        boto_client(server, stranger).list_buckets()
    assert info.value.response["ResponseMetadata"]["HTTPStatusCode"] == 403


def test_create_bucket_is_idempotent(server: LocalS3) -> None:
    server.create_bucket("alpha")
    server.create_bucket("beta-bucket")
    server.create_bucket("beta-bucket")
    names = [b["Name"] for b in boto_client(server).list_buckets()["Buckets"]]
    assert {"alpha", "beta-bucket"} <= set(names)


def test_create_bucket_rejects_bad_names(server: LocalS3) -> None:
    for bad in ("ab", "UPPER", "a/b", "../x", "-abc"):
        with pytest.raises(ValueError, match="invalid bucket name"):
            server.create_bucket(bad)


_fixture_bucket_names: list[str] = []


def test_bucket_fixture_gives_fresh_bucket(server: LocalS3, s3stream_bucket: str) -> None:
    assert s3stream_bucket.startswith("test-")
    assert s3stream_bucket == s3stream_bucket.lower()
    client = boto_client(server)
    assert client.list_objects_v2(Bucket=s3stream_bucket)["KeyCount"] == 0
    client.put_object(Bucket=s3stream_bucket, Key="k", Body=b"v")
    _fixture_bucket_names.append(s3stream_bucket)


def test_bucket_fixture_deleted_its_bucket(server: LocalS3) -> None:
    if not _fixture_bucket_names:
        pytest.skip("runs after test_bucket_fixture_gives_fresh_bucket")
    names = {b["Name"] for b in boto_client(server).list_buckets()["Buckets"]}
    assert not names & set(_fixture_bucket_names)


def test_stop_ends_process_frees_port_and_removes_files() -> None:
    seaweed = SeaweedFS()
    s3 = seaweed.start()
    proc = seaweed.process
    assert proc is not None
    assert proc.poll() is None
    port = _port(s3)
    socket.create_connection(("127.0.0.1", port), timeout=2).close()

    started = time.monotonic()
    seaweed.stop()
    assert time.monotonic() - started < 12

    assert proc.poll() is not None
    with pytest.raises(ProcessLookupError):
        os.kill(proc.pid, 0)
    with (
        pytest.raises(ConnectionRefusedError),
        socket.create_connection(("127.0.0.1", port), timeout=2),
    ):
        pass
    assert not os.path.exists(s3.data_dir)
    assert not glob.glob(f"/tmp/seaweedfs-*-grpc-{port + 10000}.sock")
    seaweed.stop()  # idempotent
