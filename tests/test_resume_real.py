"""Resuming interrupted uploads against real servers, with boto3 as the oracle.

The interruption is real: a subprocess (tests/resume_crash.py) runs ``S3Client.upload(path)``
and SIGKILLs itself once some parts are acknowledged, so nothing is cleaned up. The test
then resumes from the upload id S3 lists, and checks which parts were verified and kept,
which were sent, and the object, byte-exact.
"""

from __future__ import annotations

import asyncio
import base64
import os
import signal
import sys
from pathlib import Path
from typing import Any

import pytest
from support import read_back

from s3stream import (
    NotFoundError,
    ResumeStats,
    S3Client,
    S3ResponseError,
    UploadError,
    UploadResult,
    UsageError,
)
from s3stream import _checksums as cks
from s3stream.testing import LocalS3

MiB = 1 << 20
PART = 5 * MiB
pytestmark = [pytest.mark.real_s3, pytest.mark.every_server]
CRASH = Path(__file__).with_name("resume_crash.py")


async def crash_upload(server: LocalS3, bucket: str, key: str, path: Path, *,
                       part_size: int | None, kill_after: int) -> None:
    """``upload(path)`` in another process, killed once ``kill_after`` parts are in."""
    creds = server.credentials
    env = {**os.environ, "S3STREAM_TEST_ENDPOINT": server.endpoint,
           "S3STREAM_TEST_REGION": server.region, "S3STREAM_TEST_KEY": creds.access_key_id,
           "S3STREAM_TEST_SECRET": creds.secret_access_key}
    proc = await asyncio.create_subprocess_exec(
        sys.executable, str(CRASH), bucket, key, str(path), str(part_size or 0),
        str(kill_after), env=env, stderr=asyncio.subprocess.PIPE)
    _, err = await proc.communicate()
    assert proc.returncode == -signal.SIGKILL, err.decode()


def stats_of(result: UploadResult) -> ResumeStats:
    assert isinstance(result.stats, ResumeStats)
    return result.stats


def assert_checksum(result: UploadResult, data: bytes) -> None:
    """Where the result claims a full-object checksum, it is the data's."""
    if result.checksum_type == "FULL_OBJECT" and result.checksum_algorithm in ("crc32c",
                                                                               "crc32"):
        raw = cks.digest_part([data], sha256=False,
                              algorithm=result.checksum_algorithm).checksum
        assert raw is not None
        assert result.checksum == base64.b64encode(raw).decode()


async def rclone_cannot_replace(s3: S3Client, bucket: str, key: str, path: Path,
                                **options: Any) -> None:
    """rclone cannot replace a part it holds with other bytes (501 NotImplemented, "part N
    has already been streamed to the backend"): the resume fails, typed, and leaves the
    upload open, as every failed resume does; then it is aborted."""
    with pytest.raises(UploadError) as caught:
        await s3.resume_upload(bucket, key, path, **options)
    cause = caught.value.__cause__
    assert isinstance(cause, S3ResponseError)
    assert (cause.status, cause.code) == (501, "NotImplemented")
    assert not caught.value.aborted
    [left] = [u async for u in s3.list_multipart_uploads(bucket)]
    assert left.upload_id == caught.value.upload_id
    await s3.abort_multipart_upload(bucket, key, left.upload_id)


async def test_resume_after_the_uploader_was_killed(
    server: LocalS3, s3: S3Client, bucket: str, boto: Any, tmp_path: Path
) -> None:
    data = os.urandom(5 * PART + 777)  # 6 parts
    path = tmp_path / "big.bin"
    path.write_bytes(data)
    await crash_upload(server, bucket, "big.bin", path, part_size=PART, kill_after=3)
    [left] = [u async for u in s3.list_multipart_uploads(bucket)]
    listed = [p.number async for p in s3.list_parts(bucket, "big.bin", left.upload_id)]
    assert listed == [1, 2, 3]

    # No upload id, no part size: both are found from what S3 lists.
    result = await s3.resume_upload(bucket, "big.bin", path)
    stats = stats_of(result)
    assert stats.parts_kept == (1, 2, 3)
    assert stats.parts_sent == (4, 5, 6)
    assert stats.parts_replaced == stats.parts_dropped == ()
    # ListMultipartUploads, ListParts, three UploadParts, Complete; nothing sent twice.
    assert (stats.requests, stats.retries) == (6, 0)
    assert 2 * PART + 777 <= stats.bytes_sent < 2 * PART + 777 + 4096
    assert (result.upload_id, result.size, result.part_count) == (left.upload_id, len(data), 6)
    assert result.etag.strip('"').endswith("-6")
    assert_checksum(result, data)
    assert read_back(boto, bucket, "big.bin") == data
    assert [u async for u in s3.list_multipart_uploads(bucket)] == []


async def test_default_part_size_is_found_again(
    server: LocalS3, s3: S3Client, bucket: str, boto: Any, tmp_path: Path
) -> None:
    data = os.urandom(20 * MiB + 5)  # upload() plans 8 MiB parts for it: 3 parts
    path = tmp_path / "default.bin"
    path.write_bytes(data)
    await crash_upload(server, bucket, "default.bin", path, part_size=None, kill_after=1)
    result = await s3.resume_upload(bucket, "default.bin", path, concurrency=2)
    stats = stats_of(result)
    assert (stats.parts_kept, stats.parts_sent) == ((1,), (2, 3))
    assert result.part_count == 3
    assert read_back(boto, bucket, "default.bin") == data


