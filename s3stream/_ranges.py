"""Ranged downloads without I/O: range planning, the ``Range`` and ``Content-Range``
headers, the GetObject request, what the first answer says, and whether (and how) the
delivered bytes can be checked against a checksum the store keeps.

Rules this module keeps:

* A download is a list of consecutive, non-overlapping ranges that cover exactly the
  bytes served; a retry asks for the rest of one range from its first byte not yet
  received, never for a byte twice.
* Every answer after the first must describe the same object: the same total size and
  the same ETag (stores that ignore ``If-Match`` are caught by the comparison).
* Only a FULL_OBJECT CRC of the whole object can be checked end to end: a COMPOSITE
  checksum is a checksum of part checksums (the part boundaries are not known here), and
  a stored checksum says nothing about a sub-range.
"""

from __future__ import annotations

import base64
import binascii
import functools
import re
import zlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass

from . import _checksums as cks
from . import _protocol as proto
from ._info import ObjectInfo, object_info
from .exceptions import ObjectChangedError, S3ResponseError, UsageError

__all__ = [
    "ContentRange",
    "DownloadPlan",
    "Verifier",
    "get_object",
    "parse_content_range",
    "plan",
    "range_header",
    "verifier_for",
]

Buffer = bytes | bytearray | memoryview

DEFAULT_PART_SIZE = 8 * 1024 * 1024
#: A range buffer is one allocation: past this, a part size is surely a mistake.
MAX_PART_SIZE = 5 * 1024 * 1024 * 1024


# ------------------------------------------------------------------ arguments


def check_arguments(*, offset: object, length: object, part_size: object,
                    concurrency: object, version_id: object, if_match: object,
                    checksum: object) -> tuple[int, int | None, int, int]:
    """Every numeric argument of a download, checked before any I/O."""
    if isinstance(offset, bool) or not isinstance(offset, int) or offset < 0:
        raise UsageError(f"offset must be an int >= 0, not {offset!r}")
    if length is not None and (isinstance(length, bool) or not isinstance(length, int)
                               or length < 1):
        raise UsageError(f"length must be an int >= 1 (bytes) or None (to the end), "
                         f"not {length!r}")
    if part_size is None:
        part_size = DEFAULT_PART_SIZE
    if isinstance(part_size, bool) or not isinstance(part_size, int) or \
            not 1 <= part_size <= MAX_PART_SIZE:
        raise UsageError(f"part_size must be an int from 1 to {MAX_PART_SIZE} (bytes) or "
                         f"None, not {part_size!r}")
    if isinstance(concurrency, bool) or not isinstance(concurrency, int) or concurrency < 1:
        raise UsageError(f"concurrency must be an int >= 1, not {concurrency!r}")
    for name, value in (("version_id", version_id), ("if_match", if_match)):
        if value is not None and (not isinstance(value, str) or not value
                                  or any(c in value for c in "\r\n\0")):
            raise UsageError(f"{name} must be a non-empty str without line breaks, or None")
    if not isinstance(checksum, bool):
        raise UsageError(f"checksum must be True or False, not {checksum!r}")
    return offset, length, part_size, concurrency


# ------------------------------------------------------------------- headers


def range_header(start: int, end: int) -> str:
    """``Range`` for the bytes ``start`` to ``end``, both included (HTTP's form)."""
    if not 0 <= start <= end:
        raise ValueError(f"no such range: {start}-{end}")
    return f"bytes={start}-{end}"


@dataclass(frozen=True, slots=True)
class ContentRange:
    """A ``Content-Range``: ``start``..``end`` (included) of ``total`` bytes; for an
    unsatisfiable range (``bytes */total``) ``start`` and ``end`` are None."""

    start: int | None
    end: int | None
    total: int | None


_CONTENT_RANGE = re.compile(r"^\s*bytes\s+(?:(\d+)-(\d+)|(\*))/(\d+|\*)\s*$", re.IGNORECASE)


def parse_content_range(value: str | None) -> ContentRange | None:
    """``value`` read, or None when absent or not of the ``bytes a-b/n`` form."""
    if not value:
        return None
    match = _CONTENT_RANGE.match(value)
    if match is None:
        return None
    first, last, _star, total = match.groups()
    size = None if total == "*" else int(total)
    if first is None:
        return ContentRange(None, None, size)
    start, end = int(first), int(last)
    if end < start or (size is not None and end >= size):
        return None
    return ContentRange(start, end, size)


