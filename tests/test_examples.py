"""The examples, run against the real local S3 server (SeaweedFS, SigV4 enforced).

The web service runs as a separate process, exactly as a user would start it, and gets a
200 MiB chunked upload; its memory is watched from outside while it streams. It is also
given what a deployed service meets: bodies over its maximum (by Content-Length, with and
without ``Expect: 100-continue``, and chunked), clients that disconnect or go quiet
mid-body, wrong credentials, a store that refuses a part, an unreachable endpoint; each
time the answer, the service's log and the bucket (no object, no open multipart upload,
checked with boto3) are looked at. The README's example runs in-process. The
``s3stream_local_s3`` / ``s3stream_bucket`` fixtures come from the s3stream pytest plugin
(the ``pytest11`` entry point of the installed package); ``bucket`` and ``boto`` (the
independent boto3 client that reads objects back) from conftest.py.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import importlib.util
import json
import os
import random
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
import warnings
from collections.abc import AsyncIterator, Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any

import aiohttp
import psutil
import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer
from botocore.exceptions import ClientError
from fake_s3 import FakeS3

from s3stream import Credentials, S3Client
from s3stream.testing import LocalS3

pytestmark = pytest.mark.real_s3

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"
MiB = 1 << 20

# The web upload: its size is deliberately not a multiple of the part size.
WEB_UPLOAD_SIZE = 200 * MiB + 123_457
WEB_PART_SIZE = 8 * MiB
WEB_CONCURRENCY = 4
# Interpreter, allocator and aiohttp overhead on top of the parts held in memory.
RSS_SLACK = 64 * MiB
RSS_SAMPLE_INTERVAL = 0.01


def _load(name: str) -> ModuleType:
    """Import ``examples/<name>.py`` (the examples are scripts, not a package)."""
    path = EXAMPLES / f"{name}.py"
    spec = importlib.util.spec_from_file_location(f"s3stream_examples_{name}", path)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


def _aws_env(local: LocalS3) -> dict[str, str]:
    """The AWS_* settings that point S3Client at ``local``, and nothing else of AWS's."""
    return {
        "AWS_ENDPOINT_URL_S3": local.endpoint,
        "AWS_REGION": local.region,
        "AWS_ACCESS_KEY_ID": local.credentials.access_key_id,
        "AWS_SECRET_ACCESS_KEY": local.credentials.secret_access_key,
        # A developer's ~/.aws files must not leak a profile, token or endpoint in.
        "AWS_CONFIG_FILE": os.devnull,
        "AWS_SHARED_CREDENTIALS_FILE": os.devnull,
    }


@pytest.fixture
def aws_env(s3stream_local_s3: LocalS3, monkeypatch: pytest.MonkeyPatch) -> None:
    """This process's environment pointed at the local server, for examples run in-process."""
    for name in list(os.environ):
        if name.startswith("AWS_"):
            monkeypatch.delenv(name)
    for name, value in _aws_env(s3stream_local_s3).items():
        monkeypatch.setenv(name, value)


def _read_back(boto: Any, bucket: str, key: str) -> bytes:
    return bytes(boto.get_object(Bucket=bucket, Key=key)["Body"].read())


def _sha256_of_object(boto: Any, bucket: str, key: str) -> tuple[str, int]:
    """SHA-256 and size of a stored object, read back in 1 MiB pieces."""
    body = boto.get_object(Bucket=bucket, Key=key)["Body"]
    digest, size = hashlib.sha256(), 0
    for piece in body.iter_chunks(MiB):
        digest.update(piece)
        size += len(piece)
    return digest.hexdigest(), size


# ---------------------------------------------------------------------------- web service


