"""What checksum protocol one upload speaks, and what it may conclude. Pure: no I/O.

S3 verifies an ``x-amz-checksum-*`` on every part and keeps the object's checksum,
``FULL_OBJECT`` (the CRCs, combined from the parts') or ``COMPOSITE`` (the checksum of
the part checksums, ``-N``). S3-compatible stores differ: some refuse the headers or
the ``FULL_OBJECT`` type, some ignore them. A ``ChecksumPlan`` holds the level an
upload is at (``_checksums.FULL`` / ``COMPOSITE`` / ``NONE``), builds the headers for
that level, steps down when a store refuses them (unless the checksum was asked for
explicitly), and decides from the store's answers what the result may claim.

``head_shows()`` is the other half of "never guess an outcome": whether a HeadObject
answer shows the object an upload sent.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from . import _checksums as cks
from . import _xml
from .exceptions import IntegrityError

Headers = tuple[tuple[str, str], ...]

#: A multipart ETag's part count: ``"<md5 of md5s>-<N>"``.
_PART_COUNT_RE = re.compile(r"-(\d+)$")
LEVEL_NAMES = {cks.FULL: "FULL_OBJECT checksums", cks.COMPOSITE: "part checksums only",
               cks.NONE: "no checksums"}


@dataclass(frozen=True, slots=True)
class Conclusion:
    """What an upload's result may say about its checksum."""

    checksum: str | None
    algorithm: str | None
    checksum_type: str | None
    confirmed: bool


@dataclass(slots=True)
class ChecksumPlan:
    algorithm: str | None
    #: Asked for explicitly: a store that refuses it is an error, not a reason to drop it.
    strict: bool
    level: int
    #: Set by ``seal()``: the object's checksum in FULL_OBJECT and COMPOSITE form.
    full: str | None = None
    composite: str | None = None
    #: part number -> (raw checksum, size), as the parts finish.
    parts: dict[int, tuple[bytes, int]] = field(default_factory=dict)
    echoed: set[int] = field(default_factory=set)

    @classmethod
    def start(cls, algorithm: str | None, *, strict: bool, store_level: int) -> ChecksumPlan:
        best = cks.best_level(algorithm)
        return cls(algorithm, strict, best if strict else min(best, store_level))

    # ----------------------------------------------------------- stepping down

    def may_step_down(self, status: int, code: str) -> bool:
        """Whether a refusal should be answered by sending the request with less."""
        return not self.strict and self.level != cks.NONE and \
            cks.rejects_checksums(status, code)

    def step_down(self, floor: int) -> None:
        """One level down, or straight to NONE when ``floor`` is not below the level
        (a part's checksum header is all or nothing)."""
        self.level = max(floor, self.level - 1) if floor < self.level else cks.NONE

    # ----------------------------------------------------------------- headers

    def _sends_x_amz(self) -> bool:
        return cks.stored_by_s3(self.algorithm) and self.level != cks.NONE

    def create_headers(self) -> Headers:
        if not self._sends_x_amz():
            return ()
        assert self.algorithm is not None
        extra = [("x-amz-checksum-algorithm", self.algorithm.upper())]
        if self.level == cks.FULL:
            extra.append(("x-amz-checksum-type", "FULL_OBJECT"))
        return tuple(extra)

    def body_header(self, digest: cks.PartDigest) -> Headers:
        """The checksum header of a part or a PutObject (MD5: ``Content-MD5``, always)."""
        if self.algorithm is None or digest.checksum_b64 is None:
            return ()
        if cks.stored_by_s3(self.algorithm) and self.level == cks.NONE:
            return ()
        return ((cks.header_name(self.algorithm), digest.checksum_b64),)

    def part_done(self, number: int, digest: cks.PartDigest, size: int, sent: str | None,
                  echoed: bool) -> dict[str, str]:
        """Record a finished part; returns its checksum as the Complete body lists it."""
        if echoed:
            self.echoed.add(number)
        if not cks.stored_by_s3(self.algorithm) or digest.checksum is None:
            return {}
        self.parts[number] = (digest.checksum, size)
        return {cks.xml_name(self.algorithm): sent} if sent is not None else {}

    def seal(self, numbers: Sequence[int]) -> None:
        """Compute the object's checksum from its parts' (no second pass over the data)."""
        algorithm = self.algorithm
        if not cks.stored_by_s3(algorithm) or any(n not in self.parts for n in numbers):
            return
        ordered = [self.parts[n] for n in numbers]
        self.composite = cks.composite_checksum([raw for raw, _ in ordered], algorithm)
        self.full = cks.b64(cks.full_object_crc(ordered, algorithm)) \
            if cks.supports_full_object(algorithm) else self.composite

    def complete_parts(self, parts: Sequence[_xml.CompletedPart]) -> list[_xml.CompletedPart]:
        if self.level < cks.COMPOSITE:
            return [_xml.CompletedPart(p.number, p.etag) for p in parts]
        return list(parts)

    def complete_headers(self) -> Headers:
        if self.level != cks.FULL or self.full is None or self.algorithm is None:
            return ()
        return ((cks.header_name(self.algorithm), self.full),
                ("x-amz-checksum-type", "FULL_OBJECT"))

    # ------------------------------------------------------------- conclusions

    def ours(self, stored: str | None) -> bool:
        """Whether a checksum the store reports is this object's (in either form)."""
        return stored is None or stored in (self.full, self.composite)

    def conclude(self, stored: str | None, part_count: int, where: str) -> Conclusion:
        """The result's checksum, given what the store reported for the object."""
        algorithm = self.algorithm
        if algorithm is None or self.level < cks.COMPOSITE or self.full is None:
            return Conclusion(None, None, None, False)
        checksum: str | None
        if self.level == cks.FULL and cks.supports_full_object(algorithm):
            checksum, kind = self.full, "FULL_OBJECT"
        else:
            checksum, kind = self.composite, "COMPOSITE"
        if not self.ours(stored):
            raise IntegrityError(f"{where}: S3 reports {algorithm} {stored}, but the bytes "
                                 f"sent have {checksum}")
        if stored is not None and stored == self.composite and stored != checksum:
            # Stores that do not keep FULL_OBJECT answer with the COMPOSITE form.
            checksum, kind = self.composite, "COMPOSITE"
        confirmed = stored is not None or len(self.echoed) == part_count
        return Conclusion(checksum, algorithm, kind, confirmed)


