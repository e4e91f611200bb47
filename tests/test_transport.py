"""The transport against peers that misbehave in ways a real server will not on demand.

A raw asyncio TCP server (``RawServer``) plays the peer: it trickles a response head a
byte at a time, answers 403 with a 50 MB body, sends more than any S3 answer, or reads
the request body slowly. The pacing delays are the server's behaviour under test;
the tests synchronise on what the server recorded, never on sleeps. ``stall_timeout``
is small (0.4 s) and allowed to pass for real: the timeout is the behaviour under test.

The event-loop tests are plain functions calling ``asyncio.run()`` more than once,
against a ``FakeS3`` that runs in a thread of its own and so outlives each run.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import json
import os
import resource
import socket
import subprocess
import sys
import threading
import warnings
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from pathlib import Path
from types import TracebackType
from typing import Any

import aiohttp
import pytest
from fake_s3 import FakeS3

from s3stream import (
    Credentials,
    Retry,
    S3Client,
    S3ResponseError,
    StallError,
    TransportError,
    UsageError,
)
from s3stream._transport import Transport

MiB = 1 << 20
BUCKET = "bucket"
STALL = 0.4
#: The server's pace for a trickled head: a byte every 50 ms keeps any per-read timer of
#: STALL seconds alive, while the whole head takes 17 s.
TRICKLE = 0.05
TRICKLED_HEAD = (b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\nx-padding: " + b"p" * 300
                 + b"\r\n\r\n")
ERROR_DOC = (b'<?xml version="1.0" encoding="UTF-8"?>\n<Error><Code>AccessDenied</Code>'
             b"<Message>Access Denied (raw test server)</Message>"
             b"<RequestId>RAW-REQUEST-1</RequestId></Error>")
#: What follows the error document: whitespace, which XML allows after the root element.
PADDING = 50 * 1000 * 1000

Handler = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]


# ------------------------------------------------------------------ the raw peer


class RawServer:
    """``async with RawServer(handler) as server:`` serves ``server.url`` with ``handler``.

    One handler call per TCP connection; a peer that goes away ends it quietly.
    ``rcvbuf`` shrinks the accepted sockets' receive buffer (so a slow reader is felt
    by the sender at once instead of after megabytes of kernel buffering).
    """

    def __init__(self, handler: Handler, *, rcvbuf: int | None = None) -> None:
        self._handler = handler
        self._rcvbuf = rcvbuf
        self._tasks: set[asyncio.Task[Any]] = set()
        self.connections = 0
        self.url = ""

    async def __aenter__(self) -> RawServer:
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        if self._rcvbuf is not None:
            # Set before listen(): accepted sockets inherit it.
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, self._rcvbuf)
        sock.bind(("127.0.0.1", 0))
        self._server = await asyncio.start_server(self._serve, sock=sock)
        self.url = f"http://127.0.0.1:{sock.getsockname()[1]}"
        return self

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._tasks.add(task)
        self.connections += 1
        try:
            await self._handler(reader, writer)
        except (ConnectionError, asyncio.IncompleteReadError):
            pass  # the client went away, as it does after a stall or a capped body
        except asyncio.CancelledError:
            pass  # cancelled by __aexit__; asyncio's stream callback would log it
        finally:
            writer.close()
            self._tasks.discard(task)

    async def __aexit__(self, *exc: object) -> None:
        self._server.close()
        tasks = list(self._tasks)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        await self._server.wait_closed()


async def read_request(reader: asyncio.StreamReader) -> tuple[str, str, bytes]:
    """One request: method, target and body (by Content-Length)."""
    head = await reader.readuntil(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    method, target, _ = lines[0].split(" ", 2)
    headers = dict(line.split(":", 1) for line in lines[1:] if line)
    length = int({k.strip().lower(): v.strip() for k, v in headers.items()}
                 .get("content-length", "0"))
    body = await reader.readexactly(length) if length else b""
    return method, target, body


class Transcript:
    """What a handler observed, for the test to assert on."""

    def __init__(self) -> None:
        self.received_at: float | None = None
        self.sent = 0
        self.done = asyncio.Event()


async def trickle(writer: asyncio.StreamWriter, data: bytes, seen: Transcript) -> None:
    for i in range(len(data)):
        writer.write(data[i : i + 1])
        await writer.drain()
        seen.sent += 1
        await asyncio.sleep(TRICKLE)


async def send_error_with_padding(writer: asyncio.StreamWriter, seen: Transcript,
                                  status: bytes = b"403 Forbidden") -> None:
    """A real ``<Error>`` document, then 50 MB of whitespace from one reused buffer."""
    writer.write(b"HTTP/1.1 " + status + b"\r\nContent-Type: application/xml\r\n"
                 b"Content-Length: " + str(len(ERROR_DOC) + PADDING).encode() + b"\r\n\r\n"
                 + ERROR_DOC)
    block = b" " * (64 * 1024)
    try:
        while seen.sent < PADDING:
            chunk = block[: PADDING - seen.sent]
            writer.write(chunk)
            await writer.drain()
            seen.sent += len(chunk)
    finally:
        seen.done.set()


@contextlib.asynccontextmanager
async def transport(**kwargs: Any) -> AsyncIterator[Transport]:
    kwargs.setdefault("stall_timeout", STALL)
    kwargs.setdefault("connect_timeout", 5.0)
    t = Transport(**kwargs)
    try:
        yield t
    finally:
        await t.aclose()


def raw_client(server: RawServer, **kwargs: Any) -> S3Client:
    return S3Client(endpoint=server.url, region="us-east-1", credentials=Credentials("AK", "SK"),
                    checksum=None, stall_timeout=STALL, **kwargs)


# ------------------------------------------------------ the response head is bounded


@pytest.mark.parametrize(("method", "size"), [("PUT", MiB), ("GET", 0)],
                         ids=["with-body", "body-less"])
async def test_trickled_head_is_a_stall(method: str, size: int) -> None:
    seen = Transcript()
    loop = asyncio.get_running_loop()

    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_request(reader)
        seen.received_at = loop.time()
        await trickle(writer, TRICKLED_HEAD, seen)

    async with RawServer(handler) as server, transport() as t, asyncio.timeout(30):
        start = loop.time()
        with pytest.raises(StallError) as info:
            await t.send(method, server.url + "/bucket/key", [], [b"x" * size], size,
                         operation="PutObject")
        failed_at = loop.time()
    assert seen.received_at is not None
    # The head was arriving (a byte per 50 ms, so sock_read never fired) and was cut off
    # about stall_timeout after the request was sent, long before its 17 s were up.
    assert 3 <= seen.sent < len(TRICKLED_HEAD)
    assert STALL - 0.1 <= failed_at - seen.received_at <= STALL + 1.5
    assert failed_at - start < 5
    assert info.value.retryable
    assert "response head" in str(info.value)
    assert isinstance(info.value.__cause__, TimeoutError)


async def test_trickled_head_is_retried_by_the_client() -> None:
    seen = Transcript()
    requests: list[str] = []

    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while True:
            method, target, _ = await read_request(reader)
            requests.append(f"{method} {target}")
            if len(requests) == 1:
                await trickle(writer, TRICKLED_HEAD, seen)
            else:
                writer.write(b'HTTP/1.1 200 OK\r\nETag: "abc"\r\nContent-Length: 0\r\n\r\n')
                await writer.drain()

    delays: list[float] = []

    async def sleep(delay: float) -> None:
        delays.append(delay)

    async with RawServer(handler) as server, asyncio.timeout(30), \
            raw_client(server, retry=Retry(attempts=2), sleep=sleep) as s3:
        result = await s3.upload(BUCKET, "k", b"hello")
    assert result.etag == '"abc"'
    assert requests == ["PUT /bucket/k", "PUT /bucket/k"]
    assert len(delays) == 1
    assert 0 < seen.sent < len(TRICKLED_HEAD)


async def test_slow_request_body_does_not_count_against_the_head() -> None:
    """The head's clock starts when the body is sent, not when the request starts."""
    size = 6 * MiB
    seen = Transcript()
    times: dict[str, float] = {}
    loop = asyncio.get_running_loop()

    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readuntil(b"\r\n\r\n")
        got = 0
        while got < size:
            chunk = await reader.read(64 * 1024)
            if not chunk:
                return
            times.setdefault("first", loop.time())
            got += len(chunk)
            # 4 MiB/s, whatever the read sizes: a 512 KiB slice drains in 1/8 s, so the
            # body makes steady progress, well within stall_timeout, for 1.5 s in all.
            await asyncio.sleep(len(chunk) / (4 * MiB))
        times["last"] = loop.time()
        writer.write(b'HTTP/1.1 200 OK\r\nETag: "slow"\r\nContent-Length: 0\r\n\r\n')
        await writer.drain()
        seen.done.set()

    def small_send_buffer(addr_info: Any) -> socket.socket:
        family, type_, proto, _, _ = addr_info
        sock = socket.socket(family=family, type=type_, proto=proto)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 64 * 1024)
        return sock

    connector = aiohttp.TCPConnector(socket_factory=small_send_buffer)
    async with RawServer(handler, rcvbuf=64 * 1024) as server, \
            aiohttp.ClientSession(connector=connector) as session, \
            transport(session=session) as t, asyncio.timeout(60):
        response = await t.send("PUT", server.url + "/bucket/key", [],
                                [os.urandom(size)], size, operation="PutObject")
    assert response.status == 200
    assert response.headers["etag"] == '"slow"'
    # The body took several stall_timeouts to go out: a head clock started with the
    # request would have fired.
    assert times["last"] - times["first"] > 2 * STALL


