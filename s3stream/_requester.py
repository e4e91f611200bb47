"""The one request loop: sign with the current credentials, send, read, retry.

Everything an engine (upload, download) needs to talk to S3 lives here and nothing
else: the endpoint, the signer's inputs, the retry policy, the transport, the clock
(with its offset from the server's, corrected after ``RequestTimeTooSkewed``) and
the hashing pool. Engines take a ``Requester``; they never see the ``S3Client``.
"""

from __future__ import annotations

import asyncio
import contextlib
import email.utils
import logging
import os
import random
import threading
import time
from collections.abc import Awaitable, Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from functools import partial
from typing import TypeVar

from . import _checksums as cks
from . import _protocol as proto
from ._memory import MemoryBudget
from ._parts import Buffer, Part
from ._retry import Retry, is_clock_skew
from ._sigv4 import EMPTY_SHA256, UNSIGNED_PAYLOAD, sign_headers
from ._transport import BodyStream, Transport
from .credentials import Credentials
from .credentials._refresh import RefreshingCredentials
from .exceptions import S3ResponseError, StallError, TransportError, UsageError

logger = logging.getLogger("s3stream")
T = TypeVar("T")

#: Below this, hashing on the event loop is cheaper than a hop to a thread.
_INLINE_HASH_LIMIT = 64 * 1024
#: CRCs are fast (native CRC32C ~20 GB/s, zlib CRC32 ~5 GB/s here), but the event loop is
#: the busiest thread of an upload: past 1 MiB a worker thread computes them (measured: +8%
#: throughput with 8 MiB parts).
_INLINE_CRC_LIMIT = {"crc32c": 1 << 20, "crc32": 1 << 20}
#: Answers that mean "these credentials expired": refresh once and send again.
_EXPIRED_CODES = frozenset({"ExpiredToken", "TokenRefreshRequired", "ExpiredTokenException"})
#: Niceness added to hashing threads (Linux): hashing soaks up idle CPU, never the loop's.
_HASH_THREAD_NICE = 10


def _lower_thread_priority() -> None:
    # On Linux, PRIO_PROCESS with a thread id renices just that thread; elsewhere, skip.
    with contextlib.suppress(AttributeError, OSError):
        os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), _HASH_THREAD_NICE)


@dataclass(slots=True)
class RequestStats:
    """What the requests of one upload cost: counted by ``Requester.call``."""

    requests: int = 0
    retries: int = 0
    stalls: int = 0
    #: Body bytes handed to the transport, retries included.
    bytes_sent: int = 0


