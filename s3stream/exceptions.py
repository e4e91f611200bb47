"""The one exception tree of s3stream.

::

    S3StreamError                 every error s3stream raises on purpose
    ├── UsageError                (also ValueError) bad arguments; raised before any I/O
    │   └── NoCredentialsError    no credentials anywhere s3stream looked; ``.searched`` says where
    ├── CredentialsError          a credentials source is configured but failed; ``.provider``
    │                             names it
    ├── TransportError            no usable HTTP response; the aiohttp/OS error is __cause__
    │   └── StallError            the connection made no progress for ``stall_timeout`` seconds
    ├── S3ResponseError           S3 answered with an error (status, code, message, request id)
    │   ├── NotFoundError         404: no such key, bucket, upload or version (``.code`` says
    │   │                         which)
    │   └── PreconditionFailedError  412: an ``If-Match``/``If-None-Match`` condition failed
    │       └── ObjectChangedError  the object was replaced while it was being read
    ├── IntegrityError            S3 echoed a checksum that differs from the one we computed
    ├── SourceSizeError           the source produced more or fewer bytes than ``size=``, or
    │                             more than ``max_size=``; ``.limit`` and ``.produced``
    ├── DeadlineError             (also TimeoutError) ``timeout=`` or ``source_timeout=`` ran out
    └── UploadError               a multipart upload failed; ``.upload_id`` and ``.aborted`` say
                                  what became of it; ``__cause__`` is the underlying error

A source that yields something other than bytes-like objects raises ``TypeError``.
An exception raised by the caller's own source (or inside ``open_upload()``) is
re-raised unchanged after the upload is aborted.
"""

from __future__ import annotations

__all__ = [
    "CredentialsError",
    "DeadlineError",
    "IntegrityError",
    "NoCredentialsError",
    "NotFoundError",
    "ObjectChangedError",
    "PreconditionFailedError",
    "S3ResponseError",
    "S3StreamError",
    "SourceSizeError",
    "StallError",
    "TransportError",
    "UploadError",
    "UsageError",
]


class S3StreamError(Exception):
    """Base class of every error s3stream raises on purpose."""


class UsageError(S3StreamError, ValueError):
    """The caller passed something s3stream cannot use; nothing was sent."""


class NoCredentialsError(UsageError):
    """No credentials were given and none were found; nothing was sent.

    ``searched`` lists, in order, every place that was looked at (argument, environment
    variables, profile and file), each with why it gave nothing. Anonymous (unsigned)
    requests are never a fallback: they take ``Credentials.anonymous()``.
    """

    def __init__(self, message: str, *, searched: tuple[str, ...] = ()) -> None:
        super().__init__(message)
        self.searched = searched


class CredentialsError(S3StreamError):
    """A credentials source is configured here but failed (a metadata service that answers
    with an error, unreadable credentials, a refused token). ``provider`` names the source.

    The message says what went wrong and where, never a secret or a token.
    """

    def __init__(self, message: str, *, provider: str) -> None:
        super().__init__(f"{provider}: {message}")
        self.provider = provider


class TransportError(S3StreamError):
    """The request got no usable HTTP response (refused, reset, timed out, TLS, too large)."""

    def __init__(self, message: str, *, operation: str = "", retryable: bool = True) -> None:
        super().__init__(message)
        self.operation = operation
        #: False when the request may already have reached S3 and resending could not help.
        self.retryable = retryable


class StallError(TransportError):
    """A request made no progress (neither sending nor receiving) for ``stall_timeout`` seconds."""


class S3ResponseError(S3StreamError):
    """S3 answered with an error: an HTTP error status, or ``200 OK`` with an ``<Error>`` body."""

    def __init__(
        self,
        *,
        status: int,
        code: str,
        message: str,
        request_id: str | None = None,
        operation: str = "",
        bucket: str | None = None,
        key: str | None = None,
        retry_after: float | None = None,
        server_date: str | None = None,
        bucket_region: str | None = None,
    ) -> None:
        self.status = status
        self.code = code
        self.message = message
        self.request_id = request_id
        self.operation = operation
        self.bucket = bucket
        self.key = key
        self.retry_after = retry_after
        self.server_date = server_date
        #: The region S3 says the bucket is in (``x-amz-bucket-region`` or ``<Region>``).
        self.bucket_region = bucket_region
        where = f"s3://{bucket}/{key}" if bucket and key else (f"s3://{bucket}" if bucket else "")
        text = f"{operation or 'request'} failed: HTTP {status} {code}"
        if message:
            text += f": {message}"
        if where:
            text += f" ({where})"
        if request_id:
            text += f" [request id {request_id}]"
        super().__init__(text)


class NotFoundError(S3ResponseError):
    """S3 answered 404: ``code`` is ``NoSuchKey``, ``NoSuchBucket``, ``NoSuchUpload``,
    ``NoSuchVersion`` or, for a HEAD (which has no body), ``NotFound``."""


class PreconditionFailedError(S3ResponseError):
    """S3 answered 412: a condition of the request (``If-Match``, ``If-None-Match``) failed."""


class ObjectChangedError(PreconditionFailedError):
    """The object was replaced while it was being read: a later range no longer matches the
    ETag of the first answer, so bytes of two versions would have been mixed."""


class IntegrityError(S3StreamError):
    """S3 stored something other than what we sent: an echoed checksum does not match."""


class SourceSizeError(S3StreamError):
    """The source's length broke the upload's terms; the upload was aborted, nothing stored.

    ``limit`` is the ``size=`` or ``max_size=`` it broke; ``produced`` how many bytes the
    source had produced when that became certain (for "too long": at least that many).
    """

    def __init__(self, message: str, *, limit: int, produced: int) -> None:
        super().__init__(message)
        self.limit = limit
        self.produced = produced


class DeadlineError(S3StreamError, TimeoutError):
    """``timeout=`` (the whole upload) or ``source_timeout=`` (the source produced nothing
    for that long) ran out; the upload was aborted. ``which`` names the option."""

    def __init__(self, message: str, *, which: str, seconds: float) -> None:
        super().__init__(message)
        self.which = which
        self.seconds = seconds


class UploadError(S3StreamError):
    """A multipart upload failed on the S3 side.

    ``aborted`` is True when AbortMultipartUpload was confirmed, so no parts are left
    behind; when it is False the upload may still be open and ``abort_stale()`` (or a
    lifecycle rule) is what cleans it up.
    """

    def __init__(
        self,
        message: str,
        *,
        bucket: str,
        key: str,
        upload_id: str | None,
        aborted: bool,
    ) -> None:
        self.bucket = bucket
        self.key = key
        self.upload_id = upload_id
        self.aborted = aborted
        state = "aborted" if aborted else "NOT confirmed aborted"
        super().__init__(f"{message} (s3://{bucket}/{key}, upload {upload_id}: {state})")
