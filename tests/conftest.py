"""Shared fixtures. The real server comes from the ``s3stream.testing`` pytest plugin."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from typing import Any

import boto3
import botocore.config
import pytest

from s3stream import S3Client
from s3stream.testing import LocalS3


@pytest.fixture(scope="session")
def boto(s3stream_local_s3: LocalS3) -> Any:
    """An independent S3 client (boto3) used as the oracle that reads back what we wrote."""
    creds = s3stream_local_s3.credentials
    return boto3.client(
        "s3",
        endpoint_url=s3stream_local_s3.endpoint,
        region_name=s3stream_local_s3.region,
        aws_access_key_id=creds.access_key_id,
        aws_secret_access_key=creds.secret_access_key,
        config=botocore.config.Config(
            s3={"addressing_style": "path"}, retries={"max_attempts": 1}
        ),
    )


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
