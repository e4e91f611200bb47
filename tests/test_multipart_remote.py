"""Multipart uploads spread over processes, against real servers, with boto3 as the oracle.

The test process creates the upload and hands out presigned UploadPart URLs; three
worker processes (tests/multipart_worker.py: plain aiohttp, no credentials, no s3stream)
PUT their parts; the test completes the upload from ListParts. S3 is the only state the
processes share. Also: completing from an explicit (number, ETag) list, gaps in the
numbering, aborting, and the errors of a Complete that cannot succeed.
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
from pathlib import Path
from typing import Any

import pytest
from support import boto_client as s3_boto
from support import read_back

from s3stream import NotFoundError, S3Client, S3ResponseError, UsageError
from s3stream.testing import LocalS3

MiB = 1 << 20
PART = 5 * MiB
pytestmark = [pytest.mark.real_s3, pytest.mark.every_server]
WORKER = Path(__file__).with_name("multipart_worker.py")


def parts_of(size: int, part_size: int = PART) -> list[tuple[int, int, int]]:
    """(number, offset, size) of each part."""
    return [(n + 1, off, min(part_size, size - off))
            for n, off in enumerate(range(0, size, part_size))]


async def run_worker(job: dict[str, Any]) -> dict[str, str]:
    proc = await asyncio.create_subprocess_exec(
        sys.executable, str(WORKER), stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
        # No credentials of any kind reach the worker: the URL is all it has.
        env={"PATH": os.environ.get("PATH", ""), "PYTHONPATH": ""})
    out, err = await proc.communicate(json.dumps(job).encode())
    assert proc.returncode == 0, err.decode()
    result: dict[str, str] = json.loads(out)
    return result


def moto_refuses_presigned_requests(boto: Any, bucket: str, url: str) -> None:
    """moto_server with IAM authentication on (as s3stream.testing runs it) answers every
    presigned request with 500: its IAM check reads the Authorization header, which a
    presigned request does not have (KeyError 'HTTP_AUTHORIZATION' in its log). boto3's own
    presigned URLs fail the same way, so the fault is not in the URL."""
    import urllib.error
    import urllib.request

    for presigned in (url, boto.generate_presigned_url(
            "put_object", Params={"Bucket": bucket, "Key": "probe"}, ExpiresIn=60)):
        request = urllib.request.Request(presigned, data=b"x", method="PUT")
        with pytest.raises(urllib.error.HTTPError) as caught:
            urllib.request.urlopen(request, timeout=30)
        assert caught.value.code == 500


async def test_three_worker_processes_then_complete_from_list_parts(
    server: LocalS3, s3: S3Client, bucket: str, boto: Any, tmp_path: Path
) -> None:
    data = os.urandom(7 * PART + 12_345)  # 8 parts, the last one short
    path = tmp_path / "video.bin"
    path.write_bytes(data)
    upload_id = await s3.create_multipart_upload(bucket, "shared/video.bin",
                                                 content_type="video/mp4")
    layout = parts_of(len(data))
    jobs: list[dict[str, Any]] = [{"path": str(path), "parts": []} for _ in range(3)]
    for number, offset, size in layout:
        url = await s3.presign_upload_part(bucket, "shared/video.bin", upload_id, number,
                                           expires=600)
        # Interleaved, so that parts of each worker arrive out of order.
        jobs[number % 3]["parts"].append(
            {"number": number, "offset": offset, "size": size, "url": url})
    if server.name == "moto":
        moto_refuses_presigned_requests(boto, bucket, jobs[0]["parts"][0]["url"])
        await s3.abort_multipart_upload(bucket, "shared/video.bin", upload_id)
        return
    etags = await asyncio.gather(*(run_worker(job) for job in jobs))
    assert sorted(int(n) for e in etags for n in e) == list(range(1, 9))

    result = await s3.complete_multipart_upload(bucket, "shared/video.bin", upload_id)
    assert result.size == len(data)
    assert result.part_count == 8
    assert result.upload_id == upload_id
    assert result.etag.strip('"').endswith("-8")
    assert read_back(boto, bucket, "shared/video.bin") == data
    assert boto.head_object(Bucket=bucket, Key="shared/video.bin")["ContentType"] == "video/mp4"


async def test_complete_from_explicit_parts_in_any_order(
    s3: S3Client, bucket: str, boto: Any
) -> None:
    data = os.urandom(2 * PART + 1000)
    upload_id = await s3.create_multipart_upload(bucket, "explicit.bin")
    etags = {}
    for number, offset, size in reversed(parts_of(len(data))):
        etags[number] = await s3.upload_part(bucket, "explicit.bin", upload_id, number,
                                             memoryview(data)[offset : offset + size])
    result = await s3.complete_multipart_upload(
        bucket, "explicit.bin", upload_id, [(3, etags[3]), (1, etags[1]), (2, etags[2])])
    assert (result.size, result.part_count) == (len(data), 3)
    assert read_back(boto, bucket, "explicit.bin") == data


async def rclone_refuses(s3: S3Client, bucket: str, key: str, upload_id: str,
                         parts: list[tuple[int, str]] | None) -> None:
    """rclone completes only the parts 1..n, all of them (anything else is 400
    InvalidPart), where S3 allows gaps and leaves parts not named out of the object. And
    where S3 keeps an upload whose Complete it refused, rclone drops it."""
    with pytest.raises(S3ResponseError) as caught:
        await s3.complete_multipart_upload(bucket, key, upload_id, parts)
    assert (caught.value.status, caught.value.code) == (400, "InvalidPart")
    assert [u.upload_id async for u in s3.list_multipart_uploads(bucket)] == []
    with pytest.raises(NotFoundError):
        await s3.complete_multipart_upload(bucket, key, upload_id)


async def test_parts_not_named_are_left_out(
    server: LocalS3, s3: S3Client, bucket: str, boto: Any
) -> None:
    data = os.urandom(PART + 1000)
    upload_id = await s3.create_multipart_upload(bucket, "named.bin")
    first = await s3.upload_part(bucket, "named.bin", upload_id, 1, data[:PART])
    second = await s3.upload_part(bucket, "named.bin", upload_id, 2, data[PART:])
    await s3.upload_part(bucket, "named.bin", upload_id, 9, b"not in the object")
    parts = [(2, second), (1, first)]
    if server.name == "rclone":
        await rclone_refuses(s3, bucket, "named.bin", upload_id, parts)
        return
    result = await s3.complete_multipart_upload(bucket, "named.bin", upload_id, parts)
    assert (result.size, result.part_count) == (len(data), 2)
    assert read_back(boto, bucket, "named.bin") == data


async def test_gaps_in_the_numbering_are_accepted(
    server: LocalS3, s3: S3Client, bucket: str, boto: Any
) -> None:
    data = os.urandom(PART + 10)
    upload_id = await s3.create_multipart_upload(bucket, "gaps.bin")
    await s3.upload_part(bucket, "gaps.bin", upload_id, 2, data[:PART])
    await s3.upload_part(bucket, "gaps.bin", upload_id, 7, data[PART:])
    if server.name == "rclone":
        await rclone_refuses(s3, bucket, "gaps.bin", upload_id, None)
        return
    result = await s3.complete_multipart_upload(bucket, "gaps.bin", upload_id)
    assert (result.size, result.part_count) == (len(data), 2)
    assert read_back(boto, bucket, "gaps.bin") == data


async def test_no_parts_is_a_usage_error_and_the_upload_stays_open(
    server: LocalS3, s3: S3Client, bucket: str
) -> None:
    upload_id = await s3.create_multipart_upload(bucket, "empty.bin")
    with pytest.raises(UsageError, match="no parts"):
        await s3.complete_multipart_upload(bucket, "empty.bin", upload_id)
    open_ids = [u.upload_id async for u in s3.list_multipart_uploads(bucket)]
    assert open_ids == [upload_id]
    await s3.abort_multipart_upload(bucket, "empty.bin", upload_id)
    assert [u async for u in s3.list_multipart_uploads(bucket)] == []


async def test_a_refused_complete_leaves_the_upload_open(
    server: LocalS3, s3: S3Client, bucket: str
) -> None:
    upload_id = await s3.create_multipart_upload(bucket, "refused.bin")
    small = await s3.upload_part(bucket, "refused.bin", upload_id, 1, b"x" * 1000)
    await s3.upload_part(bucket, "refused.bin", upload_id, 2, b"y" * 1000)
    if server.name == "rclone":
        # rclone does not enforce S3's 5 MiB minimum for parts before the last one: it
        # completes. Asserted so that a change in rclone shows up here.
        result = await s3.complete_multipart_upload(bucket, "refused.bin", upload_id)
        assert result.size == 2000
        return
    with pytest.raises(S3ResponseError) as caught:
        # Part 1 is below the 5 MiB minimum for a part that is not the last one.
        await s3.complete_multipart_upload(bucket, "refused.bin", upload_id,
                                           [(1, small), (2, small)])
    assert not isinstance(caught.value, NotFoundError)
    assert [u.upload_id async for u in s3.list_multipart_uploads(bucket)] == [upload_id]
    await s3.abort_multipart_upload(bucket, "refused.bin", upload_id)


async def test_complete_of_an_upload_that_does_not_exist(
    server: LocalS3, s3: S3Client, bucket: str
) -> None:
    upload_id = await s3.create_multipart_upload(bucket, "gone.bin")
    await s3.abort_multipart_upload(bucket, "gone.bin", upload_id)
    with pytest.raises(NotFoundError) as caught:
        await s3.complete_multipart_upload(bucket, "gone.bin", upload_id)
    assert caught.value.code == "NoSuchUpload"


async def test_presigned_part_of_an_aborted_upload_is_refused(
    server: LocalS3, s3: S3Client, bucket: str, tmp_path: Path
) -> None:
    path = tmp_path / "part.bin"
    path.write_bytes(b"z" * 100)
    upload_id = await s3.create_multipart_upload(bucket, "aborted.bin")
    url = await s3.presign_upload_part(bucket, "aborted.bin", upload_id, 1)
    await s3.abort_multipart_upload(bucket, "aborted.bin", upload_id)
    if server.name == "moto":
        moto_refuses_presigned_requests(s3_boto(server), bucket, url)
        return
    proc = await asyncio.create_subprocess_exec(
        sys.executable, str(WORKER), stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    job = {"path": str(path), "parts": [{"number": 1, "offset": 0, "size": 100, "url": url}]}
    _, err = await proc.communicate(json.dumps(job).encode())
    assert proc.returncode != 0
    assert b"HTTP 404" in err and b"NoSuchUpload" in err


def test_presigned_parts_example(
    server: LocalS3, bucket: str, boto: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str]
) -> None:
    """examples/presigned_parts.py as its README shows it: three worker processes."""
    import importlib.util

    for name in list(os.environ):
        if name.startswith("AWS_"):
            monkeypatch.delenv(name)
    for name, value in {"AWS_ENDPOINT_URL_S3": server.endpoint, "AWS_REGION": server.region,
                        "AWS_ACCESS_KEY_ID": server.credentials.access_key_id,
                        "AWS_SECRET_ACCESS_KEY": server.credentials.secret_access_key,
                        "AWS_CONFIG_FILE": os.devnull,
                        "AWS_SHARED_CREDENTIALS_FILE": os.devnull}.items():
        monkeypatch.setenv(name, value)
    spec = importlib.util.spec_from_file_location(
        "s3stream_examples_presigned_parts",
        Path(__file__).parent.parent / "examples" / "presigned_parts.py")
    assert spec is not None and spec.loader is not None
    example = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(example)
    data = os.urandom(2 * example.PART_SIZE + 999)  # 3 parts, one per worker
    path = tmp_path / "clip.mp4"
    path.write_bytes(data)
    argv = [str(path), "--bucket", bucket, "--key", "clips/c.mp4", "--workers", "3"]
    if server.name == "moto":
        # moto refuses presigned requests (see moto_refuses_presigned_requests): the
        # workers fail, and the example aborts the upload (the bucket fixture checks).
        with pytest.raises(RuntimeError, match="a worker failed"):
            example.main(argv)
        return
    example.main(argv)
    printed = capsys.readouterr().out
    assert "part_count=3" in printed and f"size={len(data)}" in printed
    assert read_back(boto, bucket, "clips/c.mp4") == data
