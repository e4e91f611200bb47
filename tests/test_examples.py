"""The examples, run against the real local S3 server (SeaweedFS, SigV4 enforced).

The web service runs as a separate process, exactly as a user would start it, and gets a
200 MiB chunked upload; its memory is watched from outside while it streams. The
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
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any

import aiohttp
import psutil
import pytest
from aiohttp.test_utils import TestClient, TestServer

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
    process: subprocess.Popen[bytes]
    log: Path

    def log_tail(self) -> str:
        try:
            return "\n".join(self.log.read_text(errors="replace").splitlines()[-30:])
        except OSError:
            return ""


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


@pytest.fixture
def web_service(s3stream_local_s3: LocalS3, bucket: str, tmp_path: Path) -> Iterator[Service]:
    """``examples/web_service.py`` running as its own process, storing into the test bucket."""
    port = _free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    env.update(_aws_env(s3stream_local_s3))
    log = tmp_path / "web_service.log"
    cmd = [
        sys.executable, str(EXAMPLES / "web_service.py"),
        "--bucket", bucket,
        "--host", "127.0.0.1",
        "--port", str(port),
        "--part-size-mib", str(WEB_PART_SIZE // MiB),
        "--concurrency", str(WEB_CONCURRENCY),
    ]  # fmt: skip
    with open(log, "wb") as out:
        proc = subprocess.Popen(
            cmd, env=env, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT
        )
    service = Service(f"http://127.0.0.1:{port}", proc, log)
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


async def _in_process_client(s3: S3Client, bucket: str) -> TestClient[Any, Any]:
    web_service = _load("web_service")
    client: TestClient[Any, Any] = TestClient(TestServer(web_service.make_app(s3, bucket)))
    await client.start_server()
    return client


async def test_web_service_maps_usage_error_to_400(s3: S3Client, bucket: str) -> None:
    client = await _in_process_client(s3, bucket)
    try:
        resp = await client.post("/upload/" + "k" * 1100, data=b"data")
        assert resp.status == 400
        assert "1024" in (await resp.json())["error"]
    finally:
        await client.close()


async def test_web_service_maps_s3_error_to_502(s3stream_local_s3: LocalS3, bucket: str) -> None:
    local = s3stream_local_s3
    wrong = Credentials(local.credentials.access_key_id, "not-the-secret")
    async with S3Client(endpoint=local.endpoint, region=local.region, credentials=wrong) as s3:
        client = await _in_process_client(s3, bucket)
        try:
            resp = await client.post("/upload/k", data=b"data")
            assert resp.status == 502
            error = (await resp.json())["error"]
            assert error.startswith("S3 upload failed: ")
            assert "403" in error
        finally:
            await client.close()


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
