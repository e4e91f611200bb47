"""What S3 echoes back is checked: a checksum other than ours is an IntegrityError."""

from __future__ import annotations

import base64
import os
from collections.abc import AsyncIterator

import crc32c
import pytest
from fake_s3 import FakeS3

from s3stream import Credentials, IntegrityError, S3Client, UploadError

MiB = 1 << 20
BUCKET = "bucket"
WRONG = "AAAAAA=="


@pytest.fixture
async def s3(fake: FakeS3) -> AsyncIterator[S3Client]:
    async with S3Client(endpoint=fake.endpoint, region="us-east-1",
                        credentials=Credentials("AK", "SK"), checksum="crc32c") as client:
        yield client


async def test_part_echo_mismatch(fake: FakeS3, s3: S3Client) -> None:
    fake.garbage(op="UploadPart", part=2, body=b"",
                 headers={"ETag": '"e2"', "x-amz-checksum-crc32c": WRONG})
    with pytest.raises(UploadError) as info:
        await s3.upload(BUCKET, "k", os.urandom(11 * MiB), part_size=5 * MiB)
    assert isinstance(info.value.__cause__, IntegrityError)
    assert WRONG in str(info.value.__cause__)
    assert info.value.aborted
    assert fake.open_uploads == set()
    assert fake.objects == {}


async def test_single_put_echo_mismatch(fake: FakeS3, s3: S3Client) -> None:
    fake.garbage(op="PutObject", body=b"",
                 headers={"ETag": '"e"', "x-amz-checksum-crc32c": WRONG})
    with pytest.raises(IntegrityError):
        await s3.upload(BUCKET, "k", b"hello")


async def test_complete_reporting_another_checksum(fake: FakeS3, s3: S3Client) -> None:
    body = (b'<CompleteMultipartUploadResult><ETag>"x-2"</ETag>'
            b"<ChecksumCRC32C>" + WRONG.encode() + b"</ChecksumCRC32C>"
            b"</CompleteMultipartUploadResult>")
    fake.garbage(op="CompleteMultipartUpload", body=body)
    with pytest.raises(UploadError) as info:
        await s3.upload(BUCKET, "k", os.urandom(6 * MiB), part_size=5 * MiB)
    assert isinstance(info.value.__cause__, IntegrityError)
    assert fake.open_uploads == set()


async def test_matching_echoes_pass(fake: FakeS3, s3: S3Client) -> None:
    data = os.urandom(6 * MiB)
    result = await s3.upload(BUCKET, "k", data, part_size=5 * MiB)
    assert result.checksum == base64.b64encode(crc32c.crc32c(data).to_bytes(4, "big")).decode()
    parts = sorted((r for r in fake.requests if r.op == "UploadPart"), key=lambda r: r.part or 0)
    for rec, start in zip(parts, (0, 5 * MiB), strict=True):
        piece = data[start : start + 5 * MiB]
        expected = base64.b64encode(crc32c.crc32c(piece).to_bytes(4, "big")).decode()
        assert rec.headers["x-amz-checksum-crc32c"] == expected
