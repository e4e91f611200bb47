"""Multipart uploads whose parts come from elsewhere (browsers, worker processes on other
machines), and resuming an interrupted upload of a file. The I/O half; the decisions
of a resume are in ``_resume`` (pure).

S3 is the only shared state: an upload id, the parts S3 lists for it, and the object
once completed. Nothing here remembers anything between calls, so any process with
credentials can complete (or resume) an upload another one started.

A failed ``resume()`` never aborts: the upload stays as it was, plus the parts that
were sent, so that it can be resumed again (or aborted by the caller).
"""

from __future__ import annotations

import asyncio
import logging
import os
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import BinaryIO

from . import _checksums as cks
from . import _protocol as proto
from . import _resume, _xml
from ._integrity import ChecksumPlan, check_echo
from ._parts import S3_LIMITS, Buffer, Limits
from ._requester import Requester, RequestStats
from ._sources import _open_path
from ._upload import (
    UploadResult,
    UploadStats,
    call_with_plan,
    complete_confirmed,
    confirm_quietly,
    head_confirms,
    seal_checksums,
)
from .exceptions import (
    IntegrityError,
    S3ResponseError,
    SourceSizeError,
    TransportError,
    UploadError,
    UsageError,
)

__all__ = ["ResumeStats", "complete", "create", "list_all_parts", "resume", "upload_part"]

logger = logging.getLogger("s3stream")

#: The most one ``os.pread`` returns on Linux: a 5 GiB part takes several.
_READ_LIMIT = 0x7FFFF000


@dataclass(frozen=True, slots=True)
class ResumeStats(UploadStats):
    """What a resume did, beside what every upload's stats say (``UploadStats``)."""

    #: Listed parts whose size and checksum matched the file: kept, not sent again.
    parts_kept: tuple[int, ...]
    #: Parts this resume sent: those not listed, and those that did not match.
    parts_sent: tuple[int, ...]
    #: Of ``parts_sent``, listed parts whose size or checksum did not match the file
    #: (or could not be checked): replaced.
    parts_replaced: tuple[int, ...]
    #: Listed parts past the file's last part: left out of the object.
    parts_dropped: tuple[int, ...]


@dataclass(frozen=True, slots=True)
class Listing:
    """Every part ListParts reports for an upload (all pages), in part-number order."""

    parts: list[_xml.PartListing]
    checksum_algorithm: str | None
    checksum_type: str | None


def _stats(stats: RequestStats, started: float, parts: int) -> UploadStats:
    return UploadStats(time.monotonic() - started, parts, stats.requests, stats.retries,
                       stats.stalls, stats.bytes_sent)


# ------------------------------------------------------------------ the steps


async def create(requester: Requester, bucket: str, key: str, headers: proto.Headers,
                 algorithm: str | None) -> str:
    """CreateMultipartUpload; the upload id. ``algorithm`` (explicit, so strict) makes S3
    require that checksum on every part (CRCs as ``FULL_OBJECT``, as ``upload()`` does)."""
    plan = ChecksumPlan.start(algorithm, strict=True, store_level=cks.FULL)
    request = proto.create_multipart_upload(bucket, key, (*headers, *plan.create_headers()))
    try:
        return await requester.call(request, proto.read_create)
    except proto.UnreadableCreate as exc:
        if exc.upload_id is not None:
            # The upload exists but its id never reached the caller: nobody else can abort it.
            try:
                await requester.call(proto.abort_multipart_upload(bucket, key, exc.upload_id),
                                     proto.read_abort)
            except (S3ResponseError, TransportError) as abort_error:
                exc.add_note(f"AbortMultipartUpload of {exc.upload_id} failed too: "
                             f"{abort_error!r}")
        raise


async def upload_part(requester: Requester, bucket: str, key: str, upload_id: str,
                      number: int, data: Buffer, algorithm: str | None,
                      headers: proto.Headers = (), stats: RequestStats | None = None) -> str:
    """UploadPart of ``data`` (with ``algorithm``'s checksum header, if any); its ETag."""
    size = len(data)
    digest = await requester.digest([data], size, algorithm)
    checksum: proto.Headers = ()
    if algorithm is not None and digest.checksum_b64 is not None:
        checksum = ((cks.header_name(algorithm), digest.checksum_b64),)
    sent = checksum[0][1] if checksum else None

    def read(request: proto.Request, response: proto.Response) -> str:
        etag = proto.read_etag(request, response)
        check_echo(algorithm, sent, response.headers, f"UploadPart s3://{bucket}/{key}")
        return etag

    return await requester.call(
        proto.upload_part(bucket, key, upload_id, number, [data], size, (*headers, *checksum)),
        read, payload_hash=requester.hash_for(digest), stats=stats)


