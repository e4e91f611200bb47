"""Failure paths of S3Client.upload() / open_upload() against a fault-injecting fake S3.

Every test checks the outcome (a byte-exact object, or the specific typed error) and
that no multipart upload is left open; failures also check that no object was
written. No test sleeps: backoff goes to a recording no-op ``sleep`` and tests
synchronise on the fake's events (a part arrived, a stall was entered).
"""

from __future__ import annotations

import asyncio
import hashlib
import random
import re
import xml.etree.ElementTree as ET
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import unquote

import aiohttp
import pytest
from conftest import make_client
from fake_s3 import EMPTY_SHA256, FakeS3, Recorded, md5_etag, s3_encode
from yarl import URL

from s3stream import (
    Credentials,
    Retry,
    S3Client,
    S3ResponseError,
    TransportError,
    UploadError,
    UsageError,
)
from s3stream._sigv4 import sign_headers

MiB = 1 << 20
GiB = 1 << 30
PART = 5 * MiB
BUCKET = "bucket"
#: Upper bound for anything that awaits the network or an event: a hang fails fast.
DEADLINE = 15

CREATE = "CreateMultipartUpload"
PART_OP = "UploadPart"
COMPLETE = "CompleteMultipartUpload"
ABORT = "AbortMultipartUpload"
PUT = "PutObject"

#: What Retry(attempts=3) waits with rand() == 0.5: 0.5 * 0.1 * 2 ** (n - 1).
BACKOFF = [0.05, 0.1]


# ---------------------------------------------------------------------------- helpers


def payload(size: int, seed: int = 0) -> bytes:
    """Deterministic bytes without repeating blocks (so a misplaced part shows)."""
    return random.Random(seed).randbytes(size)


async def chunked(data: bytes, size: int = MiB) -> AsyncIterator[bytes]:
    for start in range(0, len(data), size):
        yield data[start : start + size]


class Interrupt(BaseException):
    """Like KeyboardInterrupt, but safe to raise inside an asyncio test."""


def deadline() -> asyncio.Timeout:
    return asyncio.timeout(DEADLINE)


def assert_nothing_left(fake: FakeS3, key: str | None = None) -> None:
    """No multipart upload open and (for a failure) no object written."""
    assert fake.open_uploads == set()
    if key is not None:
        assert key not in fake.objects
        assert fake.objects == {}


def assert_aborted_once(fake: FakeS3, upload_id: str | None = None) -> Recorded:
    aborts = fake.requests_for(ABORT)
    assert len(aborts) == 1, fake.ops()
    assert aborts[0].status == 204
    if upload_id is not None:
        assert aborts[0].upload_id == upload_id
    assert all(r.outcome != "ok" for r in fake.requests_for(COMPLETE))  # never completed
    return aborts[0]


def only_upload_id(fake: FakeS3) -> str:
    creates = fake.requests_for(CREATE)
    assert len(creates) == 1
    ids = {r.upload_id for r in fake.requests if r.upload_id}
    assert len(ids) == 1, ids
    return ids.pop()


def assert_aborted_or_untouched(fake: FakeS3, key: str, sent_a_part: bool) -> None:
    """After a failure: the upload aborted if a part went out, else not one request sent."""
    if sent_a_part:
        assert_aborted_once(fake, only_upload_id(fake))
    else:
        assert fake.requests == []
    assert_nothing_left(fake, key)


def complete_part_list(rec: Recorded) -> list[tuple[int, str]]:
    assert rec.body is not None
    root = ET.fromstring(rec.body)
    assert root.tag.rpartition("}")[2] == "CompleteMultipartUpload"
    out = []
    for part in root:
        fields = {child.tag.rpartition("}")[2]: child.text for child in part}
        out.append((int(fields["PartNumber"] or 0), fields["ETag"] or ""))
    return out


def part_slices(data: bytes, size: int = PART) -> Iterator[bytes]:
    for start in range(0, len(data), size):
        yield data[start : start + size]


def check_signed(rec: Recorded) -> None:
    """Signed over the wire form, with the body's SHA-256 (plain http signs payloads)."""
    assert rec.headers["Authorization"].startswith("AWS4-HMAC-SHA256 Credential=AK/")
    assert re.fullmatch(r"\d{8}T\d{6}Z", rec.headers["x-amz-date"])
    assert rec.headers["x-amz-content-sha256"] == rec.body_sha256
    assert rec.signature_ok is True


# ------------------------------------------------------------------ the fake itself


async def test_fake_keeps_the_raw_request_target() -> None:
    """aiohttp's server must not normalise: the key comes from the raw request line."""
    async with FakeS3(verify_signatures=False) as fake:
        host, port = fake.endpoint.removeprefix("http://").split(":")
        for target in ("/bucket/a/../b", "/bucket/a//b", "/bucket/a/./b", "/bucket/%2E%2E/c%2Fd"):
            reader, writer = await asyncio.open_connection(host, int(port))
            writer.write(f"PUT {target} HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n"
                         "Connection: close\r\n\r\nhi".encode())
            await writer.drain()
            assert (await reader.read()).startswith(b"HTTP/1.1 200")
            writer.close()
            await writer.wait_closed()
        assert [r.raw_path for r in fake.requests] == [
            "/bucket/a/../b", "/bucket/a//b", "/bucket/a/./b", "/bucket/%2E%2E/c%2Fd"]
        assert set(fake.objects) == {"a/../b", "a//b", "a/./b", "../c/d"}