def get_object(bucket: str, key: str, start: int, end: int, *, version_id: str | None,
               if_match: str | None, checksum_mode: bool) -> proto.Request:
    """GetObject for bytes ``start``..``end`` (included)."""
    headers: list[tuple[str, str]] = [("Range", range_header(start, end))]
    if if_match is not None:
        headers.append(("If-Match", if_match))
    if checksum_mode:
        headers.append(("x-amz-checksum-mode", "ENABLED"))
    query = (("versionId", version_id),) if version_id is not None else ()
    return proto.Request("GetObject", "GET", bucket, key, query, tuple(headers))


# ------------------------------------------------------------------- answers


def first_total(status: int, headers: Mapping[str, str], offset: int, asked: int) -> int:
    """The object's size, from the opening GET's answer (``asked`` bytes from ``offset``
    were asked for); ValueError when the answer does not say it."""
    cr = parse_content_range(headers.get("content-range"))
    if cr is not None and cr.total is not None:
        # rclone answers a range with 200, not 206, but with its Content-Range.
        return cr.total
    if status == 200 and offset == 0:
        # The whole object (a store that ignores Range): usable only if it fits the range.
        total = int(headers.get("content-length") or 0)
        if total > asked:
            raise ValueError("the store ignored the Range header")
        return total
    raise ValueError(f"no usable Content-Range in a {status} answer to a ranged GET")


def range_problem(status: int, headers: Mapping[str, str], start: int,
                  end: int) -> str | None:
    """Why an answer to a GET of bytes ``start``..``end`` does not hold exactly them."""
    value = headers.get("content-range")
    cr = parse_content_range(value)
    if cr is not None or status == 206:
        if cr is None or cr.start != start or cr.end != end:
            return f"asked for bytes {start}-{end}, got Content-Range {value!r}"
        return None
    return None if start == 0 else "a 200 answer (the whole object) to a ranged GET"


def changed(headers: Mapping[str, str], etag: str | None, size: int) -> str | None:
    """Why a later range's answer is not of the object the first one described (another
    ETag, from a store that ignores ``If-Match``, or another size); None if it is."""
    got = headers.get("etag")
    if etag is not None and got is not None and got != etag:
        return f"a range came with ETag {got}, not {etag}"
    cr = parse_content_range(headers.get("content-range"))
    if cr is not None and cr.total is not None and cr.total != size:
        return f"the object is now {cr.total} bytes, not {size}"
    return None


def object_changed(request: proto.Request, status: int, code: str, message: str,
                   request_id: str | None = None) -> ObjectChangedError:
    return ObjectChangedError(status=status, code=code, message=message,
                              request_id=request_id, operation=request.operation,
                              bucket=request.bucket, key=request.key)


def past_end(request: proto.Request, offset: int, size: int | None) -> S3ResponseError:
    """What an offset at or past the object's end is: S3's 416 InvalidRange, explained."""
    of = f"the {size}-byte object" if size is not None else "the object"
    return S3ResponseError(
        status=416, code="InvalidRange",
        message=f"offset={offset} is at or past the end of {of}: no byte to download",
        operation=request.operation, bucket=request.bucket, key=request.key)


# -------------------------------------------------------------------- planning


