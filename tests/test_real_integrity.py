"""Checksums, conditional writes, clock skew and upload management on the real servers.

Every test runs once per server (``every_server``). The servers differ most here: moto checks
no checksum at all and no clock; rclone checks only Content-MD5 and ignores conditional
headers. Each test says where a server departs from S3 and asserts what it does instead.
"""

from __future__ import annotations

import base64
import hashlib
import logging
import os
import zlib
from datetime import UTC, datetime, timedelta
from typing import Any

import crc32c
import pytest
from support import UnevenStream, read_back, sha256

from s3stream import Credentials, S3Client, S3ResponseError, UploadError, UsageError
from s3stream.testing import LocalS3

MiB = 1 << 20
pytestmark = [pytest.mark.real_s3, pytest.mark.every_server]


def b64(raw: bytes) -> str:
    return base64.b64encode(raw).decode()


def independent_checksum(algorithm: str, data: bytes) -> str:
    if algorithm == "crc32c":
        return b64(crc32c.crc32c(data).to_bytes(4, "big"))
    if algorithm == "crc32":
        return b64(zlib.crc32(data).to_bytes(4, "big"))
    if algorithm == "sha256":
        return b64(hashlib.sha256(data).digest())
    return b64(hashlib.md5(data).digest())


@pytest.mark.parametrize("algorithm", ["crc32c", "crc32"])
async def test_full_object_crc_matches_server_and_data(
    server: LocalS3, s3: S3Client, bucket: str, boto: Any, algorithm: str
) -> None:
    data = os.urandom(17 * MiB + 3)
    result = await s3.upload(bucket, "crc.bin", data, part_size=5 * MiB, checksum=algorithm)
    assert result.part_count == 4
    assert result.checksum_type == "FULL_OBJECT"
    # Combined from the parts' CRCs, it equals a CRC computed over the whole object ...
    assert result.checksum == independent_checksum(algorithm, data)
    head = boto.head_object(Bucket=bucket, Key="crc.bin", ChecksumMode="ENABLED")
    if server.name == "rclone":
        # rclone stores the checksum type of a multipart object but no checksum value, and
        # never echoes one, so nothing shows that it checked: the result says so.
        assert f"Checksum{algorithm.upper()}" not in head
        assert head["ChecksumType"] == "FULL_OBJECT"
        assert result.checksum_confirmed is False
    else:
        # ... and what the server itself stored.
        assert head[f"Checksum{algorithm.upper()}"] == result.checksum
        # SeaweedFS reports the object's checksum on Complete. moto computes its own from the
        # parts on Complete (and never compares it with the one sent, see
        # test_server_checks_part_checksums) but reports it only on HeadObject, which a
        # successful upload does not send.
        assert result.checksum_confirmed is (server.name == "seaweedfs")
    assert read_back(boto, bucket, "crc.bin") == data


async def test_sha256_is_composite(s3: S3Client, bucket: str, boto: Any) -> None:
    data = os.urandom(11 * MiB)
    result = await s3.upload(bucket, "sha.bin", data, part_size=5 * MiB, checksum="sha256")
    parts = [data[i : i + 5 * MiB] for i in range(0, len(data), 5 * MiB)]
    joined = b"".join(hashlib.sha256(p).digest() for p in parts)
    assert result.checksum == f"{b64(hashlib.sha256(joined).digest())}-3"
    assert result.checksum_type == "COMPOSITE"
    assert read_back(boto, bucket, "sha.bin") == data


@pytest.mark.parametrize("algorithm", ["crc32c", "crc32", "sha256", "md5"])
async def test_single_put_checksums(
    s3: S3Client, bucket: str, boto: Any, algorithm: str
) -> None:
    data = os.urandom(300_000)
    result = await s3.upload(bucket, "one.bin", data, checksum=algorithm)
    assert result.checksum == independent_checksum(algorithm, data)
    assert read_back(boto, bucket, "one.bin") == data


async def test_default_checksum_is_crc32c(s3: S3Client) -> None:
    assert s3.checksum == "crc32c"  # the test extra installs the native CRC32C