async def test_fake_rejects_a_signature_over_another_path(fake: FakeS3) -> None:
    """The fake's SigV4 check is real: signing ``/a/b`` but sending ``/a/../b`` fails."""
    host = fake.endpoint.removeprefix("http://")

    async def put(signed_path: str, sent_path: str) -> tuple[int, bytes]:
        headers = [("Host", host)]
        headers += sign_headers(
            method="PUT", raw_path=signed_path, query=(), headers=headers,
            payload_hash=hashlib.sha256(b"x").hexdigest(), credentials=Credentials("AK", "SK"),
            region="us-east-1", now=datetime.now(UTC),
        ).items()
        async with aiohttp.ClientSession() as session, session.put(
            URL(fake.endpoint + sent_path, encoded=True), headers=headers, data=b"x",
        ) as resp:
            return resp.status, await resp.read()

    assert (await put("/bucket/a/b", "/bucket/a/b"))[0] == 200
    status, body = await put("/bucket/a/b", "/bucket/a/../b")
    assert status == 403
    assert b"SignatureDoesNotMatch" in body
    assert fake.objects == {"a/b": b"x"}


# -------------------------------------------------------------------- request shapes


async def test_multipart_request_shapes(fake: FakeS3, client: S3Client,
                                        delays: list[float]) -> None:
    data = payload(12 * MiB)
    async with deadline():
        result = await client.upload(BUCKET, "shapes/obj", chunked(data), part_size=PART)

    assert fake.objects == {"shapes/obj": data}
    assert fake.open_uploads == set()
    assert fake.ops() == [CREATE, PART_OP, PART_OP, PART_OP, COMPLETE]
    upload_id = only_upload_id(fake)
    assert (result.size, result.part_count, result.upload_id) == (len(data), 3, upload_id)

    create = fake.requests_for(CREATE)[0]
    assert create.method == "POST"
    assert create.raw_query == "uploads"  # bare on the wire, not "uploads="
    assert create.path == "/bucket/shapes/obj"

    parts = sorted(fake.requests_for(PART_OP), key=lambda r: r.part or 0)
    expected_slices = list(part_slices(data))
    assert [r.part for r in parts] == [1, 2, 3]
    for rec, body in zip(parts, expected_slices, strict=True):
        assert rec.method == "PUT"
        assert rec.query_dict() == {"partNumber": str(rec.part), "uploadId": upload_id}
        assert rec.body_size == len(body)
        assert rec.body_sha256 == hashlib.sha256(body).hexdigest()
        assert rec.headers["Content-Length"] == str(len(body))
        assert "Transfer-Encoding" not in rec.headers

    complete = fake.requests_for(COMPLETE)[0]
    assert complete.method == "POST"
    assert complete.query == [("uploadId", upload_id)]
    assert complete_part_list(complete) == [
        (n, md5_etag(body)) for n, body in enumerate(expected_slices, 1)]
    joined = b"".join(hashlib.md5(b).digest() for b in expected_slices)
    assert result.etag == f'"{hashlib.md5(joined).hexdigest()}-3"'
    assert result.etag == fake.object_etags["shapes/obj"]

    for rec in fake.requests:
        check_signed(rec)
    assert delays == []


@pytest.mark.parametrize("size", [1, 3 * MiB + 7, PART])
async def test_up_to_one_part_is_a_single_put(fake: FakeS3, client: S3Client, size: int) -> None:
    data = payload(size)
    async with deadline():
        result = await client.upload(BUCKET, "small", chunked(data), part_size=PART)
    assert fake.objects == {"small": data}
    assert fake.ops() == [PUT]
    (put,) = fake.requests
    check_signed(put)
    assert put.headers["x-amz-content-sha256"] == hashlib.sha256(data).hexdigest()
    assert put.headers["Content-Length"] == str(size)
    assert (result.size, result.part_count, result.upload_id) == (size, 1, None)
    assert result.etag == md5_etag(data)
    assert fake.open_uploads == set()


async def test_one_byte_past_a_part_goes_multipart(fake: FakeS3, client: S3Client) -> None:
    data = payload(PART + 1)
    async with deadline():
        result = await client.upload(BUCKET, "edge", data, part_size=PART)
    assert fake.objects == {"edge": data}
    assert fake.ops() == [CREATE, PART_OP, PART_OP, COMPLETE]
    parts = sorted(fake.requests_for(PART_OP), key=lambda r: r.part or 0)
    assert [(r.part, r.body_size) for r in parts] == [(1, PART), (2, 1)]
    assert result.part_count == 2
    assert fake.open_uploads == set()


