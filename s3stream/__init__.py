"""s3stream: stream any async iterator of bytes into S3 with concurrent multipart uploads."""

from ._client import MultipartUploadInfo, PartInfo, S3Client, Upload, UploadResult
from ._credentials import Credentials
from ._parts import Limits
from ._retry import Retry
from .exceptions import (
    IntegrityError,
    S3ResponseError,
    S3StreamError,
    StallError,
    TransportError,
    UploadError,
    UsageError,
)

__version__ = "0.1.0"

__all__ = [
    "Credentials",
    "IntegrityError",
    "Limits",
    "MultipartUploadInfo",
    "PartInfo",
    "Retry",
    "S3Client",
    "S3ResponseError",
    "S3StreamError",
    "StallError",
    "TransportError",
    "Upload",
    "UploadError",
    "UploadResult",
    "UsageError",
    "__version__",
]
