"""Helpers shared by the tests (plain functions, not fixtures)."""

from __future__ import annotations

import hashlib
import random
from collections.abc import AsyncIterator
from typing import Any

import boto3
import botocore.config
import pytest
from botocore.exceptions import ClientError

from s3stream import Credentials
from s3stream.testing import LocalS3


def boto_client(server: LocalS3, credentials: Credentials | None = None) -> Any:
    """boto3, the independent oracle that reads back what s3stream wrote (path-style)."""
    creds = credentials or server.credentials
    return boto3.client(
        "s3",
        endpoint_url=server.endpoint,
        region_name=server.region,
        aws_access_key_id=creds.access_key_id,
        aws_secret_access_key=creds.secret_access_key,
        config=botocore.config.Config(s3={"addressing_style": "path"},
                                      retries={"max_attempts": 1}),
    )


def list_open_uploads(server: LocalS3, boto: Any, bucket: str) -> list[Any]:
    """The multipart uploads open in ``bucket``, as boto3 lists them."""
    try:
        uploads: list[Any] = boto.list_multipart_uploads(Bucket=bucket).get("Uploads", [])
    except ClientError as exc:
        # rclone answers ListMultipartUploads with 404 NoSuchUpload in a bucket where no
        # multipart upload was ever started, so nothing can be open then. Once one was, the
        # listing works, open uploads included (test_testing_server checks both).
        if server.name == "rclone" and exc.response["Error"]["Code"] == "NoSuchUpload":
            return []
        raise
    return uploads


def read_back(boto: Any, bucket: str, key: str) -> bytes:
    body: bytes = boto.get_object(Bucket=bucket, Key=key)["Body"].read()
    return body


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


class UnevenStream:
    """An async iterator of random-sized chunks (1 B .. max_chunk) that hashes what it yields."""

    def __init__(self, total: int, *, seed: int = 0, max_chunk: int = 3 << 20) -> None:
        self.total = total
        self.max_chunk = max_chunk
        self.rng = random.Random(seed)
        self.digest = hashlib.sha256()
        self.yielded = 0
        # One pool of random bytes, sliced: generating 100 MiB of randomness per test is slow.
        self.pool = self.rng.randbytes(8 << 20)

    def __aiter__(self) -> AsyncIterator[bytes]:
        return self._gen()

    async def _gen(self) -> AsyncIterator[bytes]:
        while self.yielded < self.total:
            size = min(self.rng.randint(1, self.max_chunk), self.total - self.yielded)
            start = self.rng.randrange(0, len(self.pool) - size + 1)
            chunk = self.pool[start : start + size]
            self.digest.update(chunk)
            self.yielded += size
            yield chunk


def enable_versioning(server: LocalS3, boto: Any, bucket: str) -> bool:
    """Turn versioning on for ``bucket``; False where the server has none (rclone serve s3
    answers PutBucketVersioning with 501 NotImplemented, which is asserted)."""
    if server.name == "rclone":
        with pytest.raises(ClientError) as refused:
            boto.put_bucket_versioning(Bucket=bucket,
                                       VersioningConfiguration={"Status": "Enabled"})
        assert refused.value.response["ResponseMetadata"]["HTTPStatusCode"] == 501
        return False
    boto.put_bucket_versioning(Bucket=bucket, VersioningConfiguration={"Status": "Enabled"})
    return True