@pytest.mark.parametrize("source", ["generator", "empty-chunks", "bytes"])
async def test_empty_source_is_a_zero_byte_put(fake: FakeS3, client: S3Client,
                                               source: str) -> None:
    async def nothing() -> AsyncIterator[bytes]:
        if source == "empty-chunks":
            yield b""
            yield bytearray()

    src: Any = b"" if source == "bytes" else nothing()
    async with deadline():
        result = await client.upload(BUCKET, "empty", src)
    assert fake.objects == {"empty": b""}
    assert fake.ops() == [PUT]
    (put,) = fake.requests
    check_signed(put)
    assert put.body_size == 0
    assert put.headers["x-amz-content-sha256"] == EMPTY_SHA256
    assert put.headers["Content-Length"] == "0"
    assert (result.size, result.part_count) == (0, 0)
    assert fake.open_uploads == set()


# ----------------------------------------------------------------------- concurrency


async def test_concurrency_bound_and_no_read_ahead(fake: FakeS3, client: S3Client) -> None:
    data = payload(6 * PART)
    yielded = 0

    async def source() -> AsyncIterator[bytes]:
        nonlocal yielded
        for chunk in part_slices(data, MiB):
            yielded += 1
            yield chunk

    gate = fake.stall(op=PART_OP)
    task = asyncio.create_task(
        client.upload(BUCKET, "conc", source(), part_size=PART, concurrency=2))
    async with deadline():
        await fake.part_started[1].wait()
        await fake.part_started[2].wait()
    for _ in range(50):  # let anything that could still run, run
        await asyncio.sleep(0)

    assert fake.in_flight[PART_OP] == 2
    assert not fake.part_started[3].is_set()
    # Two parts in flight, the third cut and waiting for a slot, plus the one chunk
    # that proved the third was complete: (concurrency + 1) parts + 1 chunk at most.
    assert yielded * MiB <= 3 * PART + MiB, yielded
    assert yielded * MiB > 2 * PART  # and it did fill the second part

    gate.release()
    async with deadline():
        result = await task
    assert fake.objects == {"conc": data}
    assert result.part_count == 6
    assert fake.max_in_flight == 2
    assert sorted(fake.part_counts().items()) == [(n, 1) for n in range(1, 7)]
    assert fake.open_uploads == set()


async def test_write_waits_for_a_free_slot(fake: FakeS3, client: S3Client) -> None:
    """open_upload(): write() blocks while `concurrency` parts are in flight."""
    data = payload(4 * PART + 1)
    gate = fake.stall(op=PART_OP)
    written = 0

    async with deadline(), client.open_upload(BUCKET, "push", part_size=PART,
                                              concurrency=2) as up:
        async def producer() -> None:
            nonlocal written
            for chunk in part_slices(data, MiB):
                await up.write(chunk)
                written += 1

        task = asyncio.create_task(producer())
        # Both parts must have reached the server (they may arrive in either order).
        await fake.part_started[1].wait()
        await fake.part_started[2].wait()
        for _ in range(50):
            await asyncio.sleep(0)
        assert up.parts_in_flight == 2
        assert not task.done()
        assert written * MiB <= 3 * PART  # the write that cut part 3 is the one waiting
        gate.release()
        await task
    assert fake.objects == {"push": data}
    assert fake.max_in_flight == 2
    assert fake.open_uploads == set()


# ----------------------------------------------------------------------- exact keys

LONG_KEY = "long/" + "ж" * 509 + "x"
KEYS = [
    "a/./b", "a/../b", "a//b", "x y+z%~=&()':@$", "ключ/файл ☃", LONG_KEY,
    "/leading", "trailing/", "a/%2F/b", "q?h#[]!*,;",
]


def test_long_key_is_1024_bytes() -> None:
    assert len(LONG_KEY.encode()) == 1024


@pytest.mark.parametrize("size", [10, PART + 1], ids=["put", "multipart"])
@pytest.mark.parametrize("key", KEYS, ids=range(len(KEYS)))
async def test_key_is_sent_exactly(fake: FakeS3, client: S3Client, key: str, size: int) -> None:
    data = payload(size)
    async with deadline():
        await client.upload(BUCKET, key, data, part_size=PART)
    assert fake.objects == {key: data}
    assert fake.open_uploads == set()
    for rec in fake.requests:
        assert unquote(rec.path) == f"/{BUCKET}/{key}"  # nothing normalised away
        assert rec.path == f"/{BUCKET}/{s3_encode(key)}"  # each byte encoded exactly once
        assert rec.key == key
        check_signed(rec)


# ------------------------------------------------------------------- part failures


async def test_part_403_aborts_and_cancels_the_rest(fake: FakeS3, client: S3Client,
                                                    delays: list[float]) -> None:
    fake.fail(op=PART_OP, part=1, status=403, code="AccessDenied")
    fake.stall(op=PART_OP, part=2)  # in flight when part 1 fails: must be cancelled
    data = payload(6 * PART)
    with pytest.raises(UploadError) as info:
        async with deadline():
            await client.upload(BUCKET, "denied", data, part_size=PART, concurrency=2)

    err = info.value
    upload_id = only_upload_id(fake)
    assert err.aborted is True
    assert err.upload_id == upload_id
    assert (err.bucket, err.key) == (BUCKET, "denied")
    cause = err.__cause__
    assert isinstance(cause, S3ResponseError)
    assert (cause.status, cause.code, cause.operation) == (403, "AccessDenied", PART_OP)
    assert_aborted_once(fake, upload_id)
    assert fake.part_counts()[1] == 1  # a 403 is never retried
    assert set(fake.part_counts()) <= {1, 2}  # parts 3..6 were never sent
    assert fake.requests_for(COMPLETE) == []
    assert delays == []
    assert_nothing_left(fake, "denied")


