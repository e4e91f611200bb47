"""Credentials that expire: the refresh decision (pure), one refresh at a time however
many requests wait, every try signed with the current credentials, ``ExpiredToken`` as a
cue to refresh, and uploads that outlive their credentials (fake and real server)."""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from fake_s3 import FakeS3
from support import read_back, sha256
from test_failures import BUCKET, PART, PART_OP, chunked, deadline, payload

from s3stream import Credentials, NoCredentialsError, Retry, S3Client, UsageError
from s3stream.credentials import ProviderContext
from s3stream.credentials._chain import CallableProvider, resolve_provider
from s3stream.credentials._refresh import Due, RefreshingCredentials, refresh_due
from s3stream.testing import LocalS3

NOW = datetime(2026, 12, 2, 12, 0, tzinfo=UTC)
HOUR = timedelta(hours=1)


# ------------------------------------------------------------------------- pure


@pytest.mark.parametrize(("left", "lifetime", "due"), [
    (timedelta(minutes=30), HOUR, Due.NO),
    (timedelta(minutes=14), HOUR, Due.ADVISORY),   # botocore's 15 minutes
    (timedelta(minutes=9), HOUR, Due.MANDATORY),   # and 10
    (timedelta(seconds=-1), HOUR, Due.MANDATORY),
    (timedelta(seconds=6), timedelta(seconds=10), Due.NO),  # short-lived: half, a quarter
    (timedelta(seconds=4), timedelta(seconds=10), Due.ADVISORY),
    (timedelta(seconds=2), timedelta(seconds=10), Due.MANDATORY),
    (timedelta(minutes=12), None, Due.ADVISORY),
])
def test_refresh_due(left: timedelta, lifetime: timedelta | None, due: Due) -> None:
    assert refresh_due(NOW + left, NOW, lifetime) is due
    assert refresh_due(None, NOW, lifetime) is Due.NO


def test_credentials_expiry_is_checked_and_never_shows_secrets() -> None:
    creds = Credentials("AK", "very-secret", "token-value", expiry=NOW)
    assert "very-secret" not in repr(creds) and "token-value" not in repr(creds)
    assert "2026-12-02T12:00:00+00:00" in repr(creds)
    with pytest.raises(UsageError):
        Credentials("AK", "SK", expiry=datetime(2026, 1, 1))  # naive: ambiguous


def test_what_credentials_accepts() -> None:
    async def get() -> Credentials:
        return Credentials("AK", "SK")

    assert isinstance(resolve_provider(get, {}), CallableProvider)
    with pytest.raises(UsageError, match="async callable"):
        resolve_provider(("AK", "SK"), {})
    with pytest.raises(UsageError):
        resolve_provider(lambda: Credentials("AK", "SK"), {})  # not async


# --------------------------------------------------------------- the refresher


class Clock:
    def __init__(self) -> None:
        self.now = NOW

    def __call__(self) -> datetime:
        return self.now


class Rotating:
    """A provider whose n-th load returns session token ``t<n>``, valid ``life``."""

    name = "rotating test credentials"

    def __init__(self, clock: Clock, life: timedelta, gate: asyncio.Event | None = None) -> None:
        self.clock, self.life, self.gate = clock, life, gate
        self.loads = 0
        self.fail_next = False

    async def load(self, ctx: ProviderContext) -> Credentials | None:
        self.loads += 1
        if self.gate is not None:
            await self.gate.wait()
        if self.fail_next:
            self.fail_next = False
            raise RuntimeError("metadata service down")
        return Credentials("AK", "SK", f"t{self.loads}", expiry=self.clock() + self.life)


def _ctx(clock: Clock) -> ProviderContext:
    async def no_fetch(*_: Any) -> Any:
        raise AssertionError("no HTTP here")

    async def run(function: Any) -> Any:
        return function()

    return ProviderContext(environ={}, fetch=no_fetch, now=clock, run_blocking=run)


async def test_one_refresh_however_many_wait() -> None:
    clock, gate = Clock(), asyncio.Event()
    provider = Rotating(clock, HOUR, gate)
    source = RefreshingCredentials(provider, _ctx(clock))
    waiters = [asyncio.create_task(source.get()) for _ in range(50)]
    await asyncio.sleep(0)
    gate.set()
    got = await asyncio.gather(*waiters)
    assert provider.loads == 1 and {c.session_token for c in got} == {"t1"}
    clock.now += timedelta(minutes=50)  # 10 minutes left: mandatory
    got = await asyncio.gather(*(source.get() for _ in range(50)))
    assert provider.loads == 2 and {c.session_token for c in got} == {"t2"}


async def test_advisory_failure_keeps_valid_credentials_mandatory_raises() -> None:
    clock = Clock()
    provider = Rotating(clock, HOUR)
    source = RefreshingCredentials(provider, _ctx(clock))
    assert (await source.get()).session_token == "t1"
    clock.now += timedelta(minutes=46)  # advisory window: still valid for 14 minutes
    provider.fail_next = True
    assert (await source.get()).session_token == "t1"
    clock.now += timedelta(minutes=6)  # mandatory: must not be used again
    provider.fail_next = True
    with pytest.raises(RuntimeError, match="metadata service down"):
        await source.get()
    assert (await source.get()).session_token == "t4"


