"""The S3 upload protocol without I/O: addresses, argument checks, request builders,
response readers, and the multipart upload's state machine.

Rules this module keeps:

* A ``Request`` is complete and final: the transport signs and sends exactly it.
* The URL path is built once, encoded once (``_sigv4.encode_path``) and never
  normalised; the transport must send it verbatim.
* Readers turn any answer that is not a success into ``S3ResponseError``, including
  ``200 OK`` whose body is an ``<Error>`` document (CompleteMultipartUpload does that).
* ``MultipartState`` is the single source of truth for what an upload has done; once
  it has failed it stays failed (a sticky state, so no code path can complete an
  upload that already lost a part).
"""

from __future__ import annotations

import enum
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import TypeVar
from urllib.parse import urlsplit

from . import _xml
from ._parts import Buffer
from ._retry import parse_retry_after
from ._sigv4 import encode_path, encode_query
from .exceptions import NotFoundError, PreconditionFailedError, S3ResponseError, UsageError

Headers = tuple[tuple[str, str], ...]
T = TypeVar("T")

# --------------------------------------------------------------------------- addresses


@dataclass(frozen=True, slots=True)
class Endpoint:
    scheme: str
    host: str
    port: int | None
    base_path: str
    virtual_hosted: bool
    #: For AWS's own endpoints, the host's service label (``s3``, ``s3-fips``,
    #: ``s3.dualstack``, ``s3-fips.dualstack``): the host follows a bucket's region.
    aws_label: str | None = None

    @classmethod
    def parse(cls, url: str | None, *, region: str, addressing: str, dualstack: bool = False,
              fips: bool = False) -> Endpoint:
        """``url`` None means AWS's regional endpoint, with ``dualstack`` (IPv6) and
        ``fips`` as ``AWS_USE_DUALSTACK_ENDPOINT`` / ``AWS_USE_FIPS_ENDPOINT`` ask."""
        if addressing not in ("auto", "path", "virtual"):
            raise UsageError("addressing must be 'auto', 'path' or 'virtual'")
        if url is None:
            label = ("s3-fips" if fips else "s3") + (".dualstack" if dualstack else "")
            return cls("https", f"{label}.{region}.amazonaws.com", None, "",
                       addressing != "path", label)
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise UsageError(f"endpoint must be an http:// or https:// URL, not {url!r}")
        if parts.query or parts.fragment:
            raise UsageError("endpoint must not have a query or fragment")
        try:
            port = parts.port
        except ValueError:
            raise UsageError(f"endpoint has an invalid port: {url!r}") from None
        host = parts.hostname
        if ":" in host:
            host = f"[{host}]"
        return cls(parts.scheme, host, port, parts.path.rstrip("/"), addressing == "virtual")

    @property
    def is_https(self) -> bool:
        return self.scheme == "https"

    def for_region(self, region: str) -> Endpoint:
        """The endpoint that serves a bucket in ``region``: AWS's own endpoints change
        host; a custom endpoint stays as it is (only the signature's region changes)."""
        if self.aws_label is None:
            return self
        return replace(self, host=f"{self.aws_label}.{region}.amazonaws.com")

    def netloc(self, bucket: str | None) -> str:
        default = 443 if self.scheme == "https" else 80
        port = "" if self.port in (None, default) else f":{self.port}"
        if bucket and self.virtual_hosted and "." not in bucket:
            return f"{bucket}.{self.host}{port}"
        return f"{self.host}{port}"

    def raw_path(self, bucket: str | None, key: str | None) -> str:
        """The decoded path: what SigV4 encodes once and what goes on the wire, encoded."""
        path = self.base_path
        if bucket and not (self.virtual_hosted and "." not in bucket):
            path += "/" + bucket
        if key is not None:
            path += "/" + key
        return path or "/"

    def url(self, bucket: str | None, key: str | None, query: Sequence[tuple[str, str]]) -> str:
        url = f"{self.scheme}://{self.netloc(bucket)}{encode_path(self.raw_path(bucket, key))}"
        if query:
            url += "?" + encode_query(query)
        return url


# ------------------------------------------------------------------------ validation

