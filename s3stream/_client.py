"""S3Client and Upload: the I/O driver around the sans-IO core.

Concurrency model: the producer (``upload()``'s loop over the source, or the caller
of ``Upload.write()``) takes a slot from a semaphore *before* a part task starts, so
at most ``concurrency`` parts are in flight and the producer waits instead of
reading ahead. A failing part records the first error and cancels its siblings; the
producer sees the error at its next step. Cleanup (cancel parts, wait for them,
AbortMultipartUpload) runs in its own task, shielded from repeated cancellation and
bounded by ``abort_timeout``, and it never replaces the error that caused it.
"""

from __future__ import annotations

import asyncio
import contextlib
import email.utils
import io
import logging
import os
import random
import threading
import time
from collections.abc import AsyncIterable, AsyncIterator, Awaitable, Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from functools import partial
from types import TracebackType
from typing import TYPE_CHECKING, Any, BinaryIO, TypeVar

from . import _checksums as cks
from . import _protocol as proto
from . import _xml
from ._credentials import Credentials, resolve_credentials, resolve_endpoint, resolve_region
from ._parts import S3_LIMITS, Buffer, Limits, Part, PartCutter, PartSizer, plan
from ._retry import Retry
from ._sigv4 import EMPTY_SHA256, UNSIGNED_PAYLOAD, sign_headers
from ._transport import Transport
from .exceptions import (
    IntegrityError,
    S3ResponseError,
    TransportError,
    UploadError,
    UsageError,
)

if TYPE_CHECKING:
    import aiohttp

__all__ = ["MultipartUploadInfo", "PartInfo", "S3Client", "Upload", "UploadResult"]

logger = logging.getLogger("s3stream")
T = TypeVar("T")

#: Below this, hashing on the event loop is cheaper than a hop to a thread.
_INLINE_HASH_LIMIT = 64 * 1024
#: CRCs are fast (native CRC32C ~20 GB/s, zlib CRC32 ~5 GB/s here), but the event loop is
#: the busiest thread of an upload: past 1 MiB a worker thread computes them (measured: +8%
#: throughput with 8 MiB parts).
_INLINE_CRC_LIMIT = {"crc32c": 1 << 20, "crc32": 1 << 20}
#: Niceness added to hashing threads (Linux): hashing soaks up idle CPU, never the loop's.
_HASH_THREAD_NICE = 10
#: The longest stretch (seconds) a producer runs without giving the loop a turn.
_PRODUCER_SLICE = 0.001
#: How much a file source reads per call (in a worker thread).
_FILE_READ_SIZE = 8 << 20

Source = AsyncIterable[bytes | bytearray | memoryview] | bytes | bytearray | memoryview | str | \
    os.PathLike[str] | BinaryIO


@dataclass(frozen=True, slots=True)
class UploadResult:
    """What S3 stored. ``upload_id`` is None when the object went up as one PutObject."""

    bucket: str
    key: str
    etag: str
    size: int
    part_count: int
    upload_id: str | None = None
    version_id: str | None = None
    #: The object's checksum as S3 stores it (base64; a COMPOSITE one ends in ``-N``).
    checksum: str | None = None
    checksum_algorithm: str | None = None
    #: ``FULL_OBJECT`` or ``COMPOSITE``.
    checksum_type: str | None = None


@dataclass(frozen=True, slots=True)
class MultipartUploadInfo:
    """An in-progress multipart upload, as ListMultipartUploads reports it."""

    bucket: str
    key: str
    upload_id: str
    initiated: datetime | None


@dataclass(frozen=True, slots=True)
class PartInfo:
    number: int
    etag: str
    size: int
    last_modified: datetime | None


class _Default:
    def __repr__(self) -> str:
        return "DEFAULT"


#: "Use the client's setting": lets ``checksum=None`` mean "no checksum" per upload.
DEFAULT: Any = _Default()


def _parse_time(text: str | None) -> datetime | None:
    if not text:
        return None
    try:
        value = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return None
    return value if value.tzinfo else value.replace(tzinfo=UTC)


def _lower_thread_priority() -> None:
    # On Linux, PRIO_PROCESS with a thread id renices just that thread; elsewhere, skip.
    with contextlib.suppress(AttributeError, OSError):
        os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), _HASH_THREAD_NICE)


