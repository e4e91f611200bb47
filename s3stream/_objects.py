"""Object and bucket operations without I/O: HeadObject (as ``ObjectInfo``), HeadBucket,
DeleteObject, DeleteObjects and ListObjectsV2, as request builders and response readers.

Rules this module keeps, beside ``_protocol``'s:

* Answers are read by their child elements, whatever the root is called and whether or
  not it has a namespace, as ``_xml`` does; an ``<Error>`` root is an error even with
  ``200 OK``.
* xmltodict gives a lone repeated element as a dict and several as a list: ``_many``
  reads both (and nothing) the same, so a page of one key is no special case.
* Whitespace is kept in element text: a key may start or end with spaces, and
  xmltodict's default stripping would silently rename it.
* Listings ask for ``encoding-type=url`` (S3 cannot put every character a key may hold
  into XML 1.0) and decode only when the answer says it is encoded (``<EncodingType>``):
  a server that ignores the parameter sends keys as they are, and decoding those would
  turn ``+`` into a space and ``%41`` into ``A``.
"""

from __future__ import annotations

import base64
import hashlib
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any
from urllib.parse import unquote_plus
from xml.parsers.expat import ExpatError

import xmltodict

from . import _xml
from ._info import ObjectInfo, object_info
from ._protocol import Request, Response, check, error_from, malformed, validate_key
from .exceptions import NotFoundError, UsageError

__all__ = [
    "MAX_DELETE_KEYS",
    "BucketInfo",
    "CommonPrefix",
    "DeleteError",
    "DeleteResult",
    "ListPage",
    "ObjectSummary",
]

#: DeleteObjects takes at most this many keys per request.
MAX_DELETE_KEYS = 1000
_NS = "http://s3.amazonaws.com/doc/2006-03-01/"


@dataclass(frozen=True, slots=True)
class BucketInfo:
    """What ``head_bucket()`` found: the bucket exists and is reachable with these
    credentials; ``region`` is where it lives (``x-amz-bucket-region``, else the region
    the request was signed for)."""

    name: str
    region: str | None


@dataclass(frozen=True, slots=True)
class DeleteError:
    """One key that DeleteObjects could not delete, with S3's code and message."""

    key: str
    code: str
    message: str
    version_id: str | None = None


@dataclass(frozen=True, slots=True)
class DeleteResult:
    """What ``delete_objects()`` did: the keys deleted and, per key, what failed.

    S3 reports a key that did not exist as deleted."""

    deleted: list[str] = field(default_factory=list)
    errors: list[DeleteError] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.errors


@dataclass(frozen=True, slots=True)
class ObjectSummary:
    """One object of a listing."""

    key: str
    size: int
    #: As S3 sends it, quotes included (None when the store sends none).
    etag: str | None
    last_modified: datetime | None
    storage_class: str | None = None


@dataclass(frozen=True, slots=True)
class CommonPrefix:
    """A "directory" of a listing with a delimiter: every key under ``prefix`` rolled up."""

    prefix: str


@dataclass(frozen=True, slots=True)
class ListPage:
    """One ListObjectsV2 answer: objects and common prefixes in S3's (key) order."""

    items: list[ObjectSummary | CommonPrefix]
    truncated: bool
    next_token: str | None


# ------------------------------------------------------------------------- parsing


def _strip_namespace(_path: Any, key: str, value: Any) -> tuple[str, Any] | None:
    if key.startswith("@xmlns"):
        return None
    return key.rpartition(":")[2], value


def _parse(body: bytes) -> dict[str, Any]:
    """The children of a success document (any root name); ``<Error>`` raises."""
    if not body.strip():
        raise _xml.MalformedXML("empty body where an XML document was expected")
    try:
        doc = xmltodict.parse(body, strip_whitespace=False, postprocessor=_strip_namespace,
                              disable_entities=True)
    except (ExpatError, ValueError) as exc:
        raise _xml.MalformedXML(f"unparseable XML: {exc}") from None
    if not isinstance(doc, dict) or len(doc) != 1:
        raise _xml.MalformedXML("XML document without a single root element")
    root, content = next(iter(doc.items()))
    if root == "Error":
        error = _xml.parse_error(body)
        assert error is not None  # the same document, read by the same rules
        raise _xml.ErrorDocument(error)
    return content if isinstance(content, dict) else {}