async def test_invalidate_refreshes_once() -> None:
    clock = Clock()
    provider = Rotating(clock, HOUR)
    source = RefreshingCredentials(provider, _ctx(clock))
    first = await source.get()
    source.invalidate(first)
    source.invalidate(first)
    assert (await source.get()).session_token == "t2"
    source.invalidate(first)  # stale news: t2 is current
    assert (await source.get()).session_token == "t2" and provider.loads == 2


# ------------------------------------------------------------ through S3Client


async def test_upload_outlives_its_credentials(fake: FakeS3) -> None:
    clock = Clock()

    def tick() -> datetime:  # every signature moves time on by 20 s
        clock.now += timedelta(seconds=20)
        return clock.now

    provider = Rotating(clock, timedelta(minutes=2))
    data = payload(6 * PART + 1)
    async with S3Client(endpoint=fake.endpoint, region="us-east-1", credentials=provider,
                        clock=tick) as client, deadline():
        result = await client.upload(BUCKET, "k", chunked(data), part_size=PART)
    assert fake.objects["k"] == data and result.part_count == 7
    tokens = [r.headers["x-amz-security-token"] for r in fake.requests]
    assert all(r.signature_ok for r in fake.requests)
    # Refreshed as time went on (each load's token was used: none fetched for nothing).
    # Parts run concurrently, so arrival order says nothing about signing order.
    assert provider.loads >= 3
    assert set(tokens) == {f"t{n}" for n in range(1, provider.loads + 1)}


async def test_expired_token_triggers_one_refresh(fake: FakeS3) -> None:
    clock = Clock()
    provider = Rotating(clock, HOUR)
    fake.fail(op=PART_OP, part=2, times=1, status=400, code="ExpiredToken")
    data = payload(3 * PART + 1)
    async with S3Client(endpoint=fake.endpoint, region="us-east-1", credentials=provider,
                        clock=clock, retry=Retry(attempts=1)) as client, deadline():
        await client.upload(BUCKET, "k", chunked(data), part_size=PART, concurrency=1)
    assert fake.objects["k"] == data
    assert provider.loads == 2
    part2 = fake.requests_for(PART_OP, 2)
    assert [r.headers["x-amz-security-token"] for r in part2] == ["t1", "t2"]


async def test_user_callable_provider(fake: FakeS3) -> None:
    calls = 0

    async def get_credentials() -> Credentials:
        nonlocal calls
        calls += 1
        return Credentials("AK", "SK")

    async with S3Client(endpoint=fake.endpoint, region="us-east-1",
                        credentials=get_credentials) as client:
        await client.upload(BUCKET, "k", b"hello")
        await client.upload(BUCKET, "k2", b"again")
    assert calls == 1 and fake.objects["k2"] == b"again"  # no expiry: loaded once


async def test_nothing_found_by_the_chain_fails_before_any_s3_request(
    fake: FakeS3, tmp_path: Path
) -> None:
    # Not decidable at construction (the metadata service might answer), so the first
    # request finds out, before anything is sent to S3.
    env = {"HOME": str(tmp_path), "AWS_EC2_METADATA_SERVICE_ENDPOINT": "http://127.0.0.1:9"}
    async with S3Client(endpoint=fake.endpoint, region="us-east-1", environ=env) as client:
        with pytest.raises(NoCredentialsError) as info:
            await client.upload(BUCKET, "k", chunked(payload(PART + 1)), part_size=PART)
    assert fake.requests == []
    assert "AWS_ACCESS_KEY_ID" in str(info.value)


# ------------------------------------------------------------------ real server


@pytest.mark.real_s3
async def test_real_upload_longer_than_its_credentials(
    s3stream_local_s3: LocalS3, bucket: str, boto: Any
) -> None:
    keys = s3stream_local_s3.credentials
    loads = 0

    async def short_lived() -> Credentials:
        nonlocal loads
        loads += 1
        return Credentials(keys.access_key_id, keys.secret_access_key,
                           expiry=datetime.now(UTC) + timedelta(seconds=2))

    chunk = os.urandom(1 << 20)

    async def slow_source() -> AsyncIterator[bytes]:
        for _ in range(16):  # 16 MiB at about 4 MiB/s: longer than the 2 s credentials
            yield chunk
            await asyncio.sleep(0.25)  # the source's pace, not synchronisation

    async with S3Client(endpoint=s3stream_local_s3.endpoint, region=s3stream_local_s3.region,
                        credentials=short_lived) as client:
        result = await client.upload(bucket, "long.bin", slow_source(), part_size=PART)
    assert result.part_count == 4 and loads >= 3
    assert sha256(read_back(boto, bucket, "long.bin")) == sha256(chunk * 16)