async def list_all_parts(requester: Requester, bucket: str, key: str, upload_id: str,
                         stats: RequestStats | None = None) -> Listing:
    """ListParts, every page (NotFoundError when the upload does not exist)."""
    parts: dict[int, _xml.PartListing] = {}
    algorithm = kind = None
    marker: int | None = None
    while True:
        page = await requester.call(proto.list_parts(bucket, key, upload_id, marker),
                                    proto.read_list_parts, stats=stats)
        for part in page.parts:
            parts.setdefault(part.number, part)
        algorithm = algorithm or page.checksum_algorithm
        kind = kind or page.checksum_type
        if not page.truncated or not page.parts:
            break
        following = page.next_part_number_marker or page.parts[-1].number
        if marker is not None and following <= marker:
            break  # a store whose marker does not move would page forever
        marker = following
    return Listing([parts[n] for n in sorted(parts)], algorithm, kind)


async def newest_upload_id(requester: Requester, bucket: str, key: str,
                           stats: RequestStats | None = None) -> str:
    """The newest in-progress upload of exactly ``key`` (ListMultipartUploads)."""
    uploads: list[_xml.UploadListing] = []
    key_marker: str | None = None
    id_marker: str | None = None
    while True:
        page = await requester.call(
            proto.list_multipart_uploads(bucket, key, key_marker, id_marker),
            proto.read_list_uploads, stats=stats)
        uploads.extend(page.uploads)
        if not page.truncated or not page.uploads:
            break
        key_marker = page.next_key_marker or page.uploads[-1].key
        id_marker = page.next_upload_id_marker or page.uploads[-1].upload_id
    return _resume.newest_upload(uploads, key, bucket)


async def complete(requester: Requester, bucket: str, key: str, upload_id: str,
                   parts: Sequence[tuple[int, str]] | None) -> UploadResult:
    """CompleteMultipartUpload from ``parts`` ((number, ETag), sorted, checked) or, for
    None, from every part ListParts reports.

    The parts are listed either way: their sizes say how large the object will be (what
    HeadObject must show if the Complete's answer is lost), and their stored checksums
    go into the Complete body, as S3 requires for an upload created with a checksum.
    A failed Complete leaves the upload open (the caller decides: retry, or abort).
    """
    started = time.monotonic()
    stats = RequestStats()
    listing = await list_all_parts(requester, bucket, key, upload_id, stats)
    listed = {p.number: p for p in listing.parts}
    if parts is None:
        if not listing.parts:
            raise UsageError(f"upload {upload_id} of s3://{bucket}/{key} has no parts: "
                             "upload at least one before completing it")
        parts = [(p.number, p.etag) for p in listing.parts]
    chosen: list[_xml.CompletedPart] = []
    size = 0
    for number, etag in parts:
        found = listed.get(number)
        same = found is not None and found.etag.strip('"') == etag.strip('"')
        chosen.append(_xml.CompletedPart(number, etag, found.checksums if same and found
                                         else {}))
        # A part not listed (or with another ETag) is refused by S3 on the first try: a
        # definite error, so its size is never needed to confirm anything.
        size += found.size if found is not None else 0
    # Nothing was sent from here: the plan only lets HeadObject judge size and part count.
    plan = ChecksumPlan(None, strict=False, level=cks.NONE)

    done = await complete_confirmed(
        lambda on_attempt: requester.call(
            proto.complete_multipart_upload(bucket, key, upload_id, chosen),
            proto.read_complete, on_attempt=on_attempt, stats=stats),
        lambda: confirm_quietly(head_confirms(requester, bucket, key, size=size,
                                              part_count=len(chosen), plan=plan, headers=(),
                                              stats=stats), bucket, key),
        bucket=bucket, key=key)
    assert done.etag is not None
    checksum, algorithm, kind = _resume.stored_checksum(done)
    return UploadResult(bucket, key, done.etag, size, len(chosen), upload_id, done.version_id,
                        checksum, algorithm, kind, False,
                        _stats(stats, started, len(chosen)))


# ----------------------------------------------------------------- resume


