"""The one module that imports aiohttp: it carries signed bytes and maps errors.

It decides nothing. Every aiohttp or OS error is turned into ``TransportError``
here, at the boundary, with the original as ``__cause__``, so no aiohttp type ever
reaches a caller. The URL is passed to aiohttp as an already-encoded ``yarl.URL``:
a plain ``str`` would be re-quoted and have its ``..`` segments removed, and the
request would no longer be the one that was signed.

What it bounds, so that a misbehaving peer costs time and memory in proportion to
the settings, never more:

* ``stall_timeout`` while sending the body (no progress for that long), on the whole
  response head once the request is sent (a head trickled a byte at a time would
  keep a per-read timer alive forever), and between reads of the response body;
* the response body's size: an error answer is read up to ``_ERROR_BODY_CAP`` and
  the rest discarded with the connection; a success answer past ``_OK_BODY_CAP``
  is an error.
"""

from __future__ import annotations

import asyncio
import math
from collections.abc import Callable, Sequence
from typing import Any

import aiohttp
import aiohttp.payload
from yarl import URL

from ._parts import Buffer
from ._protocol import Response
from .exceptions import StallError, TransportError, UsageError

#: Body writes are sliced, with a yield to the event loop after each slice, so one part
#: never holds the loop for more than a slice's worth of send() (the loop also serves the
#: caller's other requests) and a stalled peer is noticed within ``stall_timeout``.
_WRITE_SLICE = 512 * 1024

#: An error answer is read up to this much; the rest is never read (the connection is
#: closed instead). S3's ``<Error>`` documents are under 1 KiB, and the code, message and
#: request id come first; a proxy or a broken server may send megabytes of HTML.
_ERROR_BODY_CAP = 64 * 1024

#: A success answer longer than this is refused. The bodies this transport reads are
#: small XML documents; the largest are listing pages of 1,000 entries: ListParts is
#: about 300 KiB, ListMultipartUploads at worst about 7 MiB (1,000 keys of 1,024 bytes,
#: each byte escaped to up to 6 characters, plus ~700 bytes of ids, owner and dates per
#: upload). 16 MiB leaves twice that worst case, so no legitimate answer is refused,
#: while a runaway body (a misconfigured endpoint serving a file) costs a bounded amount.
_OK_BODY_CAP = 16 * 1024 * 1024

#: aiohttp >= 3.10 tells a connect timeout apart from a read timeout.
_CONNECT_TIMEOUT: Any = getattr(aiohttp, "ConnectionTimeoutError", ())


def _mib(n: int) -> str:
    return f"{n / (1 << 20):g} MiB" if n >= 1 << 20 else f"{n // 1024} KiB"


def _too_large(status: int, cap: int, operation: str) -> TransportError:
    return TransportError(
        f"{operation}: HTTP {status} answer larger than {_mib(cap)}, more than any S3 "
        "answer this client reads (is the endpoint an S3 API?)",
        operation=operation,
        # The server did answer: asking again gets the same answer.
        retryable=False,
    )


def _check_timeout(name: str, value: object) -> float | None:
    if value is None:
        return None
    if (isinstance(value, bool) or not isinstance(value, int | float)
            or not math.isfinite(value) or value <= 0):
        raise UsageError(
            f"{name} must be a positive, finite number of seconds (or None for no limit), "
            f"not {value!r}"
        )
    return float(value)


class _BuffersPayload(aiohttp.payload.Payload):
    """A request body made of the buffers a part already holds: sent without joining."""

    _autoclose = True

    def __init__(self, buffers: Sequence[Buffer], size: int, stall_timeout: float | None) -> None:
        super().__init__(buffers, content_type="application/octet-stream")
        self._size = size
        self._stall_timeout = stall_timeout
        self.stalled = False
        #: Called once the last byte is handed to the socket: the response head's clock.
        self.on_sent: Callable[[], None] | None = None

    def decode(self, encoding: str = "utf-8", errors: str = "strict") -> str:
        raise TypeError("a binary request body has no text form")

    async def write(self, writer: Any) -> None:
        # Marked consumed so aiohttp never silently resends the body after a reset:
        # retries belong to the caller's Retry policy, which re-signs and counts them.
        self._consumed = True
        # Without this, aiohttp joins the headers with the first slice: a copy per part.
        send_headers = getattr(writer, "send_headers", None)
        if send_headers is not None:
            send_headers()
        stall = self._stall_timeout
        loop = asyncio.get_running_loop()
        try:
            # One timer per body, pushed forward on progress: a timeout context per slice
            # costs more than the slice's own bookkeeping. It is moved at most every
            # stall/4 seconds, so a stall is detected after 3/4 to 1 x stall_timeout.
            async with asyncio.timeout(None) as deadline:
                due = loop.time()
                for buf in self._value:
                    view = memoryview(buf)
                    for start in range(0, len(view), _WRITE_SLICE):
                        if stall is not None and (now := loop.time()) >= due:
                            deadline.reschedule(now + stall)
                            due = now + stall / 4
                        await writer.write(view[start : start + _WRITE_SLICE])
                        await asyncio.sleep(0)
        except TimeoutError:
            self.stalled = True
            raise
        if self.on_sent is not None:
            self.on_sent()

    async def write_with_length(self, writer: Any, content_length: int | None) -> None:
        await self.write(writer)


