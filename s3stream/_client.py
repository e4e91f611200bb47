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
import email.utils
import hashlib
import io
import logging
import os
import random
from collections.abc import AsyncIterable, AsyncIterator, Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from types import TracebackType
from typing import TYPE_CHECKING, Any, BinaryIO, TypeVar

from . import _protocol as proto
from . import _xml
from ._credentials import Credentials, resolve_credentials, resolve_endpoint, resolve_region
from ._parts import Buffer, Part, PartCutter, PartSizer, plan
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

__all__ = ["S3Client", "Upload", "UploadResult"]

logger = logging.getLogger("s3stream")
T = TypeVar("T")

#: Below this, hashing on the event loop is cheaper than a hop to a thread.
_INLINE_HASH_LIMIT = 64 * 1024
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


def _sha256_hex(chunks: Sequence[Buffer]) -> str:
    h = hashlib.sha256()
    for chunk in chunks:
        h.update(chunk)
    return h.hexdigest()


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
        self._abort_timeout = abort_timeout
        self._transport = Transport(
            session, connect_timeout=connect_timeout, stall_timeout=stall_timeout,
            max_connections=max_connections,
        )
        self._clock = clock or (lambda: datetime.now(UTC))
        self._clock_offset = timedelta(0)
        self._sleep = sleep or asyncio.sleep
        self._rand = rand or random.random
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

    async def _payload_hash(self, request: proto.Request) -> str:
        if not self._sign_payload:
            return UNSIGNED_PAYLOAD
        if request.size == 0:
            return EMPTY_SHA256
        if request.size < _INLINE_HASH_LIMIT:
            return _sha256_hex(request.body)
        # hashlib releases the GIL on large buffers: a thread gives real parallelism.
        return await asyncio.to_thread(_sha256_hex, request.body)

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
        self, request: proto.Request, reader: Callable[[proto.Request, proto.Response], T]
    ) -> T:
        """Send ``request`` (re-signed on every try) until ``reader`` accepts the answer."""
        if self._closed:
            raise UsageError("this S3Client is closed")
        url = self._endpoint.url(request.bucket, request.key, request.query)
        payload_hash = await self._payload_hash(request)
        attempt = 0
        while True:
            attempt += 1
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
                raise error
            delay = self.retry.delay(attempt, self._rand(), retry_after)
            logger.debug("%s %s failed (%s); retry %d in %.3f s", request.operation,
                         request.key or "", error, attempt, delay)
            await self._sleep(delay)

    # ------------------------------------------------------------------- uploads

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
    ) -> Upload:
        """A push-style upload: ``async with s3.open_upload(b, k) as up: await up.write(...)``.

        A clean exit completes the upload; an exception or cancellation inside the
        block aborts it and the caller's exception propagates unchanged.
        """
        return Upload(
            self, proto.validate_bucket(bucket), proto.validate_key(key),
            sizer=plan(size=None, part_size=part_size),
            concurrency=_check_concurrency(concurrency),
            object_headers=proto.build_object_headers(
                content_type=content_type, metadata=metadata, extra_headers=headers),
        )

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
    ) -> UploadResult:
        """Upload ``source`` to ``s3://bucket/key`` and return what S3 stored.

        ``source`` is an async iterable of bytes-like chunks, bytes-like data, a file
        path, or a binary file object (read in a worker thread). Arguments are
        checked before any I/O. On any failure or cancellation the multipart upload
        is aborted before the error propagates.
        """
        bucket = proto.validate_bucket(bucket)
        key = proto.validate_key(key)
        concurrency = _check_concurrency(concurrency)
        object_headers = proto.build_object_headers(
            content_type=content_type, metadata=metadata, extra_headers=headers)
        chunks, size, close = _open_source(source)
        try:
            sizer = plan(size=size, part_size=part_size)
            up = Upload(self, bucket, key, sizer=sizer, concurrency=concurrency,
                        object_headers=object_headers)
            async with up:
                async for chunk in chunks:
                    await up.write(chunk)
            assert up.result is not None
            return up.result
        finally:
            await close()


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

    def __init__(
        self,
        client: S3Client,
        bucket: str,
        key: str,
        *,
        sizer: PartSizer,
        concurrency: int,
        object_headers: proto.Headers,
    ) -> None:
        self._client = client
        self.bucket = bucket
        self.key = key
        self._headers = object_headers
        self._cutter = PartCutter(sizer)
        self._state = proto.MultipartState(bucket, key)
        self._slots = asyncio.Semaphore(concurrency)
        self._tasks: set[asyncio.Task[None]] = set()
        self._part_error: BaseException | None = None
        self._finished = False
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
            await self._guard(self._complete())
            return
        if not self._finished:
            await self._cleanup(exc)

    async def write(self, data: bytes | bytearray | memoryview) -> None:
        """Add bytes to the object; waits while ``concurrency`` parts are in flight."""
        if self._finished:
            raise UsageError("this upload is already finished")
        if self._writing:
            raise UsageError("Upload.write() must not be called concurrently")
        self._writing = True
        try:
            await self._guard(self._write(data))
        finally:
            self._writing = False

    async def _write(self, data: object) -> None:
        self._raise_part_error()
        for part in self._cutter.feed(data):
            await self._launch(part)

    def _raise_part_error(self) -> None:
        if self._part_error is not None:
            raise self._part_error

    async def _launch(self, part: Part) -> None:
        if self._state.upload_id is None:
            upload_id = await self._client._call(
                proto.create_multipart_upload(self.bucket, self.key, self._headers),
                proto.read_create,
            )
            self._state.opened(upload_id)
            logger.debug("opened multipart upload %s for s3://%s/%s", upload_id, self.bucket,
                         self.key)
        await self._slots.acquire()
        if self._part_error is not None:
            self._slots.release()
            self._raise_part_error()
        self._state.part_started(part.number, part.size)
        task = asyncio.create_task(self._run_part(part), name=f"s3stream part {part.number}")
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _run_part(self, part: Part) -> None:
        assert self._state.upload_id is not None
        try:
            request = proto.upload_part(self.bucket, self.key, self._state.upload_id,
                                        part.number, part.chunks, part.size)
            etag = await self._client._call(request, proto.read_etag)
            self._state.part_done(_xml.CompletedPart(part.number, etag))
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
            # Never went multipart: the whole object fits one PutObject.
            chunks: Sequence[Buffer] = last.chunks if last else ()
            size = last.size if last else 0
            request = proto.put_object(self.bucket, self.key, chunks, size, self._headers)
            response = await self._client._call(request, _read_put)
            self._finished = True
            self.result = UploadResult(
                self.bucket, self.key, response.headers.get("etag", ""), size, 1 if size else 0,
                None, response.headers.get("x-amz-version-id"),
            )
            return
        if last is not None:
            await self._launch(last)
        if self._tasks:
            await asyncio.wait(set(self._tasks))
        self._raise_part_error()
        parts = self._state.begin_complete()
        request = proto.complete_multipart_upload(
            self.bucket, self.key, self._state.upload_id, parts)
        done = await self._client._call(request, proto.read_complete)
        self._state.completed()
        self._finished = True
        self.result = UploadResult(
            self.bucket, self.key, done.etag, self._state.size, len(parts),
            self._state.upload_id, done.version_id,
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
        self._state.failed()
        worker = asyncio.create_task(self._abort_within_deadline(), name="s3stream abort")
        cancelled = False
        while not worker.done():
            try:
                await asyncio.shield(worker)
            except asyncio.CancelledError:
                # Shielded cleanup: a second cancellation must not leave the upload open.
                cancelled = True
        abort_error = worker.exception() if not worker.cancelled() else None
        if abort_error is not None:
            note = f"AbortMultipartUpload failed too: {abort_error!r}"
            cause.add_note(note)
            logger.warning("s3://%s/%s upload %s: %s", self.bucket, self.key,
                           self._state.upload_id, note)
        if cancelled and not isinstance(cause, asyncio.CancelledError):
            raise asyncio.CancelledError
        return abort_error is None and not worker.cancelled()

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


def _read_put(request: proto.Request, response: proto.Response) -> proto.Response:
    proto.check(request, response)
    return response

