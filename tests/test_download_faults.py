"""Downloads against a small aiohttp server of this module's own that serves one object
with ranges as S3 does, records every ``Range`` asked for, and breaks on demand: a body
cut half-way (once), a wrong stored checksum, an object replaced, a held answer.

What is asserted is counted, never timed: the bytes delivered (exactly the object's), the
ranges asked for (a retry starts at the first byte not yet received), the most memory the
range buffers and the client's budget held, the tasks left after the end.
"""

from __future__ import annotations

import asyncio
import base64
import gc
import os
import re
import stat
import zlib
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import crc32c
import pytest
from aiohttp import web

from s3stream import (
    Credentials,
    IntegrityError,
    NotFoundError,
    ObjectChangedError,
    Retry,
    S3Client,
    S3ResponseError,
    UsageError,
)

KiB = 1024


def b64(value: int, width: int = 4) -> str:
    return base64.b64encode(value.to_bytes(width, "big")).decode()


class RangeServer:
    """One object at ``/bucket/key``, GET (with ``Range``) and HEAD."""

    def __init__(self, data: bytes, *, etag: str = '"v1"') -> None:
        self.data = data
        self.etag = etag
        #: The Range header of every GET, in arrival order.
        self.ranges: list[str | None] = []
        self.if_match: list[str | None] = []
        self.authorizations: list[str] = []
        #: (status, code, headers) answered to the next GETs, before anything else.
        self.refuse: list[tuple[int, str, dict[str, str]]] = []
        self.heads = 0
        #: Checksum headers sent on answers for the whole object (and HEAD).
        self.checksums: dict[str, str] = {}
        #: Send the checksum headers on partial ranges too.
        self.checksums_on_ranges = False
        #: Range starts whose answer is cut half-way, once each.
        self.cut: set[int] = set()
        #: Range starts whose answer stops half-way (the link stays open), once each.
        self.stall: set[int] = set()
        self._never = asyncio.Event()
        #: A GET of a range starting here waits for this event before answering.
        self.hold: dict[int, asyncio.Event] = {}
        #: Set when the GET of a held range has arrived (and waits).
        self.entered: dict[int, asyncio.Event] = {}
        #: Answer with chunked transfer encoding, in HTTP chunks of this many bytes.
        self.http_chunks: int | None = None
        self.in_flight = 0
        self.max_in_flight = 0
        self.endpoint = ""
        self._runner: web.AppRunner | None = None

    async def __aenter__(self) -> RangeServer:
        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", self.handle)
        self._runner = web.AppRunner(app)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        port = self._runner.addresses[0][1]
        self.endpoint = f"http://127.0.0.1:{port}"
        return self

    async def __aexit__(self, *exc: object) -> None:
        self._never.set()
        for event in self.hold.values():
            event.set()
        assert self._runner is not None
        await self._runner.cleanup()

    def _headers(self) -> dict[str, str]:
        return {"ETag": self.etag, "Content-Type": "application/octet-stream",
                "Last-Modified": "Wed, 02 Dec 2026 03:00:00 GMT"}

    async def handle(self, request: web.Request) -> web.StreamResponse:
        if request.path != "/bucket/key":
            return web.Response(status=404, content_type="application/xml",
                                body=b"<Error><Code>NoSuchKey</Code><Message>no</Message></Error>")
        if_match = request.headers.get("If-Match")
        if if_match is not None and if_match != self.etag:
            return web.Response(status=412, content_type="application/xml",
                                body=b"<Error><Code>PreconditionFailed</Code></Error>")
        if request.method == "HEAD":
            self.heads += 1
            return web.Response(headers={**self._headers(), **self.checksums,
                                         "Content-Length": str(len(self.data))})
        self.ranges.append(request.headers.get("Range"))
        self.if_match.append(if_match)
        self.authorizations.append(request.headers.get("Authorization", ""))
        if self.refuse:
            status, code, extra = self.refuse.pop(0)
            return web.Response(status=status, headers=extra, content_type="application/xml",
                                body=f"<Error><Code>{code}</Code></Error>".encode())
        match = re.fullmatch(r"bytes=(\d+)-(\d+)", request.headers.get("Range", ""))
        assert match, request.headers.get("Range")
        start, end = int(match[1]), int(match[2])
        size = len(self.data)
        if start >= size:
            return web.Response(status=416, headers={"Content-Range": f"bytes */{size}"},
                                content_type="application/xml",
                                body=b"<Error><Code>InvalidRange</Code></Error>")
        end = min(end, size - 1)
        body = self.data[start:end + 1]
        headers = {**self._headers(), "Content-Range": f"bytes {start}-{end}/{size}",
                   "Content-Length": str(len(body))}
        if len(body) == size or self.checksums_on_ranges:
            headers.update(self.checksums)
        self.in_flight += 1
        self.max_in_flight = max(self.max_in_flight, self.in_flight)
        try:
            if start in self.hold:
                self.entered.setdefault(start, asyncio.Event()).set()
                await self.hold[start].wait()
            if self.http_chunks is not None:
                del headers["Content-Length"]
            response = web.StreamResponse(status=206, headers=headers)
            if self.http_chunks is not None:
                response.enable_chunked_encoding()
                await response.prepare(request)
                for at in range(0, len(body), self.http_chunks):
                    await response.write(body[at:at + self.http_chunks])
                    if start in self.cut and at >= len(body) // 2:
                        self.cut.discard(start)
                        assert request.transport is not None
                        request.transport.close()
                        return response
                await response.write_eof()
                return response
            await response.prepare(request)
            if start in self.cut:
                self.cut.discard(start)
                await response.write(body[: len(body) // 2])
                assert request.transport is not None
                request.transport.close()  # after what was written: a link cut mid-body
                return response
            if start in self.stall:
                self.stall.discard(start)
                await response.write(body[: len(body) // 2])
                await self._never.wait()  # sends nothing more, and keeps the link open
                return response
            await response.write(body)
            await response.write_eof()
            return response
        finally:
            self.in_flight -= 1


def client_tasks() -> set[asyncio.Task[Any]]:
    """The running tasks of s3stream's own (the test server's are not counted)."""
    found = set()
    for task in asyncio.all_tasks():
        code = getattr(task.get_coro(), "cr_code", None)
        if code is not None and f"{os.sep}s3stream{os.sep}" in code.co_filename:
            found.add(task)
    return found


def client_for(server: RangeServer, **kwargs: Any) -> S3Client:
    async def no_sleep(delay: float) -> None:
        return None

    kwargs.setdefault("retry", Retry(attempts=3))
    return S3Client(endpoint=server.endpoint, region="us-east-1",
                    credentials=Credentials("AK", "SK"), sleep=no_sleep, **kwargs)


@pytest.fixture
async def data() -> bytes:
    return os.urandom(200 * KiB + 123)


@pytest.fixture
async def server(data: bytes) -> AsyncIterator[RangeServer]:
    async with RangeServer(data) as srv:
        yield srv


def names(directory: Path) -> list[str]:
    return sorted(p.name for p in directory.iterdir())


def read(path: Path) -> bytes:
    return path.read_bytes()


async def collect(dl: Any) -> bytes:
    return b"".join([chunk async for chunk in dl])


async def test_reset_mid_range_resumes_at_first_missing_byte(server: RangeServer,
                                                             data: bytes) -> None:
    part = 64 * KiB
    server.cut = {part}  # range 1 (bytes 65536-131071) is cut after 32 KiB, once
    async with client_for(server) as s3:
        got = await collect(s3.download("bucket", "key", part_size=part, concurrency=2))
    assert got == data
    size = len(data)
    tries = [f"bytes={start}-{min(start + part, size) - 1}" for start in range(0, size, part)]
    retry = f"bytes={part + part // 2}-{2 * part - 1}"
    # Every range asked once, and range 1 again from its first byte not received.
    assert sorted(server.ranges, key=str) == sorted([*tries, retry])
    assert server.ranges.index(retry) > server.ranges.index(tries[1])
    # The retry is pinned to the first answer's ETag like every range after the first.
    assert server.if_match[0] is None and set(server.if_match[1:]) == {'"v1"'}


async def test_chunks_are_bytes_that_stay_valid(server: RangeServer, data: bytes) -> None:
    # Chunks are handed out as received, without a copy: each must be an immutable
    # ``bytes`` the consumer may keep while later ones arrive, the join the object.
    part = 64 * KiB
    kept: list[bytes] = []
    async with client_for(server) as s3:
        async for chunk in s3.download("bucket", "key", part_size=part, concurrency=2):
            assert type(chunk) is bytes and chunk
            kept.append(chunk)
    assert b"".join(kept) == data


async def test_chunked_encoding_bodies(server: RangeServer, data: bytes) -> None:
    # A store (or proxy) may send a range with chunked transfer encoding: the end of each
    # HTTP chunk is not the end of the body. Range 1 is also cut once, after half its bytes.
    part = 64 * KiB
    server.http_chunks = 5000
    server.cut = {part}
    async with client_for(server) as s3:
        got = await collect(s3.download("bucket", "key", part_size=part, concurrency=2))
    assert got == data
    # The cut came after the first HTTP chunk that reached half the range: the retry asks
    # from the first byte after the last whole chunk sent.
    sent = next(at for at in range(0, part, 5000) if at >= part // 2) + 5000
    retry = f"bytes={part + sent}-{2 * part - 1}"
    assert server.ranges.count(retry) == 1
    assert len(server.ranges) == len(range(0, len(data), part)) + 1


async def test_reset_in_first_range_resumes(server: RangeServer, data: bytes) -> None:
    server.cut = {0}
    async with client_for(server) as s3, s3.download("bucket", "key",
                                                     part_size=len(data)) as dl:
        got = await collect(dl)
    assert got == data
    half = len(data) // 2
    assert server.ranges == [f"bytes=0-{len(data) - 1}", f"bytes={half}-{len(data) - 1}"]


async def test_stalled_range_resumes_at_first_missing_byte(server: RangeServer,
                                                          data: bytes) -> None:
    part = 64 * KiB
    server.stall = {2 * part}
    async with client_for(server, stall_timeout=0.2) as s3:
        dl = s3.download("bucket", "key", part_size=part)
        got = bytearray()
        while True:  # anext() on the Download itself, without async for
            try:
                got += await anext(dl)
            except StopAsyncIteration:
                break
    assert got == data
    retry = f"bytes={2 * part + part // 2}-{3 * part - 1}"
    assert server.ranges.count(retry) == 1
    assert server.ranges.index(retry) > server.ranges.index(f"bytes={2 * part}-{3 * part - 1}")


async def test_streamed_gets_share_the_request_loop(server: RangeServer,
                                                    data: bytes) -> None:
    # The bucket is elsewhere (followed, re-signed for its region), then throttled
    # (retried): the same loop as every other request's.
    server.refuse = [(400, "AuthorizationHeaderMalformed", {"x-amz-bucket-region": "eu-west-3"}),
                     (503, "SlowDown", {})]
    async with client_for(server) as s3:
        assert await collect(s3.download("bucket", "key", part_size=len(data))) == data
        assert s3._requester.bucket_regions == {"bucket": "eu-west-3"}
    assert "/us-east-1/s3/" in server.authorizations[0]
    assert all("/eu-west-3/s3/" in a for a in server.authorizations[1:])
    assert len(server.ranges) == 3 and len(set(server.ranges)) == 1


async def test_object_replaced_mid_download(server: RangeServer, data: bytes) -> None:
    part = 32 * KiB
    # Range 3 waits until the object has been replaced.
    gate = server.hold[3 * part] = asyncio.Event()
    async with client_for(server) as s3:
        delivered = bytearray()
        with pytest.raises(ObjectChangedError) as caught:
            async with s3.download("bucket", "key", part_size=part, concurrency=1) as dl:
                async for chunk in dl:
                    delivered += chunk
                    if len(delivered) == part:
                        server.data, server.etag = os.urandom(len(data)), '"v2"'
                        gate.set()
        assert caught.value.status == 412
        # Only bytes of the first version, in order, and not all of them.
        assert data.startswith(bytes(delivered)) and len(delivered) < len(data)


async def test_store_ignoring_if_match_is_caught_by_etag(server: RangeServer,
                                                         data: bytes) -> None:
    part = 64 * KiB
    async with client_for(server) as s3, s3.download("bucket", "key", part_size=part,
                                                     concurrency=1) as dl:
        it = aiter(dl)
        first = await anext(it)
        # Replaced; and, like rclone, the store no longer checks If-Match.
        server.etag = '"v2"'
        original = server.handle

        async def ignore_if_match(request: web.Request) -> web.StreamResponse:
            return await original(request.clone(headers={
                k: v for k, v in request.headers.items() if k.lower() != "if-match"}))

        server.handle = ignore_if_match  # type: ignore[method-assign]
        delivered = first
        with pytest.raises(ObjectChangedError):
            async for chunk in it:
                delivered += chunk
        assert data.startswith(delivered)


CHECKSUMS = {
    "CRC32C": lambda d: b64(crc32c.crc32c(d)),
    "CRC32": lambda d: b64(zlib.crc32(d)),
}
try:
    from awscrt import checksums as _awscrt  # type: ignore[import-untyped]

    CHECKSUMS["CRC64NVME"] = lambda d: b64(_awscrt.crc64nvme(d), 8)
except ImportError:  # pragma: no cover
    pass


@pytest.mark.parametrize("algorithm", sorted(CHECKSUMS))
@pytest.mark.parametrize("ranges", ["one", "many"])
async def test_full_object_checksum_checked(server: RangeServer, data: bytes,
                                            algorithm: str, ranges: str) -> None:
    header = f"x-amz-checksum-{algorithm.lower()}"
    part = len(data) if ranges == "one" else 16 * KiB
    server.checksums = {header: CHECKSUMS[algorithm](data), "x-amz-checksum-type": "FULL_OBJECT"}
    async with client_for(server) as s3:
        assert await collect(s3.download("bucket", "key", part_size=part)) == data
        # One range: the GET carries the checksum; many: one HeadObject asks for it.
        assert server.heads == (0 if ranges == "one" else 1)
        server.checksums[header] = CHECKSUMS[algorithm](data[:-1] + bytes([data[-1] ^ 1]))
        delivered = bytearray()
        with pytest.raises(IntegrityError, match=algorithm):
            async for chunk in s3.download("bucket", "key", part_size=part):
                delivered += chunk
        # Every byte was delivered before the mismatch was reported.
        assert delivered == data


async def test_composite_and_ranged_are_not_checked(server: RangeServer, data: bytes) -> None:
    server.checksums_on_ranges = True
    server.checksums = {"x-amz-checksum-crc32c": "AAAAAA==-3", "x-amz-checksum-type": "COMPOSITE"}
    async with client_for(server) as s3:
        assert await collect(s3.download("bucket", "key", part_size=16 * KiB)) == data
        server.checksums = {"x-amz-checksum-crc32c": "AAAAAA==",
                            "x-amz-checksum-type": "FULL_OBJECT"}
        # A sub-range cannot be checked against the whole object's checksum.
        assert await collect(s3.download("bucket", "key", offset=5, part_size=16 * KiB)) \
            == data[5:]
        # Nor with checksum=False.
        assert await collect(s3.download("bucket", "key", checksum=False)) == data


async def test_memory_bounded_by_window_and_budget(data: bytes) -> None:
    part, concurrency = 8 * KiB, 3
    payload = os.urandom(20 * part + 5)  # 21 ranges
    async with RangeServer(payload) as srv, client_for(srv, memory_limit=64 * KiB * 1024) as s3:
        budget = s3._requester.budget
        assert budget is not None
        async with s3.download("bucket", "key", part_size=part,
                               concurrency=concurrency) as dl:
            got = bytearray()
            async for chunk in dl:
                got += chunk
                assert budget.held <= (concurrency + 1) * part
                # A slow consumer: the fetchers run ahead as far as they may.
                for _ in range(20):
                    await asyncio.sleep(0)
        assert got == payload
        assert budget.peak <= (concurrency + 1) * part
        assert dl.peak_buffered <= (concurrency + 1) * part
        # It did run ahead (more than one range held at once), within the limits.
        assert dl.peak_buffered > part
        assert srv.max_in_flight <= concurrency
        assert budget.held == 0


async def test_small_budget_still_progresses(server: RangeServer, data: bytes) -> None:
    # A budget smaller than one range: granted one range at a time, never stuck.
    async with client_for(server, memory_limit=1000) as s3:
        assert await collect(s3.download("bucket", "key", part_size=16 * KiB)) == data
        assert s3._requester.budget is not None and s3._requester.budget.held == 0


async def test_aclose_and_cancel_leave_no_task_and_no_memory(server: RangeServer,
                                                             data: bytes) -> None:
    part = 16 * KiB
    gate = server.hold[3 * part] = asyncio.Event()
    async with client_for(server) as s3:
        budget = s3._requester.budget
        assert budget is not None
        dl = s3.download("bucket", "key", part_size=part, concurrency=4)
        async with dl:
            it = aiter(dl)
            await anext(it)
            assert budget.held > 0
            await dl.aclose()
            assert budget.held == 0
            assert client_tasks() == set()
        # Cancelled while waiting for a held range.
        dl = s3.download("bucket", "key", part_size=part, concurrency=4)

        async def consume() -> None:
            async for _ in dl:
                pass

        entered = server.entered[3 * part] = asyncio.Event()
        task = asyncio.ensure_future(consume())
        await entered.wait()
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        assert budget.held == 0
        assert client_tasks() == set()
        gate.set()


async def test_break_out_of_plain_async_for(server: RangeServer) -> None:
    async with client_for(server) as s3:
        budget = s3._requester.budget
        assert budget is not None
        async with s3.download("bucket", "key", part_size=16 * KiB) as dl:
            async for _ in dl:
                break
        assert budget.held == 0 and client_tasks() == set()
        # Without ``async with``: the event loop's finaliser closes the dropped generator.
        async for _ in s3.download("bucket", "key", part_size=16 * KiB):
            break
        gc.collect()
        for _ in range(1000):
            if budget.held == 0 and client_tasks() == set():
                break
            await asyncio.sleep(0)
        assert budget.held == 0 and client_tasks() == set()


async def test_errors_are_typed(server: RangeServer, data: bytes) -> None:
    async with client_for(server) as s3:
        with pytest.raises(NotFoundError):
            async with s3.download("bucket", "other"):
                pass
        with pytest.raises(S3ResponseError) as caught:
            async with s3.download("bucket", "key", offset=len(data)):
                pass
        assert caught.value.status == 416 and caught.value.code == "InvalidRange"
        with pytest.raises(ObjectChangedError.__mro__[1]):  # PreconditionFailedError
            async with s3.download("bucket", "key", if_match='"other"'):
                pass
        # A range that ends past the object is cut at its end, as S3 does.
        async with s3.download("bucket", "key", offset=10, length=10 * len(data)) as dl:
            assert (dl.offset, dl.length) == (10, len(data) - 10)
            assert await collect(dl) == data[10:]
            assert dl.info is not None and dl.info.size == len(data)
            assert dl.info.etag == '"v1"'


@pytest.mark.parametrize("kwargs", [
    {"offset": -1}, {"offset": 1.5}, {"length": 0}, {"length": True}, {"part_size": 0},
    {"part_size": "8"}, {"concurrency": 0}, {"version_id": ""}, {"if_match": "a\nb"},
    {"checksum": "crc32c"},
])
async def test_arguments_checked_before_any_io(server: RangeServer, kwargs: Any,
                                               tmp_path: Path) -> None:
    async with client_for(server) as s3:
        with pytest.raises(UsageError):
            s3.download("bucket", "key", **kwargs)
        with pytest.raises(UsageError):
            await s3.download_to("bucket", "key", tmp_path / "f", **kwargs)
        with pytest.raises(UsageError):
            s3.download("Bad_Bucket", "key")
        with pytest.raises(UsageError):
            await s3.download_to("bucket", "key", 42)  # type: ignore[arg-type]
    assert server.ranges == [] and server.heads == 0


async def test_download_to_failure_leaves_nothing(server: RangeServer, data: bytes,
                                                  tmp_path: Path) -> None:
    part = 16 * KiB
    target = tmp_path / "out.bin"
    async with client_for(server, retry=Retry(attempts=1)) as s3:
        server.cut = {2 * part}
        with pytest.raises(S3ResponseError.__mro__[1]):  # S3StreamError: TransportError here
            await s3.download_to("bucket", "key", target, part_size=part)
        assert names(tmp_path) == []
        # Cancelled mid-way: the same.
        gate = server.hold[3 * part] = asyncio.Event()
        entered = server.entered[3 * part] = asyncio.Event()
        task = asyncio.ensure_future(s3.download_to("bucket", "key", target, part_size=part))
        await entered.wait()
        assert [p.endswith(".part") for p in names(tmp_path)] == [True]
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        assert names(tmp_path) == []
        gate.set()
        seen: list[tuple[int, int]] = []
        info = await s3.download_to("bucket", "key", target, part_size=part,
                                    progress=lambda written, total: seen.append((written,
                                                                                 total)))
        assert read(target) == data and info.size == len(data)
        # Called as the file grows, and once at the end with every byte written.
        assert seen[-1] == (len(data), len(data))
        assert [w for w, _ in seen] == sorted(w for w, _ in seen)
        assert names(tmp_path) == ["out.bin"]
        # The file has the permissions any new file gets here (the umask's), not the
        # temporary file's private 0o600.
        umask = os.umask(0o022)
        os.umask(umask)
        assert stat.S_IMODE(target.stat().st_mode) == 0o666 & ~umask