@dataclass
class Service:
    url: str
    port: int
    process: subprocess.Popen[bytes]
    log: Path

    def log_text(self) -> str:
        try:
            return self.log.read_text(errors="replace")
        except OSError:
            return ""

    def log_tail(self) -> str:
        return "\n".join(self.log_text().splitlines()[-30:])


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _wait_ready(service: Service, timeout: float = 30.0) -> None:
    """Poll GET /health until it answers 200; fail early if the process dies."""
    deadline = time.monotonic() + timeout
    last = "no answer yet"
    while True:
        code = service.process.poll()
        if code is not None:
            pytest.fail(f"web service exited with {code} during startup:\n{service.log_tail()}")
        try:
            with urllib.request.urlopen(service.url + "/health", timeout=1.0) as resp:
                if resp.status == 200:
                    return
                last = f"HTTP {resp.status}"
        except (urllib.error.URLError, OSError) as exc:
            last = repr(exc)
        if time.monotonic() > deadline:
            pytest.fail(f"web service not ready after {timeout} s ({last}):\n{service.log_tail()}")
        time.sleep(0.05)


@contextlib.contextmanager
def _run_service(
    tmp_path: Path, aws: dict[str, str], *, args: Sequence[str] = (),
    env: dict[str, str] | None = None, name: str = "web_service",
) -> Iterator[Service]:
    """``examples/web_service.py`` as its own process, as a user starts it.

    ``-W always::UserWarning`` shows every aiohttp ``NotAppKeyWarning`` (aiohttp itself
    silences them); the log (stdout and stderr) must have none when it stops.
    """
    port = _free_port()
    full_env = {k: v for k, v in os.environ.items()
                if not k.startswith(("AWS_", "UPLOAD_"))}
    full_env.update(aws)
    full_env.update(env or {})
    full_env["UPLOAD_PORT"] = str(port)
    log = tmp_path / f"{name}.log"
    cmd = [sys.executable, "-W", "always::UserWarning", str(EXAMPLES / "web_service.py"),
           *args]
    with open(log, "wb") as out:
        proc = subprocess.Popen(
            cmd, env=full_env, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT
        )
    service = Service(f"http://127.0.0.1:{port}", port, proc, log)
    try:
        _wait_ready(service)
        yield service
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    assert "NotAppKeyWarning" not in service.log_text(), service.log_tail()
    assert "Traceback" not in service.log_text(), service.log_tail()


