"""Misuse never reaches the wire, and the errors say what is wrong.

Bad options, missing credentials and sources that are not files are refused with a
``UsageError`` before any request; the FakeS3 tests show that nothing was sent.
"""

from __future__ import annotations

import asyncio
import copy
import os
import pickle
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fake_s3 import FakeS3

import s3stream
from s3stream import Credentials, NoCredentialsError, S3Client, UsageError, _sources
from s3stream.credentials import CredentialsNotFound, resolve_credentials

BUCKET = "bucket"
CREDS = Credentials("AK", "SK")
MiB = 1 << 20


def client(fake: FakeS3, **kwargs: Any) -> S3Client:
    options = {"endpoint": fake.endpoint, "region": "us-east-1", "credentials": CREDS, **kwargs}
    return S3Client(**options)


# ------------------------------------------------------------------ client options

BAD_CLIENT_OPTIONS: list[tuple[dict[str, Any], str]] = [
    # A truthy string used to be taken as True: "unsigned" signed every payload.
    ({"sign_payload": "unsigned"}, "sign_payload"),
    ({"sign_payload": "false"}, "sign_payload"),
    ({"sign_payload": 0}, "sign_payload"),
    ({"sign_payload": 1}, "sign_payload"),
    ({"addressing": "vhost"}, "addressing"),
    ({"addressing": None}, "addressing"),
    ({"addressing": 1}, "addressing"),
    ({"endpoint": 8333}, "endpoint"),
    ({"endpoint": b"http://127.0.0.1:9"}, "endpoint"),
    ({"region": 1}, "region"),
    ({"region": ""}, "region"),
    ({"credentials": ("AK", "SK")}, "credentials"),
    ({"credentials": {"access_key_id": "AK"}}, "credentials"),
    ({"session": "http://127.0.0.1"}, "session"),
    ({"retry": 3}, "retry"),
    ({"max_connections": 0}, "max_connections"),
    ({"max_connections": True}, "max_connections"),
    ({"max_connections": 2.0}, "max_connections"),
    ({"max_connections": "8"}, "max_connections"),
    ({"connect_timeout": 0}, "connect_timeout"),
    ({"connect_timeout": "10"}, "connect_timeout"),
    ({"connect_timeout": True}, "connect_timeout"),
    ({"stall_timeout": -1}, "stall_timeout"),
    ({"stall_timeout": float("nan")}, "stall_timeout"),
    ({"abort_timeout": None}, "abort_timeout"),
    ({"abort_timeout": 0}, "abort_timeout"),
    ({"abort_timeout": "30"}, "abort_timeout"),
    ({"abort_timeout": float("inf")}, "abort_timeout"),
    ({"checksum": "crc64"}, "checksum"),
    ({"checksum": True}, "checksum"),
    ({"limits": {"max_parts": 10}}, "limits"),
    ({"environ": [("AWS_REGION", "x")]}, "environ"),
    ({"environ": "HOME=/tmp"}, "environ"),
    ({"clock": 1.0}, "clock"),
    ({"sleep": "asyncio.sleep"}, "sleep"),
    ({"rand": 0.5}, "rand"),
]


@pytest.mark.parametrize(("kwargs", "option"), BAD_CLIENT_OPTIONS, ids=repr)
async def test_bad_client_option_is_usage_error_and_sends_nothing(
    fake: FakeS3, kwargs: dict[str, Any], option: str
) -> None:
    with pytest.raises(UsageError) as info:
        client(fake, **kwargs)
    assert option in str(info.value)
    assert fake.requests == []


@pytest.mark.parametrize("value", [True, False, None])
def test_sign_payload_takes_exactly_true_false_none(value: bool | None) -> None:
    s3 = S3Client(endpoint="https://s3.example", credentials=CREDS, sign_payload=value)
    # None: unsigned over HTTPS, as AWS's SDKs do.
    assert s3._sign_payload is (False if value is None else value)


def test_messages_name_the_type_not_a_secret() -> None:
    with pytest.raises(UsageError) as info:
        S3Client(credentials=("AKID", "the-secret"))  # type: ignore[arg-type]
    assert "tuple" in str(info.value) and "the-secret" not in str(info.value)
    with pytest.raises(UsageError) as info:
        S3Client(credentials=CREDS, sign_payload="unsigned")  # type: ignore[arg-type]
    assert "True, False or None" in str(info.value) and "'unsigned'" in str(info.value)
    with pytest.raises(UsageError) as info:
        S3Client(credentials=CREDS, connect_timeout="10")  # type: ignore[arg-type]
    assert "connect_timeout" in str(info.value) and "str" in str(info.value)


