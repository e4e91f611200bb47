"""Multipart across machines and resume against the fault-injecting fake: every bad
argument refused before any request, Complete answers lost after the commit (confirmed
with HeadObject, never guessed), refusals that leave the upload open, a resume that fails
half-way and is resumed again, the concurrency and memory bounds, and verification by a
stored checksum (as AWS lists it) in preference to the ETag."""

from __future__ import annotations

import asyncio
import base64
import os
import zlib
from datetime import timedelta
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
from conftest import make_client
from fake_s3 import FakeS3, md5_etag
from test_failures import ABORT, BUCKET, COMPLETE, PART, PART_OP, payload

from s3stream import ResumeStats, S3Client, S3ResponseError, UploadError, UsageError

HEAD = "HeadObject"


async def parts_uploaded(client: S3Client, data: bytes, numbers: list[int],
                         key: str = "k", **create: Any) -> str:
    """An upload with ``numbers`` already sent: what an interrupted upload leaves."""
    upload_id = await client.create_multipart_upload(BUCKET, key, **create)
    for n in numbers:
        await client.upload_part(BUCKET, key, upload_id, n,
                                 data[(n - 1) * PART : n * PART],
                                 checksum=create.get("checksum"))
    return upload_id


# ---------------------------------------------------------------- arguments

BAD_CALLS: list[tuple[str, tuple[Any, ...], dict[str, Any], str]] = [
    ("create_multipart_upload", ("Bad_Bucket", "k"), {}, "bucket"),
    ("create_multipart_upload", (BUCKET, ""), {}, "key"),
    ("create_multipart_upload", (BUCKET, "k"), {"checksum": "crc64"}, "checksum"),
    ("create_multipart_upload", (BUCKET, "k"), {"metadata": ["x"]}, "metadata"),
    ("upload_part", (BUCKET, "k", "id", 0, b"x"), {}, "part_number"),
    ("upload_part", (BUCKET, "k", "id", 10_001, b"x"), {}, "part_number"),
    ("upload_part", (BUCKET, "k", "id", True, b"x"), {}, "part_number"),
    ("upload_part", (BUCKET, "k", "", 1, b"x"), {}, "upload_id"),
    ("upload_part", (BUCKET, "k", "id", 1, "text"), {}, "data"),
    ("complete_multipart_upload", (BUCKET, "k", "id", []), {}, "empty"),
    ("complete_multipart_upload", (BUCKET, "k", "id", [(1, "a"), (1, "b")]), {}, "twice"),
    ("complete_multipart_upload", (BUCKET, "k", "id", [(0, "a")]), {}, "part_number"),
    ("complete_multipart_upload", (BUCKET, "k", "id", [(1, "")]), {}, "ETag"),
    ("complete_multipart_upload", (BUCKET, "k", "id", [1, 2]), {}, "pair"),
    ("complete_multipart_upload", (BUCKET, "k", "id", "1,etag"), {}, "sequence"),
    ("resume_upload", (BUCKET, "k", 42), {}, "path"),
    ("resume_upload", (BUCKET, "k", "f"), {"part_size": 1024}, "part_size"),
    ("resume_upload", (BUCKET, "k", "f"), {"concurrency": 0}, "concurrency"),
    ("resume_upload", (BUCKET, "k", "f"), {"upload_id": ""}, "upload_id"),
    ("resume_upload", (BUCKET, "k", "f"), {"checksum": "nope"}, "checksum"),
    ("resume_upload", (BUCKET, "k", "/no/such/file"), {}, "no such file"),
    ("presign_upload_part", (BUCKET, "k", "id", 1), {"expires": 0}, "expires"),
    ("presign_upload_part", (BUCKET, "k", "id", 1), {"expires": 8 * 86400}, "expires"),
    ("presign_upload_part", (BUCKET, "k", "id", 1), {"expires": 1.5}, "expires"),
    ("presign_upload_part", (BUCKET, "k", "id", 0), {}, "part_number"),
]


@pytest.mark.parametrize(("method", "args", "kwargs", "says"), BAD_CALLS,
                         ids=[f"{c[0]}-{c[3]}" for c in BAD_CALLS])
