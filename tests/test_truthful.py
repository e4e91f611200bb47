"""Truthful outcomes against the fault-injecting fake: other stores' XML dialects, Complete
answers that cannot be read but did commit, cancellation while CreateMultipartUpload is in
flight, outages of a few seconds, and stores that refuse or ignore checksums.

Every test checks what the store holds afterwards (the object, byte-exact, or nothing, and
no open upload) against what s3stream reported.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
from collections.abc import AsyncIterator

import pytest
from conftest import make_client
from fake_s3 import FakeS3, md5_etag
from test_failures import (
    ABORT,
    BUCKET,
    COMPLETE,
    CREATE,
    PART,
    PART_OP,
    assert_nothing_left,
    chunked,
    deadline,
    payload,
)

from s3stream import Credentials, Retry, S3Client, S3ResponseError, UploadError

NS = 'xmlns="http://s3.amazonaws.com/doc/2006-03-01/"'
HEAD = "HeadObject"


def assert_stored(fake: FakeS3, key: str, data: bytes) -> None:
    assert fake.objects[key] == data
    assert fake.open_uploads == set()
    assert fake.requests_for(ABORT) == []


# ------------------------------------------------------------------ dialects


async def test_create_root_without_result_and_namespace(fake: FakeS3, client: S3Client) -> None:
    # rclone's answer: <InitiateMultipartUpload>, no "Result", no namespace.
    fake.rewrite(op=CREATE, times=1, body=b"<InitiateMultipartUpload><Bucket>bucket</Bucket>"
                 b"<Key>k</Key><UploadId>fake-upload.1_x~y-z</UploadId>"
                 b"</InitiateMultipartUpload>")
    data = payload(2 * PART + 3)
    async with deadline():
        result = await client.upload(BUCKET, "k", chunked(data), part_size=PART)
    assert result.part_count == 3
    assert_stored(fake, "k", data)


async def test_complete_root_renamed_and_unknown_elements(fake: FakeS3, client: S3Client) -> None:
    data = payload(PART + 1)
    etag = '"0123456789abcdef0123456789abcdef-2"'
    fake.rewrite(op=COMPLETE, body=(
        f"<CompleteMultipartUploadResponse {NS}><Unknown><Nested/></Unknown>"
        f"<ETag>{etag}</ETag></CompleteMultipartUploadResponse>").encode())
    async with deadline():
        result = await client.upload(BUCKET, "k", chunked(data), part_size=PART,
                                     checksum=None)
    assert result.etag == etag
    assert_stored(fake, "k", data)


async def test_list_parts_and_uploads_any_root(fake: FakeS3, client: S3Client) -> None:
    async with client.open_upload(BUCKET, "k", part_size=PART) as up:
        await up.write(payload(PART + 10))
        for task in list(up._tasks):
            await task
        assert up.upload_id is not None
        upload_id = up.upload_id
        # moto's dialect for ListParts; a namespace-less ListMultipartUploads.
        fake.rewrite(op="ListParts", times=1, body=(
            f"<ListPartsResponse {NS}><IsTruncated>false</IsTruncated><Part>"
            f"<PartNumber>1</PartNumber><ETag>{md5_etag(payload(PART + 10)[:PART])}</ETag>"
            f"<Size>{PART}</Size></Part></ListPartsResponse>").encode())
        parts = [p async for p in client.list_parts(BUCKET, "k", upload_id)]
        assert [(p.number, p.size) for p in parts] == [(1, PART)]
        fake.rewrite(op="ListMultipartUploads", times=1, body=(
            f"<ListUploads><Upload><Key>k</Key><UploadId>{upload_id}</UploadId></Upload>"
            "</ListUploads>").encode())
        listed = [u.upload_id async for u in client.list_multipart_uploads(BUCKET)]
        assert listed == [upload_id]
    assert fake.open_uploads == set()


async def test_200_error_root_on_create_is_an_error(fake: FakeS3, client: S3Client) -> None:
    fake.garbage(op=CREATE, status=200,
                 body=b"<Error><Code>AccessDenied</Code><Message>no</Message></Error>")
    with pytest.raises(S3ResponseError) as info:
        async with deadline():
            await client.upload(BUCKET, "k", chunked(payload(PART + 1)), part_size=PART)
    assert info.value.code == "AccessDenied"
    assert_nothing_left(fake, "k")


# -------------------------------------------------- Complete answers that committed


@pytest.mark.parametrize("body", [b"", b"   \n", b"<CompleteMultipartUploadResult/>",
                                  b"<CompleteMultipartUploadResult><ETag/>"
                                  b"</CompleteMultipartUploadResult>",
                                  b"<CompleteMultipartUploadResult><ETag>"],
                         ids=["empty", "whitespace", "no-etag", "empty-etag", "truncated"])
async def test_committed_complete_with_unreadable_answer(
    fake: FakeS3, client: S3Client, body: bytes
) -> None:
    fake.rewrite(op=COMPLETE, body=body)
    data = payload(2 * PART + 5)
    async with deadline():
        result = await client.upload(BUCKET, "k", chunked(data), part_size=PART)
    # Success, as HeadObject shows it: never an abort of a stored object.
    assert_stored(fake, "k", data)
    assert result.etag == fake.object_etags["k"] and result.etag.endswith('-3"')
    assert result.size == len(data) and result.part_count == 3
    assert result.checksum == fake.object_checksums["k"]["crc32c"]
    assert len(fake.requests_for(HEAD)) == 1


async def test_lost_complete_answer_without_retries_is_confirmed(
    fake: FakeS3, delays: list[float]
) -> None:
    # One try only: the reset after the commit must not turn into "failed and aborted".
    fake.reset(op=COMPLETE, after_processing=True)
    data = payload(PART + 7)
    async with make_client(fake, delays, retry=Retry(attempts=1)) as client, deadline():
        result = await client.upload(BUCKET, "k", chunked(data), part_size=PART)
    assert_stored(fake, "k", data)
    assert result.etag == fake.object_etags["k"]


async def test_5xx_after_a_try_that_landed_is_confirmed(fake: FakeS3, client: S3Client) -> None:
    # Try 1 commits and its answer is lost; every retry then meets a 503 from a store
    # that no longer knows the upload well enough to say NoSuchUpload.
    fake.reset(op=COMPLETE, after_processing=True)
    fake.fail(op=COMPLETE, status=503, code="ServiceUnavailable")
    data = payload(PART + 3)
    async with deadline():
        result = await client.upload(BUCKET, "k", chunked(data), part_size=PART)
    assert [r.status for r in fake.requests_for(COMPLETE)] == [None, 503, 503]
    assert_stored(fake, "k", data)
    assert result.etag == fake.object_etags["k"]


async def test_complete_lost_before_commit_is_aborted_after_looking(
    fake: FakeS3, delays: list[float]
) -> None:
    fake.reset(op=COMPLETE, after_bytes=0)  # dropped before it was carried out
    async with make_client(fake, delays, retry=Retry(attempts=1)) as client:
        with pytest.raises(UploadError) as info:
            async with deadline():
                await client.upload(BUCKET, "k", chunked(payload(PART + 7)), part_size=PART)
    assert info.value.aborted is True
    assert fake.ops()[-2:] == [HEAD, ABORT]  # looked first, then aborted
    assert fake.requests_for(ABORT)[0].status == 204
    assert_nothing_left(fake, "k")


async def test_abort_no_such_upload_after_a_commit_is_success(
    fake: FakeS3, delays: list[float]
) -> None:
    # Complete committed, its answer was lost and the first HeadObject failed: the abort
    # then finds no upload, and a second look shows the object. That is a success.
    fake.reset(op=COMPLETE, after_processing=True)
    fake.fail(op=HEAD, times=1, status=500)
    data = payload(PART + 7)
    async with make_client(fake, delays, retry=Retry(attempts=1)) as client, deadline():
        result = await client.upload(BUCKET, "k", chunked(data), part_size=PART)
    assert fake.objects["k"] == data and fake.open_uploads == set()
    assert [r.status for r in fake.requests_for(ABORT)] == [404]
    assert result.etag == fake.object_etags["k"]


async def test_no_such_upload_on_abort_after_another_writer_is_not_success(
    fake: FakeS3, delays: list[float]
) -> None:
    # The upload vanished (aborted elsewhere) while Complete was in doubt and the key
    # holds another object: nothing of ours is stored, so it is a failure.
    fake.reset(op=COMPLETE, after_bytes=0)

    async def vanish() -> None:
        await fake.op_started[COMPLETE].wait()
        fake.uploads.clear()
        fake.objects["k"] = b"someone else's"
        fake.object_etags["k"] = md5_etag(b"someone else's")

    async with make_client(fake, delays, retry=Retry(attempts=1)) as client:
        watcher = asyncio.create_task(vanish())
        with pytest.raises(UploadError) as info:
            async with deadline():
                await client.upload(BUCKET, "k", chunked(payload(PART + 7)), part_size=PART)
        await watcher
    assert info.value.aborted is True  # nothing of ours stored, nothing left open
    assert fake.objects["k"] == b"someone else's"


# ------------------------------------------------------------ orphaned uploads


async def test_cancel_while_create_is_in_flight_aborts_what_it_made(
    fake: FakeS3, client: S3Client
) -> None:
    gate = fake.stall(op=CREATE, before_body=True)
    task = asyncio.create_task(
        client.upload(BUCKET, "k", chunked(payload(PART + 1)), part_size=PART))
    async with deadline():
        await gate.entered.wait()
        task.cancel()
        gate.release()  # the server goes on and creates the upload after the cancel
        with pytest.raises(asyncio.CancelledError):
            await task
    creates = fake.requests_for(CREATE)
    assert len(creates) == 1 and creates[0].status == 200
    aborts = fake.requests_for(ABORT)
    assert len(aborts) == 1 and aborts[0].status == 204
    assert aborts[0].upload_id in fake.aborted_uploads
    assert_nothing_left(fake, "k")


async def test_random_cancellations_leave_nothing_open(fake: FakeS3, client: S3Client) -> None:
    rng = random.Random(11)
    data = payload(3 * PART + 1)
    # How many loop turns a whole upload takes here, so that the random points below
    # span its whole life whatever the machine's speed.
    whole = asyncio.create_task(
        client.upload(BUCKET, "whole", chunked(data, 256 * 1024), part_size=PART))
    life = 0
    while not whole.done():
        await asyncio.sleep(0)
        life += 1
    await whole
    del fake.objects["whole"]
    for round_ in range(250):
        task = asyncio.create_task(
            client.upload(BUCKET, f"k{round_}", chunked(data, 256 * 1024), part_size=PART))
        # A random point in the upload's life: every other round early, where the Create
        # is in flight, otherwise anywhere up to a little past its usual end.
        turns = rng.randrange(0, 12) if round_ % 2 else rng.randrange(0, life * 5 // 4 + 1)
        for _ in range(turns):
            await asyncio.sleep(0)
        task.cancel()
        async with deadline():
            with contextlib.suppress(asyncio.CancelledError):
                await task
    assert fake.open_uploads == set()
    for key, stored in fake.objects.items():  # whatever completed is whole
        assert stored == data, key
    # The random points covered the whole life of an upload, the Create included.
    creates = fake.requests_for(CREATE)[1:]
    assert len(creates) + 1 == len(fake.aborted_uploads) + len(fake.completed_uploads)
    assert fake.aborted_uploads and fake.completed_uploads
    aborted_with_no_part = {r.upload_id for r in fake.requests_for(ABORT)} - {
        r.upload_id for r in fake.requests_for(PART_OP)}
    assert aborted_with_no_part, "no cancellation landed while the Create was in flight"


async def test_unreadable_create_answer_with_an_upload_id_is_aborted(
    fake: FakeS3, client: S3Client
) -> None:
    # The upload exists on the server (the request was carried out); its answer is cut off.
    fake.rewrite(op=CREATE, body=b"<InitiateMultipartUploadResult><Bucket>bucket</Bucket>"
                 b"<UploadId>fake-upload.1_x~y-z</UploadId><Key>k")
    with pytest.raises(UploadError) as info:
        async with deadline():
            await client.upload(BUCKET, "k", chunked(payload(PART + 1)), part_size=PART)
    assert info.value.aborted is True
    assert info.value.upload_id == "fake-upload.1_x~y-z"
    assert isinstance(info.value.__cause__, S3ResponseError)
    assert info.value.__cause__.code == "MalformedResponse"
    assert [r.upload_id for r in fake.requests_for(ABORT)] == ["fake-upload.1_x~y-z"]
    assert_nothing_left(fake, "k")


# ---------------------------------------------------------------------- outages


async def _outage(fake: FakeS3, seconds: float) -> None:
    await fake.go_down()
    await asyncio.sleep(seconds)  # the outage itself, not synchronisation
    await fake.come_back()


async def test_default_retry_rides_out_a_5_s_outage_during_parts(fake: FakeS3) -> None:
    gate = fake.stall(op=PART_OP, part=2, times=1)
    data = payload(4 * PART + 99, seed=3)
    async with S3Client(endpoint=fake.endpoint, region="us-east-1",
                        credentials=Credentials("AK", "SK")) as client:  # default Retry
        task = asyncio.create_task(
            client.upload(BUCKET, "k", chunked(data), part_size=PART, concurrency=2))
        async with asyncio.timeout(60):
            await gate.entered.wait()
            outage = asyncio.create_task(_outage(fake, 5.0))
            gate.release()
            result = await task
            await outage
    assert result.part_count == 5
    assert_stored(fake, "k", data)
    # Part 2 was cut off by the outage (the server finished it, but its answer was lost),
    # and sent again once the server was back.
    assert len(fake.requests_for(PART_OP, 2)) >= 2


async def test_abort_rides_out_an_outage(fake: FakeS3) -> None:
    class SourceFailed(Exception):
        pass

    gate = fake.stall(op=ABORT, before_body=True, times=1)
    fake.reset(op=ABORT, times=1)  # that first abort is lost in the outage, not carried out

    async def source() -> AsyncIterator[bytes]:
        yield payload(PART + 1)
        raise SourceFailed

    async with S3Client(endpoint=fake.endpoint, region="us-east-1",
                        credentials=Credentials("AK", "SK"), abort_timeout=30) as client:
        task = asyncio.create_task(client.upload(BUCKET, "k", source(), part_size=PART))
        async with asyncio.timeout(60):
            await gate.entered.wait()
            outage = asyncio.create_task(_outage(fake, 3.0))
            gate.release()
            with pytest.raises(SourceFailed) as info:
                await task
            await outage
    assert not getattr(info.value, "__notes__", [])  # the abort did not fail
    statuses = [r.status for r in fake.requests_for(ABORT)]
    assert statuses[0] is None and statuses[-1] == 204
    assert_nothing_left(fake, "k")


async def test_retry_budget_bounds_a_part(fake: FakeS3) -> None:
    fake.fail(op=PART_OP, status=503, code="SlowDown")
    retry = Retry(attempts=1000, base=0.05, cap=0.05, budget=0.5)
    async with S3Client(endpoint=fake.endpoint, region="us-east-1",
                        credentials=Credentials("AK", "SK"), retry=retry) as client:
        with pytest.raises(UploadError) as info:
            async with deadline():
                await client.upload(BUCKET, "k", chunked(payload(PART + 1)), part_size=PART)
    assert info.value.aborted is True
    tries = len(fake.requests_for(PART_OP, 1))
    assert 2 <= tries < 100  # the budget, not the 1000 attempts, ended it
    assert_nothing_left(fake, "k")


async def test_conditional_request_conflict_is_retried(fake: FakeS3, client: S3Client) -> None:
    fake.fail(op=COMPLETE, times=1, status=409, code="ConditionalRequestConflict")
    data = payload(PART + 1)
    async with deadline():
        await client.upload(BUCKET, "k", chunked(data), part_size=PART, if_none_match="*")
    assert [r.status for r in fake.requests_for(COMPLETE)] == [409, 200]
    assert_stored(fake, "k", data)


# -------------------------------------------------------------------- checksums


@pytest.mark.parametrize("reject_with", [(400, "InvalidArgument"), (501, "NotImplemented")])
async def test_store_refusing_checksums_gets_none_and_it_is_remembered(
    fake: FakeS3, client: S3Client, reject_with: tuple[int, str],
    caplog: pytest.LogCaptureFixture,
) -> None:
    fake.checksums, fake.reject_with = "reject", reject_with
    caplog.set_level(logging.WARNING, logger="s3stream")
    data = payload(2 * PART + 1)
    async with deadline():
        first = await client.upload(BUCKET, "a", chunked(data), part_size=PART)
        second = await client.upload(BUCKET, "b", chunked(data), part_size=PART)
        small = await client.upload(BUCKET, "c", b"tiny")
    assert fake.objects["a"] == data and fake.objects["b"] == data
    assert fake.objects["c"] == b"tiny"
    for result in (first, second, small):
        assert result.checksum is None and not result.checksum_confirmed
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1 and "refused" in warnings[0].getMessage()
    refused = [r for r in fake.requests if r.status == reject_with[0]]
    assert len(refused) == 2  # Create at FULL_OBJECT, then as COMPOSITE; then never again
    assert all(r.op == CREATE for r in refused)
    assert fake.open_uploads == set()


async def test_explicit_checksum_stays_strict(fake: FakeS3, delays: list[float]) -> None:
    fake.checksums = "reject"
    async with make_client(fake, delays, checksum="crc32c") as client:
        with pytest.raises(S3ResponseError) as info:
            async with deadline():
                await client.upload(BUCKET, "k", chunked(payload(PART + 1)), part_size=PART)
        assert info.value.code == "InvalidArgument"
        with pytest.raises(S3ResponseError):
            await client.upload(BUCKET, "p", b"small")  # PutObject: strict too
    assert_nothing_left(fake, "k")


async def test_store_refusing_full_object_gets_composite(fake: FakeS3, client: S3Client) -> None:
    fake.checksums = "reject-full-object"
    data = payload(2 * PART + 1)
    async with deadline():
        result = await client.upload(BUCKET, "k", chunked(data), part_size=PART)
    assert_stored(fake, "k", data)
    assert result.checksum_type == "COMPOSITE" and result.checksum_confirmed
    assert result.checksum == fake.object_checksums["k"]["crc32c"]
    assert result.checksum is not None and result.checksum.endswith("-3")


async def test_store_ignoring_checksums_is_reported_unconfirmed(
    fake: FakeS3, client: S3Client
) -> None:
    fake.checksums = "ignore"
    data = payload(PART + 1)
    async with deadline():
        multi = await client.upload(BUCKET, "k", chunked(data), part_size=PART)
        single = await client.upload(BUCKET, "s", b"small object")
    assert fake.objects["k"] == data and fake.objects["s"] == b"small object"
    assert multi.checksum is not None and not multi.checksum_confirmed
    assert single.checksum is not None and not single.checksum_confirmed


async def test_verifying_store_confirms_checksums(fake: FakeS3, client: S3Client) -> None:
    async with deadline():
        multi = await client.upload(BUCKET, "k", chunked(payload(PART + 1)), part_size=PART)
        single = await client.upload(BUCKET, "s", b"small object")
    assert multi.checksum_confirmed and multi.checksum_type == "FULL_OBJECT"
    assert single.checksum_confirmed