def _many(value: Any) -> list[dict[str, Any]]:
    """A repeated element's entries, whether xmltodict gave none, one (a dict) or a list."""
    if value is None:
        return []
    items = value if isinstance(value, list) else [value]
    return [item for item in items if isinstance(item, dict)]


def _text(content: Mapping[str, Any], name: str) -> str | None:
    value = content.get(name)
    if isinstance(value, list):  # a repeated scalar: the first is the one S3 means
        value = value[0] if value else None
    if isinstance(value, dict):
        value = value.get("#text")
    return None if value is None else str(value)


def _trimmed(content: Mapping[str, Any], name: str) -> str | None:
    """A value that is not a key: surrounding whitespace is formatting, not data."""
    value = _text(content, name)
    return value.strip() if value is not None else None


def _parse_time(text: str | None) -> datetime | None:
    if not text:
        return None
    try:
        value = datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
    except ValueError:
        return None
    return value if value.tzinfo else value.replace(tzinfo=UTC)


def _reader(parse: Callable[[Request, bytes], Any]) -> Callable[[Request, Response], Any]:
    def read(request: Request, response: Response) -> Any:
        check(request, response)
        try:
            return parse(request, response.body)
        except _xml.ErrorDocument as exc:
            raise error_from(request, response, exc.error) from None
        except (_xml.MalformedXML, ValueError) as exc:
            raise malformed(request, response, exc) from None

    return read


# ------------------------------------------------------------------- HEAD requests


def head_object(bucket: str, key: str, *, version_id: str | None = None,
                headers: Sequence[tuple[str, str]] = ()) -> Request:
    """HeadObject asking for the stored checksums too (``x-amz-checksum-mode``)."""
    query = (("versionId", version_id),) if version_id else ()
    return Request("HeadObject", "HEAD", bucket, key, query,
                   (("x-amz-checksum-mode", "ENABLED"), *headers))


def read_object_info(request: Request, response: Response) -> ObjectInfo:
    check(request, response)
    assert request.bucket is not None and request.key is not None
    return object_info(request.bucket, request.key, response.headers)


def head_bucket(bucket: str) -> Request:
    return Request("HeadBucket", "HEAD", bucket, None)


def bucket_reader(signed_region: str) -> Callable[[Request, Response], BucketInfo]:
    """A HeadBucket reader; ``signed_region`` is the region when the store names none."""

    def read(request: Request, response: Response) -> BucketInfo:
        if response.status == 404:
            # A HEAD answer has no body, so no code; for HeadBucket a 404 can only mean
            # the bucket, so the code says so (HeadObject's 404 stays "NotFound").
            error = error_from(request, response)
            raise NotFoundError(
                status=404, code="NoSuchBucket", message=error.message or
                "The specified bucket does not exist", request_id=error.request_id,
                operation=request.operation, bucket=request.bucket, key=None)
        check(request, response)
        assert request.bucket is not None
        return BucketInfo(request.bucket,
                          response.headers.get("x-amz-bucket-region") or signed_region)

    return read


# ------------------------------------------------------------------------ deleting


def delete_object(bucket: str, key: str, *, version_id: str | None = None) -> Request:
    query = (("versionId", version_id),) if version_id else ()
    return Request("DeleteObject", "DELETE", bucket, key, query)


def read_delete(request: Request, response: Response) -> None:
    # S3 answers 204 whether or not the key existed; a missing bucket is a 404.
    check(request, response)


def check_delete_keys(keys: object) -> list[str]:
    """The keys of a DeleteObjects call, checked before any I/O."""
    if isinstance(keys, str | bytes) or not hasattr(keys, "__iter__"):
        raise UsageError(f"keys must be an iterable of str keys, not {type(keys).__name__}")
    checked = [validate_key(key) for key in keys]
    for key in checked:
        # XML 1.0 cannot carry these characters at all, and a CR would come back as LF.
        if any(ord(c) < 0x20 and c not in "\t\n" for c in key) or "\ufffe" in key \
                or "\uffff" in key:
            raise UsageError(f"key {key!r} has characters a DeleteObjects body cannot carry; "
                             "delete it with delete_object()")
    return checked