# ------------------------------------------------- the response body keeps its bound


async def test_slow_but_steady_response_body_is_read() -> None:
    body = b"0123456789" * 2

    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_request(reader)
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n" % len(body))
        await trickle(writer, body, Transcript())

    loop = asyncio.get_running_loop()
    async with RawServer(handler) as server, transport() as t, asyncio.timeout(30):
        start = loop.time()
        response = await t.send("GET", server.url + "/bucket", [], [], 0,
                                operation="ListParts")
        elapsed = loop.time() - start
    assert response.body == body
    assert elapsed > 2 * STALL  # 20 bytes at 50 ms: longer than stall_timeout, but steady


async def test_silent_response_body_is_a_stall() -> None:
    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_request(reader)
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n0123456789")
        await writer.drain()
        await asyncio.Event().wait()  # and then nothing, with the connection open

    async with RawServer(handler) as server, transport() as t, asyncio.timeout(30):
        with pytest.raises(StallError) as info:
            await t.send("GET", server.url + "/bucket", [], [], 0, operation="ListParts")
    assert "no response data" in str(info.value)
    assert info.value.retryable


# ------------------------------------------------------------- body size caps


async def test_error_body_is_read_up_to_64_kib_and_the_rest_discarded() -> None:
    seen = Transcript()

    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_request(reader)
        await send_error_with_padding(writer, seen)

    async with RawServer(handler) as server, transport() as t, asyncio.timeout(30):
        response = await t.send("PUT", server.url + "/bucket/key", [], [b"x"], 1,
                                operation="PutObject")
        await seen.done.wait()  # the server noticed the connection was dropped
    assert response.status == 403
    assert len(response.body) == 64 * 1024
    assert response.body.startswith(ERROR_DOC)
    # Kernel buffers on loopback hold a few MB at most: the rest was never sent.
    assert seen.sent < PADDING // 2