def _check_concurrency(concurrency: object) -> int:
    if isinstance(concurrency, bool) or not isinstance(concurrency, int) or concurrency < 1:
        raise UsageError(f"concurrency must be an int >= 1, not {concurrency!r}")
    return concurrency


class S3Client:
    """An S3 client for streaming uploads.

    Every argument is keyword-only and optional; omitted ones come from the
    environment as AWS's own tools resolve them (see ``_credentials``).
    ``session`` is a caller-owned ``aiohttp.ClientSession`` that is borrowed and
    never closed; without one the client owns (and closes) its own.
    """

    def __init__(
        self,
        *,
        endpoint: str | None = None,
        region: str | None = None,
        credentials: Credentials | None = None,
        session: aiohttp.ClientSession | None = None,
        addressing: str = "auto",
        sign_payload: bool | None = None,
        retry: Retry | None = None,
        connect_timeout: float | None = 10.0,
        stall_timeout: float | None = 60.0,
        abort_timeout: float = 30.0,
        max_connections: int = 64,
        checksum: str | None = DEFAULT,
        limits: Limits = S3_LIMITS,
        environ: Mapping[str, str] | None = None,
        clock: Callable[[], datetime] | None = None,
        sleep: Callable[[float], Awaitable[None]] | None = None,
        rand: Callable[[], float] | None = None,
    ) -> None:
        env = os.environ if environ is None else environ
        if credentials is not None and not isinstance(credentials, Credentials):
            raise UsageError("credentials must be an s3stream.Credentials")
        if retry is not None and not isinstance(retry, Retry):
            raise UsageError("retry must be an s3stream.Retry")
        for name, value in (("connect_timeout", connect_timeout),
                            ("stall_timeout", stall_timeout), ("abort_timeout", abort_timeout)):
            if value is not None and (not isinstance(value, int | float) or value <= 0):
                raise UsageError(f"{name} must be a positive number of seconds")
        self.region = resolve_region(region, env)
        self.credentials = resolve_credentials(credentials, env)
        self._endpoint = proto.Endpoint.parse(
            resolve_endpoint(endpoint, env), region=self.region, addressing=addressing
        )
        self._sign_payload = (not self._endpoint.is_https) if sign_payload is None \
            else bool(sign_payload)
        self.retry = retry or Retry()
        if not isinstance(limits, Limits):
            raise UsageError("limits must be an s3stream.Limits")
        self.limits = limits
        self.checksum = (cks.default_algorithm() if checksum is DEFAULT
                         else cks.validate_algorithm(checksum))
        self._abort_timeout = abort_timeout
        self._transport = Transport(
            session, connect_timeout=connect_timeout, stall_timeout=stall_timeout,
            max_connections=max_connections,
        )
        self._clock = clock or (lambda: datetime.now(UTC))
        self._clock_offset = timedelta(0)
        self._sleep = sleep or asyncio.sleep
        self._rand = rand or random.random
        self._hasher: ThreadPoolExecutor | None = None
        self._closed = False

    def __repr__(self) -> str:
        return (f"S3Client(endpoint={self.endpoint!r}, region={self.region!r}, "
                f"credentials={self.credentials!r})")

    @property
    def endpoint(self) -> str:
        return self._endpoint.url(None, None, ())

    async def __aenter__(self) -> S3Client:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        self._closed = True
        await self._transport.aclose()
        if self._hasher is not None:
            self._hasher.shutdown(wait=False)
            self._hasher = None

    # ------------------------------------------------------------------ requests

    def _now(self) -> datetime:
        return self._clock() + self._clock_offset

    def _correct_clock(self, server_date: str | None) -> None:
        if not server_date:
            return
        try:
            server = email.utils.parsedate_to_datetime(server_date)
        except (TypeError, ValueError):
            return
        if server.tzinfo is None:
            server = server.replace(tzinfo=UTC)
        self._clock_offset = server - self._clock()
        logger.warning("local clock is %.0f s off the server's; correcting",
                       self._clock_offset.total_seconds())

    async def _digest(self, chunks: Sequence[Buffer], size: int,
                      algorithm: str | None) -> cks.PartDigest:
        """The payload SHA-256 (when signing) and the checksum, in one pass per algorithm."""
        want_sha = self._sign_payload and size > 0
        if not want_sha and algorithm is None:
            return cks.PartDigest(None, None)
        work = partial(cks.digest_part, chunks, sha256=want_sha, algorithm=algorithm)
        inline_limit = _INLINE_HASH_LIMIT if want_sha else \
            _INLINE_CRC_LIMIT.get(algorithm or "", _INLINE_HASH_LIMIT)
        if size <= inline_limit:
            return work()
        # hashlib, zlib and crc32c release the GIL on large buffers: threads run in parallel.
        return await asyncio.get_running_loop().run_in_executor(self._hash_pool(), work)

    def _hash_pool(self) -> ThreadPoolExecutor:
        if self._hasher is None:
            # As many threads as cores (more only queue), at a lower priority: the event
            # loop thread, which serves the caller's other requests, wins a contended core.
            workers = max(1, min(8, os.cpu_count() or 2))
            self._hasher = ThreadPoolExecutor(workers, thread_name_prefix="s3stream-hash",
                                              initializer=_lower_thread_priority)
        return self._hasher

    def _hash_for(self, digest: cks.PartDigest) -> str:
        if not self._sign_payload:
            return UNSIGNED_PAYLOAD
        return digest.sha256_hex or EMPTY_SHA256

    async def _part_digest(self, part: Part, algorithm: str | None) -> cks.PartDigest:
        if part.crc is None:
            return await self._digest(part.chunks, part.size, algorithm)
        # The cutter already computed the CRC while the bytes were hot.
        digest = await self._digest(part.chunks, part.size, None)
        return cks.PartDigest(digest.sha256_hex, part.crc.to_bytes(4, "big"))

    def _signed_headers(self, request: proto.Request, payload_hash: str) -> list[tuple[str, str]]:
        headers = [("Host", self._endpoint.netloc(request.bucket)), *request.headers]
        if self.credentials is not None:
            added = sign_headers(
                method=request.method,
                raw_path=self._endpoint.raw_path(request.bucket, request.key),
                query=request.query,
                headers=headers,
                payload_hash=payload_hash,
                credentials=self.credentials,
                region=self.region,
                now=self._now(),
            )
            headers.extend(added.items())
        return headers

    async def _call(
        self,
        request: proto.Request,
        reader: Callable[[proto.Request, proto.Response], T],
        *,
        payload_hash: str | None = None,
        on_attempt: Callable[[int], None] | None = None,
    ) -> T:
        """Send ``request`` (re-signed on every try) until ``reader`` accepts the answer."""
        if self._closed:
            raise UsageError("this S3Client is closed")
        url = self._endpoint.url(request.bucket, request.key, request.query)
        if payload_hash is None:
            payload_hash = self._hash_for(await self._digest(request.body, request.size, None))
        attempt = 0
        while True:
            attempt += 1
            if on_attempt is not None:
                on_attempt(attempt)
            headers = self._signed_headers(request, payload_hash)
            error: TransportError | S3ResponseError
            try:
                response = await self._transport.send(
                    request.method, url, headers, request.body, request.size,
                    operation=request.operation,
                )
                result = reader(request, response)
                logger.debug("%s %s -> %d (try %d)", request.operation, request.key or "",
                             response.status, attempt)
                return result
            except TransportError as exc:
                error, retryable, retry_after = exc, exc.retryable, None
            except S3ResponseError as exc:
                error, retry_after = exc, exc.retry_after
                retryable = self.retry.is_retryable_response(exc.status, exc.code)
                if exc.code == "RequestTimeTooSkewed":
                    self._correct_clock(exc.server_date)
            if not (retryable and self.retry.can_retry(attempt)):
                logger.debug("%s %s failed on try %d, not retried: %s", request.operation,
                             request.key or "", attempt, error)
                raise error
            delay = self.retry.delay(attempt, self._rand(), retry_after)
            logger.debug("%s %s failed (%s); retry %d in %.3f s", request.operation,
                         request.key or "", error, attempt, delay)
            await self._sleep(delay)

    # ------------------------------------------------------------------- uploads

    def _options(
        self,
        bucket: str,
        key: str,
        *,
        concurrency: int,
        content_type: str | None,
        metadata: Mapping[str, str] | None,
        headers: Mapping[str, str] | None,
        checksum: str | None,
        if_none_match: str | None,
        if_match: str | None,
    ) -> _Options:
        """Every argument of an upload, checked before any I/O."""
        algorithm = self.checksum if checksum is DEFAULT else cks.validate_algorithm(checksum)
        if if_none_match is not None and if_none_match != "*":
            raise UsageError('if_none_match supports only "*" (create the object only if absent)')
        if if_none_match is not None and if_match is not None:
            raise UsageError("pass if_none_match or if_match, not both")
        conditions: list[tuple[str, str]] = []
        if if_none_match is not None:
            conditions.append(("If-None-Match", "*"))
        if if_match is not None:
            if not isinstance(if_match, str) or not if_match or any(c in if_match for c in "\r\n"):
                raise UsageError("if_match must be an ETag string without line breaks")
            conditions.append(("If-Match", if_match))
        return _Options(
            bucket=proto.validate_bucket(bucket),
            key=proto.validate_key(key),
            concurrency=_check_concurrency(concurrency),
            object_headers=proto.build_object_headers(
                content_type=content_type, metadata=metadata, extra_headers=headers),
            algorithm=algorithm,
            conditions=tuple(conditions),
        )

    def open_upload(
        self,
        bucket: str,
        key: str,
        *,
        part_size: int | None = None,
        concurrency: int = 4,
        content_type: str | None = None,
        metadata: Mapping[str, str] | None = None,
        headers: Mapping[str, str] | None = None,
        checksum: str | None = DEFAULT,
        if_none_match: str | None = None,
        if_match: str | None = None,
    ) -> Upload:
        """A push-style upload: ``async with s3.open_upload(b, k) as up: await up.write(...)``.

        A clean exit completes the upload; an exception or cancellation inside the
        block aborts it and the caller's exception propagates unchanged. The keyword
        arguments mean what they mean for ``upload()``.
        """
        options = self._options(
            bucket, key, concurrency=concurrency, content_type=content_type,
            metadata=metadata, headers=headers, checksum=checksum,
            if_none_match=if_none_match, if_match=if_match)
        return Upload(self, options, plan(size=None, part_size=part_size, limits=self.limits))

    async def upload(
        self,
        bucket: str,
        key: str,
        source: Source,
        *,
        part_size: int | None = None,
        concurrency: int = 4,
        content_type: str | None = None,
        metadata: Mapping[str, str] | None = None,
        headers: Mapping[str, str] | None = None,
        checksum: str | None = DEFAULT,
        if_none_match: str | None = None,
        if_match: str | None = None,
    ) -> UploadResult:
        """Upload ``source`` to ``s3://bucket/key`` and return what S3 stored.

        ``source`` is an async iterable of bytes-like chunks, bytes-like data, a file
        path, or a binary file object (read in a worker thread). ``part_size=None``
        picks the size (growing for unknown lengths); ``checksum`` is ``"crc32c"``,
        ``"crc32"``, ``"sha256"``, ``"md5"`` or None (default: the client's);
        ``if_none_match="*"`` creates the object only if it does not exist and
        ``if_match=etag`` replaces it only if unchanged. Arguments are checked before
        any I/O. On any failure or cancellation the multipart upload is aborted
        before the error propagates.
        """
        options = self._options(
            bucket, key, concurrency=concurrency, content_type=content_type,
            metadata=metadata, headers=headers, checksum=checksum,
            if_none_match=if_none_match, if_match=if_match)
        chunks, size, close = _open_source(source)
        try:
            up = Upload(self, options, plan(size=size, part_size=part_size, limits=self.limits))
            async with up:
                async for chunk in chunks:
                    await up.write(chunk)
            assert up.result is not None
            return up.result
        finally:
            await close()

    # ------------------------------------------------------------ managing uploads

    async def list_multipart_uploads(
        self, bucket: str, *, prefix: str = ""
    ) -> AsyncIterator[MultipartUploadInfo]:
        """Every in-progress multipart upload in ``bucket`` under ``prefix``, page by page."""
        bucket = proto.validate_bucket(bucket)
        key_marker: str | None = None
        id_marker: str | None = None
        while True:
            page = await self._call(
                proto.list_multipart_uploads(bucket, prefix, key_marker, id_marker),
                proto.read_list_uploads)
            for item in page.uploads:
                yield MultipartUploadInfo(bucket, item.key, item.upload_id,
                                          _parse_time(item.initiated))
            if not page.truncated or not page.uploads:
                return
            # Some S3 clones omit the Next*Marker fields: the last entry is the marker.
            key_marker = page.next_key_marker or page.uploads[-1].key
            id_marker = page.next_upload_id_marker or page.uploads[-1].upload_id

    async def list_parts(self, bucket: str, key: str, upload_id: str) -> AsyncIterator[PartInfo]:
        """The parts uploaded so far to an in-progress multipart upload."""
        bucket, key = proto.validate_bucket(bucket), proto.validate_key(key)
        marker: int | None = None
        while True:
            page = await self._call(proto.list_parts(bucket, key, upload_id, marker),
                                    proto.read_list_parts)
            for part in page.parts:
                yield PartInfo(part.number, part.etag, part.size,
                               _parse_time(part.last_modified))
            if not page.truncated or not page.parts:
                return
            marker = page.next_part_number_marker or page.parts[-1].number

    async def abort_multipart_upload(self, bucket: str, key: str, upload_id: str) -> None:
        """Abort one multipart upload (an upload that no longer exists counts as aborted)."""
        await self._call(
            proto.abort_multipart_upload(proto.validate_bucket(bucket), proto.validate_key(key),
                                         upload_id),
            proto.read_abort)

    async def abort_stale(
        self, bucket: str, *, older_than: timedelta | float, prefix: str = ""
    ) -> int:
        """Abort multipart uploads started more than ``older_than`` ago (seconds or a
        timedelta), such as orphans left by crashed processes or other tools.
        Returns how many were aborted."""
        if isinstance(older_than, int | float) and not isinstance(older_than, bool):
            older_than = timedelta(seconds=older_than)
        if not isinstance(older_than, timedelta) or older_than < timedelta(0):
            raise UsageError("older_than must be a non-negative timedelta or number of seconds")
        cutoff = self._now() - older_than
        # Collect first: aborting while paging would shift the listing under the markers.
        stale = [u async for u in self.list_multipart_uploads(bucket, prefix=prefix)
                 if u.initiated is not None and u.initiated <= cutoff]
        for item in stale:
            await self.abort_multipart_upload(bucket, item.key, item.upload_id)
            logger.info("aborted stale upload %s of s3://%s/%s (started %s)",
                        item.upload_id, bucket, item.key, item.initiated)
        return len(stale)