@dataclass(frozen=True, slots=True)
class DownloadPlan:
    """The bytes a download serves (``offset`` .. ``offset + length``) of an object of
    ``size`` bytes, cut into ranges of ``part_size``."""

    size: int
    offset: int
    length: int
    part_size: int

    @property
    def count(self) -> int:
        return -(-self.length // self.part_size)

    def bounds(self, index: int) -> tuple[int, int]:
        """Range ``index``'s first and last byte (included), object offsets."""
        start = self.offset + index * self.part_size
        return start, min(start + self.part_size, self.offset + self.length) - 1

    @property
    def whole(self) -> bool:
        return self.offset == 0 and self.length == self.size


def plan(size: int, offset: int, length: int | None, part_size: int) -> DownloadPlan:
    """What a download of ``length`` bytes (None: to the end) from ``offset`` serves of
    an object of ``size`` bytes: as S3 and HTTP do, a range that ends past the object is
    cut at its end. ``offset`` must be inside the object (or 0 for an empty object)."""
    if offset > size or (offset == size and size > 0):
        raise ValueError(f"offset {offset} is past the end of a {size}-byte object")
    served = size - offset if length is None else min(length, size - offset)
    return DownloadPlan(size, offset, served, part_size)


def first_range(offset: int, length: int | None, part_size: int) -> tuple[int, int]:
    """The first GET's range, asked before the size is known."""
    span = part_size if length is None else min(part_size, length)
    return offset, offset + span - 1


# ------------------------------------------------------------------ checksums

@functools.cache
def _crc64nvme() -> Callable[[Buffer, int], int] | None:
    """awscrt's CRC64NVME, the only fast one for Python; without it the CRC is not
    checked. Imported on first use: the native library is about 5 MiB of resident
    memory that a process which never meets a CRC64NVME object should not carry."""
    try:
        from awscrt import checksums  # type: ignore[import-untyped]
    except ImportError:  # pragma: no cover - depends on the environment
        return None

    def crc64nvme(data: Buffer, crc: int) -> int:
        return int(checksums.crc64nvme(data, crc))

    return crc64nvme


def _crc32c(data: Buffer, crc: int) -> int:
    update = cks.running_crc("crc32c")
    assert update is not None
    return update(memoryview(data), crc)


def _crc32(data: Buffer, crc: int) -> int:
    return zlib.crc32(data, crc)


def _crc_function(name: str) -> Callable[[Buffer, int], int] | None:
    if name == "CRC32":
        return _crc32
    if name == "CRC32C":
        return _crc32c if cks.fast_crc32c_available() else None
    if name == "CRC64NVME":
        return _crc64nvme()
    return None


def crc_combine(name: str, crc1: int, crc2: int, length2: int) -> int:
    """CRC of ``a + b`` from ``crc(a)``, ``crc(b)`` and ``len(b)``, for S3's name."""
    return cks.crc_combine(crc1, crc2, length2, name.lower())


@dataclass(frozen=True, slots=True)
class Verifier:
    """How a download's bytes are checked: each range's CRC (``crc``, computed off the
    event loop) is combined in order, and the total compared with ``expected``."""

    algorithm: str
    expected: int
    crc: Callable[[Buffer, int], int]

    def combine(self, total: int, crc: int, length: int) -> int:
        return crc_combine(self.algorithm, total, crc, length)


def verifier_for(info: ObjectInfo, download: DownloadPlan) -> Verifier | None:
    """The check the delivered bytes can get, or None: only a whole-object download of
    an object whose stored checksum is a FULL_OBJECT CRC this process can compute."""
    if not download.whole or download.size == 0:
        return None
    kind = (info.checksum_type or "").upper()
    for algorithm in ("CRC64NVME", "CRC32C", "CRC32"):
        value = info.checksums.get(algorithm)
        if value is None:
            continue
        # A COMPOSITE value ends in "-N"; a store that does not send the type is trusted
        # only for a value of exactly the CRC's width (a FULL_OBJECT one).
        if kind == "COMPOSITE" or "-" in value or kind not in ("", "FULL_OBJECT"):
            return None
        crc = _crc_function(algorithm)
        if crc is None:
            continue
        try:
            raw = base64.b64decode(value, validate=True)
        except (binascii.Error, ValueError):
            return None
        if len(raw) != (8 if algorithm == "CRC64NVME" else 4):
            return None
        return Verifier(algorithm, int.from_bytes(raw, "big"), crc)
    return None


def head_object(bucket: str, key: str, *, version_id: str | None,
                if_match: str | None) -> proto.Request:
    """HeadObject with the stored checksum asked for (``x-amz-checksum-mode``)."""
    headers: list[tuple[str, str]] = [("x-amz-checksum-mode", "ENABLED")]
    if if_match is not None:
        headers.append(("If-Match", if_match))
    query = (("versionId", version_id),) if version_id is not None else ()
    return proto.Request("HeadObject", "HEAD", bucket, key, query, tuple(headers))


def read_head_info(bucket: str, key: str) -> Callable[[proto.Request, proto.Response],
                                                     ObjectInfo]:
    """The reader of a HeadObject answer: the object's info (errors raised typed)."""
    def read(request: proto.Request, response: proto.Response) -> ObjectInfo:
        proto.check(request, response)
        return object_info(bucket, key, response.headers)

    return read


def b64_crc(algorithm: str, value: int) -> str:
    return base64.b64encode(value.to_bytes(8 if algorithm == "CRC64NVME" else 4,
                                           "big")).decode()