def check_echo(algorithm: str | None, sent: str | None, headers: Mapping[str, str],
               where: str) -> bool:
    """Whether S3 echoed the checksum we sent; IntegrityError if it echoed another one."""
    if not cks.stored_by_s3(algorithm) or sent is None:
        return False
    echoed = headers.get(cks.header_name(algorithm))
    if echoed is None:
        return False
    if echoed != sent:
        raise IntegrityError(f"{where}: S3 echoed {algorithm} {echoed}, but the bytes sent "
                             f"have {sent}")
    return True


def head_shows(headers: Mapping[str, str], *, size: int, part_count: int,
               plan: ChecksumPlan) -> _xml.CompleteResult | None:
    """The completed object, if a HeadObject answer (lower-cased ``headers``) shows the
    one an upload sent: its size, its part count where the ETag has one, its checksum
    where the store keeps one. None when it shows another object."""
    etag = headers.get("etag", "")
    try:
        found = int(headers.get("content-length", "-1"))
    except ValueError:
        return None
    count = _PART_COUNT_RE.search(etag.strip('"'))
    algorithm = plan.algorithm
    stored = headers.get(cks.header_name(algorithm)) \
        if cks.stored_by_s3(algorithm) and plan.full is not None else None
    if found != size or (count is not None and int(count[1]) != part_count):
        return None
    if not plan.ours(stored):
        return None
    checksums = {cks.xml_name(algorithm): stored} if algorithm and stored else {}
    return _xml.CompleteResult(etag or None, None, headers.get("x-amz-version-id"), checksums)
