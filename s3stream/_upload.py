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
from collections.abc import AsyncIterable, Awaitable, Callable
from dataclasses import dataclass, field
from types import TracebackType
from typing import TypeVar

from . import _checksums as cks
from . import _protocol as proto
from . import _xml
from ._integrity import LEVEL_NAMES, ChecksumPlan, check_echo, head_shows
from ._parts import Part, PartCutter, PartSizer
from ._requester import Requester, RequestStats
from .exceptions import (
    IntegrityError,
    S3ResponseError,
    SourceSizeError,
    TransportError,
    UploadError,
    UsageError,
)

__all__ = ["Progress", "Upload", "UploadOptions", "UploadResult", "UploadStats"]

logger = logging.getLogger("s3stream")
T = TypeVar("T")

#: The longest stretch (seconds) a producer runs without giving the loop a turn. The
#: check comes after a chunk, and one large chunk may take a millisecond to produce and
#: checksum, so half a millisecond here is what keeps a turn of a busy loop short; at 1 ms
#: the longest hold measured 1-2 ms more, at the same throughput.
_PRODUCER_SLICE = 0.0005
#: Chunks a producer hands straight to the cutter between two looks at the clock.
_DIRECT_CHUNKS = 16
#: Chunks of up to _TINY bytes are gathered _GATHER at a time (at most 64 KiB) before
#: the cutter sees them: a list append costs a tiny chunk less than a call would.
_TINY = 1024
_GATHER = 64


@dataclass(frozen=True, slots=True)
class UploadStats:
    """What one upload took: wall time, and its requests (retries and stalls included)."""

    duration: float
    parts: int
    requests: int
    retries: int
    stalls: int
    #: Body bytes sent, retries included (``size`` when nothing was sent twice).
    bytes_sent: int


@dataclass(frozen=True, slots=True)
class Progress:
    """Where an upload is, as the ``progress`` callback sees it after each part."""

    #: Bytes taken from the source so far.
    bytes_read: int
    #: Bytes of the parts S3 has acknowledged (the whole object once completed).
    bytes_acknowledged: int
    parts_done: int
    #: The size the upload was told (``size=``), else None.
    size: int | None


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
    #: True when the store showed it checked the checksum: it echoed it for every part
    #: (or the PutObject), or reported the object's checksum on Complete or HeadObject.
    #: False when it was only sent (some S3-compatible stores ignore checksums).
    checksum_confirmed: bool = False
    stats: UploadStats | None = field(default=None, compare=False)


@dataclass(frozen=True, slots=True)
class UploadOptions:
    """Every argument of one upload, checked before any I/O."""

    bucket: str
    key: str
    concurrency: int
    #: Kept out of reprs: SSE-C key material travels in them.
    object_headers: proto.Headers = field(repr=False)
    algorithm: str | None
    conditions: proto.Headers
    abort_timeout: float
    #: Of ``object_headers``: those every part, Complete and HeadObject carry too (SSE-C,
    #: request payer, expected owner), and those every request carries (Abort too).
    part_headers: proto.Headers = field(default=(), repr=False)
    every_headers: proto.Headers = field(default=(), repr=False)
    #: The checksum was asked for explicitly: a store that refuses it is an error, not a
    #: reason to go on without it.
    strict_checksum: bool = False
    #: ``size=``: the source must produce exactly this many bytes.
    size: int | None = None
    #: ``max_size=``: the upload fails the moment the source produces more.
    max_size: int | None = None
    #: Called with a ``Progress`` after each part (and at completion); must not block.
    progress: Callable[[Progress], object] | None = field(default=None, compare=False)


