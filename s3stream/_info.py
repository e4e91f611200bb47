"""What S3 says about one stored object, read from the headers of a HeadObject or GetObject
answer. Pure: no I/O, no aiohttp.

Read generously: a header a store does not send is None (or empty), never an error; only
the size is required, since nothing can be streamed or checked without it.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from email.utils import parsedate_to_datetime

__all__ = ["ObjectInfo", "object_info", "parse_http_date"]

#: x-amz-checksum-<name> headers, as S3 names the algorithms.
_CHECKSUM_HEADERS = {
    "x-amz-checksum-crc32": "CRC32",
    "x-amz-checksum-crc32c": "CRC32C",
    "x-amz-checksum-crc64nvme": "CRC64NVME",
    "x-amz-checksum-sha1": "SHA1",
    "x-amz-checksum-sha256": "SHA256",
}

_META = "x-amz-meta-"


@dataclass(frozen=True, slots=True)
class ObjectInfo:
    """One object as S3 describes it (``head_object()``, and a download's ``info``)."""

    bucket: str
    key: str
    #: The whole object's length in bytes (not a range's).
    size: int
    #: As S3 sends it, quotes included; what ``If-Match`` takes.
    etag: str | None
    content_type: str | None = None
    last_modified: datetime | None = None
    version_id: str | None = None
    #: User metadata (``x-amz-meta-*``), names lower-cased without the prefix.
    metadata: Mapping[str, str] = field(default_factory=dict)
    #: Stored checksums by S3's algorithm name ("CRC32C": base64 value); empty when the
    #: store keeps none or was not asked (``x-amz-checksum-mode``).
    checksums: Mapping[str, str] = field(default_factory=dict)
    #: "FULL_OBJECT" or "COMPOSITE" where the store says; None otherwise.
    checksum_type: str | None = None
    #: Parts of a multipart object, from ``x-amz-mp-parts-count`` or the ETag's "-N".
    parts: int | None = None
    storage_class: str | None = None
    cache_control: str | None = None
    content_encoding: str | None = None
    content_disposition: str | None = None
    content_language: str | None = None
    expires: str | None = None
    #: Every header of the answer, lower-cased names.
    headers: Mapping[str, str] = field(default_factory=dict, repr=False)


def parse_http_date(text: str | None) -> datetime | None:
    """An HTTP date (``Last-Modified``), or None when absent or unreadable."""
    if not text:
        return None
    try:
        return parsedate_to_datetime(text)
    except (TypeError, ValueError, IndexError):
        return None


def _parts(headers: Mapping[str, str], etag: str | None) -> int | None:
    count = headers.get("x-amz-mp-parts-count")
    if count and count.isdigit():
        return int(count)
    if etag:
        _, dash, tail = etag.strip('"').rpartition("-")
        if dash and tail.isdigit():
            return int(tail)
    return None


def object_info(bucket: str, key: str, headers: Mapping[str, str],
                size: int | None = None) -> ObjectInfo:
    """The object an answer's lower-cased ``headers`` describe. ``size`` is the whole
    object's length when the answer is a range (read from its ``Content-Range``);
    otherwise ``Content-Length`` is."""
    if size is None:
        size = int(headers.get("content-length", "0") or 0)
    etag = headers.get("etag") or None
    checksum_type = headers.get("x-amz-checksum-type") or None
    return ObjectInfo(
        bucket=bucket,
        key=key,
        size=size,
        etag=etag,
        content_type=headers.get("content-type") or None,
        last_modified=parse_http_date(headers.get("last-modified")),
        version_id=headers.get("x-amz-version-id") or None,
        metadata={name[len(_META):]: value for name, value in headers.items()
                  if name.startswith(_META)},
        checksums={algorithm: headers[name] for name, algorithm in _CHECKSUM_HEADERS.items()
                   if headers.get(name)},
        checksum_type=checksum_type,
        parts=_parts(headers, etag),
        storage_class=headers.get("x-amz-storage-class") or None,
        cache_control=headers.get("cache-control") or None,
        content_encoding=headers.get("content-encoding") or None,
        content_disposition=headers.get("content-disposition") or None,
        content_language=headers.get("content-language") or None,
        expires=headers.get("expires") or None,
        headers=dict(headers),
    )