async def test_slowdown_retries_only_that_part(fake: FakeS3, delays: list[float]) -> None:
    ticks = iter(range(1000))

    def clock() -> datetime:  # one second later at every signing
        return datetime(2024, 1, 1, tzinfo=UTC) + timedelta(seconds=next(ticks))

    fake.fail(op=PART_OP, part=2, times=2, status=503, code="SlowDown")
    data = payload(12 * MiB)
    async with make_client(fake, delays, clock=clock) as client, deadline():
        result = await client.upload(BUCKET, "slow", chunked(data), part_size=PART)

    assert fake.objects == {"slow": data}
    assert result.part_count == 3
    assert dict(fake.part_counts()) == {1: 1, 2: 3, 3: 1}  # not the whole object again
    assert len(fake.requests_for(CREATE)) == len(fake.requests_for(COMPLETE)) == 1
    assert delays == pytest.approx(BACKOFF)
    assert delays == pytest.approx([Retry(attempts=3).delay(n, 0.5) for n in (1, 2)])
    tries = fake.requests_for(PART_OP, part=2)
    assert [r.status for r in tries] == [503, 503, 200]
    assert len({r.headers["x-amz-date"] for r in tries}) == 3  # re-signed every try
    for rec in tries:
        assert rec.body_sha256 == hashlib.sha256(data[PART : 2 * PART]).hexdigest()
    assert fake.open_uploads == set()


async def test_retry_after_is_honoured(fake: FakeS3, client: S3Client,
                                       delays: list[float]) -> None:
    fake.fail(op=PART_OP, part=1, times=1, status=503, code="SlowDown",
              headers={"Retry-After": "3"})
    data = payload(PART + 10)
    async with deadline():
        await client.upload(BUCKET, "later", data, part_size=PART)
    assert fake.objects == {"later": data}
    assert delays == [3.0]
    assert fake.open_uploads == set()


async def test_part_503_until_attempts_run_out(fake: FakeS3, client: S3Client,
                                               delays: list[float]) -> None:
    fake.fail(op=PART_OP, part=2, status=503, code="SlowDown")
    with pytest.raises(UploadError) as info:
        async with deadline():
            await client.upload(BUCKET, "busy", payload(12 * MiB), part_size=PART)
    assert info.value.aborted is True
    assert isinstance(info.value.__cause__, S3ResponseError)
    assert info.value.__cause__.code == "SlowDown"
    assert fake.part_counts()[2] == 3
    assert delays == pytest.approx(BACKOFF)
    assert_aborted_once(fake, only_upload_id(fake))
    assert_nothing_left(fake, "busy")


async def test_part_without_etag_is_malformed(fake: FakeS3, client: S3Client) -> None:
    fake.garbage(op=PART_OP, part=2, body=b"")  # 200 OK, but no ETag header
    with pytest.raises(UploadError) as info:
        async with deadline():
            await client.upload(BUCKET, "noetag", payload(12 * MiB), part_size=PART)
    assert info.value.aborted is True
    assert isinstance(info.value.__cause__, S3ResponseError)
    assert info.value.__cause__.code == "MalformedResponse"
    assert_aborted_once(fake)
    assert_nothing_left(fake, "noetag")


# ------------------------------------------------------------------ Complete failures


@pytest.mark.parametrize("status", [500, 200], ids=["500", "200+Error"])
async def test_complete_internal_error_once_is_retried(fake: FakeS3, client: S3Client,
                                                       delays: list[float],
                                                       status: int) -> None:
    fake.fail(op=COMPLETE, times=1, status=status, code="InternalError")
    data = payload(12 * MiB)
    async with deadline():
        result = await client.upload(BUCKET, "done", data, part_size=PART)
    assert fake.objects == {"done": data}
    assert result.part_count == 3
    assert [r.status for r in fake.requests_for(COMPLETE)] == [status, 200]
    assert complete_part_list(fake.requests_for(COMPLETE)[0]) == \
        complete_part_list(fake.requests_for(COMPLETE)[1])
    assert delays == pytest.approx(BACKOFF[:1])
    assert fake.requests_for(ABORT) == []
    assert fake.open_uploads == set()


async def test_complete_200_error_not_retryable(fake: FakeS3, client: S3Client,
                                                delays: list[float]) -> None:
    fake.fail(op=COMPLETE, status=200, code="AccessDenied")
    with pytest.raises(UploadError) as info:
        async with deadline():
            await client.upload(BUCKET, "nope", payload(12 * MiB), part_size=PART)
    upload_id = only_upload_id(fake)
    assert info.value.aborted is True
    assert info.value.upload_id == upload_id
    cause = info.value.__cause__
    assert isinstance(cause, S3ResponseError)
    assert (cause.status, cause.code, cause.operation) == (200, "AccessDenied", COMPLETE)
    assert len(fake.requests_for(COMPLETE)) == 1
    assert delays == []
    assert_aborted_once(fake, upload_id)
    assert_nothing_left(fake, "nope")


