"""Object operations against real S3 servers (SeaweedFS, moto, rclone), boto3 as the oracle.

Every test runs once per server. Where a server does not do what S3 does, the test says
so and asserts what that server does instead.
"""

from __future__ import annotations

from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
from botocore.exceptions import ClientError
from support import enable_versioning

from s3stream import (
    BucketInfo,
    CommonPrefix,
    NotFoundError,
    ObjectInfo,
    ObjectSummary,
    S3Client,
    UsageError,
)
from s3stream.testing import LocalS3

pytestmark = [pytest.mark.real_s3, pytest.mark.every_server]

#: Keys that must survive the trip into a URL, an XML body and a listing unchanged.
ODD_KEYS = ["sp ace/a b.txt", "plus/a+b", "pct/100%", "pct/%41%2F", "uni/ünïcødé-日本.txt",
            "amp/a&b<c>'\"", "tilde/~x", "eq/a=b&c=d?e#f"]


def _put_many(boto: Any, bucket: str, keys: Iterable[str], body: bytes = b"x") -> None:
    with ThreadPoolExecutor(8) as pool:
        list(pool.map(lambda k: boto.put_object(Bucket=bucket, Key=k, Body=body), keys))


def _boto_keys(boto: Any, bucket: str, prefix: str = "") -> list[str]:
    keys: list[str] = []
    for page in boto.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
        keys += [item["Key"] for item in page.get("Contents", [])]
    return keys


def _name(item: ObjectSummary | CommonPrefix) -> str:
    return item.key if isinstance(item, ObjectSummary) else item.prefix


def _metadata(server: LocalS3, metadata: dict[str, str]) -> dict[str, str]:
    # rclone (Go's net/http) sends header names in canonical form (X-Amz-Meta-Owner);
    # s3stream lower-cases header names, boto3 keeps them. Values compare exactly.
    return {k.lower(): v for k, v in metadata.items()} if server.name == "rclone" else metadata


# --------------------------------------------------------------------- head_object


async def test_head_object_matches_boto3(
    server: LocalS3, s3: S3Client, bucket: str, boto: Any
) -> None:
    data = b"hello, head_object\n" * 100
    await s3.upload(bucket, "dir/obj.txt", data, content_type="text/plain; charset=utf-8",
                    metadata={"owner": "ann", "purpose": "test"}, checksum="crc32c")
    info = await s3.head_object(bucket, "dir/obj.txt")
    head = boto.head_object(Bucket=bucket, Key="dir/obj.txt", ChecksumMode="ENABLED")
    assert isinstance(info, ObjectInfo)
    assert (info.bucket, info.key) == (bucket, "dir/obj.txt")
    assert info.size == head["ContentLength"] == len(data)
    assert info.etag == head["ETag"]
    assert info.content_type == head["ContentType"] == "text/plain; charset=utf-8"
    assert info.metadata == _metadata(server, head["Metadata"]) == \
        {"owner": "ann", "purpose": "test"}
    assert info.last_modified == head["LastModified"]
    assert info.version_id == head.get("VersionId")
    if server.name == "moto":
        # moto keeps a checksum only when it is sent the way boto3 sends it (with
        # x-amz-sdk-checksum-algorithm), not as a plain x-amz-checksum-crc32c header.
        assert "ChecksumCRC32C" not in head
        assert info.checksums == {}
    else:
        assert info.checksums == {"CRC32C": head["ChecksumCRC32C"]}
    # A checksum stored by boto3 itself comes back the same through head_object().
    boto.put_object(Bucket=bucket, Key="by-boto", Body=data, ChecksumAlgorithm="CRC32C")
    info = await s3.head_object(bucket, "by-boto")
    head = boto.head_object(Bucket=bucket, Key="by-boto", ChecksumMode="ENABLED")
    assert info.checksums == {"CRC32C": head["ChecksumCRC32C"]}