def render_delete(keys: Sequence[str]) -> bytes:
    """The DeleteObjects body (verbose mode: each deleted key is confirmed)."""
    doc = {"Delete": {"@xmlns": _NS, "Quiet": "false",
                      "Object": [{"Key": key} for key in keys]}}
    rendered: str = xmltodict.unparse(doc, full_document=True)
    return rendered.encode("utf-8")


def delete_objects(bucket: str, keys: Sequence[str]) -> Request:
    """One DeleteObjects request (at most ``MAX_DELETE_KEYS`` keys).

    S3 refuses DeleteObjects without a body checksum (Content-MD5 or an
    ``x-amz-checksum-*`` header); Content-MD5 is the one every S3 clone checks."""
    if not 1 <= len(keys) <= MAX_DELETE_KEYS:
        raise UsageError(f"DeleteObjects takes 1 to {MAX_DELETE_KEYS} keys, not {len(keys)}")
    body = render_delete(keys)
    md5 = base64.b64encode(hashlib.md5(body).digest()).decode("ascii")
    headers = (("Content-Type", "application/xml"), ("Content-MD5", md5))
    return Request("DeleteObjects", "POST", bucket, None, (("delete", ""),), headers,
                   (body,), len(body))


def _parse_delete(_request: Request, body: bytes) -> DeleteResult:
    content = _parse(body)
    deleted = [key for item in _many(content.get("Deleted"))
               if (key := _text(item, "Key")) is not None]
    errors = [
        DeleteError(key=_text(item, "Key") or "", code=_trimmed(item, "Code") or "UnknownError",
                    message=_trimmed(item, "Message") or "",
                    version_id=_trimmed(item, "VersionId") or None)
        for item in _many(content.get("Error"))
    ]
    return DeleteResult(deleted, errors)


read_delete_objects: Callable[[Request, Response], DeleteResult] = _reader(_parse_delete)


# ------------------------------------------------------------------------- listing


def list_objects(bucket: str, *, prefix: str = "", delimiter: str | None = None,
                 start_after: str | None = None, token: str | None = None,
                 max_keys: int | None = None) -> Request:
    """One ListObjectsV2 page: the first (``start_after``) or the next (``token``)."""
    query: list[tuple[str, str]] = [("list-type", "2"), ("encoding-type", "url")]
    if prefix:
        query.append(("prefix", prefix))
    if delimiter:
        query.append(("delimiter", delimiter))
    if token:
        query.append(("continuation-token", token))
    elif start_after:
        query.append(("start-after", start_after))
    if max_keys is not None:
        query.append(("max-keys", str(max_keys)))
    return Request("ListObjectsV2", "GET", bucket, None, tuple(query))


def _parse_list(_request: Request, body: bytes) -> ListPage:
    content = _parse(body)
    encoded = (_trimmed(content, "EncodingType") or "").lower() == "url"

    def name(value: str) -> str:
        return unquote_plus(value) if encoded else value

    objects: list[ObjectSummary | CommonPrefix] = []
    for item in _many(content.get("Contents")):
        key = _text(item, "Key")
        if key is None:
            raise _xml.MalformedXML("<Contents> has no <Key>")
        size = _trimmed(item, "Size")
        objects.append(ObjectSummary(
            key=name(key),
            size=int(size) if size else 0,
            etag=_trimmed(item, "ETag") or None,
            last_modified=_parse_time(_text(item, "LastModified")),
            storage_class=_trimmed(item, "StorageClass") or None,
        ))
    prefixes: list[ObjectSummary | CommonPrefix] = [
        CommonPrefix(name(prefix)) for item in _many(content.get("CommonPrefixes"))
        if (prefix := _text(item, "Prefix"))
    ]
    # S3 sends objects and prefixes apart; callers walk them as one sorted listing.
    items = sorted([*objects, *prefixes], key=lambda i: item_name(i).encode("utf-8"))
    truncated = (_trimmed(content, "IsTruncated") or "").lower() == "true"
    return ListPage(items, truncated, _trimmed(content, "NextContinuationToken") or None)


read_list_objects: Callable[[Request, Response], ListPage] = _reader(_parse_list)


def item_name(item: ObjectSummary | CommonPrefix) -> str:
    return item.key if isinstance(item, ObjectSummary) else item.prefix