def test_good_options_are_accepted() -> None:
    async def sleep(delay: float) -> None:
        return None

    S3Client(endpoint="http://127.0.0.1:9", region="eu-west-1", credentials=CREDS,
             addressing="virtual", sign_payload=False, retry=s3stream.Retry(attempts=1),
             connect_timeout=None, stall_timeout=0.5, abort_timeout=1, max_connections=1,
             checksum=None, limits=s3stream.Limits(), environ={}, clock=None, sleep=sleep,
             rand=lambda: 0.5)


# ------------------------------------------------------------------ upload options

BAD_UPLOAD_OPTIONS: list[tuple[dict[str, Any], str]] = [
    ({"part_size": "8MiB"}, "part_size"),
    ({"part_size": 8.0 * MiB}, "part_size"),
    ({"part_size": True}, "part_size"),
    ({"part_size": MiB}, "part_size"),  # below S3's 5 MiB
    ({"concurrency": 0}, "concurrency"),
    ({"concurrency": True}, "concurrency"),
    ({"concurrency": 2.0}, "concurrency"),
    ({"concurrency": "4"}, "concurrency"),
    ({"content_type": b"text/plain"}, "content_type"),
    ({"content_type": 1}, "content_type"),
    ({"content_type": ""}, "content_type"),
    ({"metadata": [("origin", "cam")]}, "metadata"),
    ({"metadata": "origin=cam"}, "metadata"),
    ({"metadata": {"origin": 7}}, "origin"),
    ({"headers": [("x-amz-storage-class", "STANDARD")]}, "headers"),
    ({"headers": {"x-amz-storage-class": None}}, "x-amz-storage-class"),
    ({"checksum": "crc64"}, "checksum"),
    ({"if_none_match": "etag"}, "if_none_match"),
    ({"if_none_match": True}, "if_none_match"),
    ({"if_match": 1}, "if_match"),
]


@pytest.mark.parametrize(("kwargs", "option"), BAD_UPLOAD_OPTIONS, ids=repr)
async def test_bad_upload_option_is_usage_error_and_sends_nothing(
    fake: FakeS3, kwargs: dict[str, Any], option: str
) -> None:
    async with client(fake) as s3:
        with pytest.raises(UsageError) as info:
            await s3.upload(BUCKET, "k", b"data", **kwargs)
        assert option in str(info.value)
        with pytest.raises(UsageError):
            s3.open_upload(BUCKET, "k", **kwargs)
    assert fake.requests == []