async def test_error_code_is_parsed_from_a_capped_body() -> None:
    seen = Transcript()

    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_request(reader)
        await send_error_with_padding(writer, seen)

    async with RawServer(handler) as server, asyncio.timeout(30), \
            raw_client(server, retry=Retry(attempts=1)) as s3:
        with pytest.raises(S3ResponseError) as info:
            await s3.upload(BUCKET, "denied", b"x")
    assert info.value.status == 403
    assert info.value.code == "AccessDenied"
    # Message and request id exist only in the body: they show it was parsed.
    assert info.value.message == "Access Denied (raw test server)"
    assert info.value.request_id == "RAW-REQUEST-1"


def _error_body_rss_probe() -> None:
    """Run in a fresh interpreter: peak RSS growth across one 403 with a 50 MB body."""

    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while True:
            _, target, _ = await read_request(reader)
            if target.endswith("/big"):
                await send_error_with_padding(writer, Transcript())
                return
            writer.write(b"HTTP/1.1 403 Forbidden\r\nContent-Length: %d\r\n\r\n"
                         % len(ERROR_DOC) + ERROR_DOC)
            await writer.drain()

    async def main() -> dict[str, Any]:
        async with RawServer(handler) as server, \
                raw_client(server, retry=Retry(attempts=1)) as s3:
            # A small error first, so the session, pool and parser are in the baseline.
            with contextlib.suppress(S3ResponseError):
                await s3.upload(BUCKET, "small", b"x")
            before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
            try:
                await s3.upload(BUCKET, "big", b"x")
            except S3ResponseError as exc:
                error = exc
            after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        return {"growth_kib": after - before, "code": error.code, "message": error.message}

    print(json.dumps(asyncio.run(main())))


