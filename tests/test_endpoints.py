"""Where requests go: buckets in another region (followed, remembered, re-signed, the
source never re-read), AWS's endpoint variants, and the addressing style."""

from __future__ import annotations

import base64
import dataclasses
import hashlib
import logging
from collections.abc import AsyncIterator
from typing import Any

import botocore.exceptions
import pytest
from fake_s3 import FakeS3
from test_failures import BUCKET, PART, PART_OP, chunked, deadline, payload

from s3stream import Credentials, Retry, S3Client, S3ResponseError, UploadError
from s3stream import _protocol as proto


@pytest.fixture
async def fake() -> AsyncIterator[FakeS3]:
    async with FakeS3(bucket=BUCKET, region="eu-west-1") as server:
        yield server


class CountingSource:
    def __init__(self, data: bytes) -> None:
        self.data, self.reads = data, 0

    async def __aiter__(self) -> AsyncIterator[bytes]:
        async for chunk in chunked(self.data):
            self.reads += 1
            yield chunk


@pytest.mark.parametrize("answer", ["301", "400"])
async def test_a_bucket_in_another_region_is_followed_and_remembered(
    fake: FakeS3, answer: str
) -> None:
    fake.wrong_region = answer
    data = payload(2 * PART + 1)
    source = CountingSource(data)
    async with S3Client(endpoint=fake.endpoint, region="us-east-1", retry=Retry(attempts=1),
                        credentials=Credentials("AK", "SK")) as client, deadline():
        result = await client.upload(BUCKET, "k", source, part_size=PART)
        again = await client.upload(BUCKET, "small", b"tiny")
        assert client._requester.bucket_regions == {BUCKET: "eu-west-1"}
    assert fake.objects["k"] == data and result.part_count == 3
    assert fake.objects["small"] == b"tiny" and again.size == 4
    assert source.reads == len(list(range(0, len(data), 1 << 20)))  # read once
    refused = [r for r in fake.requests if r.region_refused]
    assert [r.op for r in refused] == ["CreateMultipartUpload"]  # once, then remembered
    assert all(r.signature_ok for r in fake.requests if not r.region_refused)
    assert fake.open_uploads == set()


async def test_a_redirect_to_the_same_region_is_an_error_not_a_loop(fake: FakeS3) -> None:
    fake.fail(op=PART_OP, part=2, status=301, code="PermanentRedirect",
              headers={"x-amz-bucket-region": "eu-west-1"})
    async with S3Client(endpoint=fake.endpoint, region="eu-west-1", retry=Retry(attempts=1),
                        credentials=Credentials("AK", "SK")) as client:
        with pytest.raises(UploadError) as info:
            async with deadline():
                await client.upload(BUCKET, "k", chunked(payload(3 * PART + 1)),
                                    part_size=PART)
    assert isinstance(info.value.__cause__, S3ResponseError)
    assert info.value.__cause__.code == "PermanentRedirect"
    assert [r.status for r in fake.requests_for(PART_OP, 2)] == [301]
    assert info.value.aborted and fake.open_uploads == set()


def test_redirect_region_rules() -> None:
    def err(status: int, code: str, region: str | None) -> S3ResponseError:
        return S3ResponseError(status=status, code=code, message="", bucket_region=region)

    assert proto.redirect_region(err(301, "PermanentRedirect", "eu-west-1"), "us-east-1") \
        == "eu-west-1"
    assert proto.redirect_region(err(400, "AuthorizationHeaderMalformed", "ap-south-1"),
                                 "us-east-1") == "ap-south-1"
    assert proto.redirect_region(err(301, "PermanentRedirect", "us-east-1"), "us-east-1") \
        is None  # already there: not a loop
    assert proto.redirect_region(err(301, "PermanentRedirect", None), "us-east-1") is None
    assert proto.redirect_region(err(500, "InternalError", "eu-west-1"), "us-east-1") is None
    assert proto.redirect_region(err(301, "PermanentRedirect", "x/../y"), "us-east-1") is None


def test_aws_endpoint_variants_follow_the_region() -> None:
    plain = proto.Endpoint.parse(None, region="us-east-2", addressing="auto")
    assert plain.netloc("bucket") == "bucket.s3.us-east-2.amazonaws.com"
    assert plain.for_region("eu-west-1").netloc("bucket") == "bucket.s3.eu-west-1.amazonaws.com"
    both = proto.Endpoint.parse(None, region="us-east-2", addressing="auto", dualstack=True,
                                fips=True)
    assert both.netloc(None) == "s3-fips.dualstack.us-east-2.amazonaws.com"
    assert both.for_region("us-west-2").netloc(None) == \
        "s3-fips.dualstack.us-west-2.amazonaws.com"
    # Dotted names cannot be virtual-hosted over HTTPS (the wildcard certificate covers
    # one label): they go path-style.
    assert plain.netloc("my.bucket") == "s3.us-east-2.amazonaws.com"
    assert plain.raw_path("my.bucket", "k") == "/my.bucket/k"
    custom = proto.Endpoint.parse("http://127.0.0.1:9000", region="us-east-2",
                                  addressing="auto")
    assert custom.for_region("eu-west-1") is custom


