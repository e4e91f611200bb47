"""Presigned URLs used by curl and by a plain aiohttp session against real S3 servers
(SeaweedFS, moto, rclone; all enforce SigV4), boto3 as the oracle."""

from __future__ import annotations

import asyncio
import os
import subprocess
from datetime import UTC, datetime, timedelta
from typing import Any

import aiohttp
import pytest
from support import enable_versioning

from s3stream import Credentials, PresignedRequest, S3Client, UsageError
from s3stream.testing import LocalS3

pytestmark = [pytest.mark.real_s3, pytest.mark.every_server]

MiB = 1 << 20
KEY = "dir/a b+c%d ünï.bin"


def curl(*args: str, data: bytes | None = None) -> tuple[int, bytes]:
    """``curl`` as a user would run it: the URL exactly as given (no globbing, no
    ``..`` folding); returns the HTTP status and the body."""
    out = subprocess.run(
        ["curl", "-sS", "--globoff", "--path-as-is", "-o", "-", "-w", "\n%{http_code}",
         *args], input=data, capture_output=True, check=True, timeout=60)
    body, _, status = out.stdout.rpartition(b"\n")
    return int(status), body


def moto_fails_every_presigned_request(server: LocalS3, boto: Any, bucket: str,
                                       status: int) -> bool:
    """moto_server with IAM authentication on answers 500 to every request without an
    ``Authorization`` header (its IAM check reads that header and raises KeyError), so no
    presigned URL works there, boto3's own included. True (after checking both) on moto."""
    if server.name != "moto":
        return False
    assert status == 500
    boto.put_object(Bucket=bucket, Key="oracle", Body=b"o")
    url = boto.generate_presigned_url("get_object", Params={"Bucket": bucket, "Key": "oracle"},
                                      ExpiresIn=60)
    assert curl(url)[0] == 500
    return True


def _client(server: LocalS3, **kwargs: Any) -> S3Client:
    return S3Client(endpoint=server.endpoint, region=server.region,
                    credentials=server.credentials, **kwargs)


async def test_presigned_get_with_curl_and_aiohttp(
    server: LocalS3, s3: S3Client, bucket: str, boto: Any
) -> None:
    data = os.urandom(100_000)
    boto.put_object(Bucket=bucket, Key=KEY, Body=data)
    url = await s3.presign_get(bucket, KEY, expires=300)
    assert "X-Amz-Signature=" in url and "Authorization" not in url
    status, body = await asyncio.to_thread(curl, url)
    if moto_fails_every_presigned_request(server, boto, bucket, status):
        return
    assert (status, body) == (200, data)
    async with aiohttp.ClientSession() as session, session.get(url) as answer:
        assert answer.status == 200
        assert await answer.read() == data
    # A HEAD is another method: the GET URL does not sign it.
    status, _ = await asyncio.to_thread(curl, "-I", url)
    assert status == 403


async def test_presigned_get_response_headers(
    server: LocalS3, s3: S3Client, bucket: str, boto: Any
) -> None:
    boto.put_object(Bucket=bucket, Key="r.txt", Body=b"abc", ContentType="text/plain")
    url = await s3.presign_get(bucket, "r.txt", expires=timedelta(minutes=5),
                               response_headers={"Content-Disposition": 'attachment; '
                                                 'filename="r.txt"',
                                                 "Content-Type": "application/x-test"})
    async with aiohttp.ClientSession() as session, session.get(url) as answer:
        if moto_fails_every_presigned_request(server, boto, bucket, answer.status):
            return
        assert answer.status == 200
        assert await answer.read() == b"abc"
        assert answer.headers["Content-Disposition"] == 'attachment; filename="r.txt"'
        assert answer.headers["Content-Type"] == "application/x-test"


async def test_presigned_put_with_signed_headers(
    server: LocalS3, s3: S3Client, bucket: str, boto: Any
) -> None:
    put = await s3.presign_put(bucket, KEY, content_type="application/x-thing",
                               metadata={"owner": "ann"})
    assert isinstance(put, PresignedRequest)
    assert put.method == "PUT"
    assert put.headers == {"Content-Type": "application/x-thing", "x-amz-meta-owner": "ann"}
    assert "X-Amz-SignedHeaders=content-type%3Bhost%3Bx-amz-meta-owner" in put.url
    data = os.urandom(50_000)
    header_args = [a for name, value in put.headers.items() for a in ("-H", f"{name}: {value}")]
    status, _ = await asyncio.to_thread(curl, "-X", "PUT", *header_args, "--data-binary", "@-",
                                        put.url, data=data)
    if moto_fails_every_presigned_request(server, boto, bucket, status):
        return
    assert status == 200
    head = boto.head_object(Bucket=bucket, Key=KEY)
    assert head["ContentType"] == "application/x-thing"
    assert {k.lower(): v for k, v in head["Metadata"].items()} == {"owner": "ann"}
    assert boto.get_object(Bucket=bucket, Key=KEY)["Body"].read() == data

    # Without a signed header (or with another value) the signature does not match.
    async with aiohttp.ClientSession() as session:
        for headers in ({"Content-Type": "application/x-thing"},
                        {**put.headers, "x-amz-meta-owner": "mallory"}):
            async with session.put(put.url, data=b"other", headers=headers) as answer:
                assert answer.status == 403, (headers, await answer.text())
        # The same URL with exactly its headers works from aiohttp too.
        async with session.put(put.url, data=b"second", headers=put.headers) as answer:
            assert answer.status == 200
    assert boto.get_object(Bucket=bucket, Key=KEY)["Body"].read() == b"second"


