"""The download engine: one object (or a byte range of it) as ranged GETs run
concurrently and delivered in order.

Concurrency and memory: each range has one buffer of its exact length, allocated once the
client's memory budget granted it and filled in place as the body arrives. A launcher
task starts the ranges in order; it takes a *window* slot (``concurrency + 1``: the range
being delivered and those ahead of it), then the budget, then a *request* slot
(``concurrency`` GETs in flight). A range gives its window slot and its budget back only
once the consumer has taken its last byte, so memory stays at about
``(concurrency + 1) x part_size`` whatever the object's size. Reserving in range order
means the range the consumer waits for always holds its memory: no download can wait
for budget held by its own later ranges.

Consistency: the first GET is the first range; its ``Content-Range`` gives the size and
its ``ETag`` pins every later range (``If-Match``). A 412, or an answer with another ETag
or size (stores that ignore ``If-Match``), is ``ObjectChangedError``. A range cut off
mid-body is asked again from its first byte not yet received, so no byte is delivered
twice or skipped.

Integrity: for a whole-object download of an object with a FULL_OBJECT CRC (see
``_ranges.verifier_for``), each range's CRC is computed on the hashing threads and the
CRCs combined in order; a mismatch fails the download (``IntegrityError``) after the last
byte, instead of the iterator's clean end. Stores send no checksum on a partial range,
so the checksum then comes from one HeadObject run beside the ranges.

Cleanup: leaving the ``async with`` block, ``aclose()``, an error or cancellation cancel
every task and give back all the budget held. Writing a download to a file is
``_download_file``'s.
"""

from __future__ import annotations

import asyncio
import logging
import weakref
from collections.abc import AsyncGenerator, AsyncIterator, Coroutine
from dataclasses import dataclass
from types import TracebackType
from typing import Any

from . import _protocol as proto
from . import _ranges as rg
from ._info import ObjectInfo, object_info
from ._requester import Requester
from ._transport import BodyStream
from .exceptions import (
    IntegrityError,
    PreconditionFailedError,
    S3ResponseError,
    TransportError,
    UsageError,
)

__all__ = ["Download", "DownloadOptions"]

logger = logging.getLogger("s3stream")

#: The most bytes one delivered chunk holds: the consumer gets bytes soon after they
#: arrive, not only once a whole range has.
CHUNK = 1 << 20
#: How often the opening GET is sent again when the object changes under it (an empty
#: object that stops being empty between its 416 and the HeadObject that follows).
_OPEN_TRIES = 3


@dataclass(frozen=True, slots=True)
class DownloadOptions:
    bucket: str
    key: str
    offset: int
    length: int | None
    part_size: int
    concurrency: int
    version_id: str | None
    if_match: str | None
    checksum: bool


class _Unsatisfiable(Exception):
    """The opening GET was answered 416: an empty object, or an offset past the end."""

    def __init__(self, total: int | None) -> None:
        super().__init__(total)
        self.total = total


class _Range:
    __slots__ = ("buffer", "crc", "done", "end", "filled", "index", "reserved", "start")

    def __init__(self, index: int, start: int, end: int) -> None:
        self.index = index
        self.start = start
        self.end = end  # included
        self.buffer: bytearray | None = None
        self.filled = 0
        #: Bytes of the client's memory budget this range holds.
        self.reserved = 0
        self.done = False
        self.crc: int | None = None

    @property
    def size(self) -> int:
        return self.end - self.start + 1


