"""examples/stream_download.py, served by a real aiohttp server in-process, streaming from
the real local S3 server (SeaweedFS); every answer compared with what boto3 reads.

Clients ask with and without ``Range`` (``a-b``, ``a-``, ``-n``, past the end, on an empty
object, of a form the service ignores), with HEAD, and for a key that does not exist.
"""

from __future__ import annotations

import importlib.util
import os
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from types import ModuleType
from typing import Any

import aiohttp
import pytest
from aiohttp import web

from s3stream import S3Client
from s3stream.testing import LocalS3

pytestmark = pytest.mark.real_s3

EXAMPLE = Path(__file__).resolve().parent.parent / "examples" / "stream_download.py"
SIZE = 3 * (1 << 20) + 11


def _load() -> ModuleType:
    spec = importlib.util.spec_from_file_location("s3stream_examples_stream_download", EXAMPLE)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


@pytest.fixture
async def service(server: LocalS3, bucket: str, boto: Any) -> AsyncIterator[str]:
    boto.put_object(Bucket=bucket, Key="data/big.bin", Body=os.urandom(SIZE),
                    ContentType="application/x-test")
    boto.put_object(Bucket=bucket, Key="empty", Body=b"")
    async with S3Client(endpoint=server.endpoint, region=server.region,
                        credentials=server.credentials) as s3:
        runner = web.AppRunner(_load().make_app(bucket, s3))
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        try:
            yield f"http://127.0.0.1:{runner.addresses[0][1]}/objects"
        finally:
            await runner.cleanup()


def oracle(boto: Any, bucket: str, key: str, range_: str | None = None) -> tuple[bytes, Any]:
    answer = boto.get_object(Bucket=bucket, Key=key, **({"Range": range_} if range_ else {}))
    return answer["Body"].read(), answer


async def fetch(url: str, method: str = "GET",
                range_: str | None = None) -> tuple[int, Any, bytes]:
    headers = {"Range": range_} if range_ else {}
    async with aiohttp.ClientSession() as client, \
            client.request(method, url, headers=headers) as resp:
        return resp.status, resp.headers, await resp.read()


async def test_whole_object(service: str, boto: Any, bucket: str) -> None:
    status, headers, body = await fetch(f"{service}/data/big.bin")
    expected, answer = oracle(boto, bucket, "data/big.bin")
    assert status == 200 and body == expected and len(body) == SIZE
    assert headers["Content-Length"] == str(SIZE)
    assert headers["Content-Type"] == "application/x-test"
    assert headers["ETag"] == answer["ETag"]
    assert headers["Accept-Ranges"] == "bytes"
    assert "Content-Range" not in headers


@pytest.mark.parametrize(("asked", "first", "last"), [
    ("bytes=0-99", 0, 99),
    ("bytes=1048570-2097160", 1048570, 2097160),   # across the service's ranges
    (f"bytes={SIZE - 10}-", SIZE - 10, SIZE - 1),  # open-ended
    ("bytes=-5", SIZE - 5, SIZE - 1),              # the last 5 bytes
    (f"bytes=7-{SIZE + 100}", 7, SIZE - 1),        # ends past the object: cut
    ("bytes=42-42", 42, 42),
])
async def test_ranges_pass_through(service: str, boto: Any, bucket: str, asked: str,
                                   first: int, last: int) -> None:
    status, headers, body = await fetch(f"{service}/data/big.bin", range_=asked)
    expected, answer = oracle(boto, bucket, "data/big.bin", asked)
    assert status == 206
    assert body == expected and len(body) == last - first + 1
    assert headers["Content-Range"] == answer["ContentRange"] == f"bytes {first}-{last}/{SIZE}"
    assert headers["Content-Length"] == str(last - first + 1)


async def test_unsatisfiable_ranges(service: str) -> None:
    for key, asked, size in (("data/big.bin", f"bytes={SIZE}-", SIZE),
                             ("data/big.bin", f"bytes={SIZE + 5}-{SIZE + 9}", SIZE),
                             ("empty", "bytes=0-10", 0), ("empty", "bytes=-3", 0)):
        status, headers, body = await fetch(f"{service}/{key}", range_=asked)
        assert (status, headers.get("Content-Range"), body) == (416, f"bytes */{size}", b""), \
            (key, asked)


async def test_ignored_range_forms_and_empty_object(service: str, boto: Any,
                                                    bucket: str) -> None:
    expected, _ = oracle(boto, bucket, "data/big.bin")
    for asked in ("bytes=0-1,5-6", "items=0-5", "bytes=9-3"):
        status, _, body = await fetch(f"{service}/data/big.bin", range_=asked)
        assert (status, body == expected) == (200, True), asked
    status, headers, body = await fetch(f"{service}/empty")
    assert (status, headers["Content-Length"], body) == (200, "0", b"")


async def test_head_and_missing(service: str, boto: Any, bucket: str) -> None:
    status, headers, body = await fetch(f"{service}/data/big.bin", method="HEAD")
    head = boto.head_object(Bucket=bucket, Key="data/big.bin")
    assert status == 200 and body == b""
    assert headers["Content-Length"] == str(head["ContentLength"]) == str(SIZE)
    assert headers["ETag"] == head["ETag"]
    assert headers["Content-Type"] == head["ContentType"]
    status, headers, _ = await fetch(f"{service}/data/big.bin", method="HEAD",
                                     range_="bytes=10-19")
    assert (status, headers["Content-Length"]) == (206, "10")
    status, _, body = await fetch(f"{service}/no/such/key")
    assert status == 404 and b"not_found" in body
