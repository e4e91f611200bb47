"""The S3 XML bodies that a multipart upload reads and writes, pure.

xmltodict turns a lone repeated element into a dict rather than a one-item list, so
every element that may repeat is named in ``force_list``. Entity expansion stays off
(xmltodict's default) so a hostile peer cannot make us expand a billion laughs.
Namespaces are dropped deliberately: S3 and its clones disagree on whether they
send one, and no element name here is ambiguous without it.

Answers are read the way botocore reads them: by the child elements an operation
needs, whatever the root element is called (``InitiateMultipartUploadResult`` on AWS,
``InitiateMultipartUpload`` from rclone, ``ListPartsResponse`` from moto...), and
unknown elements are ignored. Only an ``<Error>`` root is special: it is an error,
whatever the HTTP status said.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any
from xml.parsers.expat import ExpatError

import xmltodict

_REPEATED = ("Part", "Upload", "CommonPrefixes")


class MalformedXML(ValueError):
    """The peer's body is not the XML document the operation expects."""


@dataclass(frozen=True, slots=True)
class ErrorBody:
    code: str
    message: str
    request_id: str | None = None
    #: The bucket's region, where S3 names it (PermanentRedirect, AuthorizationHeaderMalformed).
    region: str | None = None


@dataclass(frozen=True, slots=True)
class CompletedPart:
    number: int
    etag: str
    #: ``{"ChecksumCRC32C": "base64..."}``: echoed back in the Complete body.
    checksums: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class CompleteResult:
    #: None when the store answered without one (an empty body, or an empty ``<ETag/>``).
    etag: str | None
    location: str | None
    version_id: str | None = None
    checksums: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class UploadListing:
    key: str
    upload_id: str
    initiated: str


@dataclass(frozen=True, slots=True)
class UploadsPage:
    uploads: list[UploadListing]
    truncated: bool
    next_key_marker: str | None
    next_upload_id_marker: str | None


@dataclass(frozen=True, slots=True)
class PartListing:
    number: int
    etag: str
    size: int
    last_modified: str
    #: ``{"ChecksumCRC32C": "base64..."}``: the part's checksum as the store keeps it
    #: (AWS lists it when the upload was created with a checksum algorithm).
    checksums: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class PartsPage:
    parts: list[PartListing]
    truncated: bool
    next_part_number_marker: int | None
    #: The upload's ``ChecksumAlgorithm`` (``CRC32C``...) and ``ChecksumType``
    #: (``FULL_OBJECT`` / ``COMPOSITE``), where the store reports them.
    checksum_algorithm: str | None = None
    checksum_type: str | None = None


def _strip_namespace(_path: Any, key: str, value: Any) -> tuple[str, Any] | None:
    if key.startswith("@xmlns"):
        return None
    return key.rpartition(":")[2], value


def parse(body: bytes) -> tuple[str, dict[str, Any]]:
    """The root element's name and its content as a dict."""
    text = body.strip()
    if not text:
        raise MalformedXML("empty body where an XML document was expected")
    try:
        doc = xmltodict.parse(
            text, force_list=_REPEATED, postprocessor=_strip_namespace, disable_entities=True
        )
    except (ExpatError, ValueError) as exc:
        raise MalformedXML(f"unparseable XML: {exc}") from None
    if not isinstance(doc, dict) or len(doc) != 1:
        raise MalformedXML("XML document without a single root element")
    root, content = next(iter(doc.items()))
    if content is None:
        content = {}
    if not isinstance(content, dict):
        content = {"#text": content}
    return root, content


def _text(content: Mapping[str, Any], name: str) -> str | None:
    value = content.get(name)
    if value is None:
        return None
    if isinstance(value, dict):
        value = value.get("#text")
    return None if value is None else str(value)


def _required(content: Mapping[str, Any], name: str, root: str) -> str:
    value = _text(content, name)
    if not value:
        raise MalformedXML(f"<{root}> has no <{name}>")
    return value


def parse_error(body: bytes) -> ErrorBody | None:
    """An ``<Error>`` document, or None when the body is not one (or not XML at all)."""
    try:
        root, content = parse(body)
    except MalformedXML:
        return None
    if root != "Error":
        return None
    return _error_body(content)


def _error_body(content: Mapping[str, Any]) -> ErrorBody:
    return ErrorBody(
        code=_text(content, "Code") or "UnknownError",
        message=_text(content, "Message") or "",
        request_id=_text(content, "RequestId"),
        region=_text(content, "Region"),
    )


class ErrorDocument(MalformedXML):
    """A success reader met an ``<Error>`` document (a ``200 OK`` that is a failure)."""

    def __init__(self, error: ErrorBody) -> None:
        super().__init__(f"<Error> {error.code}")
        self.error = error