class Download:
    """One object being downloaded: ``async with`` (sends the first GET and sets
    ``info``, ``offset`` and ``length``) and ``async for chunk in dl`` (bytes, in order).

    ``info`` describes the whole object; ``offset`` and ``length`` the bytes served (a
    range that ends past the object is cut at its end, as S3 does).
    """

    def __init__(self, requester: Requester, options: DownloadOptions) -> None:
        self._requester = requester
        self._opts = options
        self._budget = requester.budget
        self.bucket = options.bucket
        self.key = options.key
        self.info: ObjectInfo | None = None
        self.offset = options.offset
        self.length: int | None = None
        self._plan: rg.DownloadPlan | None = None
        #: The ETag every range after the first must match.
        self._etag: str | None = options.if_match
        self._ranges: dict[int, _Range] = {}
        self._tasks: set[asyncio.Task[Any]] = set()
        self._error: BaseException | None = None
        self._wake = asyncio.Event()
        #: (range index, bytes filled) the consumer waits for.
        self._need: tuple[int, int] = (-1, 0)
        self._window = asyncio.Semaphore(options.concurrency + 1)
        self._requests = asyncio.Semaphore(options.concurrency)
        self._ready: asyncio.Future[None] | None = None
        self._verifier: asyncio.Future[rg.Verifier | None] | None = None
        self._open_task: asyncio.Task[None] | None = None
        self._closed = False
        self._iterator: weakref.ref[AsyncGenerator[bytes, None]] | None = None
        self._held: AsyncGenerator[bytes, None] | None = None
        #: The algorithm the delivered bytes were checked with ("CRC32C"...), once the
        #: download ended with the check passed; None when no check applied.
        self.checksum_checked: str | None = None
        #: The most bytes range buffers held at once (for tests and statistics).
        self.peak_buffered = 0
        self._buffered = 0

    def __repr__(self) -> str:
        return f"<Download s3://{self.bucket}/{self.key} offset={self.offset} " \
               f"length={self.length}>"

    # ---------------------------------------------------------- the public face

    async def __aenter__(self) -> Download:
        await self._open()
        return self

    async def __aexit__(self, exc_type: type[BaseException] | None,
                        exc: BaseException | None, tb: TracebackType | None) -> None:
        await self.aclose()

    def __aiter__(self) -> AsyncIterator[bytes]:
        if self._iterator is not None:
            raise UsageError("a Download can be iterated only once")
        chunks = self._chunks()
        # Weakly held: a loop left by ``break`` drops the generator, and the event loop's
        # finaliser closes it, which cancels the tasks and gives the budget back.
        self._iterator = weakref.ref(chunks)
        return chunks

    async def __anext__(self) -> bytes:
        if self._held is None:
            self._held = self.__aiter__()  # type: ignore[assignment]
        assert self._held is not None
        return await anext(self._held)

    async def aclose(self) -> None:
        """Stop: cancel what is in flight and give back the memory held."""
        chunks = self._iterator() if self._iterator is not None else None
        if chunks is not None:
            await chunks.aclose()
        await self._shutdown()

    # ----------------------------------------------------------------- opening

    async def _open(self) -> None:
        if self._closed:
            raise UsageError("this Download is closed")
        if self._open_task is None:
            self._open_task = asyncio.ensure_future(self._open_once())
        try:
            # Shielded: a second waiter's cancellation must not cancel the opening itself.
            await asyncio.shield(self._open_task)
        except BaseException:
            await self._shutdown()
            raise

    async def _open_once(self) -> None:
        opts = self._opts
        for _ in range(_OPEN_TRIES):
            try:
                await self._first_range()
                return
            except _Unsatisfiable as exc:
                if opts.offset > 0:
                    raise rg.past_end(self._request_for(_Range(0, opts.offset, opts.offset)),
                                    opts.offset, exc.total) from None
                request = self._head_request()
                # 416 for bytes=0-...: S3's answer for an empty object. HeadObject says.
                head = await self._requester.call(request, rg.read_head_info(opts.bucket, opts.key))
                if head.size == 0:
                    self.info, self._etag = head, head.etag or self._etag
                    self._plan = rg.plan(0, 0, opts.length, opts.part_size)
                    self.length = 0
                    verifier = self._loop().create_future()
                    verifier.set_result(None)
                    self._verifier = verifier
                    return
                logger.debug("s3://%s/%s is no longer empty; opening again", self.bucket,
                             self.key)
        raise rg.object_changed(self._head_request(), 416, "ObjectChanged",
                       "the object kept changing while the download was opening")

    def _loop(self) -> asyncio.AbstractEventLoop:
        return asyncio.get_running_loop()

    async def _first_range(self) -> None:
        opts = self._opts
        start, end = rg.first_range(opts.offset, opts.length, opts.part_size)
        rng = _Range(0, start, end)
        self._ready = self._loop().create_future()
        await self._window.acquire()
        self._ranges[0] = rng
        await self._reserve(rng)
        await self._requests.acquire()
        self._spawn(self._fetch(rng))
        await self._ready

    def _head_request(self) -> proto.Request:
        return rg.head_object(self.bucket, self.key, version_id=self._opts.version_id,
                              if_match=self._etag)

    def _first_answer(self, request: proto.Request, body: BodyStream, rng: _Range) -> None:
        """The opening GET's answer: the object's size and ETag, the plan, the check."""
        opts = self._opts
        headers = body.headers
        try:
            total = rg.first_total(body.status, headers, opts.offset, rng.size)
        except ValueError as exc:
            raise proto.malformed(request, proto.Response(body.status, headers, b""),
                                  exc) from None
        self.info = info = object_info(self.bucket, self.key, headers, size=total)
        if opts.if_match is None:
            self._etag = info.etag
        try:
            self._plan = plan = rg.plan(total, opts.offset, opts.length, opts.part_size)
        except ValueError:
            raise rg.past_end(request, opts.offset, total) from None
        self.length = plan.length
        rng.end = plan.bounds(0)[1] if plan.length else rng.start - 1
        self._resize(rng)
        verifier = self._loop().create_future()
        self._verifier = verifier
        found = rg.verifier_for(info, plan) if opts.checksum else None
        if found is None and opts.checksum and plan.whole and plan.size > 0 \
                and not info.checksums:
            # Stores send no checksum with a range, even one that covers the whole object
            # (SeaweedFS): HeadObject is asked, beside the ranges.
            self._spawn(self._checksum_from_head(verifier, plan))
        else:
            verifier.set_result(found)
        if plan.count > 1:
            self._spawn(self._launch(plan))
        assert self._ready is not None
        if not self._ready.done():
            self._ready.set_result(None)

    async def _checksum_from_head(self, verifier: asyncio.Future[rg.Verifier | None],
                                  plan: rg.DownloadPlan) -> None:
        try:
            head = await self._requester.call(self._head_request(),
                                              rg.read_head_info(self.bucket, self.key))
        except PreconditionFailedError as exc:  # If-Match: replaced since the first answer
            verifier.set_result(None)
            self._fail(rg.object_changed(self._head_request(), exc.status, exc.code,
                                         f"HeadObject: the object no longer has ETag "
                                         f"{self._etag}", exc.request_id))
            return
        except (S3ResponseError, TransportError) as exc:
            logger.info("s3://%s/%s: no checksum to check the download against (%s)",
                        self.bucket, self.key, exc)
            verifier.set_result(None)
            return
        except BaseException:
            verifier.cancel()
            raise
        if head.etag is not None and self._etag is not None and head.etag != self._etag:
            verifier.set_result(None)
            self._fail(rg.object_changed(self._head_request(), 200, "ObjectChanged",
                                f"HeadObject shows ETag {head.etag}, not {self._etag}"))
            return
        verifier.set_result(rg.verifier_for(head, plan))

    # ------------------------------------------------------------------ ranges

    def _spawn(self, coro: Coroutine[Any, Any, None]) -> None:
        task = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _reserve(self, rng: _Range) -> None:
        if self._budget is not None:
            rng.reserved = await self._budget.acquire(rng.size)

    def _resize(self, rng: _Range) -> None:
        """Give back what ``rng`` reserved past its (now known) size."""
        extra = rng.reserved - max(rng.size, 0)
        if extra > 0 and self._budget is not None:
            rng.reserved -= extra
            self._budget.release(extra)

    def _release(self, rng: _Range) -> None:
        if rng.buffer is not None:
            self._buffered -= len(rng.buffer)
            rng.buffer = None
        if rng.reserved and self._budget is not None:
            self._budget.release(rng.reserved)
        rng.reserved = 0

    async def _launch(self, plan: rg.DownloadPlan) -> None:
        """Start ranges 1.. in order, each once it has a window slot and its memory."""
        try:
            for index in range(1, plan.count):
                await self._window.acquire()
                rng = _Range(index, *plan.bounds(index))
                self._ranges[index] = rng
                await self._reserve(rng)
                await self._requests.acquire()
                self._spawn(self._fetch(rng))
                if self._need[0] == index:
                    self._wake.set()
        except asyncio.CancelledError:
            raise
        except BaseException as exc:  # pragma: no cover - nothing above raises but cancel
            self._fail(exc)

    def _request_for(self, rng: _Range) -> proto.Request:
        first = self.info is None
        return rg.get_object(self.bucket, self.key, rng.start + rng.filled, rng.end,
                             version_id=self._opts.version_id, if_match=self._etag,
                             checksum_mode=first and self._opts.checksum)

    async def _fetch(self, rng: _Range) -> None:
        try:
            await self._requester.stream(lambda: self._request_for(rng),
                                         lambda request, body: self._fill(rng, request, body))
            assert self._verifier is not None
            verifier = await self._verifier
            if verifier is not None and rng.buffer is not None:
                view = memoryview(rng.buffer)
                rng.crc = await self._requester.in_hash_pool(lambda: verifier.crc(view, 0))
            rng.done = True
            self._wake.set()
        except asyncio.CancelledError:
            raise
        except _Unsatisfiable as exc:
            # Only the opening GET gets here; the opening decides what 416 meant.
            self._ranges.pop(rng.index, None)
            self._release(rng)
            self._window.release()
            assert self._ready is not None
            if not self._ready.done():
                self._ready.set_exception(exc)
        except BaseException as exc:
            if self._ready is not None and not self._ready.done():
                self._ready.set_exception(exc)
            self._fail(exc)
        finally:
            self._requests.release()

    def _fail(self, exc: BaseException) -> None:
        if self._error is None:
            self._error = exc
        self._wake.set()

    async def _fill(self, rng: _Range, request: proto.Request, body: BodyStream) -> None:
        """Read one answer into ``rng``'s buffer, from its first byte not yet received."""
        status = body.status
        if status == 416 and self.info is None:
            cr = rg.parse_content_range(body.headers.get("content-range"))
            raise _Unsatisfiable(cr.total if cr is not None else None)
        if not 200 <= status < 300:
            response = proto.Response(status, body.headers, await body.error_body())
            error = proto.error_from(request, response)
            if status == 412 and self.info is not None:
                raise rg.object_changed(request, 412, error.code,
                               f"the object no longer has ETag {self._etag}: it was replaced "
                               "during the download", error.request_id) from None
            raise error
        if self.info is None:
            self._first_answer(request, body, rng)
        else:
            self._check_same_object(request, body)
        if rng.size <= 0:
            return
        problem = rg.range_problem(status, body.headers, rng.start + rng.filled, rng.end)
        if problem is not None:
            raise proto.malformed(request, proto.Response(status, body.headers, b""),
                                  ValueError(problem))
        if rng.buffer is None:
            rng.buffer = bytearray(rng.size)
            self._buffered += rng.size
            self.peak_buffered = max(self.peak_buffered, self._buffered)
        view = memoryview(rng.buffer)
        size = rng.size
        need_index = rng.index
        while rng.filled < size:
            got = await body.readinto(view[rng.filled:])
            if got == 0:
                raise TransportError(f"GetObject: the answer ended after {rng.filled} of "
                                     f"{size} bytes of its range", operation="GetObject")
            rng.filled += got
            index, level = self._need
            if index == need_index and rng.filled >= level:
                self._wake.set()

    def _check_same_object(self, request: proto.Request, body: BodyStream) -> None:
        assert self.info is not None
        why = rg.changed(body.headers, self._etag, self.info.size)
        if why is not None:
            raise rg.object_changed(request, body.status, "ObjectChanged",
                                    f"{why}: the object was replaced during the download")

    # -------------------------------------------------------------- delivering

    async def _until(self, index: int, level: int) -> _Range:
        """Range ``index`` once ``level`` bytes of it are in (or it is done)."""
        self._need = (index, level)
        while True:
            if self._error is not None:
                raise self._error
            rng = self._ranges.get(index)
            if rng is not None and (rng.filled >= level and (level < rng.size or rng.done)):
                return rng
            self._wake.clear()
            await self._wake.wait()

    async def _chunks(self) -> AsyncGenerator[bytes, None]:
        try:
            await self._open()
            plan = self._plan
            assert plan is not None and self._verifier is not None
            total = 0
            verifier: rg.Verifier | None = None
            for index in range(plan.count):
                _, end = plan.bounds(index)
                size = end - (plan.offset + index * plan.part_size) + 1
                pos = 0
                while pos < size:
                    # Up to CHUNK bytes as soon as they are in; the last waits for the
                    # range to be done (its CRC computed).
                    level = min(pos + CHUNK, size)
                    rng = await self._until(index, level if level < size else size)
                    stop = min(rng.filled, pos + CHUNK)
                    assert rng.buffer is not None
                    chunk = bytes(memoryview(rng.buffer)[pos:stop])
                    pos = stop
                    if pos == size:
                        # Taken whole: the range's memory goes back before the consumer
                        # holds its last chunk, so the next range can start meanwhile.
                        verifier = self._verifier.result()
                        if verifier is not None and rng.crc is not None:
                            total = verifier.combine(total, rng.crc, size)
                        self._ranges.pop(index, None)
                        self._release(rng)
                        self._window.release()
                    yield chunk
            if plan.count:
                verifier = await self._verifier
                if self._error is not None:  # the HeadObject saw the object replaced
                    raise self._error
                if verifier is not None:
                    self._check(verifier, total)
        finally:
            await self._shutdown()

    def _check(self, verifier: rg.Verifier, total: int) -> None:
        if total != verifier.expected:
            raise IntegrityError(
                f"s3://{self.bucket}/{self.key}: the bytes delivered have {verifier.algorithm} "
                f"{rg.b64_crc(verifier.algorithm, total)}, but the store keeps "
                f"{rg.b64_crc(verifier.algorithm, verifier.expected)} for the object")
        self.checksum_checked = verifier.algorithm

    async def _shutdown(self) -> None:
        if self._closed and not self._tasks:
            return
        self._closed = True
        tasks = list(self._tasks)
        if self._open_task is not None and not self._open_task.done():
            tasks.append(self._open_task)
        for task in tasks:
            task.cancel()
        try:
            if tasks:
                await asyncio.wait(tasks)
        finally:
            for rng in list(self._ranges.values()):
                self._release(rng)
            self._ranges.clear()
            if self._verifier is not None and not self._verifier.done():
                self._verifier.cancel()