@pytest.fixture
def web_service(s3stream_local_s3: LocalS3, bucket: str, tmp_path: Path) -> Iterator[Service]:
    """The service storing into the test bucket, configured by its flags."""
    args = [
        "--bucket", bucket,
        "--host", "127.0.0.1",
        "--part-size-mib", str(WEB_PART_SIZE // MiB),
        "--concurrency", str(WEB_CONCURRENCY),
    ]  # fmt: skip
    with _run_service(tmp_path, _aws_env(s3stream_local_s3), args=args) as service:
        yield service


# The limited service: small parts, so that a body past a part opens a multipart upload.
LIMIT_PART_SIZE = 5 * MiB
LIMIT_MAX_BYTES = 12 * MiB


@pytest.fixture
def limited_service(
    s3stream_local_s3: LocalS3, bucket: str, tmp_path: Path
) -> Iterator[Service]:
    """The service configured by environment variables only, refusing bodies over 12 MiB."""
    env = {
        "UPLOAD_BUCKET": bucket,
        "UPLOAD_MAX_BYTES": str(LIMIT_MAX_BYTES),
        "UPLOAD_PART_SIZE_MIB": str(LIMIT_PART_SIZE // MiB),
        "UPLOAD_CONCURRENCY": "2",
    }
    with _run_service(tmp_path, _aws_env(s3stream_local_s3), env=env) as service:
        yield service


def _peak_rss_since_exec(pid: int) -> int | None:
    """The process's own high-water RSS (Linux ``VmHWM``), exact where sampling can miss.

    Not ``ru_maxrss``: on Linux that survives exec, so a child started by a big parent
    reports the parent's peak.
    """
    with contextlib.suppress(OSError):
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
    return None


async def _sample_rss(proc: psutil.Process, peak: list[int]) -> None:
    while True:
        with contextlib.suppress(psutil.Error):
            peak[0] = max(peak[0], proc.memory_info().rss)
        await asyncio.sleep(RSS_SAMPLE_INTERVAL)


async def _uneven_chunks(size: int, digest: Any, seed: int = 20240611) -> AsyncIterator[bytes]:
    """``size`` random bytes in chunks of 1 byte to 1 MiB; hashed into ``digest`` as sent."""
    rng = random.Random(seed)
    sent = 0
    while sent < size:
        kind = rng.random()
        if kind < 0.05:
            n = rng.randint(1, 64)
        elif kind < 0.9:
            n = rng.randint(1, 256 * 1024)
        else:
            n = rng.randint(256 * 1024, MiB)
        chunk = rng.randbytes(min(n, size - sent))
        digest.update(chunk)
        sent += len(chunk)
        yield chunk


async def test_web_service_streams_200_mib_in_bounded_memory(
    web_service: Service, bucket: str, boto: Any
) -> None:
    server = psutil.Process(web_service.process.pid)
    baseline = server.memory_info().rss
    peak = [baseline]
    sampler = asyncio.create_task(_sample_rss(server, peak))
    sent = hashlib.sha256()
    key = "streams/big object.bin"
    try:
        timeout = aiohttp.ClientTimeout(total=300)
        # An async generator body goes out with Transfer-Encoding: chunked.
        async with (
            aiohttp.ClientSession(timeout=timeout) as client,
            client.post(
                f"{web_service.url}/upload/{key}",
                data=_uneven_chunks(WEB_UPLOAD_SIZE, sent),
                headers={"Content-Type": "application/x-test-blob"},
            ) as resp,
        ):
            assert resp.request_info.headers.get("Transfer-Encoding") == "chunked"
            text = await resp.text()
            assert resp.status == 200, f"{resp.status}: {text}\n{web_service.log_tail()}"
            answer = json.loads(text)
    finally:
        sampler.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await sampler

    high_water = _peak_rss_since_exec(server.pid)
    peak_rss = max(peak[0], high_water or 0)
    parts = -(-WEB_UPLOAD_SIZE // WEB_PART_SIZE)
    assert answer["key"] == key
    assert answer["size"] == WEB_UPLOAD_SIZE
    assert answer["parts"] == parts
    assert answer["etag"].strip('"').endswith(f"-{parts}")

    bound = baseline + (WEB_CONCURRENCY + 1) * WEB_PART_SIZE + RSS_SLACK
    numbers = (
        f"server RSS: baseline {baseline / MiB:.1f} MiB, peak {peak_rss / MiB:.1f} MiB "
        f"(sampled {peak[0] / MiB:.1f}, VmHWM "
        f"{'n/a' if high_water is None else f'{high_water / MiB:.1f}'}), growth "
        f"{(peak_rss - baseline) / MiB:.1f} MiB; bound {bound / MiB:.1f} MiB = baseline + "
        f"({WEB_CONCURRENCY} + 1) x {WEB_PART_SIZE // MiB} MiB parts + "
        f"{RSS_SLACK // MiB} MiB slack; object {WEB_UPLOAD_SIZE / MiB:.1f} MiB"
    )
    print(numbers)
    assert peak_rss <= bound, numbers

    stored_sha, stored_size = await asyncio.to_thread(_sha256_of_object, boto, bucket, key)
    assert stored_size == WEB_UPLOAD_SIZE
    assert stored_sha == sent.hexdigest()
    head = boto.head_object(Bucket=bucket, Key=key)
    assert head["ContentType"] == "application/x-test-blob"


# What the service answers and leaves behind when things go wrong. Bodies that must not be
# read (or that stop midway) are sent over a raw socket, so the test decides every byte.


async def _read_response(reader: asyncio.StreamReader) -> tuple[int, dict[str, str], bytes]:
    head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 30)
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split()[1])
    headers = {}
    for line in lines[1:]:
        if line:
            name, _, value = line.partition(":")
            headers[name.strip().lower()] = value.strip()
    body = await asyncio.wait_for(reader.readexactly(int(headers["content-length"])), 30)
    return status, headers, body


def _object_exists(boto: Any, bucket: str, key: str) -> bool:
    try:
        boto.head_object(Bucket=bucket, Key=key)
    except ClientError as exc:
        if exc.response["Error"]["Code"] in ("404", "NoSuchKey"):
            return False
        raise
    return True


def _open_uploads(boto: Any, bucket: str) -> list[str]:
    return [u["Key"] for u in boto.list_multipart_uploads(Bucket=bucket).get("Uploads", [])]


async def _eventually(check: Callable[[], bool], what: str, service: Service,
                      within: float = 30.0) -> None:
    """Wait for a condition the test cannot be told of (another process's state)."""
    deadline = time.monotonic() + within
    while not await asyncio.to_thread(check):
        if time.monotonic() > deadline:
            pytest.fail(f"{what}: not after {within} s\n{service.log_tail()}")
        await asyncio.sleep(0.05)


def _log_lines(service: Service, text: str) -> list[str]:
    return [line for line in service.log_text().splitlines() if text in line]


@pytest.mark.parametrize("expect", [False, True], ids=["plain", "expect-100-continue"])
async def test_web_service_refuses_a_too_large_content_length_unread(
    limited_service: Service, bucket: str, boto: Any, expect: bool
) -> None:
    # Only the head: the answer must come without a byte of the body sent. With
    # Expect: 100-continue (curl's way) the answer is the 413, not "100 Continue".
    expect_line = "Expect: 100-continue\r\n" if expect else ""
    reader, writer = await asyncio.open_connection("127.0.0.1", limited_service.port)
    try:
        writer.write(f"POST /upload/too-big HTTP/1.1\r\nHost: test\r\n{expect_line}"
                     f"Content-Length: {LIMIT_MAX_BYTES + 1}\r\n\r\n".encode())
        await writer.drain()
        status, _, body = await _read_response(reader)
    finally:
        writer.close()
    assert status == 413, body
    assert json.loads(body)["error"] == "too_large"
    assert not _object_exists(boto, bucket, "too-big")
    assert _open_uploads(boto, bucket) == []
    # Nothing reached S3: the service said so before starting the upload.
    assert len(_log_lines(limited_service, "Content-Length 12582913 > 12582912, not read")) == 1


async def test_web_service_asks_for_a_body_within_the_max(
    limited_service: Service, bucket: str, boto: Any
) -> None:
    data = random.Random(3).randbytes(LIMIT_MAX_BYTES)  # the max itself is allowed
    reader, writer = await asyncio.open_connection("127.0.0.1", limited_service.port)
    try:
        writer.write(f"PUT /upload/asked HTTP/1.1\r\nHost: test\r\nExpect: 100-continue\r\n"
                     f"Content-Length: {len(data)}\r\n\r\n".encode())
        await writer.drain()
        interim = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 30)
        assert interim == b"HTTP/1.1 100 Continue\r\n\r\n"
        writer.write(data)
        await writer.drain()
        status, _, body = await _read_response(reader)
    finally:
        writer.close()
    assert status == 200, body
    assert json.loads(body)["parts"] == 3  # 5 + 5 + 2 MiB
    assert _read_back(boto, bucket, "asked") == data