async def test_complete_200_error_every_time(fake: FakeS3, client: S3Client,
                                             delays: list[float]) -> None:
    fake.fail(op=COMPLETE, status=200, code="InternalError")
    with pytest.raises(UploadError) as info:
        async with deadline():
            await client.upload(BUCKET, "flaky", payload(12 * MiB), part_size=PART)
    assert info.value.aborted is True
    assert isinstance(info.value.__cause__, S3ResponseError)
    assert info.value.__cause__.code == "InternalError"
    assert len(fake.requests_for(COMPLETE)) == 3
    assert delays == pytest.approx(BACKOFF)
    assert_aborted_once(fake)
    assert_nothing_left(fake, "flaky")


# -------------------------------------------------------------------- source failures


async def test_source_error_before_the_first_part(fake: FakeS3, client: S3Client) -> None:
    boom = RuntimeError("boom")

    async def source() -> AsyncIterator[bytes]:
        yield payload(MiB)
        raise boom

    with pytest.raises(RuntimeError) as info:
        async with deadline():
            await client.upload(BUCKET, "early", source(), part_size=PART)
    assert info.value is boom
    assert fake.requests == []  # not even CreateMultipartUpload
    assert_nothing_left(fake, "early")


async def test_source_error_with_parts_in_flight(fake: FakeS3, client: S3Client) -> None:
    boom = RuntimeError("boom")
    gate = fake.stall(op=PART_OP)

    async def source() -> AsyncIterator[bytes]:
        async for chunk in chunked(payload(11 * MiB)):
            yield chunk
        await gate.entered.wait()  # parts 1 and 2 are being sent
        raise boom

    with pytest.raises(RuntimeError) as info:
        async with deadline():
            await client.upload(BUCKET, "late", source(), part_size=PART)
    assert info.value is boom
    assert getattr(boom, "__notes__", []) == []  # the abort worked: nothing to add
    assert_aborted_once(fake, only_upload_id(fake))
    assert fake.requests_for(COMPLETE) == []
    assert_nothing_left(fake, "late")


@pytest.mark.parametrize("first", [0, 6 * MiB], ids=["str-first", "str-after-a-part"])
async def test_source_yields_str(fake: FakeS3, client: S3Client, first: int) -> None:
    async def source() -> AsyncIterator[Any]:
        if first:
            yield payload(first)
        yield "text"

    with pytest.raises(TypeError, match="str"):
        async with deadline():
            await client.upload(BUCKET, "typed", source(), part_size=PART)
    assert_aborted_or_untouched(fake, "typed", sent_a_part=bool(first))


# ----------------------------------------------------------------------- cancellation


async def test_cancel_while_a_part_is_in_flight(fake: FakeS3, client: S3Client) -> None:
    gate = fake.stall(op=PART_OP, part=2)
    task = asyncio.create_task(
        client.upload(BUCKET, "cancel-part", payload(12 * MiB), part_size=PART))
    async with deadline():
        await fake.part_started[2].wait()
        await gate.entered.wait()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        async with deadline():
            await task
    assert task.cancelled()
    assert_aborted_once(fake, only_upload_id(fake))
    assert fake.requests_for(COMPLETE) == []
    assert_nothing_left(fake, "cancel-part")


@pytest.mark.parametrize("after", [0, 6 * MiB], ids=["nothing-sent", "after-a-part"])
async def test_cancel_while_reading_the_source(fake: FakeS3, client: S3Client,
                                               after: int) -> None:
    reading = asyncio.Event()
    never = asyncio.Event()

    async def source() -> AsyncIterator[bytes]:
        if after:
            yield payload(after)
        reading.set()
        await never.wait()
        yield b"unreachable"

    task = asyncio.create_task(client.upload(BUCKET, "cancel-src", source(), part_size=PART))
    async with deadline():
        await reading.wait()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        async with deadline():
            await task
    assert_aborted_or_untouched(fake, "cancel-src", sent_a_part=bool(after))


async def test_cancel_during_complete(fake: FakeS3, client: S3Client) -> None:
    gate = fake.stall(op=COMPLETE, before_body=True)
    task = asyncio.create_task(
        client.upload(BUCKET, "cancel-done", payload(12 * MiB), part_size=PART))
    async with deadline():
        await gate.entered.wait()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        async with deadline():
            await task
    upload_id = only_upload_id(fake)
    assert_aborted_once(fake, upload_id)
    assert_nothing_left(fake, "cancel-done")
    # The Complete the server was still holding can no longer create the object.
    gate.release()
    (complete,) = fake.requests_for(COMPLETE)
    async with deadline():
        await complete.done.wait()
    assert complete.outcome in ("error:NoSuchUpload", "client-gone")
    assert_nothing_left(fake, "cancel-done")


