"""The one module that imports aiohttp: it carries signed bytes and maps errors.

It decides nothing. Every aiohttp or OS error is turned into ``TransportError``
here, at the boundary, with the original as ``__cause__``, so no aiohttp type ever
reaches a caller. The URL is passed to aiohttp as an already-encoded ``yarl.URL``:
a plain ``str`` would be re-quoted and have its ``..`` segments removed, and the
request would no longer be the one that was signed.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Any

import aiohttp
import aiohttp.payload
from yarl import URL

from ._parts import Buffer
from ._protocol import Response
from .exceptions import StallError, TransportError

#: Body writes are sliced, with a yield to the event loop after each slice, so one part
#: never holds the loop for more than a slice's worth of send() (the loop also serves the
#: caller's other requests) and a stalled peer is noticed within ``stall_timeout``.
_WRITE_SLICE = 512 * 1024


class _BuffersPayload(aiohttp.payload.Payload):
    """A request body made of the buffers a part already holds: sent without joining."""

    _autoclose = True

    def __init__(self, buffers: Sequence[Buffer], size: int, stall_timeout: float | None) -> None:
        super().__init__(buffers, content_type="application/octet-stream")
        self._size = size
        self._stall_timeout = stall_timeout
        self.stalled = False

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

    async def write_with_length(self, writer: Any, content_length: int | None) -> None:
        await self.write(writer)


class Transport:
    """Sends one HTTP request and returns its whole (small) response."""

    def __init__(
        self,
        session: aiohttp.ClientSession | None = None,
        *,
        connect_timeout: float | None = 10.0,
        stall_timeout: float | None = 60.0,
        max_connections: int = 64,
    ) -> None:
        self._session = session
        self._owns_session = session is None
        self._stall_timeout = stall_timeout
        self._max_connections = max_connections
        self._timeout = aiohttp.ClientTimeout(
            total=None, sock_connect=connect_timeout, sock_read=stall_timeout
        )

    def _get_session(self) -> aiohttp.ClientSession:
        if self._session is None:
            connector = aiohttp.TCPConnector(limit=self._max_connections)
            self._session = aiohttp.ClientSession(connector=connector, auto_decompress=False)
        return self._session

    async def aclose(self) -> None:
        if self._owns_session and self._session is not None:
            session, self._session = self._session, None
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
        # Always our payload, even when empty: it is what stops aiohttp's own silent resend.
        payload = _BuffersPayload(body, size, self._stall_timeout)
        session = self._get_session()
        try:
            async with session.request(
                method,
                URL(url, encoded=True),
                headers=list(headers),
                data=payload,
                timeout=self._timeout,
                allow_redirects=False,
                raise_for_status=False,
                auto_decompress=False,
            ) as resp:
                content = await resp.read()
                return Response(
                    resp.status, {k.lower(): v for k, v in resp.headers.items()}, content
                )
        except (aiohttp.ClientError, OSError) as exc:
            if payload.stalled:
                raise StallError(
                    f"{operation}: no progress sending the body for {self._stall_timeout} s",
                    operation=operation,
                ) from exc
            if isinstance(exc, asyncio.TimeoutError | aiohttp.ServerTimeoutError):
                raise StallError(
                    f"{operation}: no response data for {self._stall_timeout} s",
                    operation=operation,
                ) from exc
            # A certificate or TLS setup failure will not fix itself on a retry.
            raise TransportError(
                f"{operation}: {type(exc).__name__}: {exc}", operation=operation,
                retryable=not isinstance(exc, aiohttp.ClientSSLError),
            ) from exc