async def test_a_part_changed_in_the_file_is_sent_again(
    server: LocalS3, s3: S3Client, bucket: str, boto: Any, tmp_path: Path
) -> None:
    data = bytearray(os.urandom(5 * PART + 777))
    path = tmp_path / "changed.bin"
    path.write_bytes(data)
    await crash_upload(server, bucket, "changed.bin", path, part_size=PART, kill_after=3)
    # One byte of part 2, already uploaded, changes before the resume.
    data[PART + 12_345] ^= 0xFF
    path.write_bytes(data)
    if server.name == "rclone":
        await rclone_cannot_replace(s3, bucket, "changed.bin", path)
        return
    result = await s3.resume_upload(bucket, "changed.bin", path)
    stats = stats_of(result)
    assert stats.parts_kept == (1, 3)
    assert stats.parts_replaced == (2,)
    assert stats.parts_sent == (2, 4, 5, 6)
    assert read_back(boto, bucket, "changed.bin") == bytes(data)


async def test_resume_of_an_upload_that_no_longer_exists(
    server: LocalS3, s3: S3Client, bucket: str, tmp_path: Path
) -> None:
    path = tmp_path / "gone.bin"
    path.write_bytes(os.urandom(1000))
    upload_id = await s3.create_multipart_upload(bucket, "gone.bin")
    await s3.abort_multipart_upload(bucket, "gone.bin", upload_id)
    with pytest.raises(NotFoundError) as caught:
        await s3.resume_upload(bucket, "gone.bin", path, upload_id=upload_id)
    assert caught.value.code == "NoSuchUpload"


async def test_nothing_in_progress_is_a_usage_error(
    s3: S3Client, bucket: str, tmp_path: Path
) -> None:
    path = tmp_path / "none.bin"
    path.write_bytes(b"x" * 1000)
    # Another key's upload, whose name starts with this key's, is not this key's.
    other = await s3.create_multipart_upload(bucket, "none.bin.other")
    with pytest.raises(UsageError, match=r"no multipart upload of .*none\.bin is in progress"):
        await s3.resume_upload(bucket, "none.bin", path)
    await s3.abort_multipart_upload(bucket, "none.bin.other", other)


async def test_resume_of_an_upload_with_no_parts_sends_them_all(
    s3: S3Client, bucket: str, boto: Any, tmp_path: Path
) -> None:
    data = os.urandom(PART + 3)
    path = tmp_path / "fresh.bin"
    path.write_bytes(data)
    upload_id = await s3.create_multipart_upload(bucket, "fresh.bin")
    result = await s3.resume_upload(bucket, "fresh.bin", path, upload_id=upload_id,
                                    part_size=PART)
    stats = stats_of(result)
    assert (stats.parts_kept, stats.parts_sent) == ((), (1, 2))
    assert read_back(boto, bucket, "fresh.bin") == data


async def test_parts_of_another_part_size_are_replaced(
    server: LocalS3, s3: S3Client, bucket: str, boto: Any, tmp_path: Path
) -> None:
    data = os.urandom(2 * PART + 100)
    path = tmp_path / "resized.bin"
    path.write_bytes(data)
    upload_id = await s3.create_multipart_upload(bucket, "resized.bin")
    await s3.upload_part(bucket, "resized.bin", upload_id, 1, data[:PART])
    await s3.upload_part(bucket, "resized.bin", upload_id, 2, data[PART : 2 * PART])
    # Told 6 MiB parts: part 1 and 2 as listed (5 MiB) are not the planned ones.
    if server.name == "rclone":
        await rclone_cannot_replace(s3, bucket, "resized.bin", path, part_size=6 * MiB)
        return
    result = await s3.resume_upload(bucket, "resized.bin", path, part_size=6 * MiB)
    stats = stats_of(result)
    assert stats.parts_kept == ()
    assert stats.parts_replaced == (1, 2)
    assert stats.parts_sent == (1, 2)
    assert result.part_count == 2
    assert read_back(boto, bucket, "resized.bin") == data


async def test_parts_past_a_shortened_file_are_left_out(
    server: LocalS3, s3: S3Client, bucket: str, boto: Any, tmp_path: Path
) -> None:
    data = os.urandom(3 * PART)
    path = tmp_path / "short.bin"
    upload_id = await s3.create_multipart_upload(bucket, "short.bin")
    for n in (1, 2, 3):
        await s3.upload_part(bucket, "short.bin", upload_id, n,
                             data[(n - 1) * PART : n * PART])
    path.write_bytes(data[: PART + 10])  # the file now ends inside part 2
    if server.name == "rclone":
        await rclone_cannot_replace(s3, bucket, "short.bin", path, part_size=PART)
        return
    result = await s3.resume_upload(bucket, "short.bin", path, part_size=PART)
    stats = stats_of(result)
    assert stats.parts_kept == (1,)
    assert stats.parts_replaced == (2,)  # listed at 5 MiB, planned at 10 bytes
    assert stats.parts_dropped == (3,)
    assert read_back(boto, bucket, "short.bin") == data[: PART + 10]