class Transport:
    """Sends one HTTP request and returns its whole (small) response.

    The connection pool belongs to one event loop: the one the transport is first used
    in (or, for a borrowed session, the session's). Use from any other loop is refused
    with ``UsageError`` before anything is sent, since aiohttp would otherwise fail
    half-way through (after, say, CreateMultipartUpload) with a bare ``RuntimeError``.
    """

    def __init__(
        self,
        session: aiohttp.ClientSession | None = None,
        *,
        connect_timeout: float | None = 10.0,
        stall_timeout: float | None = 60.0,
        max_connections: int = 64,
    ) -> None:
        if session is not None and not isinstance(session, aiohttp.ClientSession):
            raise UsageError(f"session must be an aiohttp.ClientSession, not {session!r}")
        if (isinstance(max_connections, bool) or not isinstance(max_connections, int)
                or max_connections < 1):
            raise UsageError(f"max_connections must be an int >= 1, not {max_connections!r}")
        connect_timeout = _check_timeout("connect_timeout", connect_timeout)
        stall_timeout = _check_timeout("stall_timeout", stall_timeout)
        self._session = session
        self._owns_session = session is None
        # A borrowed session is bound to the loop it was made in (aiohttp keeps it only
        # privately: the public ``loop`` property is deprecated). Ours binds on first use.
        self._loop: asyncio.AbstractEventLoop | None = (
            getattr(session, "_loop", None) if session is not None else None
        )
        self._closed = False
        self._stall_timeout = stall_timeout
        self._max_connections = max_connections
        self._timeout = aiohttp.ClientTimeout(
            total=None, sock_connect=connect_timeout, sock_read=stall_timeout
        )

    def _session_for(self, loop: asyncio.AbstractEventLoop) -> aiohttp.ClientSession:
        """The session to send with from ``loop``; per request, so kept to a few compares."""
        if self._closed:
            raise UsageError("this S3Client is closed; create a new one to send more requests")
        session = self._session
        if session is None:
            connector = aiohttp.TCPConnector(limit=self._max_connections)
            session = aiohttp.ClientSession(connector=connector, auto_decompress=False)
            self._session, self._loop = session, loop
            return session
        if self._loop is not loop:
            if self._loop is None:  # a borrowed session whose loop aiohttp did not expose
                self._loop = loop
            else:
                raise UsageError(self._wrong_loop(self._loop))
        if session.closed:
            raise UsageError(
                "the aiohttp session passed as session= has been closed by its owner; "
                "pass an open one (s3stream borrows it and never closes it)"
            )
        return session

    def _wrong_loop(self, bound: asyncio.AbstractEventLoop) -> str:
        if bound.is_closed():
            why = ("its event loop has been closed (was it first used under an earlier "
                   "asyncio.run()?)")
        else:
            why = "it belongs to another event loop than the running one"
        if self._owns_session:
            what = "this S3Client's connection pool"
            fix = ("Create the S3Client inside the running event loop (in your async main "
                   "or at application startup), one client per event loop")
        else:
            what = "the aiohttp session passed as session="
            fix = ("Create the aiohttp session and the S3Client inside the running event "
                   "loop, one of each per event loop")
        return f"{what} cannot be used here: {why}. {fix}. Nothing was sent."

    async def aclose(self) -> None:
        self._closed = True
        session, self._session = self._session, None
        if not self._owns_session or session is None:
            return
        try:
            running: asyncio.AbstractEventLoop | None = asyncio.get_running_loop()
        except RuntimeError:
            running = None
        # A session's sockets can only be closed by its own loop; from any other (or
        # after that loop was closed) it is dropped, as there is nothing left to run it.
        if running is self._loop:
            await session.close()

    async def send(
        self,
        method: str,
        url: str,
        headers: Sequence[tuple[str, str]],
        body: Sequence[Buffer],
        size: int,
        *,
        operation: str,
    ) -> Response:
        loop = asyncio.get_running_loop()
        session = self._session_for(loop)
        stall = self._stall_timeout
        # Always our payload, even when empty: it is what stops aiohttp's own silent resend,
        # and aiohttp calls its write() even for an empty body, right after the headers go.
        payload = _BuffersPayload(body, size, stall)
        # aiohttp's sock_read restarts on every byte, so it alone cannot see a head that
        # trickles in. This deadline, armed when the body is sent (the server cannot
        # answer a request it has not received), bounds the whole head.
        head_deadline = asyncio.timeout(None)
        awaiting_head = True
        if stall is not None:
            def start_head_clock() -> None:
                # The body may end after an early answer (a 403 before the body was read).
                if awaiting_head:
                    head_deadline.reschedule(loop.time() + stall)

            payload.on_sent = start_head_clock
        try:
            async with head_deadline:
                resp = await session.request(
                    method,
                    URL(url, encoded=True),
                    headers=list(headers),
                    data=payload,
                    timeout=self._timeout,
                    allow_redirects=False,
                    raise_for_status=False,
                    auto_decompress=False,
                )
                awaiting_head = False
            async with resp:
                content = await self._read_body(resp, method, operation)
                return Response(
                    resp.status, {k.lower(): v for k, v in resp.headers.items()}, content
                )
        except (aiohttp.ClientError, OSError) as exc:
            if payload.stalled:
                raise StallError(
                    f"{operation}: no progress sending the body for {stall} s",
                    operation=operation,
                ) from exc
            if head_deadline.expired():
                raise StallError(
                    f"{operation}: no complete response head within {stall} s of sending "
                    "the request",
                    operation=operation,
                ) from exc
            if isinstance(exc, _CONNECT_TIMEOUT):
                raise TransportError(
                    f"{operation}: could not connect within {self._timeout.sock_connect} s",
                    operation=operation,
                ) from exc
            if isinstance(exc, asyncio.TimeoutError | aiohttp.ServerTimeoutError):
                raise StallError(
                    f"{operation}: no response data for {stall} s",
                    operation=operation,
                ) from exc
            # A certificate or TLS setup failure will not fix itself on a retry.
            raise TransportError(
                f"{operation}: {type(exc).__name__}: {exc}", operation=operation,
                retryable=not isinstance(exc, aiohttp.ClientSSLError),
            ) from exc

    async def fetch(self, method: str, url: str, headers: Sequence[tuple[str, str]],
                    body: bytes, timeout: float) -> Response:
        """One small request to a credentials service (IMDS, STS, SSO...), bounded by
        ``timeout`` seconds in all: a laptop must not wait for a metadata service that
        is not there. Errors are ``TransportError``, like every other request's."""
        try:
            async with asyncio.timeout(timeout):
                return await self.send(method, url, headers, (body,) if body else (),
                                       len(body), operation=f"{method} {url.split('?')[0]}")
        except TimeoutError:
            raise TransportError(f"{method} {url.split('?')[0]}: no answer within {timeout} s",
                                 operation="credentials") from None

    @staticmethod
    async def _read_body(resp: aiohttp.ClientResponse, method: str, operation: str) -> bytes:
        """The body, up to its cap; what lies past the cap is never read into memory."""
        if method == "HEAD":
            return b""
        ok = 200 <= resp.status < 300
        cap = _OK_BODY_CAP if ok else _ERROR_BODY_CAP
        if ok and resp.content_length is not None and resp.content_length > cap:
            resp.close()
            raise _too_large(resp.status, cap, operation)
        chunks: list[bytes] = []
        got = 0
        # One byte past the cap tells "exactly the cap" from "more".
        while got <= cap:
            chunk = await resp.content.read(cap + 1 - got)
            if not chunk:
                return b"".join(chunks)
            chunks.append(chunk)
            got += len(chunk)
        # Closing the connection discards the rest without reading it; the connection
        # could not be reused before the rest was read anyway.
        resp.close()
        if ok:
            raise _too_large(resp.status, cap, operation)
        return b"".join(chunks)[:cap]
