"""A stalled connection fails that attempt (StallError) and the part is retried.

These tests let ``stall_timeout`` (0.2 s) pass for real: the timeout is the behaviour
under test, not a synchronisation device. The fake server's gates are released on exit.
"""

from __future__ import annotations

import asyncio
import os
from typing import Any

import pytest
from fake_s3 import FakeS3

from s3stream import Credentials, Retry, S3Client, StallError, TransportError, UploadError

MiB = 1 << 20
BUCKET = "bucket"


def client(fake: FakeS3, delays: list[float], **kwargs: Any) -> S3Client:
    async def sleep(delay: float) -> None:
        delays.append(delay)

    return S3Client(endpoint=fake.endpoint, region="us-east-1",
                    credentials=Credentials("AK", "SK"), stall_timeout=0.2, sleep=sleep,
                    rand=lambda: 0.5, **kwargs)


@pytest.mark.parametrize("before_body", [False, True], ids=["no-answer", "not-reading"])
async def test_stalled_part_is_retried(fake: FakeS3, before_body: bool) -> None:
    fake.stall(op="UploadPart", part=2, times=1, before_body=before_body)
    data = os.urandom(12 * MiB)
    delays: list[float] = []
    async with client(fake, delays) as s3, asyncio.timeout(20):
        result = await s3.upload(BUCKET, "slow.bin", data, part_size=5 * MiB)
    assert fake.objects["slow.bin"] == data
    assert result.part_count == 3
    counts = fake.part_counts()
    assert counts[2] == 2 and counts[1] == 1 and counts[3] == 1
    assert len(delays) == 1
    assert fake.open_uploads == set()


async def test_stall_every_time_fails_and_aborts(fake: FakeS3) -> None:
    fake.stall(op="UploadPart", part=1)
    delays: list[float] = []
    async with client(fake, delays, retry=Retry(attempts=2)) as s3, asyncio.timeout(20):
        with pytest.raises(UploadError) as info:
            await s3.upload(BUCKET, "stuck.bin", os.urandom(6 * MiB), part_size=5 * MiB)
    assert isinstance(info.value.__cause__, StallError)
    assert isinstance(info.value.__cause__, TransportError)
    assert "stall" in str(info.value.__cause__) or "no " in str(info.value.__cause__)
    assert info.value.aborted
    assert fake.part_counts()[1] == 2
    assert fake.open_uploads == set()
    assert fake.objects == {}