_BUCKET_RE = re.compile(r"^[a-z0-9][a-z0-9.\-]{1,61}[a-z0-9]$")
_IP_RE = re.compile(r"^\d+\.\d+\.\d+\.\d+$")
_TOKEN_RE = re.compile(r"^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$")


def validate_bucket(bucket: object) -> str:
    if not isinstance(bucket, str):
        raise UsageError(f"bucket must be a str, not {type(bucket).__name__}")
    if not _BUCKET_RE.match(bucket) or ".." in bucket or _IP_RE.match(bucket):
        raise UsageError(
            f"invalid bucket name {bucket!r}: 3-63 characters of lowercase letters, digits, "
            "'.' and '-', starting and ending with a letter or digit"
        )
    return bucket


def validate_key(key: object) -> str:
    if not isinstance(key, str):
        raise UsageError(f"key must be a str, not {type(key).__name__}")
    if not key:
        raise UsageError("key must not be empty")
    try:
        size = len(key.encode("utf-8"))
    except UnicodeEncodeError:
        raise UsageError("key is not valid Unicode (it has lone surrogates)") from None
    if size > 1024:
        raise UsageError(f"key is {size} bytes in UTF-8; S3 allows at most 1024")
    return key


def _check_value(name: str, value: object) -> str:
    if not isinstance(value, str):
        raise UsageError(f"header {name!r} must have a str value, not {type(value).__name__}")
    if any(c in value for c in "\r\n\0"):
        raise UsageError(f"header {name!r} has a CR, LF or NUL in its value")
    return value


def build_object_headers(
    *,
    content_type: str | None,
    metadata: Mapping[str, str] | None,
    extra_headers: Mapping[str, str] | None,
) -> Headers:
    """Headers that describe the object (sent on PutObject / CreateMultipartUpload)."""
    out: list[tuple[str, str]] = []
    if content_type is not None:
        out.append(("Content-Type", _check_value("Content-Type", content_type)))
    for name, value in (metadata or {}).items():
        if not isinstance(name, str) or not _TOKEN_RE.match(name):
            raise UsageError(f"metadata key {name!r} is not a valid HTTP header token")
        checked = _check_value(f"x-amz-meta-{name}", value)
        if not checked.isascii():
            raise UsageError(f"metadata value for {name!r} must be ASCII (encode it yourself)")
        out.append((f"x-amz-meta-{name.lower()}", checked))
    reserved = {"authorization", "host", "content-length", "x-amz-date",
                "x-amz-content-sha256", "x-amz-security-token", "transfer-encoding"}
    for name, value in (extra_headers or {}).items():
        if not isinstance(name, str) or not _TOKEN_RE.match(name):
            raise UsageError(f"header name {name!r} is not a valid HTTP header token")
        if name.lower() in reserved:
            raise UsageError(f"header {name!r} is set by s3stream and cannot be overridden")
        out.append((name, _check_value(name, value)))
    seen: set[str] = set()
    for name, _ in out:
        if name.lower() in seen:
            raise UsageError(f"header {name!r} is given twice")
        seen.add(name.lower())
    return tuple(out)


#: SSE-C: S3 needs the customer key on every request that touches the object's data
#: (each UploadPart, CompleteMultipartUpload, HeadObject), not only on Create.
_SSE_C = frozenset({"x-amz-server-side-encryption-customer-algorithm",
                    "x-amz-server-side-encryption-customer-key",
                    "x-amz-server-side-encryption-customer-key-md5"})
#: Headers that belong on every request of an upload, Abort included.
_EVERY_REQUEST = frozenset({"x-amz-request-payer", "x-amz-expected-bucket-owner"})


def carried_headers(object_headers: Headers) -> tuple[Headers, Headers]:
    """Of an upload's headers, those that go on its parts (and Complete and HeadObject)
    besides Create, and those that go on every request (Abort too), as S3 requires."""
    parts = tuple((n, v) for n, v in object_headers
                  if n.lower() in _SSE_C or n.lower() in _EVERY_REQUEST)
    every = tuple((n, v) for n, v in object_headers if n.lower() in _EVERY_REQUEST)
    return parts, every