class Upload:
    """One object being uploaded; the push-style handle returned by ``open_upload()``."""

    def __init__(self, requester: Requester, options: UploadOptions, sizer: PartSizer) -> None:
        self._requester = requester
        self._opts = options
        self.bucket = options.bucket
        self.key = options.key
        self._cutter = PartCutter(sizer, crc=cks.running_crc(options.algorithm))
        self._sizer = sizer
        self._budget = requester.budget
        #: Bytes of the client's memory budget reserved for the part being filled.
        self._filling = 0
        self._state = proto.MultipartState(options.bucket, options.key)
        self._slots = asyncio.Semaphore(options.concurrency)
        self._tasks: set[asyncio.Task[None]] = set()
        self._part_error: BaseException | None = None
        #: How much checksum protocol this upload sends; lowered (unless strict) when the
        #: store refuses it.
        self._plan = ChecksumPlan.start(options.algorithm, strict=options.strict_checksum,
                                        store_level=requester.store.level)
        self._create_task: asyncio.Task[str] | None = None
        #: From the first CompleteMultipartUpload sent until a definite answer: the upload
        #: may have committed, so no failure may be reported without looking first.
        self._maybe_committed = False
        self._finished = False
        self._stats = RequestStats()
        #: Bytes of the parts S3 has acknowledged (for ``progress``).
        self._acked = 0
        self._started = self._last_yield = time.monotonic()
        self._failure: BaseException | None = None
        self._aborted = False
        self._abort_note: str | None = None
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

    async def _write_all(self, chunks: AsyncIterable[bytes | bytearray | memoryview]) -> None:
        """``await self.write(chunk)`` for every chunk, without a coroutine per small one.

        Tiny ``bytes`` chunks are gathered (a list append each) and joined in runs of up
        to ``_GATHER`` of them; a small run or chunk that completes no part goes straight
        to the cutter's staging block. ``write()`` runs only for the others, when the
        producer's time slice is used up, or when the upload needs a look
        (``_may_take_directly``).
        """
        take = self._cutter.take
        run: list[bytes] = []
        gather = run.append
        room = _GATHER
        left = 0
        async for chunk in chunks:
            if chunk.__class__ is bytes and len(chunk) <= _TINY:
                gather(chunk)
                room -= 1
                if room:
                    continue
                units: tuple[bytes | bytearray | memoryview, ...] = (b"".join(run),)
                run.clear()
                room = _GATHER
            elif run:
                units = (b"".join(run), chunk)
                run.clear()
                room = _GATHER
            else:
                units = (chunk,)
            for data in units:
                if left:
                    left -= 1
                    if take(data):
                        continue
                elif time.monotonic() - self._last_yield <= _PRODUCER_SLICE and \
                        self._may_take_directly():
                    left = _DIRECT_CHUNKS
                    if take(data):
                        continue
                await self.write(data)
                left = 0
        if run:
            await self.write(b"".join(run))

    def _may_take_directly(self) -> bool:
        """Whether the next chunks may skip ``write()``: nothing failed, and nothing
        ``write()`` checks before it takes bytes applies."""
        if self._part_error is not None or self._failure is not None or self._finished:
            return False
        if self._budget is not None and self._filling == 0:
            return False  # write() reserves the part's memory before it takes its bytes
        # write() checks every chunk against size= and max_size=: skip it only far from them.
        opts = self._opts
        reach = self._cutter.total + (_DIRECT_CHUNKS + 1) * self._cutter.small
        return (opts.size is None or reach <= opts.size) and \
            (opts.max_size is None or reach <= opts.max_size)

    def _failed_earlier(self) -> UploadError:
        error = UploadError(
            f"the upload failed earlier ({self._failure!r}) and was not completed",
            bucket=self.bucket, key=self.key, upload_id=self._state.upload_id,
            aborted=self._aborted,
        )
        error.__cause__ = self._failure
        if self._abort_note:
            error.add_note(self._abort_note)
        return error

    async def _reserve(self) -> int:
        """A part's worth of the client's memory budget, before the source fills it."""
        if self._budget is None:
            return 0
        amount = self._sizer.size_of(len(self._state.started) + 1)
        if self._opts.size is not None:
            amount = min(amount, max(1, self._opts.size - self._cutter.total))
        # Blocks of parts already sent are no longer counted: give them back first, all
        # of them when this upload is about to wait (it will not reuse them soon, and 64
        # waiting uploads keeping two 512 KiB spares each would be 64 MiB past the budget).
        if self._budget.would_wait(amount):
            self._cutter.trim_spares(0)
            self._cutter.drop_stage()
        else:
            self._cutter.trim_spares()
        return await self._budget.acquire(amount)

    def _release(self, amount: int) -> None:
        if self._budget is not None:
            self._budget.release(amount)

    async def _write(self, data: object) -> None:
        self._raise_part_error()
        if self._budget is not None and self._filling == 0:
            # Reserved before the source's bytes are taken: a producer over the budget
            # waits here, reading nothing more.
            self._filling = await self._reserve()
        if self._opts.size is not None or self._opts.max_size is not None:
            self._check_length(memoryview(data).nbytes
                               if isinstance(data, bytes | bytearray | memoryview) else 0)
        for part in self._cutter.feed(data):
            await self._launch(part)
        # A fast source never suspends while slots are free: yield now and then so the
        # part tasks (and everything else on the loop) keep running.
        now = time.monotonic()
        if now - self._last_yield > _PRODUCER_SLICE:
            await asyncio.sleep(0)
            self._last_yield = time.monotonic()

    def _check_length(self, more: int) -> None:
        """Refuse bytes past ``size=`` / ``max_size=`` before they are cut into a part."""
        total = self._cutter.total + more
        opts = self._opts
        if opts.max_size is not None and total > opts.max_size:
            raise SourceSizeError(
                f"s3://{self.bucket}/{self.key}: the source produced more than max_size="
                f"{opts.max_size} bytes; nothing was stored", limit=opts.max_size,
                produced=total)
        if opts.size is not None and total > opts.size:
            raise SourceSizeError(
                f"s3://{self.bucket}/{self.key}: the source produced more than size="
                f"{opts.size} bytes; nothing was stored", limit=opts.size, produced=total)

    def _report(self, final: bool = False) -> None:
        if self._opts.progress is None:
            return
        done = len(self._state.done)
        acked = self._cutter.total if final else self._acked
        self._opts.progress(Progress(self._cutter.total, acked, done or int(final),
                                     self._opts.size))

    def _stats_now(self, parts: int) -> UploadStats:
        s = self._stats
        return UploadStats(time.monotonic() - self._started, parts, s.requests, s.retries,
                           s.stalls, s.bytes_sent)

    def _raise_part_error(self) -> None:
        if self._part_error is not None:
            raise self._part_error

    # ------------------------------------------------------------- checksum policy

    async def _call(
        self,
        build: Callable[[], proto.Request],
        reader: Callable[[proto.Request, proto.Response], T],
        *,
        floor: int,
        payload_hash: str | None = None,
        on_attempt: Callable[[int], None] | None = None,
    ) -> T:
        """Send ``build()``; if the store refuses its checksum headers, lower this
        upload's level (to ``floor`` at once, or one step) and send it again.

        A checksum the caller asked for explicitly stays strict: the refusal is raised.
        """
        return await call_with_plan(self._requester, self._plan, build, reader, floor=floor,
                                    stats=self._stats, payload_hash=payload_hash,
                                    on_attempt=on_attempt)

    # -------------------------------------------------------------------- parts

    async def _launch(self, part: Part) -> None:
        if self._state.upload_id is None:
            # The Create runs as a task of its own: if this step fails or is cancelled
            # while the request is out, cleanup still waits for the answer and aborts the
            # upload the server made.
            self._create_task = create = asyncio.create_task(self._create(),
                                                             name="s3stream create")
            await asyncio.shield(create)
        # The part takes over the reservation it was filled under (a part cut from the
        # same chunk as the one before it reserves its own).
        reserved, self._filling = self._filling, 0
        if reserved == 0:
            reserved = await self._reserve()
        try:
            waits = self._slots.locked()
            await self._slots.acquire()
            if waits:  # the producer just gave the loop a turn
                self._last_yield = time.monotonic()
            if self._part_error is not None:
                self._slots.release()
                self._raise_part_error()
            self._state.part_started(part.number, part.size)
            task = asyncio.create_task(self._run_part(part),
                                       name=f"s3stream part {part.number}")
        except BaseException:
            self._release(reserved)
            raise
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        if reserved:
            # A done callback, not the task's finally: a task cancelled before it first
            # ran never enters its body, and the budget belongs to the whole client.
            task.add_done_callback(lambda _: self._release(reserved))

    async def _create(self) -> str:
        def build() -> proto.Request:
            headers = (*self._opts.object_headers, *self._plan.create_headers())
            return proto.create_multipart_upload(self.bucket, self.key, headers)

        try:
            upload_id = await self._call(build, proto.read_create, floor=cks.COMPOSITE)
        except proto.UnreadableCreate as exc:
            if exc.upload_id is not None:
                self._state.opened(exc.upload_id)  # it exists: cleanup aborts it
            raise
        self._state.opened(upload_id)
        logger.debug("opened multipart upload %s for s3://%s/%s", upload_id, self.bucket,
                     self.key)
        return upload_id

    async def _run_part(self, part: Part) -> None:
        upload_id = self._state.upload_id
        assert upload_id is not None
        algorithm = self._opts.algorithm
        try:
            digest = await self._requester.part_digest(part, algorithm)
            sent: list[str | None] = [None]

            def build() -> proto.Request:
                headers = self._plan.body_header(digest)
                sent[0] = headers[0][1] if headers else None
                return proto.upload_part(self.bucket, self.key, upload_id, part.number,
                                         part.chunks, part.size,
                                         (*self._opts.part_headers, *headers))

            def read(request: proto.Request, response: proto.Response) -> tuple[str, bool]:
                etag = proto.read_etag(request, response)
                return etag, check_echo(algorithm, sent[0], response.headers, _where(request))

            etag, echoed = await self._call(build, read, floor=cks.NONE,
                                            payload_hash=self._requester.hash_for(digest))
            listed = self._plan.part_done(part.number, digest, part.size, sent[0], echoed)
            self._state.part_done(_xml.CompletedPart(part.number, etag, listed))
            self._acked += part.size
            self._report()
        except Exception as exc:
            if self._part_error is None:
                self._part_error = exc
                for task in self._tasks:
                    if task is not asyncio.current_task():
                        task.cancel()
        finally:
            self._slots.release()

    # ----------------------------------------------------------------- complete

    def _complete_request(self, parts: list[_xml.CompletedPart]) -> proto.Request:
        upload_id = self._state.upload_id
        assert upload_id is not None
        headers = (*self._opts.part_headers, *self._opts.conditions,
                   *self._plan.complete_headers())
        return proto.complete_multipart_upload(
            self.bucket, self.key, upload_id, self._plan.complete_parts(parts), headers)

    async def _complete(self) -> None:
        size = self._opts.size
        if size is not None and self._cutter.total != size:
            raise SourceSizeError(
                f"s3://{self.bucket}/{self.key}: the source ended after {self._cutter.total} "
                f"bytes, but size={size} was promised; nothing was stored", limit=size,
                produced=self._cutter.total)
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
        await seal_checksums(self._requester, self._plan, [p.number for p in parts])
        self._maybe_committed = True

        def refused() -> None:
            # One try, answered with an error: S3 did not commit. Abort as usual.
            self._maybe_committed = False

        done = await complete_confirmed(
            lambda on_attempt: self._call(lambda: self._complete_request(parts),
                                          proto.read_complete, floor=cks.COMPOSITE,
                                          on_attempt=on_attempt),
            lambda: self._confirm_quietly(len(parts)),
            bucket=self.bucket, key=self.key, on_refused=refused)
        self._finish(done, len(parts))

    def _finish(self, done: _xml.CompleteResult, part_count: int) -> None:
        """Record the completed upload, checking the checksum the store reports."""
        algorithm = self._opts.algorithm
        stored = done.checksums.get(cks.xml_name(algorithm)) \
            if cks.stored_by_s3(algorithm) else None
        got = self._plan.conclude(stored, part_count, f"s3://{self.bucket}/{self.key}")
        self._state.completed()
        self._maybe_committed = False
        self._finished = True
        assert done.etag is not None
        self.result = UploadResult(
            self.bucket, self.key, done.etag, self._state.size, part_count,
            self._state.upload_id, done.version_id, got.checksum, got.algorithm,
            got.checksum_type, got.confirmed, self._stats_now(part_count),
        )
        self._report(final=True)

    async def _confirm_quietly(self, part_count: int) -> _xml.CompleteResult | None:
        return await confirm_quietly(self._confirm(part_count), self.bucket, self.key)

    async def _confirm(self, part_count: int) -> _xml.CompleteResult | None:
        """The completed object, if HeadObject shows the one this upload sent (see
        ``head_shows``); None if there is none or another one; raises if HeadObject fails."""
        return await head_confirms(self._requester, self.bucket, self.key,
                                   size=self._state.size, part_count=part_count,
                                   plan=self._plan, headers=self._opts.part_headers,
                                   stats=self._stats)

    async def _put_single(self, part: Part | None) -> None:
        """Never went multipart: the whole object fits one PutObject."""
        try:
            await self._put(part)
        finally:
            reserved, self._filling = self._filling, 0
            self._release(reserved)

    async def _put(self, part: Part | None) -> None:
        part = part or Part(1, (), 0)
        chunks, size = part.chunks, part.size
        algorithm = self._opts.algorithm
        digest = await self._requester.part_digest(part, algorithm)
        sent: list[str | None] = [None]

        def build() -> proto.Request:
            checksum = self._plan.body_header(digest)
            sent[0] = checksum[0][1] if checksum else None
            headers = (*self._opts.object_headers, *self._opts.conditions, *checksum)
            return proto.put_object(self.bucket, self.key, chunks, size, headers)

        def read(request: proto.Request, response: proto.Response) -> tuple[proto.Response, bool]:
            proto.check(request, response)
            return response, check_echo(algorithm, sent[0], response.headers, _where(request))

        response, echoed = await self._call(build, read, floor=cks.NONE,
                                            payload_hash=self._requester.hash_for(digest))
        etag = response.headers.get("etag", "")
        checksum = sent[0]
        if algorithm == "md5" and checksum is not None and digest.checksum is not None:
            # A plain PutObject's ETag is the body's MD5: the store computed the same one.
            echoed = etag.strip('"').lower() == digest.checksum.hex()
        self._finished = True
        self.result = UploadResult(
            self.bucket, self.key, etag, size, 1 if size else 0,
            None, response.headers.get("x-amz-version-id"), checksum,
            algorithm if checksum else None, "FULL_OBJECT" if checksum else None, echoed,
            self._stats_now(1 if size else 0),
        )
        self._report(final=True)

    # ------------------------------------------------------------------ failure

    async def _guard(self, step: Awaitable[None]) -> None:
        """Run one step; on any failure abort the upload, then raise the right error."""
        try:
            await step
        except BaseException as exc:
            if self._finished:
                raise
            aborted = await self._cleanup(exc)
            if self.result is not None and isinstance(exc, Exception):
                return  # the failure was only in the answer: the object is stored
            if isinstance(exc, S3ResponseError | TransportError | IntegrityError) and \
                    self._state.upload_id is not None:
                error = UploadError(
                    f"upload failed: {exc}", bucket=self.bucket, key=self.key,
                    upload_id=self._state.upload_id, aborted=aborted,
                )
                if self._abort_note:
                    error.add_note(self._abort_note)
                raise error from exc
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
            if isinstance(abort_error, TimeoutError):
                abort_error = TimeoutError(
                    f"no answer within abort_timeout={self._opts.abort_timeout} s")
            self._abort_note = f"AbortMultipartUpload failed too: {abort_error!r}"
            cause.add_note(self._abort_note)
            logger.warning("s3://%s/%s upload %s: %s", self.bucket, self.key,
                           self._state.upload_id, self._abort_note)
        outcome = worker.result() if abort_error is None and not worker.cancelled() else None
        self._aborted = outcome == "aborted"
        if cancelled and not isinstance(cause, asyncio.CancelledError):
            raise asyncio.CancelledError
        return self._aborted

    async def _abort_within_deadline(self) -> str:
        """``"aborted"`` (nothing of this upload left open or stored) or ``"stored"``
        (the upload had in fact completed: ``self.result`` says what S3 stored)."""
        reserved, self._filling = self._filling, 0
        self._release(reserved)
        async with asyncio.timeout(self._opts.abort_timeout):
            tasks = set(self._tasks)
            for task in tasks:
                task.cancel()
            if tasks:
                await asyncio.wait(tasks)
            create = self._create_task
            if create is not None:
                # A Create still in flight will make an upload: wait for it, to abort it.
                await asyncio.wait({create})
                if not create.cancelled():
                    create.exception()  # retrieved: the cause of the failure is elsewhere
            upload_id = self._state.upload_id
            if upload_id is None:
                return "aborted"
            existed = await self._requester.call(
                proto.abort_multipart_upload(self.bucket, self.key, upload_id,
                                             self._opts.every_headers),
                proto.read_abort,
                # Its own time budget: a server back within seconds still gets the abort.
                retry=self._requester.retry.with_budget(self._opts.abort_timeout),
                stats=self._stats,
            )
            self._state.aborted()
            if existed or not self._maybe_committed:
                logger.debug("aborted multipart upload %s", upload_id)
                return "aborted"
            # NoSuchUpload after a Complete that may have committed: the upload is gone,
            # but whether as our object or not, only HeadObject can tell.
            found = await self._confirm(len(self._state.done))
            if found is None or found.etag is None:
                return "aborted"
            self._state.completed_after_all()
            self._finish(found, len(self._state.done))
            return "stored"