async def test_second_cancel_does_not_stop_the_abort(fake: FakeS3, client: S3Client) -> None:
    fake.stall(op=PART_OP, part=2)
    abort_gate = fake.stall(op=ABORT, before_body=True)
    task = asyncio.create_task(
        client.upload(BUCKET, "twice", payload(12 * MiB), part_size=PART))
    async with deadline():
        await fake.part_started[2].wait()
    task.cancel()
    async with deadline():
        await abort_gate.entered.wait()
    task.cancel()  # while the abort is in progress: cleanup is shielded
    for _ in range(20):
        await asyncio.sleep(0)
    assert not task.done()
    abort_gate.release()
    with pytest.raises(asyncio.CancelledError):
        async with deadline():
            await task
    assert_aborted_once(fake, only_upload_id(fake))
    assert_nothing_left(fake, "twice")


# ------------------------------------------------------------------------ open_upload


async def test_open_upload_clean_exit_completes(fake: FakeS3, client: S3Client) -> None:
    data = payload(12 * MiB + 3)
    async with deadline(), client.open_upload(BUCKET, "pushed", part_size=PART) as up:
        for chunk in part_slices(data, 3 * MiB):
            await up.write(chunk)
    assert up.result is not None
    assert (up.result.size, up.result.part_count) == (len(data), 3)
    assert fake.objects == {"pushed": data}
    assert fake.ops()[-1] == COMPLETE
    assert fake.open_uploads == set()


@pytest.mark.parametrize("exc_type", [KeyError, Interrupt])
@pytest.mark.parametrize("written", [MiB, 6 * MiB], ids=["no-part", "a-part"])
async def test_open_upload_exception_aborts(fake: FakeS3, client: S3Client,
                                            exc_type: type[BaseException], written: int) -> None:
    err = exc_type("inside the block")
    with pytest.raises(exc_type) as info:
        async with deadline(), client.open_upload(BUCKET, "block", part_size=PART) as up:
            await up.write(payload(written))
            raise err
    assert info.value is err
    assert_aborted_or_untouched(fake, "block", sent_a_part=written > PART)


async def test_open_upload_swallowed_failure_never_completes(fake: FakeS3,
                                                             client: S3Client) -> None:
    fake.fail(op=CREATE, status=403, code="AccessDenied")
    data = payload(6 * MiB)
    with pytest.raises(Exception) as info:  # noqa: PT011 - any error, as long as one is raised
        async with deadline(), client.open_upload(BUCKET, "swallowed", part_size=PART) as up:
            with pytest.raises(S3ResponseError):
                await up.write(data)
    assert not isinstance(info.value, AssertionError)
    assert fake.requests_for(PUT) == []
    assert_nothing_left(fake, "swallowed")


# --------------------------------------------------------------------- connection resets


async def test_reset_mid_part_is_retried(fake: FakeS3, client: S3Client) -> None:
    fake.reset(op=PART_OP, part=2, after_bytes=1000, times=1)
    data = payload(12 * MiB)
    async with deadline():
        await client.upload(BUCKET, "reset", data, part_size=PART)
    assert fake.objects == {"reset": data}
    tries = fake.requests_for(PART_OP, part=2)
    assert [r.outcome for r in tries] == ["reset", "ok"]
    assert 1000 <= tries[0].body_size < PART
    assert dict(fake.part_counts()) == {1: 1, 2: 2, 3: 1}
    assert fake.open_uploads == set()


async def test_repeated_resets_are_retried_by_policy(fake: FakeS3, client: S3Client,
                                                     delays: list[float]) -> None:
    fake.reset(op=PART_OP, part=2, after_bytes=1000, times=2)
    data = payload(12 * MiB)
    async with deadline():
        await client.upload(BUCKET, "resets", data, part_size=PART)
    assert fake.objects == {"resets": data}
    assert [r.outcome for r in fake.requests_for(PART_OP, part=2)] == ["reset", "reset", "ok"]
    assert delays  # s3stream's own retry (with backoff) took part
    assert delays == pytest.approx(BACKOFF[: len(delays)])
    assert fake.open_uploads == set()


async def test_reset_without_retries_fails(fake: FakeS3, delays: list[float]) -> None:
    fake.reset(op=PART_OP, part=2, after_bytes=1000, times=None)
    async with make_client(fake, delays, retry=Retry(attempts=1)) as client:
        with pytest.raises(UploadError) as info:
            async with deadline():
                await client.upload(BUCKET, "dropped", payload(12 * MiB), part_size=PART)
    assert info.value.aborted is True
    assert isinstance(info.value.__cause__, TransportError)
    assert info.value.__cause__.operation == PART_OP
    assert delays == []
    assert_aborted_once(fake, only_upload_id(fake))
    assert_nothing_left(fake, "dropped")


async def test_attempts_1_means_one_try_on_reset(fake: FakeS3, delays: list[float]) -> None:
    """aiohttp resends idempotent requests once after a reset unless told not to."""
    fake.reset(op=PART_OP, part=2, after_bytes=1000, times=1)
    async with make_client(fake, delays, retry=Retry(attempts=1)) as client:
        with pytest.raises(UploadError) as info:
            async with deadline():
                await client.upload(BUCKET, "once", payload(12 * MiB), part_size=PART)
    assert isinstance(info.value.__cause__, TransportError)
    assert fake.part_counts()[2] == 1
    assert_aborted_once(fake, only_upload_id(fake))
    assert_nothing_left(fake, "once")