# ----------------------------------------------------------------- requests/responses


@dataclass(frozen=True, slots=True)
class Request:
    operation: str
    method: str
    bucket: str | None
    key: str | None
    query: tuple[tuple[str, str], ...] = ()
    headers: Headers = ()
    body: Sequence[Buffer] = ()
    size: int = 0


@dataclass(frozen=True, slots=True)
class Response:
    status: int
    #: Lower-cased names.
    headers: Mapping[str, str]
    body: bytes


def put_object(bucket: str, key: str, body: Sequence[Buffer], size: int,
               headers: Headers) -> Request:
    return Request("PutObject", "PUT", bucket, key, (), headers, body, size)


def create_multipart_upload(bucket: str, key: str, headers: Headers) -> Request:
    return Request("CreateMultipartUpload", "POST", bucket, key, (("uploads", ""),), headers)


def upload_part(bucket: str, key: str, upload_id: str, number: int, body: Sequence[Buffer],
                size: int, headers: Headers = ()) -> Request:
    query = (("partNumber", str(number)), ("uploadId", upload_id))
    return Request("UploadPart", "PUT", bucket, key, query, headers, body, size)


def complete_multipart_upload(bucket: str, key: str, upload_id: str,
                              parts: Sequence[_xml.CompletedPart],
                              headers: Headers = ()) -> Request:
    body = _xml.render_complete(parts)
    return Request(
        "CompleteMultipartUpload", "POST", bucket, key, (("uploadId", upload_id),),
        (("Content-Type", "application/xml"), *headers), (body,), len(body),
    )


def abort_multipart_upload(bucket: str, key: str, upload_id: str,
                           headers: Headers = ()) -> Request:
    return Request("AbortMultipartUpload", "DELETE", bucket, key, (("uploadId", upload_id),),
                   headers)


def head_object(bucket: str, key: str, *, checksum_mode: bool = False,
                headers: Headers = ()) -> Request:
    mode = (("x-amz-checksum-mode", "ENABLED"),) if checksum_mode else ()
    return Request("HeadObject", "HEAD", bucket, key, (), (*mode, *headers))


def list_multipart_uploads(bucket: str, prefix: str, key_marker: str | None,
                           upload_id_marker: str | None) -> Request:
    query: list[tuple[str, str]] = [("uploads", "")]
    if prefix:
        query.append(("prefix", prefix))
    if key_marker:
        query.append(("key-marker", key_marker))
    if upload_id_marker:
        query.append(("upload-id-marker", upload_id_marker))
    return Request("ListMultipartUploads", "GET", bucket, None, tuple(query))


def list_parts(bucket: str, key: str, upload_id: str, marker: int | None) -> Request:
    query: list[tuple[str, str]] = [("uploadId", upload_id)]
    if marker:
        query.append(("part-number-marker", str(marker)))
    return Request("ListParts", "GET", bucket, key, tuple(query))


#: Statuses whose errors have a class of their own (each an ``S3ResponseError``).
_ERROR_CLASSES: dict[int, type[S3ResponseError]] = {
    404: NotFoundError, 412: PreconditionFailedError}


def error_from(request: Request, response: Response,
               body: _xml.ErrorBody | None = None) -> S3ResponseError:
    if body is None:
        body = _xml.parse_error(response.body)
    code = body.code if body else _status_code(response.status)
    message = body.message if body else ""
    request_id = (body.request_id if body else None) or response.headers.get("x-amz-request-id")
    kind = _ERROR_CLASSES.get(response.status, S3ResponseError)
    return kind(
        status=response.status,
        code=code,
        message=message,
        request_id=request_id,
        operation=request.operation,
        bucket=request.bucket,
        key=request.key,
        retry_after=parse_retry_after(response.headers.get("retry-after")),
        server_date=response.headers.get("date"),
        bucket_region=response.headers.get("x-amz-bucket-region") or (
            body.region if body else None),
    )


#: Answers that say the bucket lives in another region (with that region named).
_WRONG_REGION_CODES = frozenset({"PermanentRedirect", "AuthorizationHeaderMalformed",
                                 "IllegalLocationConstraintException", "Redirect",
                                 "TemporaryRedirect"})