def _where(request: proto.Request) -> str:
    return f"{request.operation} s3://{request.bucket}/{request.key}"


# ------------------------------------------------- steps shared with _multipart.py

#: Parts whose checksums are combined on the loop; more go to the hashing threads. Each
#: CRC combination is a few dozen GF(2) matrix-vector products in Python: about 2.5 ms a
#: thousand parts, 25 ms for 10,000, too long to hold the caller's loop.
_SEAL_ON_LOOP = 256


async def seal_checksums(requester: Requester, plan: ChecksumPlan, numbers: list[int]) -> None:
    """``plan.seal(numbers)``, off the event loop when there are many parts."""
    if len(numbers) <= _SEAL_ON_LOOP:
        plan.seal(numbers)
    else:
        await requester.in_hash_pool(lambda: plan.seal(numbers))


async def call_with_plan(
    requester: Requester,
    plan: ChecksumPlan,
    build: Callable[[], proto.Request],
    reader: Callable[[proto.Request, proto.Response], T],
    *,
    floor: int,
    stats: RequestStats,
    payload_hash: str | None = None,
    on_attempt: Callable[[int], None] | None = None,
) -> T:
    """Send ``build()``; if the store refuses its checksum headers, lower ``plan``'s
    level (to ``floor`` at once, or one step) and send it again.

    A checksum the caller asked for explicitly stays strict: the refusal is raised.
    """
    first = plan.level
    refusal: S3ResponseError | None = None
    while True:
        try:
            result = await requester.call(build(), reader, payload_hash=payload_hash,
                                          on_attempt=on_attempt, stats=stats)
        except S3ResponseError as exc:
            if not plan.may_step_down(exc.status, exc.code):
                raise
            refusal = exc
            plan.step_down(floor)
            continue
        if refusal is not None and plan.level < first and requester.store.lower(plan.level):
            # Tell the client's other uploads (and, once, the log) what the store refused.
            logger.warning(
                "the store refused %s checksum headers (%s %s: %s); this client goes on with "
                "%s (pass checksum=%r explicitly to make that an error)",
                plan.algorithm, refusal.operation, refusal.code,
                refusal.message or refusal.status, LEVEL_NAMES[plan.level], plan.algorithm)
        return result


