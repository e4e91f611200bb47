"""Shared fixtures. The real server comes from the ``s3stream.testing`` pytest plugin."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest
from support import boto_client

from s3stream import S3Client
from s3stream.testing import LocalS3


@pytest.fixture(scope="session")
def boto(s3stream_local_s3: LocalS3) -> Any:
    """An independent S3 client (boto3) used as the oracle that reads back what we wrote."""
    return boto_client(s3stream_local_s3)


@pytest.fixture
def bucket(s3stream_bucket: str, boto: Any) -> Iterator[str]:
    """A fresh bucket on the real server; after the test, no multipart upload may be open."""
    yield s3stream_bucket
    open_uploads = boto.list_multipart_uploads(Bucket=s3stream_bucket).get("Uploads", [])
    assert open_uploads == [], f"multipart uploads left open: {open_uploads}"


@pytest.fixture
async def s3(s3stream_local_s3: LocalS3) -> AsyncIterator[S3Client]:
    async with S3Client(
        endpoint=s3stream_local_s3.endpoint,
        region=s3stream_local_s3.region,
        credentials=s3stream_local_s3.credentials,
    ) as client:
        yield client