def redirect_region(error: S3ResponseError, used: str) -> str | None:
    """The region to send ``error``'s request to again, if S3 said the bucket is in
    another one (301 PermanentRedirect, 400 AuthorizationHeaderMalformed naming it, or
    ``x-amz-bucket-region`` on a 301/400/403); None otherwise."""
    region = error.bucket_region
    if not region or region == used or any(c in region for c in "/\r\n "):
        return None
    if error.status in (301, 307) or error.code in _WRONG_REGION_CODES or \
            error.status in (400, 403):
        return region
    return None


def _status_code(status: int) -> str:
    return {
        301: "PermanentRedirect", 400: "BadRequest", 403: "AccessDenied", 404: "NotFound",
        409: "Conflict", 412: "PreconditionFailed", 500: "InternalError",
        503: "ServiceUnavailable",
    }.get(status, f"HTTP{status}")


def malformed(request: Request, response: Response, exc: Exception) -> S3ResponseError:
    return S3ResponseError(
        status=response.status,
        code="MalformedResponse",
        message=f"the server's answer could not be read: {exc}",
        request_id=response.headers.get("x-amz-request-id"),
        operation=request.operation,
        bucket=request.bucket,
        key=request.key,
    )


def check(request: Request, response: Response) -> None:
    """Raise unless the status is a success."""
    if not 200 <= response.status < 300:
        raise error_from(request, response)


def read_etag(request: Request, response: Response) -> str:
    check(request, response)
    etag = response.headers.get("etag")
    if not etag:
        raise malformed(request, response, ValueError("no ETag header"))
    return etag


def _xml_reader(parse: Callable[[bytes], T]) -> Callable[[Request, Response], T]:
    """A reader for a success answer whose body is the XML document ``parse`` reads."""

    def read(request: Request, response: Response) -> T:
        check(request, response)
        try:
            return parse(response.body)
        except _xml.ErrorDocument as exc:
            # 200 OK with <Error>: S3 may fail after it has started answering.
            raise error_from(request, response, exc.error) from None
        except _xml.MalformedXML as exc:
            raise malformed(request, response, exc) from None

    return read


class UnreadableCreate(S3ResponseError):
    """CreateMultipartUpload succeeded, but its answer is unreadable; ``upload_id`` is
    what could be salvaged from it (the upload exists and must be aborted)."""

    upload_id: str | None = None


def read_create(request: Request, response: Response) -> str:
    check(request, response)
    try:
        return _xml.parse_initiate(response.body)
    except _xml.ErrorDocument as exc:
        raise error_from(request, response, exc.error) from None
    except _xml.MalformedXML as exc:
        error = malformed(request, response, exc)
        unreadable = UnreadableCreate(
            status=error.status, code=error.code, message=error.message,
            request_id=error.request_id, operation=error.operation, bucket=error.bucket,
            key=error.key)
        unreadable.upload_id = _xml.salvage_upload_id(response.body)
        raise unreadable from None


_read_list_uploads = _xml_reader(_xml.parse_list_uploads)


def read_list_uploads(request: Request, response: Response) -> _xml.UploadsPage:
    if response.status == 404:
        # rclone answers NoSuchUpload in a bucket where no upload was ever started: no
        # upload to list is what that means (AWS never says it about a listing).
        err = _xml.parse_error(response.body)
        if err is not None and err.code == "NoSuchUpload":
            return _xml.UploadsPage([], False, None, None)
    return _read_list_uploads(request, response)
read_list_parts = _xml_reader(_xml.parse_list_parts)


def read_complete(request: Request, response: Response) -> _xml.CompleteResult:
    """The Complete answer. A 2xx whose body cannot be read is *not* an error: the
    upload may well have committed, so the result comes back without an ETag and the
    engine must confirm (HeadObject) before it reports anything."""
    check(request, response)
    try:
        result = _xml.parse_complete(response.body)
    except _xml.MalformedXML:
        result = _xml.CompleteResult(None, None)
    if isinstance(result, _xml.ErrorBody):
        # 200 OK with <Error>: S3 may fail after it has started answering.
        raise error_from(request, response, result)
    version = response.headers.get("x-amz-version-id")
    return _xml.CompleteResult(result.etag, result.location, version, result.checksums)