async def test_bad_arguments_are_refused_before_any_request(
    fake: FakeS3, client: S3Client, method: str, args: tuple[Any, ...],
    kwargs: dict[str, Any], says: str
) -> None:
    with pytest.raises(UsageError, match=says):
        await getattr(client, method)(*args, **kwargs)
    assert fake.requests == []


async def test_presigned_url_names_the_part_and_expiry(fake: FakeS3, client: S3Client) -> None:
    url = await client.presign_upload_part(BUCKET, "dir/a b", "up-1", 7,
                                           expires=timedelta(minutes=10))
    parts = urlsplit(url)
    assert parts.path == "/bucket/dir/a%20b"
    query = parse_qs(parts.query)
    assert query["partNumber"] == ["7"] and query["uploadId"] == ["up-1"]
    assert query["X-Amz-Expires"] == ["600"] and query["X-Amz-SignedHeaders"] == ["host"]
    assert query["X-Amz-Credential"][0].startswith("AK/")
    assert fake.requests == []


# ------------------------------------------------------------------ Complete


async def test_complete_answer_lost_after_commit_is_confirmed(
    fake: FakeS3, client: S3Client
) -> None:
    data = payload(PART + 10)
    upload_id = await parts_uploaded(client, data, [1])
    await client.upload_part(BUCKET, "k", upload_id, 2, data[PART:])
    fake.reset(op=COMPLETE, after_processing=True)
    result = await client.complete_multipart_upload(BUCKET, "k", upload_id)
    assert (result.size, result.part_count) == (len(data), 2)
    assert fake.objects["k"] == data
    assert fake.requests_for(HEAD) and not fake.requests_for(ABORT)


async def test_refused_complete_is_raised_and_the_upload_stays_open(
    fake: FakeS3, client: S3Client
) -> None:
    data = payload(PART + 10)
    upload_id = await parts_uploaded(client, data, [1])
    fake.fail(op=COMPLETE, status=400, code="InvalidPart", times=1)
    with pytest.raises(S3ResponseError, match="InvalidPart"):
        await client.complete_multipart_upload(BUCKET, "k", upload_id)
    # A definite refusal: nothing to look at, nothing aborted; the caller decides.
    assert not fake.requests_for(HEAD) and not fake.requests_for(ABORT)
    assert fake.open_uploads == {upload_id}
    result = await client.complete_multipart_upload(BUCKET, "k", upload_id,
                                                    [(1, md5_etag(data[:PART]))])
    assert result.size == PART and fake.objects["k"] == data[:PART]


# -------------------------------------------------------------------- resume


async def test_resume_that_fails_half_way_is_resumed_again(
    fake: FakeS3, client: S3Client, tmp_path: Path
) -> None:
    data = payload(4 * PART + 1)
    path = tmp_path / "f"
    path.write_bytes(data)
    upload_id = await parts_uploaded(client, data, [1])
    fake.fail(op=PART_OP, part=4, status=403, code="AccessDenied", times=1)
    with pytest.raises(UploadError) as caught:
        await client.resume_upload(BUCKET, "k", path, concurrency=1, part_size=PART)
    assert caught.value.upload_id == upload_id and not caught.value.aborted
    assert fake.open_uploads == {upload_id} and not fake.requests_for(ABORT)
    before = fake.part_counts()
    result = await client.resume_upload(BUCKET, "k", path, part_size=PART)
    assert isinstance(result.stats, ResumeStats)
    assert result.stats.parts_kept == (1, 2, 3)
    assert result.stats.parts_sent == (4, 5)
    assert fake.part_counts() - before == {4: 1, 5: 1}
    assert fake.objects["k"] == data and fake.open_uploads == set()


async def test_resume_complete_lost_after_commit_is_confirmed(
    fake: FakeS3, client: S3Client, tmp_path: Path
) -> None:
    data = payload(2 * PART + 1)
    path = tmp_path / "f"
    path.write_bytes(data)
    upload_id = await parts_uploaded(client, data, [1])
    fake.reset(op=COMPLETE, after_processing=True)
    result = await client.resume_upload(BUCKET, "k", path, upload_id=upload_id)
    assert result.size == len(data) and fake.objects["k"] == data
    assert fake.requests_for(HEAD)