class Requester:
    """Sends ``proto.Request``s until their reader accepts the answer."""

    def __init__(
        self,
        *,
        endpoint: proto.Endpoint,
        region: str,
        credentials: RefreshingCredentials,
        sign_payload: bool,
        retry: Retry,
        transport: Transport,
        clock: Callable[[], datetime] | None = None,
        sleep: Callable[[float], Awaitable[None]] | None = None,
        rand: Callable[[], float] | None = None,
        budget: MemoryBudget | None = None,
    ) -> None:
        self.endpoint = endpoint
        self.region = region
        self.credentials = credentials
        self.sign_payload = sign_payload
        self.retry = retry
        self.transport = transport
        self._clock = clock or (lambda: datetime.now(UTC))
        self.clock_offset = timedelta(0)
        self.sleep = sleep or asyncio.sleep
        self.rand = rand or random.random
        self._hasher: ThreadPoolExecutor | None = None
        self.closed = False
        #: What this client's store turned out to support (see ``_checksums.StoreSupport``).
        self.store = cks.StoreSupport()
        #: The client-wide budget for part buffers (None: unlimited).
        self.budget: MemoryBudget | None = budget
        #: bucket -> the region S3 said it lives in, when that is not ``region``.
        self.bucket_regions: dict[str, str] = {}

    async def aclose(self) -> None:
        self.closed = True
        await self.transport.aclose()
        if self._hasher is not None:
            self._hasher.shutdown(wait=False)
            self._hasher = None

    # ----------------------------------------------------------------- the clock

    def now(self) -> datetime:
        return self._clock() + self.clock_offset

    def _correct_clock(self, server_date: str | None) -> None:
        if not server_date:
            return
        try:
            server = email.utils.parsedate_to_datetime(server_date)
        except (TypeError, ValueError):
            return
        if server.tzinfo is None:
            server = server.replace(tzinfo=UTC)
        self.clock_offset = server - self._clock()
        logger.warning("local clock is %.0f s off the server's; correcting",
                       self.clock_offset.total_seconds())

    # ------------------------------------------------------------------- hashing

    async def digest(self, chunks: Sequence[Buffer], size: int,
                     algorithm: str | None) -> cks.PartDigest:
        """The payload SHA-256 (when signing) and the checksum, in one pass per algorithm."""
        want_sha = self.sign_payload and size > 0
        if not want_sha and algorithm is None:
            return cks.PartDigest(None, None)
        work = partial(cks.digest_part, chunks, sha256=want_sha, algorithm=algorithm)
        inline_limit = _INLINE_HASH_LIMIT if want_sha else \
            _INLINE_CRC_LIMIT.get(algorithm or "", _INLINE_HASH_LIMIT)
        if size <= inline_limit:
            return work()
        # hashlib, zlib and crc32c release the GIL on large buffers: threads run in parallel.
        return await self.in_hash_pool(work)

    def _hash_pool(self) -> ThreadPoolExecutor:
        if self._hasher is None:
            # As many threads as cores (more only queue), at a lower priority: the event
            # loop thread, which serves the caller's other requests, wins a contended core.
            workers = max(1, min(8, os.cpu_count() or 2))
            self._hasher = ThreadPoolExecutor(workers, thread_name_prefix="s3stream-hash",
                                              initializer=_lower_thread_priority)
        return self._hasher

    def hash_for(self, digest: cks.PartDigest) -> str:
        if not self.sign_payload:
            return UNSIGNED_PAYLOAD
        return digest.sha256_hex or EMPTY_SHA256

    async def part_digest(self, part: Part, algorithm: str | None) -> cks.PartDigest:
        if part.crc is None:
            return await self.digest(part.chunks, part.size, algorithm)
        # The cutter already computed the CRC while the bytes were hot.
        digest = await self.digest(part.chunks, part.size, None)
        return cks.PartDigest(digest.sha256_hex, part.crc.to_bytes(4, "big"))

    # ------------------------------------------------------------------ requests

    def _signed_headers(self, request: proto.Request, payload_hash: str,
                        credentials: Credentials, endpoint: proto.Endpoint,
                        region: str) -> list[tuple[str, str]]:
        headers = [("Host", endpoint.netloc(request.bucket)), *request.headers]
        if not credentials.is_anonymous:
            added = sign_headers(
                method=request.method,
                raw_path=endpoint.raw_path(request.bucket, request.key),
                query=request.query,
                headers=headers,
                payload_hash=payload_hash,
                credentials=credentials,
                region=region,
                now=self.now(),
            )
            headers.extend(added.items())
        return headers

    def _where(self, bucket: str | None) -> tuple[proto.Endpoint, str]:
        """The endpoint and signing region for a request to ``bucket``."""
        region = self.bucket_regions.get(bucket or "", self.region)
        if region == self.region:
            return self.endpoint, region
        return self.endpoint.for_region(region), region

    async def call(
        self,
        request: proto.Request,
        reader: Callable[[proto.Request, proto.Response], T],
        *,
        payload_hash: str | None = None,
        on_attempt: Callable[[int], None] | None = None,
        retry: Retry | None = None,
        stats: RequestStats | None = None,
    ) -> T:
        """Send ``request`` (re-signed on every try) until ``reader`` accepts the answer.

        ``retry`` overrides the client's policy for this request (aborts run on a budget
        of their own)."""
        if self.closed:
            raise UsageError("this S3Client is closed")
        if payload_hash is None:
            payload_hash = self.hash_for(await self.digest(request.body, request.size, None))

        async def attempt(sent: proto.Request, url: str,
                          headers: list[tuple[str, str]]) -> T:
            response = await self.transport.send(
                sent.method, url, headers, sent.body, sent.size, operation=sent.operation)
            result = reader(sent, response)
            logger.debug("%s %s -> %d", sent.operation, sent.key or "", response.status)
            return result

        return await self._tries(lambda: request, attempt, payload_hash, policy=retry,
                                 on_attempt=on_attempt, stats=stats)

    async def stream(
        self,
        build: Callable[[], proto.Request],
        consume: Callable[[proto.Request, BodyStream], Awaitable[T]],
        *,
        retry: Retry | None = None,
    ) -> T:
        """Send a bodiless request whose answer ``consume`` reads as a stream, until it
        accepts one; as ``call()`` does (re-signed per try, credentials refreshed, the
        bucket's region followed, the same retry policy), except that the request is
        ``build()`` anew for every try: a range cut off mid-body is asked again from the
        first byte not yet received."""
        if self.closed:
            raise UsageError("this S3Client is closed")
        payload_hash = self.hash_for(cks.PartDigest(None, None))

        async def attempt(sent: proto.Request, url: str,
                          headers: list[tuple[str, str]]) -> T:
            async with self.transport.stream(sent.method, url, headers,
                                             operation=sent.operation) as body:
                return await consume(sent, body)

        return await self._tries(build, attempt, payload_hash, policy=retry)

    async def _tries(
        self,
        build: Callable[[], proto.Request],
        attempt: Callable[[proto.Request, str, list[tuple[str, str]]], Awaitable[T]],
        payload_hash: str,
        *,
        policy: Retry | None = None,
        on_attempt: Callable[[int], None] | None = None,
        stats: RequestStats | None = None,
    ) -> T:
        """The loop both ``call()`` and ``stream()`` run: one ``attempt`` per try."""
        policy = policy or self.retry
        started = time.monotonic()
        tries = 0
        refreshed = redirected = False
        while True:
            tries += 1
            request = build()
            if on_attempt is not None:
                on_attempt(tries)
            if stats is not None:
                stats.requests += 1
                stats.retries += tries > 1
                stats.bytes_sent += request.size
            # Every try is signed with the credentials current *now*: a retry after a
            # refresh must not reuse the ones that just expired.
            credentials = await self.credentials.get()
            endpoint, region = self._where(request.bucket)
            url = endpoint.url(request.bucket, request.key, request.query)
            headers = self._signed_headers(request, payload_hash, credentials, endpoint, region)
            error: TransportError | S3ResponseError
            try:
                return await attempt(request, url, headers)
            except TransportError as exc:
                error, retryable, retry_after = exc, exc.retryable, None
                if stats is not None and isinstance(exc, StallError):
                    stats.stalls += 1
            except S3ResponseError as exc:
                error, retry_after = exc, exc.retry_after
                retryable = policy.is_retryable_response(exc.status, exc.code)
                if is_clock_skew(exc.code, exc.message):
                    retryable = retryable or "RequestTimeTooSkewed" in policy.codes
                    self._correct_clock(exc.server_date)
                elsewhere = proto.redirect_region(exc, region) if request.bucket else None
                if elsewhere is not None and not redirected:
                    # The bucket lives in another region: re-sign for it (and its host, on
                    # AWS), remember it for the bucket, and send the same buffers again.
                    redirected = True
                    assert request.bucket is not None
                    self.bucket_regions[request.bucket] = elsewhere
                    logger.info("bucket %s is in region %s, not %s: following", request.bucket,
                                elsewhere, region)
                    tries -= 1
                    continue
                if exc.code in _EXPIRED_CODES and not refreshed:
                    # Expired under us (revoked early, or a clock off): one refresh, shared
                    # with every request that was refused too, and the request again.
                    refreshed = True
                    self.credentials.invalidate(credentials)
                    logger.info("%s %s: credentials expired (%s); refreshing", request.operation,
                                request.key or "", exc.code)
                    tries -= 1
                    continue
            delay = policy.delay(tries, self.rand(), retry_after)
            elapsed = time.monotonic() - started
            if not (retryable and policy.can_retry(tries, elapsed, delay)):
                logger.debug("%s %s failed on try %d, not retried: %s", request.operation,
                             request.key or "", tries, error)
                raise error
            logger.debug("%s %s failed (%s); retry %d in %.3f s", request.operation,
                         request.key or "", error, tries, delay)
            await self.sleep(delay)

    async def in_hash_pool(self, work: Callable[[], T]) -> T:
        """``work()`` (hashing that releases the GIL) on the hashing threads."""
        return await asyncio.get_running_loop().run_in_executor(self._hash_pool(), work)