async def test_bad_upload_option_does_not_open_the_file(
    fake: FakeS3, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "data.bin"
    path.write_bytes(b"x")
    opened: list[str] = []
    monkeypatch.setattr(_sources, "_open_path", lambda p, s: opened.append(p))
    async with client(fake) as s3:
        with pytest.raises(UsageError, match="part_size"):
            await s3.upload(BUCKET, "k", str(path), part_size="big")  # type: ignore[arg-type]
    assert opened == [] and fake.requests == []


# ---------------------------------------------------------------------- credentials


def test_no_credentials_says_where_it_looked(tmp_path: Path) -> None:
    with pytest.raises(NoCredentialsError) as info:
        S3Client(environ={"HOME": str(tmp_path), "AWS_EC2_METADATA_DISABLED": "true"})
    text = str(info.value)
    assert isinstance(info.value, UsageError)
    assert "the credentials argument" in text
    assert "AWS_ACCESS_KEY_ID" in text and "AWS_SECRET_ACCESS_KEY" in text
    assert f"profile 'default' in the shared credentials file {tmp_path}/.aws/credentials" in text
    assert f"profile 'default' in the config file {tmp_path}/.aws/config" in text
    assert "no such file" in text
    assert "Credentials.anonymous()" in text  # the way to ask for unsigned requests
    assert "EC2 instance metadata (AWS_EC2_METADATA_DISABLED=true)" in text
    assert len(info.value.searched) == 5


def test_no_credentials_names_the_chosen_profile_and_files(tmp_path: Path) -> None:
    creds_file, config_file = tmp_path / "creds.ini", tmp_path / "conf.ini"
    creds_file.write_text("[dev]\naws_access_key_id = DEVKEY\n")
    config_file.write_text("[profile dev]\nregion = eu-west-1\n")
    env = {"HOME": str(tmp_path), "AWS_PROFILE": "dev",
           "AWS_SHARED_CREDENTIALS_FILE": str(creds_file), "AWS_CONFIG_FILE": str(config_file),
           "AWS_SECRET_ACCESS_KEY": "env-secret", "AWS_EC2_METADATA_DISABLED": "true"}
    with pytest.raises(NoCredentialsError) as info:
        S3Client(environ=env)
    text = str(info.value)
    assert "only AWS_SECRET_ACCESS_KEY is set" in text
    assert (f"profile 'dev' (from AWS_PROFILE) in the shared credentials file {creds_file}, "
            "from AWS_SHARED_CREDENTIALS_FILE ([dev] has aws_access_key_id but no "
            "aws_secret_access_key)") in text
    assert f"config file {config_file}, from AWS_CONFIG_FILE" in text
    assert "env-secret" not in text and "DEVKEY" not in text


def test_no_credentials_with_an_empty_profile(tmp_path: Path) -> None:
    aws = tmp_path / ".aws"
    aws.mkdir()
    (aws / "credentials").write_text("[other]\naws_access_key_id = K\n")
    (aws / "config").write_text("[default]\nregion = eu-west-1\n")
    result = resolve_credentials(None, {"HOME": str(tmp_path)})
    assert isinstance(result, CredentialsNotFound)
    assert "(no [default] section)" in result.searched[2]
    assert "([default] has no aws_access_key_id and aws_secret_access_key)" in result.searched[3]


async def test_no_credentials_sends_nothing(fake: FakeS3, tmp_path: Path) -> None:
    with pytest.raises(NoCredentialsError):
        S3Client(endpoint=fake.endpoint,
                 environ={"HOME": str(tmp_path), "AWS_EC2_METADATA_DISABLED": "true"})
    assert fake.requests == []


def test_unparsable_config_file_does_not_quote_its_lines(tmp_path: Path) -> None:
    aws = tmp_path / ".aws"
    aws.mkdir()
    # configparser's own message would quote this line, secret and all.
    (aws / "credentials").write_text("aws_secret_access_key = leaked-secret\n")
    with pytest.raises(UsageError) as info:
        S3Client(environ={"HOME": str(tmp_path)})
    assert "cannot parse" in str(info.value) and "line 1" in str(info.value)
    assert "leaked-secret" not in str(info.value)


def test_client_credentials_are_never_none(tmp_path: Path) -> None:
    env = {"HOME": str(tmp_path), "AWS_ACCESS_KEY_ID": "K", "AWS_SECRET_ACCESS_KEY": "S"}
    assert S3Client(environ=env).credentials == Credentials("K", "S")
    assert S3Client(credentials=CREDS, environ={}).credentials is CREDS
    anonymous = S3Client(credentials=Credentials.anonymous(), environ=env).credentials
    assert anonymous is Credentials.anonymous() and anonymous.is_anonymous


def test_anonymous_is_one_distinguished_value() -> None:
    anonymous = Credentials.anonymous()
    assert anonymous is Credentials.anonymous()
    assert isinstance(anonymous, Credentials)
    assert anonymous.is_anonymous and not CREDS.is_anonymous
    assert repr(anonymous) == "Credentials.anonymous()"
    assert copy.deepcopy(anonymous) is anonymous
    assert pickle.loads(pickle.dumps(anonymous)) is anonymous
    assert anonymous != Credentials("AK", "SK")
    # Empty keys are still a mistake, not a way to get anonymous access.
    with pytest.raises(UsageError, match="anonymous"):
        Credentials("", "")
    with pytest.raises(UsageError, match="str"):
        Credentials("AK", 123)  # type: ignore[arg-type]


async def test_anonymous_requests_are_unsigned() -> None:
    async with FakeS3(bucket=BUCKET, verify_signatures=False) as fake:
        async with client(fake, credentials=Credentials.anonymous()) as s3:
            await s3.upload(BUCKET, "small", b"public data")
            await s3.upload(BUCKET, "multi", os.urandom(6 * MiB), part_size=5 * MiB)
        assert fake.objects["small"] == b"public data"
        assert {r.op for r in fake.requests} >= {"PutObject", "CreateMultipartUpload",
                                                "UploadPart", "CompleteMultipartUpload"}
        for request in fake.requests:
            assert "Authorization" not in request.headers
            assert "x-amz-security-token" not in request.headers


async def test_credentials_are_signed(fake: FakeS3) -> None:
    # The counterpart: the same upload with keys carries a signature the fake verifies.
    async with client(fake) as s3:
        await s3.upload(BUCKET, "k", b"data")
    assert [r.signature_ok for r in fake.requests] == [True]
    assert fake.requests[0].headers["Authorization"].startswith("AWS4-HMAC-SHA256 ")


# -------------------------------------------------------------------------- sources


async def test_text_that_is_not_a_path_gets_a_hint(fake: FakeS3) -> None:
    async with client(fake) as s3:
        with pytest.raises(UsageError) as info:
            await s3.upload(BUCKET, "k", "hello world")
    assert str(info.value) == ("no such file: 'hello world'; to upload the text itself, "
                               "pass bytes: s.encode()")
    assert isinstance(info.value.__cause__, FileNotFoundError)
    assert fake.requests == []


async def test_missing_pathlike_and_long_text(fake: FakeS3, tmp_path: Path) -> None:
    async with client(fake) as s3:
        with pytest.raises(UsageError) as info:
            await s3.upload(BUCKET, "k", tmp_path / "missing.bin")
        assert str(info.value) == f"no such file: {str(tmp_path / 'missing.bin')!r}"
        text = "a log line that was meant as the object's content\n" * 100
        with pytest.raises(UsageError) as info:
            await s3.upload(BUCKET, "k", text)
        assert f"({len(text)} characters)" in str(info.value)
        assert "too long" in str(info.value) and "s.encode()" in str(info.value)
        assert len(str(info.value)) < 300
        with pytest.raises(UsageError, match=r"NUL.*s\.encode"):
            await s3.upload(BUCKET, "k", "binary\0text")
    assert fake.requests == []


async def test_directory_is_usage_error(fake: FakeS3, tmp_path: Path) -> None:
    async with client(fake) as s3:
        for source in (tmp_path, str(tmp_path)):
            with pytest.raises(UsageError, match="directory"):
                await s3.upload(BUCKET, "k", source)
    assert fake.requests == []


async def test_file_path_is_opened_in_a_worker_thread(
    fake: FakeS3, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "data.bin"
    path.write_bytes(b"file contents")
    threads: list[threading.Thread] = []
    real = _sources._open_path

    def spy(p: str, given_str: bool) -> Any:
        threads.append(threading.current_thread())
        return real(p, given_str)

    monkeypatch.setattr(_sources, "_open_path", spy)
    async with client(fake) as s3:
        result = await s3.upload(BUCKET, "k", str(path))
    assert result.size == len(b"file contents")
    assert fake.objects["k"] == b"file contents"
    assert threads and threading.main_thread() not in threads


async def test_cancelled_while_opening_closes_the_file(tmp_path: Path) -> None:
    path = tmp_path / "data.bin"
    path.write_bytes(b"x")
    release = threading.Event()
    opened: list[Any] = []

    def slow_open(p: str, given_str: bool) -> Any:
        release.wait(10)
        f, size = _sources._open_path(p, given_str)
        opened.append(f)
        return f, size

    task = asyncio.create_task(_sources._in_thread_closing(slow_open, str(path), True))
    await asyncio.sleep(0.05)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    release.set()
    for _ in range(200):
        if opened and opened[0].closed:
            break
        await asyncio.sleep(0.01)
    assert opened and opened[0].closed


@pytest.fixture
def fifo(tmp_path: Path) -> Iterator[tuple[Path, bytes]]:
    path = tmp_path / "pipe"
    os.mkfifo(path)
    data = os.urandom(300_000)

    def feed() -> None:
        with open(path, "wb") as f:
            f.write(data)

    writer = threading.Thread(target=feed, daemon=True)
    writer.start()
    yield path, data
    writer.join(10)


async def test_fifo_path_is_streamed_not_taken_as_empty(
    fake: FakeS3, fifo: tuple[Path, bytes]
) -> None:
    # fstat reports 0 bytes for a pipe: trusting it would store an empty object.
    path, data = fifo
    async with client(fake) as s3:
        result = await s3.upload(BUCKET, "k", path)
    assert result.size == len(data) and fake.objects["k"] == data


def test_client_reads_each_shared_file_once(tmp_path: Path,
                                            monkeypatch: pytest.MonkeyPatch) -> None:
    from s3stream.credentials import _files

    (tmp_path / ".aws").mkdir()
    (tmp_path / ".aws" / "config").write_text("[default]\nregion = eu-west-2\n")
    (tmp_path / ".aws" / "credentials").write_text(
        "[default]\naws_access_key_id = K\naws_secret_access_key = S\n")
    reads: list[str] = []
    real = _files._read_ini

    def counting(path: str) -> Any:
        reads.append(path)
        return real(path)

    monkeypatch.setattr(_files, "_read_ini", counting)
    client = S3Client(environ={"HOME": str(tmp_path)})
    # Region, endpoint, dual-stack/FIPS flags and credentials: one read of each file.
    assert sorted(reads) == sorted([str(tmp_path / ".aws" / "config"),
                                    str(tmp_path / ".aws" / "credentials")])
    assert client.region == "eu-west-2" and client.credentials == Credentials("K", "S")