async def complete_confirmed(
    send: Callable[[Callable[[int], None]], Awaitable[_xml.CompleteResult]],
    confirm: Callable[[], Awaitable[_xml.CompleteResult | None]],
    *,
    bucket: str,
    key: str,
    on_refused: Callable[[], None] | None = None,
) -> _xml.CompleteResult:
    """CompleteMultipartUpload, whose outcome is never guessed.

    ``send(on_attempt)`` sends it (``on_attempt`` counts the tries); ``confirm()`` is
    HeadObject's verdict (None: the object sent is not there, or HeadObject failed).
    An error answer to the only try is definite: ``on_refused()`` runs and it is raised.
    Anything else that may have committed (a reset, a timeout, a 5xx after an earlier
    try, NoSuchUpload on a retry, a 2xx without an ETag) is looked at first.
    """
    tries = [0]
    try:
        done = await send(lambda n: tries.__setitem__(0, n))
    except (S3ResponseError, TransportError) as exc:
        if isinstance(exc, S3ResponseError) and tries[0] == 1 and exc.code != "NoSuchUpload":
            if on_refused is not None:
                on_refused()
            raise
        logger.info("s3://%s/%s: Complete failed after it may have committed (%s); "
                    "checking with HeadObject", bucket, key, exc)
        found = await confirm()
        if found is None:
            raise
        done = found
    if done.etag is None:
        # 2xx without a readable answer: most likely committed. Find out.
        found = await confirm()
        if found is None:
            raise S3ResponseError(
                status=200, code="MalformedResponse", operation="CompleteMultipartUpload",
                message="a success without an ETag, and HeadObject does not show the "
                        "object that was sent", bucket=bucket, key=key)
        done = found
    return done


async def head_confirms(
    requester: Requester,
    bucket: str,
    key: str,
    *,
    size: int,
    part_count: int,
    plan: ChecksumPlan,
    headers: proto.Headers,
    stats: RequestStats,
) -> _xml.CompleteResult | None:
    """The completed object, if HeadObject shows the one that was sent (see
    ``head_shows``); None if there is none or another one; raises if HeadObject fails."""
    head = await requester.call(
        proto.head_object(bucket, key, checksum_mode=plan.full is not None, headers=headers),
        proto.read_head, stats=stats)
    if head is None:
        return None
    found = head_shows(head.headers, size=size, part_count=part_count, plan=plan)
    if found is not None:
        logger.info("s3://%s/%s: HeadObject shows the object sent (%d bytes, %d parts): "
                    "the upload completed", bucket, key, size, part_count)
    return found


async def confirm_quietly(confirm: Awaitable[_xml.CompleteResult | None], bucket: str,
                          key: str) -> _xml.CompleteResult | None:
    """``confirm``'s verdict, or None when HeadObject failed too (logged)."""
    try:
        return await confirm
    except (S3ResponseError, TransportError) as exc:
        logger.info("s3://%s/%s: HeadObject failed too (%s)", bucket, key, exc)
        return None