async def test_no_checksum(s3: S3Client, bucket: str, boto: Any) -> None:
    data = os.urandom(6 * MiB)
    result = await s3.upload(bucket, "plain.bin", data, part_size=5 * MiB, checksum=None)
    assert result.checksum is None
    assert read_back(boto, bucket, "plain.bin") == data


# Which servers check which part checksum: moto checks none (its source: "TODO: AWS computes
# the provided value and verifies it's the same"), rclone only Content-MD5.
VERIFIES = {"seaweedfs": {"crc32c", "md5"}, "moto": set(), "rclone": {"md5"}}


@pytest.mark.parametrize("algorithm", ["crc32c", "md5"])
async def test_server_checks_part_checksums(
    server: LocalS3, bucket: str, boto: Any, monkeypatch: pytest.MonkeyPatch, algorithm: str
) -> None:
    """The checksum really is sent and checked: a corrupted one makes S3 refuse the part."""
    import s3stream._checksums as cks

    real = cks.digest_part

    def corrupt(chunks: Any, *, sha256: bool, algorithm: str | None) -> cks.PartDigest:
        digest = real(chunks, sha256=sha256, algorithm=algorithm)
        if digest.checksum is None:  # a payload hash alone (a body to sign), not a part
            return digest
        return cks.PartDigest(digest.sha256_hex, bytes(b ^ 0xFF for b in digest.checksum))

    monkeypatch.setattr(cks, "digest_part", corrupt)
    # CRC32C normally runs as bytes arrive; route it through digest_part to corrupt it.
    monkeypatch.setattr(cks, "running_crc", lambda algorithm: None)
    data = os.urandom(6 * MiB)
    # CRC32C is the client's default, which steps down when a store refuses checksums but
    # never when it says a checksum is wrong; MD5 is asked for explicitly.
    explicit: dict[str, Any] = {"checksum": "md5"} if algorithm == "md5" else {}
    async with S3Client(endpoint=server.endpoint, region=server.region,
                        credentials=server.credentials) as s3:
        assert s3.checksum == "crc32c"
        if algorithm not in VERIFIES[server.name]:
            # Stored as sent, wrong checksum and all; nothing showed it was checked.
            result = await s3.upload(bucket, "corrupt.bin", data, part_size=5 * MiB,
                                     **explicit)
            assert result.checksum_confirmed is False
            assert read_back(boto, bucket, "corrupt.bin") == data
            if algorithm == "crc32c":
                assert result.checksum != independent_checksum(algorithm, data)
            if server.name == "moto" and algorithm == "crc32c":
                # moto computes the object's CRC from the data on Complete and keeps that,
                # never comparing it with the (corrupted) one it was sent.
                head = boto.head_object(Bucket=bucket, Key="corrupt.bin", ChecksumMode="ENABLED")
                assert head["ChecksumCRC32C"] == independent_checksum(algorithm, data)
            return
        with pytest.raises((UploadError, S3ResponseError)) as info:
            await s3.upload(bucket, "corrupt.bin", data, part_size=5 * MiB, **explicit)
    err = info.value
    cause = err.__cause__ if isinstance(err, UploadError) else err
    assert isinstance(cause, S3ResponseError)
    assert cause.code in ("BadDigest", "InvalidDigest", "XAmzContentChecksumMismatch")
    if isinstance(err, UploadError):
        assert err.aborted
    assert "Contents" not in boto.list_objects_v2(Bucket=bucket)