def _read_range(f: BinaryIO, offset: int, size: int) -> bytes:
    """``size`` bytes at ``offset`` (blocking: runs in a worker thread)."""
    pieces: list[bytes] = []
    got = 0
    while got < size:
        piece = os.pread(f.fileno(), min(size - got, _READ_LIMIT), offset + got)
        if not piece:
            raise SourceSizeError(
                f"the file ended at {offset + got} bytes while it was being resumed; it "
                f"held {offset + size} or more when the resume began",
                limit=offset + size, produced=offset + got)
        pieces.append(piece)
        got += len(piece)
    return pieces[0] if len(pieces) == 1 else b"".join(pieces)


def _read_and_check(f: BinaryIO, part: _resume.PlannedPart,
                    algorithm: str | None) -> tuple[bytes, bool, bytes | None]:
    """A part's bytes, whether they match the listed part, and their ``algorithm``
    checksum when it matched (blocking: reads and hashes in a worker thread)."""
    data = _read_range(f, part.offset, part.size)
    check = part.check
    assert check is not None
    ok = _resume.digest(data, check.algorithm) == check.expected
    if not ok or not cks.stored_by_s3(algorithm):
        return data, ok, None
    raw = check.expected if check.algorithm == algorithm else _resume.digest(data, algorithm)
    return data, ok, raw


async def resume(
    requester: Requester,
    bucket: str,
    key: str,
    path: str,
    *,
    upload_id: str | None,
    part_size: int | None,
    concurrency: int,
    algorithm: str | None,
    strict: bool,
    limits: Limits = S3_LIMITS,
) -> UploadResult:
    """Finish an interrupted multipart upload of the file at ``path`` (see ``_resume``)."""
    started = time.monotonic()
    stats = RequestStats()
    f, size = await asyncio.to_thread(_open_path, path, False)
    try:
        if size is None:
            raise UsageError(f"{path!r} is not a regular file: its size is not known")
        if upload_id is None:
            upload_id = await newest_upload_id(requester, bucket, key, stats)
        where = f"s3://{bucket}/{key} upload {upload_id}"
        listing = await list_all_parts(requester, bucket, key, upload_id, stats)
        plan = _resume.checksum_plan(listing.parts, listing.checksum_algorithm,
                                     listing.checksum_type, algorithm, strict,
                                     requester.store.level, where)
        layout = _resume.plan_resume(size, listing.parts, part_size=part_size,
                                     algorithm=plan.algorithm, computable=_resume.computable(),
                                     limits=limits)
        logger.info("%s: resuming %d parts of %d bytes; %d listed, %d to verify", where,
                    len(layout.parts), layout.part_size, len(listing.parts),
                    len(layout.to_verify))
        try:
            return await _Resume(requester, bucket, key, upload_id, f, size, plan, layout,
                                 concurrency, stats, started).run()
        except (S3ResponseError, TransportError, IntegrityError, SourceSizeError) as exc:
            raise UploadError(
                f"resuming failed: {exc}; the upload is left open: resume it again, or "
                "abort it", bucket=bucket, key=key, upload_id=upload_id,
                aborted=False) from exc
    finally:
        await asyncio.to_thread(f.close)


