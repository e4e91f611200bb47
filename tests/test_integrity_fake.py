"""What S3 echoes back is checked: a checksum other than ours is an IntegrityError."""

from __future__ import annotations

import asyncio
import base64
import os
from collections.abc import AsyncIterator
from typing import Any

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


async def test_many_parts_checksums_are_combined_off_the_loop() -> None:
    # Combining CRCs is GF(2) arithmetic in Python: ~25 ms for 10,000 parts. Past a few
    # hundred parts it runs on the hashing threads; the result is the same.
    import threading

    from s3stream import _checksums as cks
    from s3stream._integrity import ChecksumPlan
    from s3stream._upload import seal_checksums

    class Pool:
        def __init__(self) -> None:
            self.threads: list[str] = []

        async def in_hash_pool(self, work: Any) -> Any:
            def run() -> Any:
                self.threads.append(threading.current_thread().name)
                return work()
            return await asyncio.to_thread(run)

    for count, off_loop in ((10, False), (1000, True)):
        plan = ChecksumPlan.start("crc32c", strict=True, store_level=cks.FULL)
        inline = ChecksumPlan.start("crc32c", strict=True, store_level=cks.FULL)
        for n in range(1, count + 1):
            digest = cks.PartDigest(None, n.to_bytes(4, "big"))
            for p in (plan, inline):
                p.part_done(n, digest, 5 * 1024 * 1024 + n, cks.b64(digest.checksum or b""),
                            echoed=True)
        pool = Pool()
        await seal_checksums(pool, plan, list(range(1, count + 1)))  # type: ignore[arg-type]
        inline.seal(list(range(1, count + 1)))
        assert plan.full is not None and plan.full == inline.full
        assert plan.complete_headers() == inline.complete_headers()
        assert bool(pool.threads) is off_loop
        assert all(name != threading.main_thread().name for name in pool.threads)
