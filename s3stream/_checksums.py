"""Integrity checksums for parts and whole objects, pure.

A part's checksum goes out as ``x-amz-checksum-<algo>`` (MD5 as ``Content-MD5``) and
S3 verifies it before storing the part. For the CRC algorithms the whole object's
checksum is derived from the parts' CRCs with the CRC combination identity (the
same algebra as zlib's ``crc32_combine``), so it costs no second pass over the data
and works although parts are hashed concurrently and out of order.
"""

from __future__ import annotations

import base64
import hashlib
import zlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import TypeGuard

from .exceptions import UsageError

Buffer = bytes | memoryview

_crc32c_extend: Callable[[int, Buffer], int] | None
try:  # the optional fast extra: s3stream[crc32c]
    import crc32c as _crc32c_mod

    def _crc32c_pkg(crc: int, data: Buffer) -> int:
        return int(_crc32c_mod.crc32c(data, crc))

    _crc32c_extend = _crc32c_pkg
except ImportError:  # pragma: no cover - depends on the environment
    try:
        import google_crc32c as _google_crc32c

        def _crc32c_google(crc: int, data: Buffer) -> int:
            return int(_google_crc32c.extend(crc, bytes(data)))

        _crc32c_extend = _crc32c_google
    except ImportError:
        _crc32c_extend = None

ALGORITHMS = ("crc32c", "crc32", "sha256", "md5")
#: Reflected polynomials of the CRCs S3 can combine into a full-object checksum.
_POLY = {"crc32": 0xEDB88320, "crc32c": 0x82F63B78}


def fast_crc32c_available() -> bool:
    return _crc32c_extend is not None


def running_crc(algorithm: str | None) -> Callable[[Buffer, int], int] | None:
    """A CRC cheap enough to run on the event loop as bytes arrive (native CRC32C only)."""
    if algorithm != "crc32c" or _crc32c_extend is None:
        return None
    extend = _crc32c_extend

    def update(data: Buffer, crc: int) -> int:
        return extend(crc, data)

    return update


def default_algorithm() -> str:
    """CRC32C where a native implementation is installed, else zlib's CRC32: both are
    verified by S3 and both run at memory speed, so integrity costs almost nothing."""
    return "crc32c" if fast_crc32c_available() else "crc32"


def validate_algorithm(algorithm: object) -> str | None:
    if algorithm is None:
        return None
    if algorithm not in ALGORITHMS:
        raise UsageError(f"checksum must be one of {', '.join(ALGORITHMS)} or None, "
                         f"not {algorithm!r}")
    assert isinstance(algorithm, str)
    if algorithm == "crc32c" and not fast_crc32c_available():
        raise UsageError("checksum='crc32c' needs a native CRC32C: pip install 's3stream[crc32c]'"
                         " (or use checksum='crc32', which the standard library computes fast)")
    return algorithm


def header_name(algorithm: str) -> str:
    return "Content-MD5" if algorithm == "md5" else f"x-amz-checksum-{algorithm}"


def xml_name(algorithm: str) -> str:
    return {"crc32": "ChecksumCRC32", "crc32c": "ChecksumCRC32C",
            "sha256": "ChecksumSHA256"}[algorithm]


def supports_full_object(algorithm: str | None) -> bool:
    return algorithm in _POLY


def stored_by_s3(algorithm: str | None) -> TypeGuard[str]:
    """An x-amz-checksum S3 keeps, echoes and lists; MD5 is only checked on arrival."""
    return algorithm is not None and algorithm != "md5"


@dataclass(frozen=True, slots=True)
class PartDigest:
    """What hashing one part produced: the payload SHA-256 (if signing) and the checksum."""

    sha256_hex: str | None
    checksum: bytes | None  # raw digest; CRCs as 4 big-endian bytes

    @property
    def checksum_b64(self) -> str | None:
        return None if self.checksum is None else b64(self.checksum)


def digest_part(chunks: Sequence[Buffer], *, sha256: bool, algorithm: str | None) -> PartDigest:
    """Hash a part once per algorithm. Runs in a worker thread for large parts: every
    function used here releases the GIL on large buffers."""
    sha = hashlib.sha256() if sha256 else None
    crc = 0
    other: hashlib._Hash | None = None
    if algorithm == "sha256" and sha is None:
        other = hashlib.sha256()
    elif algorithm == "md5":
        other = hashlib.md5(usedforsecurity=False)
    for chunk in chunks:
        if sha is not None:
            sha.update(chunk)
        if algorithm == "crc32":
            crc = zlib.crc32(chunk, crc)
        elif algorithm == "crc32c":
            assert _crc32c_extend is not None
            crc = _crc32c_extend(crc, chunk)
        elif other is not None:
            other.update(chunk)
    checksum: bytes | None = None
    if algorithm in _POLY:
        checksum = crc.to_bytes(4, "big")
    elif algorithm == "sha256":
        checksum = (sha or other).digest()  # type: ignore[union-attr]
    elif other is not None:
        checksum = other.digest()
    return PartDigest(sha.hexdigest() if sha is not None else None, checksum)


