"""Known sizes and limits (``size=``, ``max_size=``), progress and statistics, and
deadlines (``timeout=``, ``source_timeout=``), against the fault-injecting fake: each
failure is typed, aborted, and leaves nothing stored; counts are asserted, not timings."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest
from conftest import make_client
from fake_s3 import FakeS3
from test_failures import (
    ABORT,
    BUCKET,
    CREATE,
    PART,
    PART_OP,
    PUT,
    assert_nothing_left,
    chunked,
    deadline,
    payload,
)

from s3stream import (
    DeadlineError,
    Progress,
    Retry,
    S3Client,
    SourceSizeError,
    UsageError,
)

# ------------------------------------------------------------------ size= and max_size=


async def test_known_size_plans_parts_up_front(fake: FakeS3, client: S3Client) -> None:
    data = payload(3 * PART + 5)
    async with deadline():
        result = await client.upload(BUCKET, "k", chunked(data), size=len(data))
    # 8 MiB parts (the planned size for a known length), not the growing default.
    assert result.part_count == 2 and fake.objects["k"] == data


@pytest.mark.parametrize("actual", [PART - 1, 2 * PART + 1, 0])
async def test_source_shorter_than_size_fails_and_aborts(
    fake: FakeS3, client: S3Client, actual: int
) -> None:
    promised = 2 * PART + 100
    with pytest.raises(SourceSizeError) as info:
        async with deadline():
            await client.upload(BUCKET, "k", chunked(payload(actual)), size=promised,
                                part_size=PART)
    assert (info.value.limit, info.value.produced) == (promised, actual)
    assert f"size={promised}" in str(info.value)
    assert_nothing_left(fake, "k")
    assert fake.requests_for(PUT) == []  # a short single part is never PUT either


async def test_source_longer_than_size_fails_before_sending_the_extra(
    fake: FakeS3, client: S3Client
) -> None:
    promised = PART + 10
    with pytest.raises(SourceSizeError) as info:
        async with deadline():
            await client.upload(BUCKET, "k", chunked(payload(3 * PART), 1 << 16),
                                size=promised, part_size=PART)
    assert info.value.limit == promised and info.value.produced > promised
    assert sum(r.body_size for r in fake.requests_for(PART_OP)) <= promised
    assert_nothing_left(fake, "k")


@pytest.mark.parametrize("total", [100, 3 * PART])
async def test_max_size_refuses_the_moment_it_is_exceeded(
    fake: FakeS3, client: S3Client, total: int
) -> None:
    limit = 50 if total == 100 else 2 * PART
    read = 0

    async def source() -> AsyncIterator[bytes]:
        nonlocal read
        async for chunk in chunked(payload(total), 1 << 16):
            read += len(chunk)
            yield chunk

    with pytest.raises(SourceSizeError) as info:
        async with deadline():
            await client.upload(BUCKET, "k", source(), max_size=limit, part_size=PART)
    assert f"max_size={limit}" in str(info.value) and info.value.limit == limit
    assert read <= limit + (1 << 16)  # stopped at the first chunk past the limit
    assert_nothing_left(fake, "k")
    if total > PART:
        assert [r.status for r in fake.requests_for(ABORT)] == [204]


async def test_size_and_max_size_checked_before_any_io(fake: FakeS3, client: S3Client) -> None:
    with pytest.raises(SourceSizeError):
        await client.upload(BUCKET, "k", chunked(b"x"), size=10, max_size=5)
    with pytest.raises(SourceSizeError):
        await client.upload(BUCKET, "k", b"x" * 10, max_size=5)  # a known length
    with pytest.raises(UsageError, match="size=3"):
        await client.upload(BUCKET, "k", b"x" * 10, size=3)
    for bad in (-1, True, 1.5, "10"):
        with pytest.raises(UsageError):
            await client.upload(BUCKET, "k", chunked(b"x"), size=bad)  # type: ignore[arg-type]
    with pytest.raises(UsageError):
        await client.upload(BUCKET, "k", chunked(b"x"), max_size=0)
    assert fake.requests == []


async def test_push_style_size(fake: FakeS3, client: S3Client) -> None:
    with pytest.raises(SourceSizeError):
        async with deadline(), client.open_upload(BUCKET, "k", size=PART + 1,
                                                  part_size=PART) as up:
            await up.write(payload(PART + 2))
    assert_nothing_left(fake, "k")
    async with deadline(), client.open_upload(BUCKET, "ok", size=6) as up:
        await up.write(b"abc")
        await up.write(b"def")
    assert fake.objects["ok"] == b"abcdef"


# -------------------------------------------------------------- progress and stats


async def test_progress_per_part_and_stats(fake: FakeS3, client: S3Client) -> None:
    seen: list[Progress] = []
    fake.fail(op=PART_OP, part=2, times=1, status=503, code="SlowDown")
    data = payload(3 * PART + 7)
    async with deadline():
        result = await client.upload(BUCKET, "k", chunked(data, 4096), part_size=PART,
                                     progress=seen.append, size=len(data))
    # Once per part and once at the end: not once per 4 KiB chunk.
    assert len(seen) == result.part_count + 1 == 5
    acked = [p.bytes_acknowledged for p in seen]
    assert acked == sorted(acked) and acked[-1] == len(data)
    assert seen[-1] == Progress(len(data), len(data), 4, len(data))
    assert all(p.bytes_read >= p.bytes_acknowledged for p in seen)
    stats = result.stats
    assert stats is not None
    assert stats.parts == 4 and stats.retries == 1 and stats.stalls == 0
    assert stats.requests == len(fake.requests)  # Create, 4 + 1 parts, Complete
    assert stats.bytes_sent == len(data) + PART + sum(
        r.body_size for r in fake.requests if r.op not in (PART_OP, PUT))
    assert stats.duration > 0


async def test_single_put_progress_and_stats(fake: FakeS3, client: S3Client) -> None:
    seen: list[Progress] = []
    async with deadline():
        result = await client.upload(BUCKET, "small", b"hello", progress=seen.append)
    assert seen == [Progress(5, 5, 1, None)]
    assert result.stats is not None and result.stats.requests == 1
    assert result.stats.bytes_sent == 5 and result.stats.parts == 1


# ---------------------------------------------------------------------- deadlines


async def test_source_timeout_aborts_and_frees(fake: FakeS3, client: S3Client) -> None:
    stopped = asyncio.Event()

    async def stalls_after_a_part() -> AsyncIterator[bytes]:
        yield payload(PART + 1)
        await stopped.wait()  # a client that stopped sending its body
        yield b"never"

    with pytest.raises(DeadlineError) as info:
        async with deadline():
            await client.upload(BUCKET, "k", stalls_after_a_part(), part_size=PART,
                                source_timeout=0.2)
    assert info.value.which == "source_timeout" and isinstance(info.value, TimeoutError)
    assert "source_timeout=0.2" in str(info.value)
    assert [r.status for r in fake.requests_for(ABORT)] == [204]
    assert_nothing_left(fake, "k")


async def test_overall_timeout_aborts(fake: FakeS3, delays: list[float]) -> None:
    gate = fake.stall(op=PART_OP, part=1)  # S3 never answers the first part
    async with make_client(fake, delays, retry=Retry(attempts=1)) as client:
        with pytest.raises(DeadlineError) as info:
            async with deadline():
                await client.upload(BUCKET, "k", chunked(payload(2 * PART)), part_size=PART,
                                    timeout=0.5)
        gate.release()
    assert info.value.which == "timeout" and "timeout=0.5" in str(info.value)
    assert len(fake.requests_for(CREATE)) == 1
    assert [r.status for r in fake.requests_for(ABORT)] == [204]
    assert_nothing_left(fake, "k")