async def test_head_object_missing_key_and_bucket(s3: S3Client, bucket: str) -> None:
    # A HEAD answer has no body: every server answers a bare 404, so "NotFound" for both.
    with pytest.raises(NotFoundError) as caught:
        await s3.head_object(bucket, "no/such/key")
    assert (caught.value.status, caught.value.code) == (404, "NotFound")
    assert (caught.value.bucket, caught.value.key) == (bucket, "no/such/key")
    with pytest.raises(NotFoundError) as caught:
        await s3.head_object("no-such-bucket-s3stream", "k")
    assert (caught.value.status, caught.value.code) == (404, "NotFound")


async def test_head_object_checks_arguments_before_io(s3: S3Client) -> None:
    for call in (s3.head_object("B", "k"), s3.head_object("bucket", ""),
                 s3.head_object("bucket", "k", version_id="")):
        with pytest.raises(UsageError):
            await call


# --------------------------------------------------------------------- head_bucket


async def test_head_bucket(server: LocalS3, s3: S3Client, bucket: str) -> None:
    info = await s3.head_bucket(bucket)
    assert isinstance(info, BucketInfo)
    # Each server either names the region (x-amz-bucket-region) or not; both are the
    # client's region here.
    assert info == BucketInfo(bucket, server.region)
    with pytest.raises(NotFoundError) as caught:
        await s3.head_bucket("no-such-bucket-s3stream")
    assert (caught.value.status, caught.value.code) == (404, "NoSuchBucket")


# ------------------------------------------------------------------------- delete


async def test_delete_object(s3: S3Client, bucket: str, boto: Any) -> None:
    boto.put_object(Bucket=bucket, Key="gone soon+1", Body=b"x")
    await s3.delete_object(bucket, "gone soon+1")
    with pytest.raises(ClientError) as caught:
        boto.head_object(Bucket=bucket, Key="gone soon+1")
    assert caught.value.response["Error"]["Code"] == "404"
    # Deleting what is not there succeeds, as S3 does it.
    await s3.delete_object(bucket, "never-was")
    with pytest.raises(NotFoundError) as missing:
        await s3.delete_object("no-such-bucket-s3stream", "k")
    assert missing.value.code == "NoSuchBucket"
    with pytest.raises(NotFoundError) as missing:
        await s3.delete_objects("no-such-bucket-s3stream", ["k"])
    assert missing.value.code == "NoSuchBucket"