def parse_result(body: bytes) -> dict[str, Any]:
    """The children of a success document, whatever its root is called.

    An ``<Error>`` root raises ``ErrorDocument``: S3 can answer ``200 OK`` and fail.
    """
    root, content = parse(body)
    if root == "Error":
        raise ErrorDocument(_error_body(content))
    return content


_UPLOAD_ID_RE = re.compile(rb"<(?:\w+:)?UploadId>\s*([^<\s]+)\s*</(?:\w+:)?UploadId>")


def salvage_upload_id(body: bytes) -> str | None:
    """An ``UploadId`` in a Create answer that is not readable XML (truncated, garbled).

    The upload it names exists on the server, so it must be aborted, not forgotten.
    """
    match = _UPLOAD_ID_RE.search(body)
    return match.group(1).decode("utf-8", "replace") if match else None


def parse_initiate(body: bytes) -> str:
    return _required(parse_result(body), "UploadId", "CreateMultipartUpload answer")


_CHECKSUM_NAMES = ("ChecksumCRC32", "ChecksumCRC32C", "ChecksumCRC64NVME", "ChecksumSHA1",
                   "ChecksumSHA256")


def parse_complete(body: bytes) -> CompleteResult | ErrorBody:
    """The Complete answer: a result, or the ``<Error>`` S3 may send with ``200 OK``.

    Raises MalformedXML for an empty or unreadable body: the caller must then find out
    whether the upload committed (it may well have), never assume it failed.
    """
    try:
        content = parse_result(body)
    except ErrorDocument as exc:
        return exc.error
    checksums = {n: v for n in _CHECKSUM_NAMES if (v := _text(content, n))}
    return CompleteResult(
        etag=_text(content, "ETag") or None,
        location=_text(content, "Location"),
        checksums=checksums,
    )


def render_complete(parts: Sequence[CompletedPart]) -> bytes:
    """The CompleteMultipartUpload body. Written out directly rather than through
    xmltodict, which spends about 10 µs a part validating names: 100 ms on the event
    loop for 10,000 parts. Element names are S3's own (``Checksum*`` from this package);
    only the values are escaped."""
    out = ['<?xml version="1.0" encoding="utf-8"?>\n'
           '<CompleteMultipartUpload xmlns="http://s3.amazonaws.com/doc/2006-03-01/">']
    for part in parts:
        out.append(f"<Part><PartNumber>{int(part.number)}</PartNumber>"
                   f"<ETag>{_escape(part.etag)}</ETag>")
        for name, value in part.checksums.items():
            if name not in _CHECKSUM_NAMES and not _ELEMENT_NAME.fullmatch(name):
                raise ValueError(f"not an XML element name: {name!r}")
            out.append(f"<{name}>{_escape(value)}</{name}>")
        out.append("</Part>")
    out.append("</CompleteMultipartUpload>")
    return "".join(out).encode("utf-8")


#: The element names render_complete writes besides its own: S3's checksum members.
_ELEMENT_NAME = re.compile(r"[A-Za-z][A-Za-z0-9]*")


def _escape(text: str) -> str:
    # xml.sax.saxutils.escape, less its three replaces when there is nothing to replace
    # (ETags and checksums never have these): 10,000 parts in 6-7 ms instead of 9.
    if "&" in text or "<" in text or ">" in text:
        return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
    return text


def _is_true(value: str | None) -> bool:
    return (value or "").strip().lower() == "true"


def parse_list_uploads(body: bytes) -> UploadsPage:
    content = parse_result(body)
    uploads = [
        UploadListing(
            key=_required(u, "Key", "Upload"),
            upload_id=_required(u, "UploadId", "Upload"),
            initiated=_text(u, "Initiated") or "",
        )
        for u in content.get("Upload") or []
        if isinstance(u, dict)
    ]
    return UploadsPage(
        uploads=uploads,
        truncated=_is_true(_text(content, "IsTruncated")),
        next_key_marker=_text(content, "NextKeyMarker"),
        next_upload_id_marker=_text(content, "NextUploadIdMarker"),
    )


def parse_list_parts(body: bytes) -> PartsPage:
    content = parse_result(body)
    parts = [
        PartListing(
            number=int(_required(p, "PartNumber", "Part")),
            etag=_required(p, "ETag", "Part"),
            size=int(_text(p, "Size") or 0),
            last_modified=_text(p, "LastModified") or "",
            checksums={n: v for n in _CHECKSUM_NAMES if (v := _text(p, n))},
        )
        for p in content.get("Part") or []
        if isinstance(p, dict)
    ]
    marker = _text(content, "NextPartNumberMarker")
    return PartsPage(
        parts=parts,
        truncated=_is_true(_text(content, "IsTruncated")),
        next_part_number_marker=int(marker) if marker else None,
        checksum_algorithm=_text(content, "ChecksumAlgorithm") or None,
        checksum_type=_text(content, "ChecksumType") or None,
    )