async def test_expired_url_is_refused(server: LocalS3, bucket: str, boto: Any) -> None:
    boto.put_object(Bucket=bucket, Key="old", Body=b"x")
    # Ten minutes ago: inside every server's 15-minute clock-skew window, so what refuses
    # the URL is its expiry (rclone checks the skew of X-Amz-Date as well).
    past = datetime.now(UTC) - timedelta(minutes=10)
    async with _client(server, clock=lambda: past) as s3:
        url = await s3.presign_get(bucket, "old", expires=60)
        put = await s3.presign_put(bucket, "new", expires=60)
        valid = await s3.presign_get(bucket, "old", expires=3600)
    refused = [await asyncio.to_thread(curl, url),
               await asyncio.to_thread(curl, "-X", "PUT", "--data-binary", "y", put.url)]
    status, body = await asyncio.to_thread(curl, valid)
    if moto_fails_every_presigned_request(server, boto, bucket, status):
        return
    # Signed ten minutes ago for an hour: still valid.
    assert (status, body) == (200, b"x")
    for status, body in refused:
        if server.name == "rclone":
            # rclone answers an expired URL with 400 AccessDenied ("the difference between
            # the request time and the server's time exceeds the maximum allowed").
            assert status == 400 and b"<Code>AccessDenied</Code>" in body, body
        else:
            assert status == 403, body
    assert "new" not in [o["Key"] for o in boto.list_objects_v2(Bucket=bucket)["Contents"]]


class _MotoCannot(Exception):
    pass


async def test_presigned_upload_part(server: LocalS3, s3: S3Client, bucket: str,
                                     boto: Any) -> None:
    key = "multi part+key"
    upload_id = boto.create_multipart_upload(Bucket=bucket, Key=key)["UploadId"]
    parts = [os.urandom(5 * MiB), os.urandom(123_457)]
    try:
        etags = []
        async with aiohttp.ClientSession() as session:
            for number, body in enumerate(parts, 1):
                url = await s3.presign_upload_part(bucket, key, upload_id, number, expires=600)
                async with session.put(url, data=body) as answer:
                    if moto_fails_every_presigned_request(server, boto, bucket,
                                                          answer.status):
                        raise _MotoCannot
                    assert answer.status == 200, await answer.text()
                    etags.append(answer.headers["ETag"])
        boto.complete_multipart_upload(
            Bucket=bucket, Key=key, UploadId=upload_id,
            MultipartUpload={"Parts": [{"PartNumber": n, "ETag": e}
                                       for n, e in enumerate(etags, 1)]})
    except BaseException as exc:
        boto.abort_multipart_upload(Bucket=bucket, Key=key, UploadId=upload_id)
        if isinstance(exc, _MotoCannot):
            return
        raise
    assert boto.get_object(Bucket=bucket, Key=key)["Body"].read() == b"".join(parts)


async def test_object_url_is_unsigned(server: LocalS3, s3: S3Client, bucket: str,
                                      boto: Any) -> None:
    boto.put_object(Bucket=bucket, Key=KEY, Body=b"x")
    url = s3.object_url(bucket, KEY)
    assert url == f"{server.endpoint}/{bucket}/dir/a%20b%2Bc%25d%20%C3%BCn%C3%AF.bin"
    # The bucket is private, so an unsigned GET is refused: object_url() is for public
    # objects or a CDN in front of the bucket.
    status, body = await asyncio.to_thread(curl, url)
    if server.name == "rclone":
        # rclone serve s3 with --auth-key refuses any unsigned request as 400
        # UnsupportedAlgorithm.
        assert status == 400 and b"UnsupportedAlgorithm" in body, body
    else:
        assert status == 403, body


async def test_presign_checks_arguments_and_credentials(server: LocalS3, s3: S3Client) -> None:
    for call in (
        s3.presign_get("bucket", "k", expires=0),
        s3.presign_get("bucket", "k", expires=timedelta(days=8)),
        s3.presign_get("bucket", "k", expires=2.5),  # type: ignore[arg-type]
        s3.presign_get("B", "k"),
        s3.presign_get("bucket", ""),
        s3.presign_get("bucket", "k", response_headers={"x-amz-meta-a": "b"}),
        s3.presign_put("bucket", "k", metadata={"bad name": "v"}),
        s3.presign_put("bucket", "k", headers={"Host": "evil"}),
        s3.presign_upload_part("bucket", "k", "", 1),
        s3.presign_upload_part("bucket", "k", "id", 0),
        s3.presign_upload_part("bucket", "k", "id", 10_001),
    ):
        with pytest.raises(UsageError):
            await call
    with pytest.raises(UsageError):
        s3.object_url("bucket", "")
    async with S3Client(endpoint=server.endpoint, region=server.region,
                        credentials=Credentials.anonymous()) as anonymous:
        with pytest.raises(UsageError, match="object_url"):
            await anonymous.presign_get("bucket", "k")
        assert anonymous.object_url("bucket", "k") == f"{server.endpoint}/bucket/k"


async def test_presigned_get_of_one_version(server: LocalS3, s3: S3Client, bucket: str,
                                            boto: Any) -> None:
    if not enable_versioning(server, boto, bucket):
        return  # rclone serve s3 has no versioning (asserted by the helper)
    first = boto.put_object(Bucket=bucket, Key="v", Body=b"one")["VersionId"]
    boto.put_object(Bucket=bucket, Key="v", Body=b"second")
    url = await s3.presign_get(bucket, "v", version_id=first)
    assert f"versionId={first}" in url
    status, body = await asyncio.to_thread(curl, url)
    if moto_fails_every_presigned_request(server, boto, bucket, status):
        return
    assert (status, body) == (200, b"one")
    assert await asyncio.to_thread(curl, await s3.presign_get(bucket, "v")) == (200, b"second")
