"""The client-wide memory budget: fair, never deadlocked, released on every path, and
bounding what many concurrent uploads hold, asserted in bytes and counts."""

from __future__ import annotations

import asyncio

import pytest
from conftest import make_client
from fake_s3 import FakeS3
from test_failures import BUCKET, PART, PART_OP, chunked, deadline, payload

from s3stream import UploadError, UsageError
from s3stream._memory import MemoryBudget

MiB = 1 << 20


# ----------------------------------------------------------------------- the budget


async def test_waiters_are_served_in_order_without_overtaking() -> None:
    budget = MemoryBudget(10)
    assert await budget.acquire(8) == 8
    order: list[str] = []

    async def take(name: str, amount: int) -> None:
        await budget.acquire(amount)
        order.append(name)

    big = asyncio.create_task(take("big", 6))
    await asyncio.sleep(0)
    small = asyncio.create_task(take("small", 1))  # would fit now, but must not overtake
    await asyncio.sleep(0)
    assert order == [] and budget.waiting == 2
    budget.release(8)
    await asyncio.gather(big, small)
    assert order == ["big", "small"] and budget.held == 7


async def test_more_than_the_whole_budget_is_granted_alone() -> None:
    budget = MemoryBudget(4)
    assert await budget.acquire(100) == 100  # nothing else held: an upload always runs
    waiter = asyncio.create_task(budget.acquire(1))
    await asyncio.sleep(0)
    assert not waiter.done()
    budget.release(100)
    assert await waiter == 1


async def test_a_cancelled_waiter_passes_its_turn_on() -> None:
    budget = MemoryBudget(10)
    await budget.acquire(10)
    first = asyncio.create_task(budget.acquire(5))
    second = asyncio.create_task(budget.acquire(5))
    await asyncio.sleep(0)
    first.cancel()
    budget.release(10)
    assert await second == 5
    with pytest.raises(asyncio.CancelledError):
        await first
    assert budget.held == 5 and budget.waiting == 0


def test_limit_is_checked() -> None:
    for bad in (0, -1, True, 1.5):
        with pytest.raises(UsageError):
            MemoryBudget(bad)  # type: ignore[arg-type]


# ------------------------------------------------------------- through uploads


async def test_many_uploads_stay_within_the_budget(fake: FakeS3) -> None:
    limit = 3 * PART
    data = [payload(4 * PART + n + 1, seed=n) for n in range(8)]
    async with make_client(fake, [], memory_limit=limit) as client, deadline():
        budget = client._requester.budget
        assert budget is not None
        results = await asyncio.gather(*(
            client.upload(BUCKET, f"k{n}", chunked(d), part_size=PART, concurrency=4)
            for n, d in enumerate(data)))
        assert budget.held == 0  # everything given back
        assert budget.peak <= limit  # never more reserved than the budget
    assert [r.part_count for r in results] == [5] * 8
    for n, d in enumerate(data):
        assert fake.objects[f"k{n}"] == d
    # Parts in flight are part of what the budget holds: never more than it allows.
    assert fake.max_in_flight <= limit // PART


async def test_a_budget_smaller_than_a_part_still_makes_progress(fake: FakeS3) -> None:
    data = [payload(2 * PART + 1, seed=n) for n in range(3)]
    async with make_client(fake, [], memory_limit=MiB) as client, deadline():
        await asyncio.gather(*(client.upload(BUCKET, f"k{n}", chunked(d), part_size=PART)
                               for n, d in enumerate(data)))
        budget = client._requester.budget
        assert budget is not None and budget.held == 0
        assert budget.peak <= PART  # one part at a time, client-wide
    assert fake.max_in_flight == 1
    assert all(fake.objects[f"k{n}"] == d for n, d in enumerate(data))


async def test_failures_and_cancellations_give_the_budget_back(fake: FakeS3) -> None:
    fake.fail(op=PART_OP, part=2, key="fails", status=403, code="AccessDenied")
    async with make_client(fake, [], memory_limit=2 * PART) as client:
        budget = client._requester.budget
        assert budget is not None
        with pytest.raises(UploadError):
            async with deadline():
                await client.upload(BUCKET, "fails", chunked(payload(4 * PART)),
                                    part_size=PART)
        assert budget.held == 0
        gate = fake.stall(op=PART_OP, part=1)
        task = asyncio.create_task(
            client.upload(BUCKET, "cancelled", chunked(payload(4 * PART)), part_size=PART))
        async with deadline():
            await gate.entered.wait()
            task.cancel()
            with pytest.raises(asyncio.CancelledError):
                await task
        gate.release()
        assert budget.held == 0 and budget.waiting == 0
    assert fake.open_uploads == set()


async def test_unlimited_when_asked(fake: FakeS3) -> None:
    async with make_client(fake, [], memory_limit=None) as client:
        assert client._requester.budget is None
        await client.upload(BUCKET, "k", b"x")
    assert fake.objects["k"] == b"x"
