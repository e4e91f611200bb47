"""Downloads from real S3 servers (SeaweedFS, moto, rclone), byte for byte against what
boto3's get_object reads: every size class, byte ranges, a multipart-uploaded object,
an object replaced mid-download, ranges past the end, and download_to().
"""

from __future__ import annotations

import asyncio
import os
from pathlib import Path
from typing import Any

import boto3
import botocore.config
import pytest
from botocore.exceptions import ClientError
from support import boto_client

from s3stream import ObjectChangedError, S3Client, S3ResponseError
from s3stream.testing import LocalS3

KiB, MiB = 1 << 10, 1 << 20
PART = 256 * KiB
pytestmark = [pytest.mark.real_s3, pytest.mark.every_server]


@pytest.fixture
def boto(server: LocalS3) -> Any:
    """boto3 as the oracle, checking response checksums only when asked: rclone sends the
    whole object's checksum with a partial range, which boto3 would then refuse."""
    client = boto_client(server)
    return boto3.client(
        "s3", endpoint_url=server.endpoint, region_name=server.region,
        aws_access_key_id=server.credentials.access_key_id,
        aws_secret_access_key=server.credentials.secret_access_key,
        config=client.meta.config.merge(
            botocore.config.Config(response_checksum_validation="when_required")))


def boto_get(boto: Any, bucket: str, key: str, range_: str | None = None) -> bytes:
    kwargs = {"Range": range_} if range_ else {}
    body: bytes = boto.get_object(Bucket=bucket, Key=key, **kwargs)["Body"].read()
    return body


async def collect(dl: Any) -> bytes:
    return b"".join([chunk async for chunk in dl])


def put(boto: Any, bucket: str, key: str, data: bytes) -> None:
    boto.put_object(Bucket=bucket, Key=key, Body=data)


@pytest.mark.parametrize("size", [0, 1, PART - 1, PART, PART + 1, 7 * PART + 3],
                         ids=lambda s: f"{s}B")
async def test_sizes(s3: S3Client, bucket: str, boto: Any, size: int) -> None:
    data = os.urandom(size)
    put(boto, bucket, "obj", data)
    async with s3.download(bucket, "obj", part_size=PART, concurrency=3) as dl:
        got = await collect(dl)
    assert got == boto_get(boto, bucket, "obj") == data
    assert dl.info is not None
    assert (dl.info.size, dl.offset, dl.length) == (size, 0, size)
    head = boto.head_object(Bucket=bucket, Key="obj")
    assert dl.info.etag == head["ETag"]


async def test_multipart_object(server: LocalS3, s3: S3Client, bucket: str,
                                boto: Any) -> None:
    data = os.urandom(11 * MiB + 17)
    # Uploaded in 5 MiB parts by s3stream, read back in ranges not aligned to them.
    await s3.upload(bucket, "mp", data, part_size=5 * MiB)
    got = await collect(s3.download(bucket, "mp", part_size=3 * MiB + 1))
    assert got == boto_get(boto, bucket, "mp") == data


@pytest.mark.parametrize(("offset", "length"), [
    (0, 10),            # the start
    (PART + 5, 2 * PART),  # the middle, across ranges
    (3 * PART - 7, 7),  # the end exactly
    (1234, 1),          # a single byte
    (2 * PART + 1, None),  # open-ended
    (3 * PART - 1, 100),   # ends past the object: cut at its end
], ids=["start", "middle", "end", "byte", "open", "past-end"])
async def test_ranges(s3: S3Client, bucket: str, boto: Any, offset: int,
                      length: int | None) -> None:
    data = os.urandom(3 * PART)
    put(boto, bucket, "r", data)
    last = len(data) - 1 if length is None else min(offset + length, len(data)) - 1
    expected = boto_get(boto, bucket, "r", f"bytes={offset}-{last}")
    async with s3.download(bucket, "r", offset=offset, length=length,
                           part_size=PART // 2) as dl:
        got = await collect(dl)
    assert got == expected == data[offset:last + 1]
    assert (dl.offset, dl.length) == (offset, last + 1 - offset)
    assert dl.info is not None and dl.info.size == len(data)


async def test_past_the_end(s3: S3Client, bucket: str, boto: Any) -> None:
    put(boto, bucket, "small", b"0123456789")
    put(boto, bucket, "empty", b"")
    for key, offset in (("small", 10), ("small", 11), ("empty", 1)):
        with pytest.raises(S3ResponseError) as caught:
            await collect(s3.download(bucket, key, offset=offset))
        assert caught.value.status == 416 and caught.value.code == "InvalidRange"
        with pytest.raises(ClientError):  # boto3 is refused too
            boto_get(boto, bucket, key, f"bytes={offset}-")


async def test_object_replaced_mid_download(s3: S3Client, bucket: str, boto: Any) -> None:
    v1, v2 = os.urandom(8 * PART), os.urandom(8 * PART)
    put(boto, bucket, "changing", v1)
    delivered = bytearray()
    with pytest.raises(ObjectChangedError):
        # One range at a time, so no range of v1 is already in when v2 replaces it.
        async with s3.download(bucket, "changing", part_size=PART, concurrency=1) as dl:
            async for chunk in dl:
                if not delivered:
                    await asyncio.to_thread(put, boto, bucket, "changing", v2)
                delivered += chunk
    assert 0 < len(delivered) < len(v1)
    assert v1.startswith(bytes(delivered))  # nothing of v2


async def test_download_to(s3: S3Client, bucket: str, boto: Any, tmp_path: Path) -> None:
    data = os.urandom(5 * PART + 9)
    put(boto, bucket, "file", data)
    target = tmp_path / "out.bin"
    info = await s3.download_to(bucket, "file", target, part_size=PART)
    assert await asyncio.to_thread(target.read_bytes) == data
    assert info.size == len(data)
    # A failure (no such key) leaves neither a temporary file nor the destination.
    with pytest.raises(S3ResponseError):
        await s3.download_to(bucket, "missing", tmp_path / "other.bin")
    assert await asyncio.to_thread(os.listdir, tmp_path) == ["out.bin"]


@pytest.mark.parametrize("algorithm", ["CRC32", "CRC32C", "CRC64NVME"])
async def test_full_object_checksum_is_checked(s3: S3Client, bucket: str, boto: Any,
                                               algorithm: str) -> None:
    data = os.urandom(3 * PART + 1)
    boto.put_object(Bucket=bucket, Key="ck", Body=data, ChecksumAlgorithm=algorithm)
    # Several ranges: the checksum comes from HeadObject (or, on rclone, with the ranges).
    async with s3.download(bucket, "ck", part_size=PART) as dl:
        assert await collect(dl) == data
    assert dl.checksum_checked == algorithm
    # A sub-range cannot be checked end to end.
    async with s3.download(bucket, "ck", offset=1, part_size=PART) as dl:
        assert await collect(dl) == data[1:]
    assert dl.checksum_checked is None


async def test_multipart_full_object_checksum(server: LocalS3, s3: S3Client, bucket: str,
                                              boto: Any) -> None:
    data = os.urandom(11 * MiB)
    result = await s3.upload(bucket, "mpck", data, part_size=5 * MiB, checksum="crc32")
    assert result.checksum_type == "FULL_OBJECT"
    async with s3.download(bucket, "mpck", part_size=3 * MiB) as dl:
        assert await collect(dl) == data
    if server.name == "rclone":
        # rclone keeps no checksum for an object it assembled from parts (HeadObject shows
        # only the algorithm's name), so there is nothing to check against.
        assert dl.checksum_checked is None
    else:
        assert dl.checksum_checked == "CRC32"