async def test_delete_objects_in_batches_and_list_past_1000(
    s3: S3Client, bucket: str, boto: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    keys = [f"many/{i:05d}" for i in range(2500)]
    _put_many(boto, bucket, keys)
    # Listing with the servers' own page size (1,000): three pages, every key once, in order.
    listed = [item async for item in s3.list_objects(bucket, prefix="many/")]
    assert [i.key for i in listed if isinstance(i, ObjectSummary)] == keys
    assert all(isinstance(i, ObjectSummary) and i.size == 1 for i in listed)

    requests: list[tuple[str, int]] = []
    call = s3._requester.call

    async def counting(request: Any, reader: Any, **kwargs: Any) -> Any:
        requests.append((request.operation, request.size))
        return await call(request, reader, **kwargs)

    monkeypatch.setattr(s3._requester, "call", counting)
    result = await s3.delete_objects(bucket, iter(keys))
    assert result.ok, result.errors[:3]
    assert sorted(result.deleted) == keys
    assert [op for op, _ in requests] == ["DeleteObjects"] * 3
    assert _boto_keys(boto, bucket) == []


async def test_delete_objects_small_and_empty(s3: S3Client, bucket: str, boto: Any) -> None:
    _put_many(boto, bucket, ODD_KEYS)
    result = await s3.delete_objects(bucket, [*ODD_KEYS, "not-there"])
    assert result.ok
    # S3 reports a key that did not exist as deleted too.
    assert sorted(result.deleted) == sorted([*ODD_KEYS, "not-there"])
    assert _boto_keys(boto, bucket) == []
    assert (await s3.delete_objects(bucket, [])).deleted == []
    with pytest.raises(UsageError):
        await s3.delete_objects(bucket, "a-string-is-not-a-list-of-keys")


# ------------------------------------------------------------------------ listing


async def test_list_prefix_delimiter_start_after_small_pages(
    s3: S3Client, bucket: str, boto: Any
) -> None:
    keys = ["a/1", "a/2", "a/b/3", "a/c/4", "a/c/5", "a/d", "b/1", "top"]
    _put_many(boto, bucket, keys, body=b"12345")
    for page in (None, 1, 2):
        everything = [i async for i in s3.list_objects(bucket, _max_keys=page)]
        assert [i.key for i in everything if isinstance(i, ObjectSummary)] == keys
        under_a = [i async for i in s3.list_objects(bucket, prefix="a/", delimiter="/",
                                                    _max_keys=page)]
        assert [_name(i) for i in under_a] == ["a/1", "a/2", "a/b/", "a/c/", "a/d"]
        assert [type(i) for i in under_a] == [ObjectSummary, ObjectSummary, CommonPrefix,
                                              CommonPrefix, ObjectSummary]
        top = [i async for i in s3.list_objects(bucket, delimiter="/", _max_keys=page)]
        assert top[:2] == [CommonPrefix("a/"), CommonPrefix("b/")]
        assert [_name(i) for i in top] == ["a/", "b/", "top"]
        after = [i async for i in s3.list_objects(bucket, start_after="a/c/5", _max_keys=page)]
        assert [_name(i) for i in after] == ["a/d", "b/1", "top"]
    boto_etags = {o["Key"]: o["ETag"] for o in boto.list_objects_v2(Bucket=bucket)["Contents"]}
    assert {i.key: i.etag for i in everything if isinstance(i, ObjectSummary)} == boto_etags


async def test_odd_keys_round_trip(s3: S3Client, bucket: str, boto: Any) -> None:
    for key in ODD_KEYS:
        await s3.upload(bucket, key, key.encode())
    listed = [i async for i in s3.list_objects(bucket)]
    assert sorted(i.key for i in listed if isinstance(i, ObjectSummary)) == \
        sorted(_boto_keys(boto, bucket)) == sorted(ODD_KEYS)
    for key in ODD_KEYS:
        info = await s3.head_object(bucket, key)
        assert info.size == len(key.encode())
        pre = [i async for i in s3.list_objects(bucket, prefix=key)]
        assert [i.key for i in pre if isinstance(i, ObjectSummary)] == [key]
    prefixes = [i async for i in s3.list_objects(bucket, delimiter="/")]
    assert sorted(p.prefix for p in prefixes if isinstance(p, CommonPrefix)) == \
        sorted({k.split("/")[0] + "/" for k in ODD_KEYS})


async def test_list_missing_bucket_and_arguments(s3: S3Client) -> None:
    with pytest.raises(NotFoundError) as caught:
        await anext(aiter(s3.list_objects("no-such-bucket-s3stream")))
    assert caught.value.code == "NoSuchBucket"
    # Checked when called, before any request (not on first iteration).
    with pytest.raises(UsageError):
        s3.list_objects("B")
    with pytest.raises(UsageError):
        s3.list_objects("bucket", prefix=None)  # type: ignore[arg-type]
    with pytest.raises(UsageError):
        s3.list_objects("bucket", delimiter="")


async def test_list_empty_bucket(s3: S3Client, bucket: str) -> None:
    assert [i async for i in s3.list_objects(bucket)] == []


async def test_versions(server: LocalS3, s3: S3Client, bucket: str, boto: Any) -> None:
    if not enable_versioning(server, boto, bucket):
        return  # rclone serve s3 has no versioning (asserted by the helper)
    first = boto.put_object(Bucket=bucket, Key="v", Body=b"one")["VersionId"]
    second = boto.put_object(Bucket=bucket, Key="v", Body=b"second")["VersionId"]
    assert (await s3.head_object(bucket, "v")).version_id == second
    old = await s3.head_object(bucket, "v", version_id=first)
    assert (old.version_id, old.size) == (first, 3)
    await s3.delete_object(bucket, "v", version_id=first)
    versions = boto.list_object_versions(Bucket=bucket, Prefix="v").get("Versions", [])
    assert [v["VersionId"] for v in versions] == [second]
    with pytest.raises(NotFoundError):
        await s3.head_object(bucket, "v", version_id=first)
    await s3.delete_object(bucket, "v", version_id=second)