@pytest.mark.parametrize("size", [
    pytest.param(0, id="empty"),
    pytest.param(10, id="small"),
])
async def test_attempts_1_means_one_put_on_reset(fake: FakeS3, delays: list[float],
                                                 size: int) -> None:
    fake.reset(op=PUT, times=1)
    async with make_client(fake, delays, retry=Retry(attempts=1)) as client:
        with pytest.raises(TransportError) as info:
            async with deadline():
                await client.upload(BUCKET, "one-put", payload(size))
    assert info.value.operation == PUT
    assert len(fake.requests_for(PUT)) == 1
    assert_nothing_left(fake, "one-put")


async def test_lost_complete_answer_is_confirmed(fake: FakeS3, client: S3Client,
                                                 delays: list[float]) -> None:
    """S3 completed the upload but the answer was lost: the retry gets NoSuchUpload,
    and a HeadObject confirms the object instead of reporting a failure."""
    fake.reset(op=COMPLETE, after_processing=True, times=1)
    data = payload(12 * MiB)
    async with deadline():
        result = await client.upload(BUCKET, "lost", data, part_size=PART)
    assert fake.objects == {"lost": data}
    assert [r.outcome for r in fake.requests_for(COMPLETE)] == [
        "reset-after-processing", "error:NoSuchUpload"]
    assert fake.ops()[-1] == "HeadObject"
    assert fake.requests_for(ABORT) == []
    assert result.etag == fake.object_etags["lost"]
    assert result.part_count == 3
    assert delays == pytest.approx(BACKOFF[:1])
    assert fake.open_uploads == set()


async def test_corrupted_part_is_rejected(fake: FakeS3, client: S3Client) -> None:
    fake.corrupt(op=PART_OP, part=2, times=None)
    with pytest.raises(UploadError) as info:
        async with deadline():
            await client.upload(BUCKET, "corrupt", payload(12 * MiB), part_size=PART)
    assert info.value.aborted is True
    cause = info.value.__cause__
    assert isinstance(cause, S3ResponseError)
    assert cause.status == 400
    assert cause.code in ("BadDigest", "XAmzContentSHA256Mismatch")
    assert_aborted_once(fake, only_upload_id(fake))
    assert_nothing_left(fake, "corrupt")


@pytest.mark.parametrize("algorithm", [None, "crc32", "crc32c", "sha256", "md5"])
@pytest.mark.parametrize("size", [10, 12 * MiB], ids=["put", "multipart"])
async def test_checksums_verified_by_the_peer(fake: FakeS3, client: S3Client,
                                              algorithm: str | None, size: int) -> None:
    data = payload(size)
    async with deadline():
        result = await client.upload(BUCKET, "sum", data, part_size=PART, checksum=algorithm)
    assert fake.objects == {"sum": data}
    stored = fake.object_checksums["sum"]
    if algorithm in ("crc32", "crc32c") or (algorithm == "sha256" and size < PART):
        assert result.checksum == stored[algorithm]
        assert result.checksum_type == "FULL_OBJECT"
    elif algorithm == "sha256":
        assert result.checksum == stored[algorithm]
        assert result.checksum_type == "COMPOSITE"
        assert result.checksum is not None
        assert result.checksum.endswith("-3")
    else:
        assert stored == {}
    if algorithm == "md5":
        assert all(r.headers["Content-MD5"] for r in fake.requests if r.method == "PUT")
    assert fake.open_uploads == set()


async def test_attempts_1_means_one_abort_on_reset(fake: FakeS3, delays: list[float]) -> None:
    fake.fail(op=PART_OP, part=1, status=403, code="AccessDenied")
    fake.reset(op=ABORT, times=1)
    async with make_client(fake, delays, retry=Retry(attempts=1)) as client:
        with pytest.raises((UploadError, TransportError)):
            async with deadline():
                await client.upload(BUCKET, "one-abort", payload(12 * MiB), part_size=PART)
    assert [r.outcome for r in fake.requests_for(ABORT)] == ["reset"]


# ------------------------------------------------------------------------ garbage XML


async def test_garbage_create_is_malformed(fake: FakeS3, client: S3Client) -> None:
    fake.garbage(op=CREATE, body=b"<notxml")
    with pytest.raises(S3ResponseError) as info:
        async with deadline():
            await client.upload(BUCKET, "garbled", payload(12 * MiB), part_size=PART)
    assert not isinstance(info.value, UploadError)
    assert (info.value.code, info.value.operation) == ("MalformedResponse", CREATE)
    assert fake.ops() == [CREATE]  # not retried, no part sent, nothing to abort
    assert_nothing_left(fake, "garbled")


async def test_truncated_complete_is_malformed(fake: FakeS3, client: S3Client) -> None:
    fake.garbage(op=COMPLETE, body=b'<?xml version="1.0"?>\n<CompleteMultipartUploadResult>'
                                   b'<Location>http://x</Location><ETag>"abc')
    with pytest.raises(UploadError) as info:
        async with deadline():
            await client.upload(BUCKET, "cut", payload(12 * MiB), part_size=PART)
    assert info.value.aborted is True
    cause = info.value.__cause__
    assert isinstance(cause, S3ResponseError)
    assert (cause.code, cause.operation) == ("MalformedResponse", COMPLETE)
    assert_aborted_once(fake, only_upload_id(fake))
    assert_nothing_left(fake, "cut")


