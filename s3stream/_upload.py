"""The upload engine: one object from a stream of chunks, as one PutObject or a
multipart upload.

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
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from types import TracebackType
from typing import TypeVar

from . import _checksums as cks
from . import _protocol as proto
from . import _xml
from ._parts import Part, PartCutter, PartSizer
from ._requester import Requester
from .exceptions import (
    IntegrityError,
    S3ResponseError,
    TransportError,
    UploadError,
    UsageError,
)

__all__ = ["Upload", "UploadOptions", "UploadResult"]

logger = logging.getLogger("s3stream")
T = TypeVar("T")

#: The longest stretch (seconds) a producer runs without giving the loop a turn.
_PRODUCER_SLICE = 0.001


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
class UploadOptions:
    """Every argument of one upload, checked before any I/O."""

    bucket: str
    key: str
    concurrency: int
    object_headers: proto.Headers
    algorithm: str | None
    conditions: proto.Headers
    abort_timeout: float


class Upload:
    """One object being uploaded; the push-style handle returned by ``open_upload()``."""

    def __init__(self, requester: Requester, options: UploadOptions, sizer: PartSizer) -> None:
        self._requester = requester
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
            upload_id = await self._requester.call(
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
            digest = await self._requester.part_digest(part, algorithm)
            headers: proto.Headers = ()
            if algorithm is not None and digest.checksum_b64 is not None:
                headers = ((cks.header_name(algorithm), digest.checksum_b64),)
            request = proto.upload_part(self.bucket, self.key, upload_id, part.number,
                                        part.chunks, part.size, headers)
            etag = await self._requester.call(
                request, _echo_checker(algorithm, digest.checksum_b64, proto.read_etag),
                payload_hash=self._requester.hash_for(digest))
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
            done = await self._requester.call(
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
        head = await self._requester.call(
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
        digest = await self._requester.part_digest(part, algorithm)
        headers = [*self._opts.object_headers, *self._opts.conditions]
        if algorithm is not None and digest.checksum_b64 is not None:
            headers.append((cks.header_name(algorithm), digest.checksum_b64))
        request = proto.put_object(self.bucket, self.key, chunks, size, tuple(headers))
        response = await self._requester.call(
            request, _echo_checker(algorithm, digest.checksum_b64, _read_response),
            payload_hash=self._requester.hash_for(digest))
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
        async with asyncio.timeout(self._opts.abort_timeout):
            tasks = set(self._tasks)
            for task in tasks:
                task.cancel()
            if tasks:
                await asyncio.wait(tasks)
            upload_id = self._state.upload_id
            if upload_id is None:
                return
            await self._requester.call(
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