async def test_web_service_refuses_a_chunked_body_past_the_max_and_aborts(
    limited_service: Service, bucket: str, boto: Any
) -> None:
    key = "streamed/too-big"
    sent = 0

    async def body() -> AsyncIterator[bytes]:
        nonlocal sent
        chunk = b"\xab" * (256 * 1024)
        while sent < 3 * LIMIT_MAX_BYTES:
            if sent == 2 * LIMIT_PART_SIZE + MiB:
                # Two parts are out: the multipart upload is open on the server now.
                await _eventually(lambda: key in _open_uploads(boto, bucket),
                                  "a multipart upload open", limited_service)
            sent += len(chunk)
            yield chunk

    async with (
        aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=120)) as client,
        client.post(f"{limited_service.url}/upload/{key}", data=body()) as resp,
    ):
        assert resp.request_info.headers.get("Transfer-Encoding") == "chunked"
        assert resp.status == 413, await resp.text()
        assert (await resp.json())["error"] == "too_large"
    assert sent > LIMIT_MAX_BYTES
    # The 413 is answered after the abort: nothing is open, nothing stored.
    assert _open_uploads(boto, bucket) == []
    assert not _object_exists(boto, bucket, key)
    assert len(_log_lines(limited_service, "while streaming; upload aborted")) == 1