# ------------------------------------------------------------------------ bad input

BAD_INPUT = {
    "part_size 1 MiB": {"part_size": MiB},
    "part_size 6 GiB": {"part_size": 6 * GiB},
    "part_size float": {"part_size": 5.5 * MiB},
    "concurrency 0": {"concurrency": 0},
    "concurrency True": {"concurrency": True},
    "bucket A_B": {"bucket": "A_B"},
    "empty key": {"key": ""},
    "key 1025 bytes": {"key": "k" * 1025},
    "key lone surrogate": {"key": "a\udc80"},
    "metadata LF": {"metadata": {"note": "a\nb"}},
    "header CR": {"headers": {"x-amz-tagging": "a\rb"}},
    "content_type LF": {"content_type": "text/plain\n"},
}


@pytest.mark.parametrize("kwargs", BAD_INPUT.values(), ids=BAD_INPUT.keys())
async def test_bad_input_fails_before_any_io(fake: FakeS3, client: S3Client,
                                             kwargs: dict[str, Any]) -> None:
    kwargs = dict(kwargs)
    bucket = kwargs.pop("bucket", BUCKET)
    key = kwargs.pop("key", "k")
    touched = False

    async def source() -> AsyncIterator[bytes]:
        nonlocal touched
        touched = True
        yield b"x"

    with pytest.raises(UsageError) as info:
        await client.upload(bucket, key, source(), **kwargs)
    assert isinstance(info.value, ValueError)
    with pytest.raises(UsageError):
        client.open_upload(bucket, key, **kwargs)
    assert not touched
    assert fake.requests == []


# ------------------------------------------------------------------ abort itself failing


async def test_abort_failure_keeps_the_original_error(fake: FakeS3, client: S3Client,
                                                      delays: list[float]) -> None:
    fake.fail(op=PART_OP, part=1, status=403, code="AccessDenied")
    fake.fail(op=ABORT, status=500, code="InternalError")
    with pytest.raises(UploadError) as info:
        async with deadline():
            await client.upload(BUCKET, "stuck", payload(12 * MiB), part_size=PART)
    err = info.value
    upload_id = only_upload_id(fake)
    assert err.aborted is False
    assert err.upload_id == upload_id
    cause = err.__cause__
    assert isinstance(cause, S3ResponseError)
    assert (cause.status, cause.code, cause.operation) == (403, "AccessDenied", PART_OP)
    notes = getattr(cause, "__notes__", [])
    assert any("AbortMultipartUpload" in note for note in notes), notes
    # The error the caller catches says so itself, not only its cause.
    assert any("AbortMultipartUpload failed" in n for n in getattr(err, "__notes__", []))
    assert [r.status for r in fake.requests_for(ABORT)] == [500, 500, 500]
    assert delays == pytest.approx(BACKOFF)
    # Honest about what is left: the upload really is still open.
    assert fake.open_uploads == {upload_id}
    assert fake.objects == {}


async def test_abort_failure_after_a_source_error(fake: FakeS3, client: S3Client) -> None:
    boom = RuntimeError("boom")
    fake.fail(op=ABORT, status=500, code="InternalError")

    async def source() -> AsyncIterator[bytes]:
        yield payload(6 * MiB)
        await fake.part_started[1].wait()
        raise boom

    with pytest.raises(RuntimeError) as info:
        async with deadline():
            await client.upload(BUCKET, "stuck2", source(), part_size=PART)
    assert info.value is boom
    assert any("AbortMultipartUpload" in note for note in getattr(boom, "__notes__", []))
    assert fake.open_uploads == {only_upload_id(fake)}
    assert fake.objects == {}


async def test_abort_is_bounded_in_time(fake: FakeS3, delays: list[float]) -> None:
    fake.fail(op=PART_OP, part=1, status=403, code="AccessDenied")
    fake.stall(op=ABORT, before_body=True)  # never answered
    async with make_client(fake, delays, abort_timeout=0.2) as client:
        with pytest.raises(UploadError) as info:
            async with deadline():
                await client.upload(BUCKET, "hung", payload(12 * MiB), part_size=PART)
    assert info.value.aborted is False
    assert isinstance(info.value.__cause__, S3ResponseError)
    notes = getattr(info.value.__cause__, "__notes__", [])
    assert any("AbortMultipartUpload" in n and "Timeout" in n for n in notes), notes
    assert any("abort_timeout=0.2" in n for n in getattr(info.value, "__notes__", []))
    assert fake.objects == {}


async def test_custom_limits_apply(fake: FakeS3, delays: list[float]) -> None:
    from s3stream import Limits, UsageError

    # A store that allows only 3 parts per upload.
    async with make_client(fake, delays, limits=Limits(max_parts=3)) as client:
        result = await client.upload(BUCKET, "three", payload(3 * PART), part_size=PART)
        assert result.part_count == 3
        with pytest.raises(UsageError, match="more than 3 parts"):
            await client.upload(BUCKET, "too-many", payload(3 * PART + 1), part_size=PART)
    assert [r.key for r in fake.requests_for(CREATE)] == ["three"]  # the second sent nothing
    assert fake.open_uploads == set()