async def test_if_none_match_creates_only(
    server: LocalS3, s3: S3Client, bucket: str, boto: Any
) -> None:
    await s3.upload(bucket, "once", b"first", if_none_match="*")
    if server.name == "rclone":
        # rclone ignores If-None-Match, on PutObject and on CompleteMultipartUpload alike:
        # each write replaces the object.
        await s3.upload(bucket, "once", b"second", if_none_match="*")
        assert read_back(boto, bucket, "once") == b"second"
        data = os.urandom(11 * MiB)
        result = await s3.upload(bucket, "once", data, part_size=5 * MiB, if_none_match="*")
        assert result.part_count == 3
        assert read_back(boto, bucket, "once") == data
        return
    with pytest.raises(S3ResponseError) as single:
        await s3.upload(bucket, "once", b"second", if_none_match="*")
    assert single.value.status == 412
    with pytest.raises(UploadError) as multi:
        await s3.upload(bucket, "once", os.urandom(11 * MiB), part_size=5 * MiB,
                        if_none_match="*")
    assert multi.value.aborted
    assert isinstance(multi.value.__cause__, S3ResponseError)
    assert multi.value.__cause__.code == "PreconditionFailed"
    assert read_back(boto, bucket, "once") == b"first"


async def test_if_match_replaces_only_unchanged(
    server: LocalS3, s3: S3Client, bucket: str, boto: Any
) -> None:
    first = await s3.upload(bucket, "doc", b"v1")
    other_etag = '"0123456789abcdef0123456789abcdef"'
    if server.name == "seaweedfs":
        with pytest.raises(UploadError) as info:
            await s3.upload(bucket, "doc", os.urandom(6 * MiB), part_size=5 * MiB,
                            if_match=other_etag)
        assert info.value.aborted
        assert isinstance(info.value.__cause__, S3ResponseError)
        assert info.value.__cause__.code == "PreconditionFailed"
        assert read_back(boto, bucket, "doc") == b"v1"
    else:
        # moto checks If-Match on PutObject but not on CompleteMultipartUpload, and rclone
        # ignores it everywhere: the multipart write with a wrong ETag replaces the object.
        data = os.urandom(6 * MiB)
        await s3.upload(bucket, "doc", data, part_size=5 * MiB, if_match=other_etag)
        assert read_back(boto, bucket, "doc") == data
    current = boto.head_object(Bucket=bucket, Key="doc")["ETag"]
    second_data = os.urandom(6 * MiB)
    second = await s3.upload(bucket, "doc", second_data, part_size=5 * MiB, if_match=current)
    assert read_back(boto, bucket, "doc") == second_data
    if server.name == "rclone":
        await s3.upload(bucket, "doc", b"v3", if_match=first.etag)  # stale, but not checked
        assert read_back(boto, bucket, "doc") == b"v3"
        return
    with pytest.raises(S3ResponseError) as stale:
        await s3.upload(bucket, "doc", b"v3", if_match=first.etag)  # stale ETag now
    assert (stale.value.status, stale.value.code) == (412, "PreconditionFailed")
    assert boto.head_object(Bucket=bucket, Key="doc")["ETag"] == second.etag
    assert read_back(boto, bucket, "doc") == second_data


async def test_conditional_arguments_are_checked(s3: S3Client, bucket: str) -> None:
    with pytest.raises(UsageError):
        await s3.upload(bucket, "k", b"x", if_none_match='"etag"')
    with pytest.raises(UsageError):
        await s3.upload(bucket, "k", b"x", if_none_match="*", if_match='"e"')
    with pytest.raises(UsageError):
        await s3.upload(bucket, "k", b"x", checksum="adler32")


@pytest.mark.parametrize("minutes", [20, -20])
async def test_clock_skew_is_corrected(
    server: LocalS3, bucket: str, boto: Any, minutes: int
) -> None:
    def skewed() -> datetime:
        return datetime.now(UTC) + timedelta(minutes=minutes)

    async with S3Client(endpoint=server.endpoint, region=server.region,
                        credentials=server.credentials, clock=skewed) as s3:
        stream = UnevenStream(11 * MiB, seed=minutes)
        result = await s3.upload(bucket, "skew.bin", stream, part_size=5 * MiB)
        offset = s3._requester.clock_offset.total_seconds()
        if server.name == "moto":
            # moto checks a signature against the request's own X-Amz-Date and never
            # compares that with its clock: nothing is refused, so nothing is corrected.
            assert offset == 0
        else:
            # Corrected from the server's Date header (1 s resolution) after one refusal.
            # rclone refuses a request dated in the future with RequestTimeTooSkewed but one
            # dated in the past with 400 AccessDenied and AWS's words for a skew ("The
            # difference between the request time and the server's time exceeds the maximum
            # allowed"); s3stream knows a skew by either.
            assert abs(offset + minutes * 60) < 5
    assert result.part_count == 3
    assert sha256(read_back(boto, bucket, "skew.bin")) == stream.digest.hexdigest()


