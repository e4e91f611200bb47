"""s3stream: stream any async iterator of bytes into S3 with concurrent multipart uploads.

The public API, all importable from ``s3stream``::

    S3Client(...)          the client: upload(), open_upload(), list_multipart_uploads(),
                           list_parts(), abort_multipart_upload(), abort_stale(),
                           download(), download_to(), head_object(), head_bucket(),
                           delete_object(), delete_objects(), list_objects(),
                           presign_get(), presign_put(), presign_upload_part(), object_url()
                           create_multipart_upload(), upload_part(),
                           complete_multipart_upload(), resume_upload()
    Download               what download() returns: ``async with``, ``async for chunk in dl``
    Upload                 what open_upload() returns: ``async with``, ``await up.write(b)``
    UploadResult           what an upload stored (etag, size, parts, checksum, stats)
    UploadStats, Progress  an upload's counters; what ``progress=`` is called with
    MultipartUploadInfo    what list_multipart_uploads() yields
    PartInfo               what list_parts() yields
    ObjectInfo             what head_object() returns (size, ETag, type, metadata, checksums)
    BucketInfo             what head_bucket() returns (name, region)
    DeleteResult, DeleteError  what delete_objects() returns: deleted keys, per-key errors
    ObjectSummary, CommonPrefix  what list_objects() yields
    PresignedRequest       what presign_put() returns: method, URL and the headers to send
    ResumeStats            resume_upload()'s ``result.stats``: the parts kept, sent, replaced
    Credentials            static keys; ``Credentials.anonymous()`` for unsigned requests
    Retry                  the retry policy
    Limits                 S3's multipart rules, as data
    S3StreamError          the root of every error s3stream raises on purpose: UsageError,
                           NoCredentialsError, CredentialsError, TransportError, StallError,
                           S3ResponseError (NotFoundError, PreconditionFailedError,
                           ObjectChangedError), IntegrityError, SourceSizeError, DeadlineError,
                           UploadError (see ``s3stream.exceptions``)

``s3stream.credentials`` has the credential providers, ``s3stream.testing`` local S3
servers for tests (and a pytest plugin), ``s3stream.cli`` the ``s3stream`` command line.
``S3Client`` and the classes that come with it
load on first use, with aiohttp, so that ``import s3stream`` stays light; ``dir()`` and
``help()`` list them all the same.
"""

from typing import TYPE_CHECKING as _TYPE_CHECKING
from typing import Any as _Any

from ._parts import Limits
from ._retry import Retry
from .credentials import Credentials
from .exceptions import (
    CredentialsError,
    DeadlineError,
    IntegrityError,
    NoCredentialsError,
    NotFoundError,
    ObjectChangedError,
    PreconditionFailedError,
    S3ResponseError,
    S3StreamError,
    SourceSizeError,
    StallError,
    TransportError,
    UploadError,
    UsageError,
)

if _TYPE_CHECKING:
    from ._client import MultipartUploadInfo, PartInfo, S3Client
    from ._download import Download
    from ._info import ObjectInfo
    from ._multipart import ResumeStats
    from ._objects import BucketInfo, CommonPrefix, DeleteError, DeleteResult, ObjectSummary
    from ._presign import PresignedRequest
    from ._upload import Progress, Upload, UploadResult, UploadStats

__version__ = "0.1.0"

# The client (and aiohttp with it) loads on first use, so that importing the light parts,
# such as the ``s3stream.testing`` pytest plugin, costs milliseconds rather than ~0.2 s.
_LAZY = {
    "BucketInfo",
    "CommonPrefix",
    "DeleteError",
    "DeleteResult",
    "Download",
    "MultipartUploadInfo",
    "ObjectInfo",
    "ObjectSummary",
    "PartInfo",
    "PresignedRequest",
    "Progress",
    "ResumeStats",
    "S3Client",
    "Upload",
    "UploadResult",
    "UploadStats",
}


def __getattr__(name: str) -> _Any:
    if name in _LAZY:
        from . import _client

        value = getattr(_client, name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 's3stream' has no attribute {name!r}")


def __dir__() -> list[str]:
    # The lazy names too, before their first use (and without loading them): pydoc, help()
    # and completion go by dir(). Plus the public submodules loaded so far.
    return sorted({*__all__, *(name for name in globals() if not name.startswith("_"))})

__all__ = [
    "BucketInfo",
    "CommonPrefix",
    "Credentials",
    "CredentialsError",
    "DeadlineError",
    "DeleteError",
    "DeleteResult",
    "Download",
    "IntegrityError",
    "Limits",
    "MultipartUploadInfo",
    "NoCredentialsError",
    "NotFoundError",
    "ObjectChangedError",
    "ObjectInfo",
    "ObjectSummary",
    "PartInfo",
    "PreconditionFailedError",
    "PresignedRequest",
    "Progress",
    "ResumeStats",
    "Retry",
    "S3Client",
    "S3ResponseError",
    "S3StreamError",
    "SourceSizeError",
    "StallError",
    "TransportError",
    "Upload",
    "UploadError",
    "UploadResult",
    "UploadStats",
    "UsageError",
    "__version__",
]