def read_abort(request: Request, response: Response) -> bool:
    """True if the upload was there and is now aborted; False for ``NoSuchUpload``.

    NoSuchUpload leaves nothing open, but it does not say why: aborted by someone else,
    or *completed*. Only the caller knows whether a Complete may have been sent.
    """
    if response.status == 404:
        err = _xml.parse_error(response.body)
        if err is None or err.code == "NoSuchUpload":
            return False
    check(request, response)
    return True


def read_head(request: Request, response: Response) -> Response | None:
    """A HeadObject answer, or None when there is no such object (404)."""
    if response.status == 404:
        return None
    check(request, response)
    return response


# ----------------------------------------------------------------- the state machine


class State(enum.Enum):
    NEW = "new"
    OPEN = "open"
    COMPLETING = "completing"
    COMPLETED = "completed"
    FAILED = "failed"
    ABORTED = "aborted"


class ProtocolViolation(RuntimeError):
    """The upload state machine was driven in an order the protocol forbids."""


@dataclass(slots=True)
class MultipartState:
    bucket: str
    key: str
    state: State = State.NEW
    upload_id: str | None = None
    started: set[int] = field(default_factory=set)
    done: dict[int, _xml.CompletedPart] = field(default_factory=dict)
    sizes: dict[int, int] = field(default_factory=dict)

    def _expect(self, *states: State) -> None:
        if self.state not in states:
            raise ProtocolViolation(
                f"upload of s3://{self.bucket}/{self.key} is {self.state.value}; "
                f"expected {' or '.join(s.value for s in states)}"
            )

    def opened(self, upload_id: str) -> None:
        # FAILED too: a Create that was in flight when the upload failed still made an
        # upload, and its id is what the abort needs.
        self._expect(State.NEW, State.FAILED)
        self.upload_id = upload_id
        if self.state is State.NEW:
            self.state = State.OPEN

    def part_started(self, number: int, size: int) -> None:
        self._expect(State.OPEN)
        if number in self.started:
            raise ProtocolViolation(f"part {number} started twice")
        self.started.add(number)
        self.sizes[number] = size

    def part_done(self, part: _xml.CompletedPart) -> None:
        self._expect(State.OPEN)
        if part.number not in self.started or part.number in self.done:
            raise ProtocolViolation(f"part {part.number} finished without being in flight")
        self.done[part.number] = part

    @property
    def in_flight(self) -> int:
        return len(self.started) - len(self.done)

    @property
    def size(self) -> int:
        return sum(self.sizes.values())

    def begin_complete(self) -> list[_xml.CompletedPart]:
        """The part list for CompleteMultipartUpload: every part 1..n, all finished."""
        self._expect(State.OPEN)
        count = len(self.started)
        if count == 0:
            raise ProtocolViolation("a multipart upload with no parts cannot complete")
        if self.in_flight:
            raise ProtocolViolation(f"{self.in_flight} parts are still in flight")
        if sorted(self.done) != list(range(1, count + 1)):
            raise ProtocolViolation("part numbers are not contiguous from 1")
        self.state = State.COMPLETING
        return [self.done[n] for n in range(1, count + 1)]

    def completed(self) -> None:
        self._expect(State.COMPLETING)
        self.state = State.COMPLETED

    def completed_after_all(self) -> None:
        """A Complete that seemed to fail had committed (its abort found no upload and
        HeadObject shows the object): the upload goes back to completing, to finish."""
        self._expect(State.FAILED, State.ABORTED)
        self.state = State.COMPLETING

    def failed(self) -> None:
        if self.state is not State.COMPLETED:
            self.state = State.FAILED

    def aborted(self) -> None:
        self._expect(State.FAILED)
        self.state = State.ABORTED

    @property
    def needs_abort(self) -> bool:
        return self.upload_id is not None and self.state is State.FAILED