# --------------------------------------------------------------------- CRC combination


def _gf2_times(matrix: Sequence[int], vector: int) -> int:
    total = 0
    i = 0
    while vector:
        if vector & 1:
            total ^= matrix[i]
        vector >>= 1
        i += 1
    return total


def _gf2_square(matrix: Sequence[int]) -> list[int]:
    return [_gf2_times(matrix, column) for column in matrix]


@lru_cache(maxsize=64)
def _shift_operator(length: int, poly: int, width: int = 32) -> tuple[int, ...]:
    """The GF(2) matrix that advances a ``width``-bit CRC over ``length`` zero bytes.

    Parts (and download ranges) are almost all the same size, so this is computed about
    once per transfer.
    """
    result = [1 << n for n in range(width)]  # identity
    power = [poly] + [1 << n for n in range(width - 1)]  # one zero bit
    for _ in range(3):
        power = _gf2_square(power)  # one zero byte
    while length:
        if length & 1:
            result = [_gf2_times(power, col) for col in result]
        length >>= 1
        if length:
            power = _gf2_square(power)
    return tuple(result)


#: CRC-64/NVME's polynomial, reflected: only downloads check it (S3 may store it; uploads
#: do not send it).
CRC64NVME_POLY = 0x9A6C9329AC4BC9B5


def crc_combine(crc1: int, crc2: int, length2: int, algorithm: str) -> int:
    """CRC of ``a + b`` from ``crc(a)``, ``crc(b)`` and ``len(b)`` (``algorithm``:
    "crc32", "crc32c" or "crc64nvme")."""
    if length2 == 0:
        return crc1
    if algorithm == "crc64nvme":
        shift = _shift_operator(length2, CRC64NVME_POLY, 64)
    else:
        shift = _shift_operator(length2, _POLY[algorithm])
    return _gf2_times(shift, crc1) ^ crc2


def full_object_crc(parts: Sequence[tuple[bytes, int]], algorithm: str) -> bytes:
    """Combine ``(raw part CRC, part size)`` pairs, in part order, into the object's CRC."""
    crc = 0
    for raw, size in parts:
        crc = crc_combine(crc, int.from_bytes(raw, "big"), size, algorithm)
    return crc.to_bytes(4, "big")


def composite_checksum(parts: Sequence[bytes], algorithm: str) -> str:
    """S3's COMPOSITE form: the checksum of the concatenated part checksums, ``-N``."""
    joined = b"".join(parts)
    digest = digest_part([joined], sha256=False, algorithm=algorithm).checksum
    assert digest is not None
    return f"{b64(digest)}-{len(parts)}"


def b64(raw: bytes) -> str:
    return base64.b64encode(raw).decode()


# ------------------------------------------------------------- stores that differ

#: How much of S3's checksum protocol a request uses, most first: FULL_OBJECT (the CRCs'
#: whole-object checksum on Complete), COMPOSITE (part checksums only), NONE.
FULL, COMPOSITE, NONE = 2, 1, 0

#: Answers that say "this checksum is wrong", which must never be retried without it.
_INTEGRITY_CODES = frozenset({"BadDigest", "InvalidDigest", "XAmzContentChecksumMismatch",
                              "XAmzContentSHA256Mismatch"})
#: Answers S3-compatible stores give to checksum headers or a checksum type they do not
#: implement (400 InvalidArgument "Unsupported header", 400 InvalidRequest, 501 ...).
_REJECTION_CODES = frozenset({"InvalidArgument", "InvalidRequest", "NotImplemented",
                              "UnsupportedArgument", "BadRequest", "InvalidHeader"})


def best_level(algorithm: str | None) -> int:
    if not stored_by_s3(algorithm):
        return NONE
    return FULL if supports_full_object(algorithm) else COMPOSITE


def rejects_checksums(status: int, code: str) -> bool:
    """Whether an error may be the store refusing checksum headers it does not support.

    Only a guess: the request is retried once with less checksum protocol, and if the
    store refuses that too, that second error is the one reported.
    """
    if code in _INTEGRITY_CODES:
        return False
    return status == 501 or (status == 400 and code in _REJECTION_CODES)


@dataclass(slots=True)
class StoreSupport:
    """What a client has learned about its store's checksum support, shared by all of
    its uploads so that a store that refuses checksums costs one extra request, once."""

    level: int = FULL

    def lower(self, level: int) -> bool:
        """Remember that the store takes no more than ``level``; True if that is news."""
        if level >= self.level:
            return False
        self.level = level
        return True