@dataclass(frozen=True, slots=True)
class _Options:
    bucket: str
    key: str
    concurrency: int
    object_headers: proto.Headers
    algorithm: str | None
    conditions: proto.Headers


_Closer = Callable[[], Awaitable[None]]


def _open_source(source: object) -> tuple[AsyncIterator[Any], int | None, _Closer]:
    """The source as (async iterator of chunks, size if known, closer). No network I/O."""

    async def nothing() -> None:
        return None

    if isinstance(source, bytes | bytearray | memoryview):
        view = memoryview(source).cast("B")
        return _iter_buffer(view), len(view), nothing
    if isinstance(source, str | os.PathLike):
        path = os.fspath(source)
        if not isinstance(path, str):
            raise UsageError("file paths must be str or os.PathLike[str]")
        f = open(path, "rb")  # noqa: SIM115 - closed by the returned closer
        size = os.fstat(f.fileno()).st_size

        async def close_file() -> None:
            f.close()

        return _iter_file(f), size, close_file
    if isinstance(source, io.TextIOBase):
        raise TypeError("the source is a text file; open it in binary mode ('rb')")
    if hasattr(source, "iter_any") and callable(source.iter_any):
        # An aiohttp StreamReader: iterating it directly would split the body on b"\n".
        return aiter(source.iter_any()), None, nothing
    if isinstance(source, AsyncIterable):
        return aiter(source), None, nothing
    if hasattr(source, "read") and callable(source.read):
        return _iter_file(source), _file_size(source), nothing
    raise TypeError(
        f"cannot upload a {type(source).__name__}: pass an async iterable of bytes, "
        "bytes-like data, a file path or a binary file object"
    )