def test_dualstack_and_fips_from_the_environment() -> None:
    env = {"AWS_USE_DUALSTACK_ENDPOINT": "true", "AWS_USE_FIPS_ENDPOINT": "TRUE",
           "AWS_REGION": "ca-central-1", "AWS_ACCESS_KEY_ID": "AK",
           "AWS_SECRET_ACCESS_KEY": "SK", "HOME": "/nonexistent"}
    client = S3Client(environ=env)
    assert client.endpoint == "https://s3-fips.dualstack.ca-central-1.amazonaws.com/"


# ------------------------------------------------- headers every request carries


def _sse_c() -> dict[str, str]:
    key = bytes(range(32))
    return {
        "x-amz-server-side-encryption-customer-algorithm": "AES256",
        "x-amz-server-side-encryption-customer-key": base64.b64encode(key).decode(),
        "x-amz-server-side-encryption-customer-key-MD5":
            base64.b64encode(hashlib.md5(key).digest()).decode(),
    }


async def test_sse_c_and_payer_headers_go_on_every_request_that_needs_them(
    fake: FakeS3, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    headers = {**_sse_c(), "x-amz-request-payer": "requester",
               "x-amz-expected-bucket-owner": "111122223333"}
    data = payload(2 * PART + 1)
    async with S3Client(endpoint=fake.endpoint, region="eu-west-1",
                        credentials=Credentials("AK", "SK")) as client, deadline():
        await client.upload(BUCKET, "k", chunked(data), part_size=PART, headers=headers)

        async def failing() -> AsyncIterator[bytes]:
            yield data
            raise RuntimeError("source broke")

        with pytest.raises(RuntimeError):
            await client.upload(BUCKET, "k2", failing(), part_size=PART, headers=headers)
    assert fake.objects["k"] == data
    key = headers["x-amz-server-side-encryption-customer-key"]
    for rec in fake.requests:
        assert rec.headers.get("x-amz-request-payer") == "requester", rec.op
        assert rec.headers.get("x-amz-expected-bucket-owner") == "111122223333", rec.op
        if rec.op != "AbortMultipartUpload":
            assert rec.headers.get("x-amz-server-side-encryption-customer-key") == key, rec.op
    assert {r.op for r in fake.requests} >= {"UploadPart", "CompleteMultipartUpload",
                                            "AbortMultipartUpload"}
    assert all(r.status in (200, 204) for r in fake.requests)
    assert key not in caplog.text  # key material never logged


async def test_without_the_key_on_parts_the_store_refuses(fake: FakeS3) -> None:
    # The fake's check is real: parts without the SSE-C key are refused, as S3 does.
    async with S3Client(endpoint=fake.endpoint, region="eu-west-1",
                        credentials=Credentials("AK", "SK")) as client:
        upload = client.open_upload(BUCKET, "k", part_size=PART, headers=_sse_c())
        upload._opts = dataclasses.replace(upload._opts, part_headers=())
        with pytest.raises(UploadError) as info:
            async with deadline(), upload:
                await upload.write(payload(PART + 1))
    assert isinstance(info.value.__cause__, S3ResponseError)
    assert info.value.__cause__.code == "InvalidRequest"
    assert fake.open_uploads == set()


@pytest.mark.real_s3
async def test_sse_c_upload_to_a_real_server(s3: S3Client, bucket: str, boto: Any) -> None:
    # SeaweedFS encrypts with the customer key and refuses to show the object without it
    # (it accepts parts without the key, so the fake above is what checks every part).
    headers = _sse_c()
    data = payload(2 * PART + 11, seed=9)
    result = await s3.upload(bucket, "sse-c.bin", chunked(data), part_size=PART,
                             headers=headers)
    assert result.part_count == 3
    key = base64.b64decode(headers["x-amz-server-side-encryption-customer-key"])
    body = boto.get_object(Bucket=bucket, Key="sse-c.bin", SSECustomerAlgorithm="AES256",
                           SSECustomerKey=key)["Body"].read()
    assert body == data
    with pytest.raises(botocore.exceptions.ClientError):
        boto.head_object(Bucket=bucket, Key="sse-c.bin")  # the key is required to see it
