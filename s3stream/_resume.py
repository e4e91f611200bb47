"""Resuming an interrupted multipart upload of a file: which listed parts may stay, and
which must be sent. Pure: no I/O, no event loop.

The rule, per part number: a part ListParts reports is kept only if its size is the
planned size for its number *and* its checksum matches the file's bytes at that place.
The checksum compared is, in order of preference:

1. the part's stored checksum (``ChecksumCRC32C``, ``ChecksumCRC32``, ``ChecksumSHA256``:
   AWS lists it when the upload was created with a checksum algorithm), for an
   algorithm this process can compute;
2. else its ETag, read as the hex MD5 of the part's bytes. That holds on AWS for parts
   stored with SSE-S3 or no encryption, and on the S3-compatible stores tested here; it
   does not hold with SSE-KMS or SSE-C, where the ETag is something else: those parts
   then do not match and are sent again (correct, only slower).

A part that cannot be checked either way (an ETag that is not 32 hex digits and no
checksum) is sent again: a kept part is always one whose bytes are known to be the
file's. Listed parts past the file's last part are left out of the Complete (S3 then
discards them).

The checksum protocol of the parts sent and of the Complete is the upload's own where
the store reports it (``checksum_plan``), else the one ``upload()`` would have used.

Part sizes follow ``_parts.plan`` for a known size, so ``S3Client.upload(path)`` of the
same file plans the same parts as a resume does. Where the caller does not say which
part size the interrupted upload used, it is inferred from the listing (see
``infer_part_size``).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import re
import zlib
from collections.abc import Collection, Sequence
from dataclasses import dataclass
from datetime import datetime

from . import _checksums as cks
from ._integrity import ChecksumPlan
from ._parts import S3_LIMITS, Limits, plan
from ._xml import CompleteResult, PartListing, UploadListing
from .exceptions import UsageError

__all__ = ["Check", "PlannedPart", "ResumePlan", "check_for", "checksum_plan", "computable",
           "digest", "infer_part_size", "newest_upload", "plan_resume", "stored_checksum"]

#: The stored checksums a part may be verified with: ListParts' name -> our algorithm.
CHECKSUM_ALGORITHMS = {"ChecksumCRC32C": "crc32c", "ChecksumCRC32": "crc32",
                       "ChecksumSHA256": "sha256"}
_MD5_HEX = re.compile(r"^[0-9a-fA-F]{32}$")


@dataclass(frozen=True, slots=True)
class Check:
    """How to verify one listed part: its bytes' ``algorithm`` digest must be ``expected``."""

    #: ``"crc32c"``, ``"crc32"``, ``"sha256"`` (a stored checksum) or ``"md5"`` (the ETag).
    algorithm: str
    #: The raw digest (CRCs as 4 big-endian bytes).
    expected: bytes


@dataclass(frozen=True, slots=True)
class PlannedPart:
    number: int
    offset: int
    size: int
    #: The listed part with this number and the planned size, if any.
    listed: PartListing | None = None
    #: How to verify ``listed`` (None: it cannot be checked, or there is none: send it).
    check: Check | None = None


@dataclass(frozen=True, slots=True)
class ResumePlan:
    part_size: int
    #: Every part of the object, numbers 1..n in order.
    parts: tuple[PlannedPart, ...]
    #: Listed parts whose size is not the planned one (they are sent again).
    wrong_size: tuple[int, ...] = ()
    #: Listed parts that can be checked neither by checksum nor by ETag (sent again).
    uncheckable: tuple[int, ...] = ()
    #: Listed parts past the file's last part (left out of the object).
    dropped: tuple[int, ...] = ()

    @property
    def to_verify(self) -> tuple[PlannedPart, ...]:
        return tuple(p for p in self.parts if p.check is not None)