async def test_list_and_abort_stale(
    server: LocalS3, s3: S3Client, bucket: str, boto: Any
) -> None:
    # Orphans left by another tool (boto3 here), one with a part already uploaded.
    ids = {}
    for key in ("orphans/a", "orphans/b", "keep/c"):
        ids[key] = boto.create_multipart_upload(Bucket=bucket, Key=key)["UploadId"]
    boto.upload_part(Bucket=bucket, Key="orphans/a", UploadId=ids["orphans/a"], PartNumber=1,
                     Body=b"x" * 100)
    listed = {(u.key, u.upload_id) async for u in s3.list_multipart_uploads(bucket)}
    assert listed == {(k, v) for k, v in ids.items()}
    parts = [p async for p in s3.list_parts(bucket, "orphans/a", ids["orphans/a"])]
    assert [(p.number, p.size) for p in parts] == [(1, 100)]

    initiated = [u.initiated async for u in s3.list_multipart_uploads(bucket)]
    if server.name == "moto":
        # moto's ListMultipartUploads answer is a template that dates every upload
        # 2010-11-10T20:48:33Z, so to abort_stale they are all years old already.
        moto_date = datetime(2010, 11, 10, 20, 48, 33, tzinfo=UTC)
        assert initiated == [moto_date] * 3
        younger = datetime.now(UTC) - moto_date + timedelta(days=1)
        assert await s3.abort_stale(bucket, prefix="orphans/", older_than=younger) == 0
    else:
        # Started just now, by the server's clock and ours.
        assert len(initiated) == 3
        assert all(t is not None and abs(datetime.now(UTC) - t) < timedelta(minutes=5)
                   for t in initiated)
        assert await s3.abort_stale(bucket, prefix="orphans/", older_than=3600) == 0
    assert await s3.abort_stale(bucket, prefix="orphans/", older_than=0) == 2
    remaining = [u.key async for u in s3.list_multipart_uploads(bucket)]
    assert remaining == ["keep/c"]
    assert await s3.abort_stale(bucket, older_than=timedelta(0)) == 1
    with pytest.raises(UsageError):
        await s3.abort_stale(bucket, older_than=-1)


async def test_listing_a_bucket_without_uploads(s3: S3Client, bucket: str, boto: Any) -> None:
    # Nothing was ever started here: an empty listing, and nothing to abort. (rclone answers
    # this ListMultipartUploads with 404 NoSuchUpload until the bucket's first
    # CreateMultipartUpload; S3 never sends NoSuchUpload for a listing.)
    await s3.upload(bucket, "plain.bin", b"one PutObject, no multipart")
    assert [u async for u in s3.list_multipart_uploads(bucket)] == []
    assert await s3.abort_stale(bucket, older_than=0) == 0
    assert read_back(boto, bucket, "plain.bin") == b"one PutObject, no multipart"


async def test_secrets_never_logged(
    server: LocalS3, bucket: str, caplog: pytest.LogCaptureFixture
) -> None:
    secret = "super-secret-value-1234"
    token = "session-token-value-5678"
    caplog.set_level(logging.DEBUG)
    bad = Credentials(server.credentials.access_key_id, secret, token)
    async with S3Client(endpoint=server.endpoint, credentials=bad) as s3:
        text = repr(s3)
        with pytest.raises(S3ResponseError) as info:
            await s3.upload(bucket, "k", os.urandom(6 * MiB), part_size=5 * MiB)
    text += str(info.value) + repr(info.value) + caplog.text
    assert caplog.records, "DEBUG logging should have recorded the requests"
    assert secret not in text
    assert token not in text
    assert "Signature=" not in text