@pytest.mark.parametrize("framing", ["content-length", "chunked"])
async def test_web_service_client_disconnect_is_one_info_line_and_aborts(
    limited_service: Service, bucket: str, boto: Any, framing: str
) -> None:
    key = f"gone/{framing}"
    declared = 11 * MiB  # within the max: only the disconnect stops it
    piece = b"\xcd" * MiB
    if framing == "content-length":
        head = f"Content-Length: {declared}\r\n"
        frames = piece * 7
    else:
        head = "Transfer-Encoding: chunked\r\n"
        frames = (f"{len(piece):x}\r\n".encode() + piece + b"\r\n") * 7
    _, writer = await asyncio.open_connection("127.0.0.1", limited_service.port)
    writer.write(f"POST /upload/{key} HTTP/1.1\r\nHost: test\r\n{head}\r\n".encode() + frames)
    await writer.drain()
    # 7 of 11 MiB sent: part 1 is out, so a multipart upload is open; then the client goes.
    await _eventually(lambda: key in _open_uploads(boto, bucket),
                      "a multipart upload open", limited_service)
    writer.close()
    with contextlib.suppress(OSError):
        await writer.wait_closed()

    await _eventually(lambda: bool(_log_lines(limited_service, "client disconnected")),
                      "the disconnect logged", limited_service)
    lines = _log_lines(limited_service, "client disconnected")
    assert len(lines) == 1, lines
    assert " INFO web_service: " in lines[0]
    assert f"{key!r}" in lines[0]
    assert "upload aborted" in lines[0]
    log = limited_service.log_text()
    assert " ERROR " not in log and " WARNING " not in log, log
    assert '" 500 ' not in log, log  # the access log: no 500 answered
    assert _open_uploads(boto, bucket) == []
    assert not _object_exists(boto, bucket, key)


async def test_web_service_answers_408_to_a_client_that_stops_sending(
    s3stream_local_s3: LocalS3, bucket: str, boto: Any, tmp_path: Path
) -> None:
    env = {"UPLOAD_BUCKET": bucket, "UPLOAD_PART_SIZE_MIB": "5", "UPLOAD_IDLE_TIMEOUT": "1"}
    with _run_service(tmp_path, _aws_env(s3stream_local_s3), env=env) as service:
        reader, writer = await asyncio.open_connection("127.0.0.1", service.port)
        try:
            # 6 of 11 MiB, then nothing: the connection stays open, the client silent.
            writer.write(f"POST /upload/stalled HTTP/1.1\r\nHost: test\r\n"
                         f"Content-Length: {11 * MiB}\r\n\r\n".encode() + b"s" * (6 * MiB))
            await writer.drain()
            status, _, body = await _read_response(reader)
        finally:
            writer.close()
    assert status == 408, body
    assert json.loads(body)["error"] == "request_timeout"
    assert len(_log_lines(service, "the client sent nothing for 1.0 s; upload aborted")) == 1
    assert _open_uploads(boto, bucket) == []
    assert not _object_exists(boto, bucket, "stalled")


