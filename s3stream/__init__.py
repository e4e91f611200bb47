"""s3stream: stream any async iterator of bytes into S3 with concurrent multipart uploads."""

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
    from ._upload import Progress, Upload, UploadResult, UploadStats

__version__ = "0.1.0"

# The client (and aiohttp with it) loads on first use, so that importing the light parts,
# such as the ``s3stream.testing`` pytest plugin, costs milliseconds rather than ~0.2 s.
_LAZY = {"MultipartUploadInfo", "PartInfo", "Progress", "S3Client", "Upload", "UploadResult",
         "UploadStats"}


def __getattr__(name: str) -> _Any:
    if name in _LAZY:
        from . import _client

        value = getattr(_client, name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 's3stream' has no attribute {name!r}")

__all__ = [
    "Credentials",
    "CredentialsError",
    "DeadlineError",
    "IntegrityError",
    "Limits",
    "MultipartUploadInfo",
    "NoCredentialsError",
    "PartInfo",
    "Progress",
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