async def test_resume_keeps_to_concurrency_and_the_memory_budget(
    fake: FakeS3, delays: list[float], tmp_path: Path
) -> None:
    data = payload(8 * PART)
    path = tmp_path / "f"
    path.write_bytes(data)
    async with make_client(fake, delays, memory_limit=2 * PART) as client:
        upload_id = await parts_uploaded(client, data, [1, 2])
        result = await client.resume_upload(BUCKET, "k", path, concurrency=4, part_size=PART)
        budget = client._requester.budget
        assert budget is not None
        assert budget.peak <= 2 * PART and budget.held == 0
    assert fake.max_in_flight <= 2
    assert result.upload_id == upload_id and fake.objects["k"] == data


async def test_a_stored_checksum_is_what_verifies_a_part(
    fake: FakeS3, client: S3Client, tmp_path: Path
) -> None:
    data = payload(2 * PART + 1)
    path = tmp_path / "f"
    path.write_bytes(data)
    upload_id = await parts_uploaded(client, data, [1, 2], checksum="crc32")

    def crc(chunk: bytes) -> str:
        return base64.b64encode(zlib.crc32(chunk).to_bytes(4, "big")).decode()

    # As AWS lists them: each part's checksum, the upload's algorithm and type. Part 2's
    # checksum is not its bytes' (its ETag is): the checksum wins, so it is sent again.
    items = "".join(
        f"<Part><PartNumber>{n}</PartNumber><ETag>{md5_etag(chunk)}</ETag>"
        f"<Size>{len(chunk)}</Size><ChecksumCRC32>{value}</ChecksumCRC32></Part>"
        for n, chunk, value in ((1, data[:PART], crc(data[:PART])),
                                (2, data[PART : 2 * PART], crc(b"other bytes"))))
    fake.rewrite(op="ListParts", times=1, body=(
        "<ListPartsResult><IsTruncated>false</IsTruncated><ChecksumAlgorithm>CRC32"
        f"</ChecksumAlgorithm><ChecksumType>FULL_OBJECT</ChecksumType>{items}"
        "</ListPartsResult>").encode())
    # checksum=None would be refused for an upload created with CRC32 if it were strict;
    # the default follows what the store says the upload takes.
    result = await client.resume_upload(BUCKET, "k", path, upload_id=upload_id)
    assert isinstance(result.stats, ResumeStats)
    assert result.stats.parts_kept == (1,)
    assert result.stats.parts_replaced == (2,)
    assert (result.checksum_algorithm, result.checksum_type) == ("crc32", "FULL_OBJECT")
    assert result.checksum == crc(data) and result.checksum_confirmed
    assert fake.objects["k"] == data


async def test_explicit_checksum_other_than_the_uploads_is_refused(
    fake: FakeS3, client: S3Client, tmp_path: Path
) -> None:
    path = tmp_path / "f"
    path.write_bytes(os.urandom(100))
    upload_id = await client.create_multipart_upload(BUCKET, "k")
    fake.rewrite(op="ListParts", times=1, body=(
        b"<ListPartsResult><ChecksumAlgorithm>SHA256</ChecksumAlgorithm></ListPartsResult>"))
    with pytest.raises(UsageError, match="created with the sha256 checksum"):
        await client.resume_upload(BUCKET, "k", path, upload_id=upload_id, checksum="crc32")
    await client.abort_multipart_upload(BUCKET, "k", upload_id)


async def test_cancelled_resume_leaves_the_upload_open_and_gives_memory_back(
    fake: FakeS3, client: S3Client, tmp_path: Path
) -> None:
    data = payload(3 * PART)
    path = tmp_path / "f"
    path.write_bytes(data)
    upload_id = await parts_uploaded(client, data, [1])
    gate = fake.stall(op=PART_OP, part=3)
    task = asyncio.create_task(client.resume_upload(BUCKET, "k", path, part_size=PART))
    await fake.part_started[3].wait()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    gate.release()
    budget = client._requester.budget
    assert budget is not None and budget.held == 0
    assert fake.open_uploads == {upload_id} and not fake.requests_for(ABORT)
    # Resumed again, from what S3 holds now.
    result = await client.resume_upload(BUCKET, "k", path, part_size=PART)
    assert fake.objects["k"] == data and result.upload_id == upload_id