def _assert_no_leak(body: bytes, *secrets: str) -> dict[str, Any]:
    """The error body is the service's own JSON: no S3 host, bucket or upload id in it."""
    answer: dict[str, Any] = json.loads(body)
    assert set(answer) == {"error", "request_id"}, answer
    text = body.decode()
    for secret in secrets:
        assert secret not in text, (secret, text)
    return answer


async def _post(service: Service, key: str, data: bytes) -> tuple[int, dict[str, str], bytes]:
    async with (
        aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=120)) as client,
        client.post(f"{service.url}/upload/{key}", data=data) as resp,
    ):
        return resp.status, dict(resp.headers), await resp.read()


@pytest.mark.parametrize("size", [1000, LIMIT_PART_SIZE + 1], ids=["put", "multipart"])
async def test_web_service_maps_an_s3_error_to_502_without_internals(
    s3stream_local_s3: LocalS3, bucket: str, boto: Any, tmp_path: Path, size: int
) -> None:
    local = s3stream_local_s3
    aws = {**_aws_env(local), "AWS_SECRET_ACCESS_KEY": "not-the-secret"}
    env = {"UPLOAD_BUCKET": bucket, "UPLOAD_PART_SIZE_MIB": str(LIMIT_PART_SIZE // MiB)}
    with _run_service(tmp_path, aws, env=env) as service:
        status, _, body = await _post(service, "denied", b"d" * size)
    assert status == 502, body
    host_port = local.endpoint.split("://", 1)[1]
    answer = _assert_no_leak(body, host_port, bucket, "SignatureDoesNotMatch", "403")
    assert answer["error"] == "storage_error"
    # The details are in the service's log, under the request id the client was given.
    (line,) = _log_lines(service, answer["request_id"])
    assert " WARNING " in line and "403" in line
    assert not _object_exists(boto, bucket, "denied")
    assert _open_uploads(boto, bucket) == []


async def test_web_service_502_does_not_show_the_upload_id(tmp_path: Path) -> None:
    # A store that accepts the upload, then refuses its first part: the error s3stream
    # raises names the upload id, the answer must not.
    async with FakeS3() as fake:
        fake.fail(op="UploadPart", part=1, status=403, code="AccessDenied")
        aws = {
            "AWS_ENDPOINT_URL_S3": fake.endpoint, "AWS_REGION": fake.region,
            "AWS_ACCESS_KEY_ID": fake.access_key, "AWS_SECRET_ACCESS_KEY": fake.secret_key,
            "AWS_CONFIG_FILE": os.devnull, "AWS_SHARED_CREDENTIALS_FILE": os.devnull,
        }
        env = {"UPLOAD_BUCKET": fake.bucket, "UPLOAD_PART_SIZE_MIB": "5"}
        with _run_service(tmp_path, aws, env=env) as service:
            status, _, body = await _post(service, "refused", b"r" * (6 * MiB))
        (upload_id,) = fake.aborted_uploads
        assert fake.open_uploads == set()
    assert status == 502, body
    answer = _assert_no_leak(body, upload_id, fake.endpoint.split("://", 1)[1], "AccessDenied")
    assert answer["error"] == "storage_error"
    (line,) = _log_lines(service, answer["request_id"])
    assert upload_id in line  # the operator sees it


async def test_web_service_maps_an_unreachable_s3_to_503(
    s3stream_local_s3: LocalS3, tmp_path: Path
) -> None:
    dead_port = _free_port()  # nothing listens there
    aws = {**_aws_env(s3stream_local_s3),
           "AWS_ENDPOINT_URL_S3": f"http://127.0.0.1:{dead_port}"}
    env = {"UPLOAD_BUCKET": "some-bucket", "UPLOAD_RETRY_BUDGET": "1"}
    with _run_service(tmp_path, aws, env=env) as service:
        status, headers, body = await _post(service, "k", b"data")
    assert status == 503, body
    answer = _assert_no_leak(body, str(dead_port), "127.0.0.1", "some-bucket")
    assert answer["error"] == "storage_unavailable"
    assert headers["Retry-After"] == "5"
    (line,) = _log_lines(service, answer["request_id"])
    assert " WARNING " in line and str(dead_port) in line


async def test_web_service_health(web_service: Service) -> None:
    async with aiohttp.ClientSession() as client, client.get(web_service.url + "/health") as resp:
        assert resp.status == 200
        assert await resp.json() == {"status": "ok"}


def test_web_service_usage() -> None:
    out = subprocess.run([sys.executable, str(EXAMPLES / "web_service.py"), "--help"],
                         capture_output=True, text=True, env={
                             k: v for k, v in os.environ.items() if not k.startswith("UPLOAD_")})
    assert out.returncode == 0, out.stderr
    for word in ("--bucket", "UPLOAD_BUCKET", "--max-bytes", "UPLOAD_MAX_BYTES",
                 "UPLOAD_IDLE_TIMEOUT", "UPLOAD_MEMORY_LIMIT_MIB", "413", "503"):
        assert word in out.stdout
    # Without a bucket (flag or variable) it refuses to start.
    out = subprocess.run([sys.executable, str(EXAMPLES / "web_service.py")],
                         capture_output=True, text=True, env={
                             k: v for k, v in os.environ.items() if not k.startswith("UPLOAD_")})
    assert out.returncode == 2
    assert "--bucket" in out.stderr


def test_web_service_config_from_environment_and_flags() -> None:
    parse = _load("web_service").parse_config
    env = {"UPLOAD_BUCKET": "from-env", "UPLOAD_PORT": "9001", "UPLOAD_MAX_BYTES": "777",
           "UPLOAD_PART_SIZE_MIB": "16", "UPLOAD_CONCURRENCY": "2",
           "UPLOAD_MEMORY_LIMIT_MIB": "none", "UPLOAD_IDLE_TIMEOUT": "2.5"}
    config = parse([], env)
    assert (config.bucket, config.port, config.max_bytes, config.part_size) == (
        "from-env", 9001, 777, 16 * MiB)
    assert (config.concurrency, config.memory_limit, config.idle_timeout) == (2, None, 2.5)
    config = parse(["--bucket", "from-flag", "--memory-limit-mib", "256"], env)
    assert (config.bucket, config.memory_limit, config.port) == ("from-flag", 256 * MiB, 9001)
    config = parse(["--bucket", "b"], {})
    assert (config.max_bytes, config.part_size, config.memory_limit) == (1 << 30, None, 1 << 30)


# The same app in-process (aiohttp's test server), NotAppKeyWarning an error.


@contextlib.asynccontextmanager
async def _in_process_client(
    local: LocalS3, bucket: str, credentials: Credentials | None = None
) -> AsyncIterator[TestClient[Any, Any]]:
    web_service = _load("web_service")
    config = web_service.Config(bucket=bucket)

    def new_client() -> S3Client:
        return S3Client(endpoint=local.endpoint, region=local.region,
                        credentials=credentials or local.credentials)

    with warnings.catch_warnings():
        warnings.simplefilter("error", web.NotAppKeyWarning)
        client: TestClient[Any, Any] = TestClient(
            TestServer(web_service.make_app(config, new_client=new_client)))
        await client.start_server()
        try:
            yield client
        finally:
            await client.close()


async def test_web_service_maps_usage_error_to_400(
    s3stream_local_s3: LocalS3, bucket: str
) -> None:
    async with _in_process_client(s3stream_local_s3, bucket) as client:
        resp = await client.post("/upload/" + "k" * 1100, data=b"data")
        assert resp.status == 400
        answer = await resp.json()
        assert answer["error"] == "bad_request"
        assert "1024" in answer["message"]


async def test_web_service_in_process_round_trip_and_502(
    s3stream_local_s3: LocalS3, bucket: str, boto: Any
) -> None:
    async with _in_process_client(s3stream_local_s3, bucket) as client:
        resp = await client.put("/upload/in/process", data=b"hello")
        assert resp.status == 200, await resp.text()
        assert (await resp.json())["size"] == 5
    assert _read_back(boto, bucket, "in/process") == b"hello"

    local = s3stream_local_s3
    wrong = Credentials(local.credentials.access_key_id, "not-the-secret")
    async with _in_process_client(local, bucket, wrong) as client:
        resp = await client.post("/upload/k", data=b"data")
        assert resp.status == 502
        _assert_no_leak(await resp.read(), local.endpoint.split("://", 1)[1], bucket)


def _readme_example() -> str:
    """The first Python block of README.md's Example section."""
    readme = (EXAMPLES.parent / "README.md").read_text()
    section = readme.split("\n## Example\n", 1)[1].split("\n## ", 1)[0]
    return section.split("```python\n", 1)[1].split("```", 1)[0]


@pytest.mark.usefixtures("aws_env")
async def test_readme_example_service(bucket: str, boto: Any) -> None:
    code = _readme_example()
    assert '"videos"' in code and "web.AppKey(" in code and "cleanup_ctx" in code
    namespace: dict[str, Any] = {"__name__": "readme_example"}
    with warnings.catch_warnings():
        warnings.simplefilter("error", web.NotAppKeyWarning)
        exec(compile(code.replace('"videos"', repr(bucket)), "README.md", "exec"), namespace)
        namespace["MAX_BYTES"] = 1000
        async with TestClient(TestServer(namespace["app"])) as client:
            resp = await client.post("/upload/readme/ok", data=b"x" * 1000)
            assert resp.status == 200, await resp.text()
            assert (await resp.json())["size"] == 1000
            resp = await client.post("/upload/readme/big", data=b"x" * 1001)
            assert resp.status == 413

            async def chunked() -> AsyncIterator[bytes]:
                for _ in range(4):
                    yield b"y" * 300

            resp = await client.post("/upload/readme/chunked", data=chunked())
            assert resp.status == 413
            resp = await client.post("/upload/" + "k" * 1100, data=b"data")
            assert resp.status == 400
    assert _read_back(boto, bucket, "readme/ok") == b"x" * 1000
    assert not _object_exists(boto, bucket, "readme/big")
    assert not _object_exists(boto, bucket, "readme/chunked")


# ---------------------------------------------------------------------- other examples


@pytest.mark.usefixtures("aws_env")
def test_upload_file_example(
    bucket: str, boto: Any, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    data = random.Random(7).randbytes(13 * MiB + 5)  # two parts of the planned 8 MiB
    path = tmp_path / "payload.bin"
    path.write_bytes(data)

    _load("upload_file").main([str(path), "--bucket", bucket, "--key", "files/p.bin"])

    printed = capsys.readouterr().out
    assert "UploadResult(" in printed
    assert f"size={len(data)}" in printed
    assert "part_count=2" in printed
    assert _read_back(boto, bucket, "files/p.bin") == data


@pytest.mark.usefixtures("aws_env")
def test_upload_generator_example(
    bucket: str, boto: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    example = _load("upload_generator")
    records = 120_000  # about 11 MiB: multipart with the default 8 MiB parts

    example.main(["--bucket", bucket, "--prefix", "gen/", "--records", str(records)])

    async def expected() -> bytes:
        return b"".join([chunk async for chunk in example.ndjson_records(records)])

    data = asyncio.run(expected())
    lines = data.splitlines()
    assert len(lines) == records
    assert json.loads(lines[-1])["id"] == records - 1
    printed = capsys.readouterr().out.splitlines()
    assert len(printed) == 2
    for key, line in zip(("gen/pull.ndjson", "gen/push.ndjson"), printed, strict=True):
        assert f"key='{key}'" in line
        assert f"size={len(data)}" in line
        assert "part_count=2" in line
        assert _read_back(boto, bucket, key) == data
        head = boto.head_object(Bucket=bucket, Key=key)
        assert head["ContentType"] == "application/x-ndjson"