def test_error_body_does_not_grow_memory() -> None:
    # In a fresh process: ru_maxrss is a peak, and this process's heap has room left
    # by earlier tests, which would hide a 50 MB read.
    here = Path(__file__).parent
    out = subprocess.run(
        [sys.executable, "-c", "import test_transport as t; t._error_body_rss_probe()"],
        cwd=here, capture_output=True, text=True, timeout=120, check=True,
    )
    probe = json.loads(out.stdout.strip().splitlines()[-1])
    assert probe["code"] == "AccessDenied"
    assert probe["message"] == "Access Denied (raw test server)"
    # Reading the 50 MB body whole costs about 100 MiB (the chunks, then their join).
    assert probe["growth_kib"] < 20 * 1024, probe


async def test_success_body_within_the_cap_is_read_whole() -> None:
    # A ListParts page of 1,000 parts is about 300 KiB; sent chunked, in pieces.
    body = os.urandom(MiB)

    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_request(reader)
        writer.write(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n")
        for i in range(0, len(body), 100_000):
            piece = body[i : i + 100_000]
            writer.write(b"%x\r\n" % len(piece) + piece + b"\r\n")
            await writer.drain()
        writer.write(b"0\r\n\r\n")
        await writer.drain()

    async with RawServer(handler) as server, transport() as t, asyncio.timeout(30):
        response = await t.send("GET", server.url + "/bucket/key", [], [], 0,
                                operation="ListParts")
    assert response.status == 200
    assert response.body == body


async def test_oversized_success_body_is_refused_unread() -> None:
    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_request(reader)
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n" % (17 * MiB))
        await writer.drain()
        await asyncio.Event().wait()  # no body at all: reading it would stall

    async with RawServer(handler) as server, transport() as t, asyncio.timeout(30):
        with pytest.raises(TransportError) as info:
            await t.send("GET", server.url + "/bucket", [], [], 0, operation="ListParts")
    assert not isinstance(info.value, StallError)
    assert not info.value.retryable
    assert "larger than 16 MiB" in str(info.value)


async def test_oversized_chunked_success_body_is_an_error_not_a_truncation() -> None:
    seen = Transcript()

    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_request(reader)
        writer.write(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n")
        piece = b"<x/>" * (64 * 1024)
        try:
            while seen.sent < 64 * MiB:
                writer.write(b"%x\r\n" % len(piece) + piece + b"\r\n")
                await writer.drain()
                seen.sent += len(piece)
        finally:
            seen.done.set()

    async with RawServer(handler) as server, transport() as t, asyncio.timeout(30):
        with pytest.raises(TransportError) as info:
            await t.send("GET", server.url + "/bucket", [], [], 0, operation="ListParts")
        await seen.done.wait()
    assert not info.value.retryable
    assert "larger than 16 MiB" in str(info.value)
    assert seen.sent < 40 * MiB  # the connection was dropped, not read to its end


async def test_head_response_has_no_body() -> None:
    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_request(reader)
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 5000000\r\nETag: \"e\"\r\n\r\n")
        await writer.drain()
        await asyncio.Event().wait()

    # Had the transport waited for the announced 5 MB, the silence would be a StallError.
    async with RawServer(handler) as server, transport() as t, asyncio.timeout(30):
        response = await t.send("HEAD", server.url + "/bucket/key", [], [], 0,
                                operation="HeadObject")
    assert response.status == 200
    assert response.body == b""
    assert response.headers["content-length"] == "5000000"


# ---------------------------------------------------------- argument checks


@pytest.mark.parametrize("kwargs", [
    {"max_connections": 0}, {"max_connections": -1}, {"max_connections": True},
    {"max_connections": 1.5}, {"max_connections": "4"}, {"max_connections": None},
    {"connect_timeout": 0}, {"connect_timeout": -1.0}, {"connect_timeout": True},
    {"connect_timeout": "10"}, {"connect_timeout": float("nan")},
    {"connect_timeout": float("inf")},
    {"stall_timeout": 0}, {"stall_timeout": -0.5}, {"stall_timeout": False},
    {"stall_timeout": "60"}, {"stall_timeout": float("nan")}, {"stall_timeout": float("inf")},
    {"session": "http://127.0.0.1"},
], ids=repr)
def test_bad_transport_settings_are_usage_errors(kwargs: dict[str, Any]) -> None:
    with pytest.raises(UsageError):
        Transport(**kwargs)
    with pytest.raises(UsageError):
        S3Client(endpoint="http://127.0.0.1:9", region="us-east-1",
                 credentials=Credentials("AK", "SK"), **kwargs)


@pytest.mark.parametrize("kwargs", [
    {"max_connections": 1}, {"connect_timeout": None, "stall_timeout": None},
    {"connect_timeout": 3, "stall_timeout": 0.25},
], ids=repr)
def test_good_transport_settings_are_accepted(kwargs: dict[str, Any]) -> None:
    Transport(**kwargs)
    S3Client(endpoint="http://127.0.0.1:9", region="us-east-1",
             credentials=Credentials("AK", "SK"), **kwargs)


# --------------------------------------------------------------- event loops


class ThreadedFakeS3:
    """A FakeS3 served by a loop in a thread of its own, so it outlives ``asyncio.run()``s."""

    def __enter__(self) -> FakeS3:
        self._loop = asyncio.new_event_loop()
        self.fake = FakeS3(bucket=BUCKET)
        started = threading.Event()

        def run() -> None:
            asyncio.set_event_loop(self._loop)
            self._loop.run_until_complete(self.fake.start())
            started.set()
            self._loop.run_forever()

        self._thread = threading.Thread(target=run, name="fake-s3", daemon=True)
        self._thread.start()
        assert started.wait(10), "FakeS3 did not start"
        return self.fake

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        asyncio.run_coroutine_threadsafe(self.fake.stop(), self._loop).result(10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)
        self._loop.close()


def fake_client(fake: FakeS3, **kwargs: Any) -> S3Client:
    return S3Client(endpoint=fake.endpoint, region="us-east-1",
                    credentials=Credentials("AK", "SK"), **kwargs)


@pytest.fixture
def threaded_fake() -> Iterator[FakeS3]:
    with ThreadedFakeS3() as fake:
        yield fake


def test_client_from_an_earlier_asyncio_run_is_refused_before_sending(
        threaded_fake: FakeS3) -> None:
    fake = threaded_fake

    async def first() -> S3Client:
        s3 = fake_client(fake)
        await s3.upload(BUCKET, "first.bin", b"first")
        return s3

    s3 = asyncio.run(first())
    assert fake.objects["first.bin"] == b"first"
    seen = len(fake.requests)

    async def second() -> str:
        with pytest.raises(UsageError) as info:
            # Multipart-sized: this used to send CreateMultipartUpload, then fail.
            await s3.upload(BUCKET, "second.bin", os.urandom(12 * MiB), part_size=5 * MiB)
        await s3.aclose()  # closing from the wrong loop is not a second error
        return str(info.value)

    error = asyncio.run(second())
    # The first run's pool cannot be closed without its loop: aclose() dropped it, and
    # once the error's traceback is gone it is collected here, warning as unclosed.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ResourceWarning)
        gc.collect()
    assert "closed" in error
    assert "inside the running event loop" in error
    assert "one client per event loop" in error
    assert len(fake.requests) == seen
    assert fake.uploads == {} and fake.open_uploads == set()
    assert "second.bin" not in fake.objects


def test_client_bound_to_another_open_loop_is_refused(threaded_fake: FakeS3) -> None:
    fake = threaded_fake
    home = asyncio.new_event_loop()
    s3 = fake_client(fake)
    try:
        home.run_until_complete(s3.upload(BUCKET, "home.bin", b"home"))
        seen = len(fake.requests)

        async def elsewhere() -> UsageError:
            with pytest.raises(UsageError) as info:
                await s3.upload(BUCKET, "away.bin", os.urandom(12 * MiB), part_size=5 * MiB)
            return info.value

        error = asyncio.run(elsewhere())
        assert "another event loop" in str(error)
        assert len(fake.requests) == seen
        assert fake.open_uploads == set()
        # Its own loop can still use it.
        home.run_until_complete(s3.upload(BUCKET, "back.bin", b"back"))
        assert fake.objects["back.bin"] == b"back"
    finally:
        home.run_until_complete(s3.aclose())
        home.close()


def test_borrowed_session_from_another_loop_is_refused(threaded_fake: FakeS3) -> None:
    fake = threaded_fake
    home = asyncio.new_event_loop()

    async def make_session() -> aiohttp.ClientSession:
        return aiohttp.ClientSession()

    session = home.run_until_complete(make_session())
    try:
        async def use() -> UsageError:
            s3 = fake_client(fake, session=session)
            with pytest.raises(UsageError) as info:
                await s3.upload(BUCKET, "borrowed.bin", b"data")
            await s3.aclose()
            return info.value

        error = asyncio.run(use())
        assert "session=" in str(error)
        assert "another event loop" in str(error)
        assert fake.requests == []
        assert not session.closed  # borrowed: never closed by s3stream
    finally:
        home.run_until_complete(session.close())
        home.close()


def test_client_closed_in_an_earlier_run_is_refused(threaded_fake: FakeS3) -> None:
    fake = threaded_fake

    async def first() -> S3Client:
        async with fake_client(fake) as s3:
            await s3.upload(BUCKET, "first.bin", b"first")
        return s3

    s3 = asyncio.run(first())
    seen = len(fake.requests)

    async def second() -> None:
        with pytest.raises(UsageError, match="closed"):
            await s3.upload(BUCKET, "second.bin", b"second")

    asyncio.run(second())
    assert len(fake.requests) == seen


async def test_closed_transport_sends_nothing() -> None:
    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_request(reader)
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n")
        await writer.drain()

    async with RawServer(handler) as server:
        t = Transport(stall_timeout=STALL)
        response = await t.send("GET", server.url + "/b", [], [], 0, operation="HeadBucket")
        assert response.status == 200
        await t.aclose()
        with pytest.raises(UsageError, match="closed"):
            await t.send("GET", server.url + "/b", [], [], 0, operation="HeadBucket")
        assert server.connections == 1


async def test_borrowed_session_closed_by_its_owner_is_a_usage_error() -> None:
    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_request(reader)

    async with RawServer(handler) as server:
        session = aiohttp.ClientSession()
        await session.close()
        t = Transport(session, stall_timeout=STALL)
        with pytest.raises(UsageError, match="closed by its owner"):
            await t.send("GET", server.url + "/b", [], [], 0, operation="HeadBucket")
        await t.aclose()
        assert server.connections == 0


def test_client_made_outside_any_loop_binds_to_the_first_it_is_used_in(
        threaded_fake: FakeS3) -> None:
    s3 = fake_client(threaded_fake)  # at import time, say: no loop is running yet

    async def use() -> None:
        async with s3:
            await s3.upload(BUCKET, "made-early.bin", b"early")

    asyncio.run(use())
    assert threaded_fake.objects["made-early.bin"] == b"early"