class _Resume:
    """One resume: verify or send every part, then complete."""

    def __init__(self, requester: Requester, bucket: str, key: str, upload_id: str,
                 f: BinaryIO, size: int, plan: ChecksumPlan, layout: _resume.ResumePlan,
                 concurrency: int, stats: RequestStats, started: float) -> None:
        self.requester = requester
        self.bucket, self.key, self.upload_id = bucket, key, upload_id
        self.f, self.size = f, size
        self.plan, self.layout = plan, layout
        self.slots = asyncio.Semaphore(concurrency)
        self.stats, self.started = stats, started
        self.done: dict[int, _xml.CompletedPart] = {}
        self.kept: list[int] = []
        self.sent: list[int] = []
        self.replaced: list[int] = [*layout.wrong_size, *layout.uncheckable]

    async def run(self) -> UploadResult:
        tasks = [asyncio.create_task(self._part(p), name=f"s3stream resume part {p.number}")
                 for p in self.layout.parts]
        try:
            await asyncio.wait(tasks, return_when=asyncio.FIRST_EXCEPTION)
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.wait(tasks)
        for task in tasks:
            error = None if task.cancelled() else task.exception()
            if error is not None:
                raise error  # the first to fail; the others were cancelled after it
        return await self._complete()

    async def _part(self, part: _resume.PlannedPart) -> None:
        budget = self.requester.budget
        async with self.slots:
            reserved = await budget.acquire(part.size) if budget is not None else 0
            try:
                await self._verify_or_send(part)
            finally:
                if budget is not None:
                    budget.release(reserved)

    async def _verify_or_send(self, part: _resume.PlannedPart) -> None:
        algorithm = self.plan.algorithm
        if part.check is not None and part.listed is not None:
            data, ok, raw = await asyncio.to_thread(_read_and_check, self.f, part, algorithm)
            if ok:
                digest = cks.PartDigest(None, raw)
                header = self.plan.body_header(digest)
                listed = part.listed.checksums.get(cks.xml_name(algorithm)) \
                    if cks.stored_by_s3(algorithm) else None
                checksums = self.plan.part_done(part.number, digest, part.size,
                                                header[0][1] if header else None,
                                                echoed=listed is not None)
                self.done[part.number] = _xml.CompletedPart(part.number, part.listed.etag,
                                                            checksums)
                self.kept.append(part.number)
                return
            logger.info("s3://%s/%s: listed part %d does not match the file; sending it "
                        "again", self.bucket, self.key, part.number)
            self.replaced.append(part.number)
        else:
            data = await asyncio.to_thread(_read_range, self.f, part.offset, part.size)
        await self._send(part.number, data)

    async def _send(self, number: int, data: bytes) -> None:
        algorithm = self.plan.algorithm
        digest = await self.requester.digest([data], len(data), algorithm)
        sent: list[str | None] = [None]

        def build() -> proto.Request:
            headers = self.plan.body_header(digest)
            sent[0] = headers[0][1] if headers else None
            return proto.upload_part(self.bucket, self.key, self.upload_id, number, [data],
                                     len(data), headers)

        def read(request: proto.Request, response: proto.Response) -> tuple[str, bool]:
            etag = proto.read_etag(request, response)
            return etag, check_echo(algorithm, sent[0], response.headers,
                                    f"UploadPart s3://{self.bucket}/{self.key}")

        etag, echoed = await call_with_plan(self.requester, self.plan, build, read,
                                            floor=cks.NONE, stats=self.stats,
                                            payload_hash=self.requester.hash_for(digest))
        checksums = self.plan.part_done(number, digest, len(data), sent[0], echoed)
        self.done[number] = _xml.CompletedPart(number, etag, checksums)
        self.sent.append(number)

    async def _complete(self) -> UploadResult:
        count = len(self.layout.parts)
        parts = [self.done[n] for n in range(1, count + 1)]
        plan = self.plan
        await seal_checksums(self.requester, plan, list(range(1, count + 1)))

        def build() -> proto.Request:
            return proto.complete_multipart_upload(
                self.bucket, self.key, self.upload_id, plan.complete_parts(parts),
                plan.complete_headers())

        done = await complete_confirmed(
            lambda on_attempt: call_with_plan(self.requester, plan, build, proto.read_complete,
                                              floor=cks.COMPOSITE, stats=self.stats,
                                              on_attempt=on_attempt),
            lambda: confirm_quietly(head_confirms(self.requester, self.bucket, self.key,
                                                  size=self.size, part_count=count, plan=plan,
                                                  headers=(), stats=self.stats),
                                    self.bucket, self.key),
            bucket=self.bucket, key=self.key)
        assert done.etag is not None
        algorithm = plan.algorithm
        stored = done.checksums.get(cks.xml_name(algorithm)) \
            if cks.stored_by_s3(algorithm) else None
        got = plan.conclude(stored, count, f"s3://{self.bucket}/{self.key}")
        base = _stats(self.stats, self.started, count)
        stats = ResumeStats(
            base.duration, base.parts, base.requests, base.retries, base.stalls,
            base.bytes_sent, tuple(sorted(self.kept)), tuple(sorted(self.sent)),
            tuple(sorted(self.replaced)), self.layout.dropped)
        logger.info("s3://%s/%s: resumed upload %s completed: %d parts kept, %d sent",
                    self.bucket, self.key, self.upload_id, len(self.kept), len(self.sent))
        return UploadResult(self.bucket, self.key, done.etag, self.size, count,
                            self.upload_id, done.version_id, got.checksum, got.algorithm,
                            got.checksum_type, got.confirmed, stats)