def _file_size(f: Any) -> int | None:
    try:
        if f.seekable():
            return int(os.fstat(f.fileno()).st_size - f.tell())
    except (AttributeError, OSError, ValueError, io.UnsupportedOperation):
        pass
    try:
        if f.seekable():
            here = f.tell()
            end = f.seek(0, io.SEEK_END)
            f.seek(here)
            return int(end - here)
    except (AttributeError, OSError, ValueError, io.UnsupportedOperation):
        pass
    return None


async def _iter_buffer(view: memoryview) -> AsyncIterator[bytes | memoryview]:
    if view.readonly and isinstance(view.obj, bytes):
        # Slices of immutable bytes are kept as they are: no copy.
        for start in range(0, len(view), _FILE_READ_SIZE):
            yield view[start : start + _FILE_READ_SIZE]
    else:
        for start in range(0, len(view), _FILE_READ_SIZE):
            yield bytes(view[start : start + _FILE_READ_SIZE])


async def _iter_file(f: Any) -> AsyncIterator[bytes]:
    while True:
        chunk = await asyncio.to_thread(f.read, _FILE_READ_SIZE)
        if not chunk:
            return
        yield chunk


class Upload:
    """One object being uploaded; the push-style handle returned by ``open_upload()``."""

    def __init__(self, client: S3Client, options: _Options, sizer: PartSizer) -> None:
        self._client = client
        self._opts = options
        self.bucket = options.bucket
        self.key = options.key
        self._cutter = PartCutter(sizer, crc=cks.running_crc(options.algorithm))
        self._state = proto.MultipartState(options.bucket, options.key)
        self._slots = asyncio.Semaphore(options.concurrency)
        self._tasks: set[asyncio.Task[None]] = set()
        self._part_error: BaseException | None = None
        #: part number -> (raw checksum, size), for the full-object checksum.
        self._checksums: dict[int, tuple[bytes, int]] = {}
        self._finished = False
        self._last_yield = time.monotonic()
        self._failure: BaseException | None = None
        self._aborted = False
        self._entered = False
        self._writing = False
        self.result: UploadResult | None = None

    @property
    def upload_id(self) -> str | None:
        return self._state.upload_id

    @property
    def parts_in_flight(self) -> int:
        return self._state.in_flight

    async def __aenter__(self) -> Upload:
        if self._entered:
            raise UsageError("an Upload can be entered only once")
        self._entered = True
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if exc is None:
            if self._failure is not None:
                # The block swallowed a failure: completing now would store a truncated object.
                raise self._failed_earlier()
            await self._guard(self._complete())
            return
        if not self._finished:
            await self._cleanup(exc)

    async def write(self, data: bytes | bytearray | memoryview) -> None:
        """Add bytes to the object; waits while ``concurrency`` parts are in flight."""
        if self._failure is not None:
            raise self._failed_earlier()
        if self._finished:
            raise UsageError("this upload is already finished")
        if self._writing:
            raise UsageError("Upload.write() must not be called concurrently")
        self._writing = True
        try:
            await self._guard(self._write(data))
        finally:
            self._writing = False

    def _failed_earlier(self) -> UploadError:
        error = UploadError(
            f"the upload failed earlier ({self._failure!r}) and was not completed",
            bucket=self.bucket, key=self.key, upload_id=self._state.upload_id,
            aborted=self._aborted,
        )
        error.__cause__ = self._failure
        return error

    async def _write(self, data: object) -> None:
        self._raise_part_error()
        for part in self._cutter.feed(data):
            await self._launch(part)
        # A fast source never suspends while slots are free: yield now and then so the
        # part tasks (and everything else on the loop) keep running.
        now = time.monotonic()
        if now - self._last_yield > _PRODUCER_SLICE:
            await asyncio.sleep(0)
            self._last_yield = time.monotonic()

    def _raise_part_error(self) -> None:
        if self._part_error is not None:
            raise self._part_error

    def _create_headers(self) -> proto.Headers:
        algorithm = self._opts.algorithm
        if not cks.stored_by_s3(algorithm):
            return self._opts.object_headers
        extra = [("x-amz-checksum-algorithm", algorithm.upper())]
        if cks.supports_full_object(algorithm):
            extra.append(("x-amz-checksum-type", "FULL_OBJECT"))
        return (*self._opts.object_headers, *extra)

    async def _launch(self, part: Part) -> None:
        if self._state.upload_id is None:
            upload_id = await self._client._call(
                proto.create_multipart_upload(self.bucket, self.key, self._create_headers()),
                proto.read_create,
            )
            self._state.opened(upload_id)
            logger.debug("opened multipart upload %s for s3://%s/%s", upload_id, self.bucket,
                         self.key)
        waits = self._slots.locked()
        await self._slots.acquire()
        if waits:  # the producer just gave the loop a turn
            self._last_yield = time.monotonic()
        if self._part_error is not None:
            self._slots.release()
            self._raise_part_error()
        self._state.part_started(part.number, part.size)
        task = asyncio.create_task(self._run_part(part), name=f"s3stream part {part.number}")
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _run_part(self, part: Part) -> None:
        upload_id = self._state.upload_id
        assert upload_id is not None
        algorithm = self._opts.algorithm
        try:
            digest = await self._client._part_digest(part, algorithm)
            headers: proto.Headers = ()
            if algorithm is not None and digest.checksum_b64 is not None:
                headers = ((cks.header_name(algorithm), digest.checksum_b64),)
            request = proto.upload_part(self.bucket, self.key, upload_id, part.number,
                                        part.chunks, part.size, headers)
            etag = await self._client._call(
                request, _echo_checker(algorithm, digest.checksum_b64, proto.read_etag),
                payload_hash=self._client._hash_for(digest))
            listed: dict[str, str] = {}
            if cks.stored_by_s3(algorithm) and digest.checksum is not None:
                listed[cks.xml_name(algorithm)] = cks.b64(digest.checksum)
                self._checksums[part.number] = (digest.checksum, part.size)
            self._state.part_done(_xml.CompletedPart(part.number, etag, listed))
        except Exception as exc:
            if self._part_error is None:
                self._part_error = exc
                for task in self._tasks:
                    if task is not asyncio.current_task():
                        task.cancel()
        finally:
            self._slots.release()

    async def _complete(self) -> None:
        last = self._cutter.finish()
        if self._state.upload_id is None:
            await self._put_single(last)
            return
        if last is not None:
            await self._launch(last)
        if self._tasks:
            await asyncio.wait(set(self._tasks))
        self._raise_part_error()
        parts = self._state.begin_complete()
        algorithm = self._opts.algorithm
        expected: str | None = None
        composite: str | None = None
        checksum_type: str | None = None
        headers: list[tuple[str, str]] = list(self._opts.conditions)
        if cks.stored_by_s3(algorithm):
            ordered = [self._checksums[p.number] for p in parts]
            composite = cks.composite_checksum([raw for raw, _ in ordered], algorithm)
            if cks.supports_full_object(algorithm):
                expected = cks.b64(cks.full_object_crc(ordered, algorithm))
                checksum_type = "FULL_OBJECT"
                headers += [(cks.header_name(algorithm), expected),
                            ("x-amz-checksum-type", "FULL_OBJECT")]
            else:
                expected, checksum_type = composite, "COMPOSITE"
        upload_id = self._state.upload_id
        request = proto.complete_multipart_upload(self.bucket, self.key, upload_id, parts,
                                                  tuple(headers))
        tries = [0]
        try:
            done = await self._client._call(
                request, proto.read_complete, on_attempt=lambda n: tries.__setitem__(0, n))
        except S3ResponseError as exc:
            if exc.code != "NoSuchUpload" or tries[0] < 2:
                raise
            # An earlier try may have completed the upload but its answer got lost.
            done = await self._confirm_completed(exc, len(parts), expected)
        if algorithm is not None and expected is not None:
            # Stores that do not keep FULL_OBJECT answer with the COMPOSITE form: both are
            # ours, anything else is not the object we sent.
            stored = done.checksums.get(cks.xml_name(algorithm))
            if stored is not None and stored not in (expected, composite):
                raise IntegrityError(
                    f"s3://{self.bucket}/{self.key}: S3 reports {algorithm} {stored}, "
                    f"but the bytes sent have {expected}")
            if stored == composite and stored != expected:
                expected, checksum_type = composite, "COMPOSITE"
        self._state.completed()
        self._finished = True
        self.result = UploadResult(
            self.bucket, self.key, done.etag, self._state.size, len(parts), upload_id,
            done.version_id, expected, algorithm if expected else None, checksum_type,
        )

    async def _confirm_completed(self, error: S3ResponseError, part_count: int,
                                 checksum: str | None) -> _xml.CompleteResult:
        head = await self._client._call(
            proto.head_object(self.bucket, self.key, checksum_mode=checksum is not None),
            _read_response)
        etag = head.headers.get("etag", "")
        size = int(head.headers.get("content-length", "-1"))
        algorithm = self._opts.algorithm
        stored = head.headers.get(cks.header_name(algorithm)) \
            if cks.stored_by_s3(algorithm) else None
        if size == self._state.size and etag.strip('"').endswith(f"-{part_count}") and \
                (stored is None or checksum is None or stored == checksum):
            logger.info("s3://%s/%s: Complete was answered NoSuchUpload on retry, but the "
                        "object is there with the expected size and parts", self.bucket,
                        self.key)
            return _xml.CompleteResult(etag, None, head.headers.get("x-amz-version-id"),
                                       {cks.xml_name(algorithm): stored}
                                       if algorithm and stored else {})
        raise error

    async def _put_single(self, part: Part | None) -> None:
        """Never went multipart: the whole object fits one PutObject."""
        part = part or Part(1, (), 0)
        chunks, size = part.chunks, part.size
        algorithm = self._opts.algorithm
        digest = await self._client._part_digest(part, algorithm)
        headers = [*self._opts.object_headers, *self._opts.conditions]
        if algorithm is not None and digest.checksum_b64 is not None:
            headers.append((cks.header_name(algorithm), digest.checksum_b64))
        request = proto.put_object(self.bucket, self.key, chunks, size, tuple(headers))
        response = await self._client._call(
            request, _echo_checker(algorithm, digest.checksum_b64, _read_response),
            payload_hash=self._client._hash_for(digest))
        self._finished = True
        self.result = UploadResult(
            self.bucket, self.key, response.headers.get("etag", ""), size, 1 if size else 0,
            None, response.headers.get("x-amz-version-id"), digest.checksum_b64,
            algorithm if digest.checksum_b64 else None,
            "FULL_OBJECT" if digest.checksum_b64 else None,
        )

    async def _guard(self, step: Awaitable[None]) -> None:
        """Run one step; on any failure abort the upload, then raise the right error."""
        try:
            await step
        except BaseException as exc:
            if self._finished:
                raise
            aborted = await self._cleanup(exc)
            if isinstance(exc, S3ResponseError | TransportError | IntegrityError) and \
                    self._state.upload_id is not None:
                raise UploadError(
                    f"upload failed: {exc}", bucket=self.bucket, key=self.key,
                    upload_id=self._state.upload_id, aborted=aborted,
                ) from exc
            raise

    async def _cleanup(self, cause: BaseException) -> bool:
        """Cancel parts, wait for them, abort the upload. True if nothing is left open."""
        self._finished = True
        self._failure = cause
        self._state.failed()
        worker = asyncio.create_task(self._abort_within_deadline(), name="s3stream abort")
        cancelled = False
        while not worker.done():
            try:
                # wait(), unlike shield(), never raises the worker's own error, which must
                # not replace the one that caused the cleanup.
                await asyncio.wait({worker})
            except asyncio.CancelledError:
                # Shielded cleanup: a second cancellation must not leave the upload open.
                cancelled = True
        abort_error = worker.exception() if not worker.cancelled() else None
        if abort_error is not None:
            note = f"AbortMultipartUpload failed too: {abort_error!r}"
            cause.add_note(note)
            logger.warning("s3://%s/%s upload %s: %s", self.bucket, self.key,
                           self._state.upload_id, note)
        self._aborted = abort_error is None and not worker.cancelled()
        if cancelled and not isinstance(cause, asyncio.CancelledError):
            raise asyncio.CancelledError
        return self._aborted

    async def _abort_within_deadline(self) -> None:
        async with asyncio.timeout(self._client._abort_timeout):
            tasks = set(self._tasks)
            for task in tasks:
                task.cancel()
            if tasks:
                await asyncio.wait(tasks)
            upload_id = self._state.upload_id
            if upload_id is None:
                return
            await self._client._call(
                proto.abort_multipart_upload(self.bucket, self.key, upload_id),
                proto.read_abort,
            )
            self._state.aborted()
            logger.debug("aborted multipart upload %s", upload_id)


def _echo_checker(
    algorithm: str | None, sent: str | None,
    reader: Callable[[proto.Request, proto.Response], T],
) -> Callable[[proto.Request, proto.Response], T]:
    """Wrap ``reader`` so that a checksum S3 echoes back must equal the one we sent."""

    def read(request: proto.Request, response: proto.Response) -> T:
        result = reader(request, response)
        if cks.stored_by_s3(algorithm) and sent is not None:
            echoed = response.headers.get(cks.header_name(algorithm))
            if echoed is not None and echoed != sent:
                raise IntegrityError(
                    f"{request.operation} s3://{request.bucket}/{request.key}: S3 echoed "
                    f"{algorithm} {echoed}, but the bytes sent have {sent}")
        return result

    return read


def _read_response(request: proto.Request, response: proto.Response) -> proto.Response:
    """The whole response of a success whose headers are all the caller needs."""
    proto.check(request, response)
    return response