def _layout(file_size: int, part_size: int) -> list[tuple[int, int, int]]:
    """(number, offset, size) of every part of a file of ``file_size`` bytes."""
    count = max(1, -(-file_size // part_size))
    return [(n, (n - 1) * part_size, min(part_size, file_size - (n - 1) * part_size))
            for n in range(1, count + 1)]


def _fits(file_size: int, part_size: int, listed: Sequence[PartListing]) -> int:
    """How many listed parts have the size ``part_size`` plans for their number."""
    sizes = {n: size for n, _, size in _layout(file_size, part_size)}
    return sum(1 for p in listed if sizes.get(p.number) == p.size)


def infer_part_size(file_size: int, listed: Sequence[PartListing],
                    limits: Limits = S3_LIMITS) -> int:
    """The part size the interrupted upload most likely used.

    Candidates: what ``upload()`` plans for this size when given no ``part_size``, and
    every listed part's size that S3's limits allow for this file. The one under which
    the most listed parts have their planned size wins; ties go to ``upload()``'s
    default, then to the larger size. Only the cost depends on the guess: a part that
    does not fit the plan is sent again, never kept.
    """
    default = plan(size=file_size, part_size=None, limits=limits).size_of(1)
    allowed = {p.size for p in listed
               if limits.min_part_size <= p.size <= limits.max_part_size
               and file_size <= p.size * limits.max_parts}
    candidates = [default, *sorted(allowed - {default}, reverse=True)]
    best, best_score = default, -1
    for candidate in candidates:
        score = _fits(file_size, candidate, listed)
        if score > best_score:
            best, best_score = candidate, score
    return best


def check_for(part: PartListing, *, preferred: str | None,
              computable: Collection[str]) -> Check | None:
    """How ``part`` can be verified against the file: by a stored checksum this process
    can compute (``preferred``'s first), else by its ETag as an MD5, else not at all."""
    stored = [(CHECKSUM_ALGORITHMS[name], value) for name, value in part.checksums.items()
              if name in CHECKSUM_ALGORITHMS and CHECKSUM_ALGORITHMS[name] in computable]
    stored.sort(key=lambda item: item[0] != preferred)
    for algorithm, value in stored:
        try:
            return Check(algorithm, base64.b64decode(value, validate=True))
        except (binascii.Error, ValueError):
            continue
    etag = part.etag.strip().strip('"')
    if _MD5_HEX.match(etag):
        return Check("md5", bytes.fromhex(etag))
    return None


def plan_resume(
    file_size: int,
    listed: Sequence[PartListing],
    *,
    part_size: int | None = None,
    algorithm: str | None = None,
    computable: Collection[str] = ("crc32", "sha256", "md5"),
    limits: Limits = S3_LIMITS,
) -> ResumePlan:
    """Every part of the file, each with the listed part to verify where one may stay.

    ``algorithm`` is the checksum the resumed upload sends (its stored checksum is the
    preferred way to verify a part: one pass gives both). ``computable`` names the
    algorithms this process can compute (CRC32C needs a native extension).
    """
    if isinstance(file_size, bool) or not isinstance(file_size, int) or file_size < 0:
        raise UsageError(f"file_size must be an int >= 0, not {file_size!r}")
    if file_size == 0:
        raise UsageError("the file is empty: a multipart upload needs at least one byte "
                         "(upload() it as one PutObject)")
    if part_size is None:
        part_size = infer_part_size(file_size, listed, limits)
    else:
        plan(size=file_size, part_size=part_size, limits=limits)  # UsageError if it cannot
    by_number: dict[int, PartListing] = {}
    for part in listed:
        by_number.setdefault(part.number, part)
    layout = _layout(file_size, part_size)
    parts: list[PlannedPart] = []
    wrong_size: list[int] = []
    uncheckable: list[int] = []
    for number, offset, size in layout:
        found = by_number.get(number)
        if found is None:
            parts.append(PlannedPart(number, offset, size))
        elif found.size != size:
            wrong_size.append(number)
            parts.append(PlannedPart(number, offset, size))
        else:
            check = check_for(found, preferred=algorithm, computable=computable)
            if check is None:
                uncheckable.append(number)
            parts.append(PlannedPart(number, offset, size, found, check))
    dropped = tuple(sorted(n for n in by_number if n > len(layout)))
    return ResumePlan(part_size, tuple(parts), tuple(wrong_size), tuple(uncheckable), dropped)


def _initiated(upload: UploadListing) -> datetime | None:
    try:
        return datetime.fromisoformat(upload.initiated.replace("Z", "+00:00"))
    except ValueError:
        return None


def newest_upload(uploads: Sequence[UploadListing], key: str, bucket: str) -> str:
    """The upload id of the newest in-progress upload of exactly ``key``.

    UsageError when there is none, or when the newest cannot be told apart (several
    share the newest ``Initiated`` time, or it is missing): pass ``upload_id`` then.
    """
    mine = [u for u in uploads if u.key == key]
    if not mine:
        raise UsageError(f"no multipart upload of s3://{bucket}/{key} is in progress: "
                         "nothing to resume")
    if len(mine) == 1:
        return mine[0].upload_id
    dated = [(_initiated(u), u) for u in mine]
    if any(when is None for when, _ in dated):
        raise UsageError(f"{len(mine)} multipart uploads of s3://{bucket}/{key} are in "
                         "progress and their start times are not all known; pass upload_id")
    newest = max(when for when, _ in dated if when is not None)
    top = [u for when, u in dated if when == newest]
    if len(top) > 1:
        raise UsageError(f"{len(top)} multipart uploads of s3://{bucket}/{key} started at "
                         f"the same time ({newest.isoformat()}); pass upload_id "
                         f"(one of {', '.join(u.upload_id for u in top)})")
    return top[0].upload_id


# ------------------------------------------------------------- checksums


def digest(data: bytes, algorithm: str) -> bytes:
    """The raw ``algorithm`` digest of ``data`` (CRCs as 4 big-endian bytes)."""
    if algorithm == "crc32":
        return zlib.crc32(data).to_bytes(4, "big")
    if algorithm == "md5":
        return hashlib.md5(data, usedforsecurity=False).digest()
    result = cks.digest_part([data], sha256=False, algorithm=algorithm).checksum
    assert result is not None
    return result


def computable() -> tuple[str, ...]:
    """The checksums this process can compute (CRC32C needs a native extension)."""
    return ("crc32", "sha256", "md5", *(("crc32c",) if cks.fast_crc32c_available() else ()))


def checksum_plan(listed: Sequence[PartListing], listed_algorithm: str | None,
                  listed_type: str | None, algorithm: str | None, strict: bool,
                  store_level: int, where: str) -> ChecksumPlan:
    """The checksum protocol the resumed parts and the Complete speak: the upload's own
    where the store reports it (ListParts' algorithm and type, or the parts' checksums),
    else ``algorithm`` (what ``upload()`` would have used)."""
    reported = (listed_algorithm or "").lower() or next(
        (CHECKSUM_ALGORITHMS[name] for p in listed for name in p.checksums
         if name in CHECKSUM_ALGORITHMS), None)
    if reported:
        if reported not in cks.ALGORITHMS:
            raise UsageError(f"{where}: the upload was created with the {reported} checksum, "
                             "which s3stream cannot compute")
        if strict and algorithm != reported:
            raise UsageError(f"{where}: the upload was created with the {reported} checksum; "
                             f"checksum={algorithm!r} cannot be used for its parts")
        algorithm = cks.validate_algorithm(reported)
        kind = (listed_type or "").upper()
        level = cks.COMPOSITE if kind == "COMPOSITE" else cks.best_level(algorithm)
        # The store said which checksum the upload takes: send exactly that.
        return ChecksumPlan(algorithm, strict=True, level=level)
    return ChecksumPlan.start(algorithm, strict=strict, store_level=store_level)


def stored_checksum(done: CompleteResult) -> tuple[str | None, str | None, str | None]:
    """The object's checksum as the Complete answer reports it: (value, algorithm, type)."""
    for name, algorithm in CHECKSUM_ALGORITHMS.items():
        value = done.checksums.get(name)
        if value:
            kind = "COMPOSITE" if value.rpartition("-")[2].isdigit() and "-" in value \
                else "FULL_OBJECT"
            return value, algorithm, kind
    return None, None, None
