"""Presigned URLs, pure: AWS's documented example, signed headers, limits, addressing."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from urllib.parse import parse_qsl, urlsplit

import pytest

from s3stream import Credentials, UsageError
from s3stream._presign import MAX_EXPIRES, check_expires, object_url, presign, response_query
from s3stream._protocol import Endpoint
from s3stream._sigv4 import (
    UNSIGNED_PAYLOAD,
    canonical_query_string,
    canonical_request,
    credential_scope,
    signature,
    signing_key,
    string_to_sign,
)

VECTORS = json.loads(
    (Path(__file__).parent / "vectors" / "sigv4" / "s3-examples.json").read_text())
EXAMPLE = VECTORS["presigned"]
AWS_CREDS = Credentials("AKIAIOSFODNN7EXAMPLE", "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY")
AWS_NOW = datetime(2013, 5, 24, tzinfo=UTC)
# The S3 docs' example uses the global (legacy) endpoint with virtual-hosted addressing.
AWS_ENDPOINT = Endpoint.parse("https://s3.amazonaws.com", region="us-east-1",
                              addressing="virtual")


def _query(url: str) -> dict[str, str]:
    return dict(parse_qsl(urlsplit(url).query, keep_blank_values=True))


def test_aws_documented_presigned_get_example() -> None:
    # "Authenticating Requests: Using Query Parameters", Example: presigned URL.
    url = presign(endpoint=AWS_ENDPOINT, region="us-east-1", credentials=AWS_CREDS,
                  now=AWS_NOW, expires=86400, method="GET", bucket="examplebucket",
                  key="test.txt")
    assert _query(url)["X-Amz-Signature"] == (
        "aeeed9bbccd4d02ee5c0109b86d86835f995330da4c265957d157751f604d404")
    assert url == EXAMPLE["expected_url"]


def _recompute(url: str, method: str, headers: dict[str, str]) -> str:
    """The signature an independent reading of the spec gives for ``url``."""
    parts = urlsplit(url)
    params = [(k, v) for k, v in parse_qsl(parts.query, keep_blank_values=True)
              if k != "X-Amz-Signature"]
    query = dict(params)
    names = query["X-Amz-SignedHeaders"].split(";")
    values = {"host": parts.netloc, **{k.lower(): v for k, v in headers.items()}}
    block = "".join(f"{n}:{values[n]}\n" for n in names)
    creq = canonical_request(method, parts.path, canonical_query_string(params), block,
                             query["X-Amz-SignedHeaders"], UNSIGNED_PAYLOAD)
    date = query["X-Amz-Date"]
    scope = credential_scope(date[:8], "us-east-1", "s3")
    key = signing_key(AWS_CREDS.secret_access_key, date[:8], "us-east-1", "s3")
    return signature(key, string_to_sign(date, scope, creq))


def test_signed_headers_are_listed_and_signed() -> None:
    headers = {"Content-Type": "text/plain", "x-amz-meta-owner": "ann"}
    url = presign(endpoint=AWS_ENDPOINT, region="us-east-1", credentials=AWS_CREDS,
                  now=AWS_NOW, expires=60, method="PUT", bucket="examplebucket",
                  key="a b/c+d%e.txt", headers=list(headers.items()))
    query = _query(url)
    assert query["X-Amz-SignedHeaders"] == "content-type;host;x-amz-meta-owner"
    assert query["X-Amz-Signature"] == _recompute(url, "PUT", headers)
    # The key is encoded once, as S3 decodes it: space, "+" and "%" all escaped.
    assert urlsplit(url).path == "/a%20b/c%2Bd%25e.txt"
    assert urlsplit(url).netloc == "examplebucket.s3.amazonaws.com"
    unsigned = presign(endpoint=AWS_ENDPOINT, region="us-east-1", credentials=AWS_CREDS,
                       now=AWS_NOW, expires=60, method="PUT", bucket="examplebucket",
                       key="a b/c+d%e.txt")
    assert _query(unsigned)["X-Amz-SignedHeaders"] == "host"
    assert _query(unsigned)["X-Amz-Signature"] != query["X-Amz-Signature"]


def test_session_token_is_in_the_signed_query() -> None:
    creds = Credentials(AWS_CREDS.access_key_id, AWS_CREDS.secret_access_key,
                        session_token="tok/en+==")
    url = presign(endpoint=AWS_ENDPOINT, region="us-east-1", credentials=creds, now=AWS_NOW,
                  expires=60, method="GET", bucket="examplebucket", key="test.txt")
    assert _query(url)["X-Amz-Security-Token"] == "tok/en+=="
    # "+" must be escaped in the query: a server reads a bare "+" as a space.
    assert "X-Amz-Security-Token=tok%2Fen%2B%3D%3D" in url
    assert _query(url)["X-Amz-Signature"] == _recompute(url, "GET", {})


def test_path_addressing_port_and_region() -> None:
    endpoint = Endpoint.parse("http://127.0.0.1:9000/base", region="eu-west-3",
                              addressing="path")
    url = presign(endpoint=endpoint, region="eu-west-3", credentials=AWS_CREDS, now=AWS_NOW,
                  expires=5, method="GET", bucket="my-bucket", key="k")
    parts = urlsplit(url)
    assert (parts.scheme, parts.netloc, parts.path) == ("http", "127.0.0.1:9000",
                                                        "/base/my-bucket/k")
    assert _query(url)["X-Amz-Credential"] == \
        "AKIAIOSFODNN7EXAMPLE/20130524/eu-west-3/s3/aws4_request"
    assert object_url(endpoint, "my-bucket", "dir/a b") == \
        "http://127.0.0.1:9000/base/my-bucket/dir/a%20b"


def test_a_bucket_with_a_dot_stays_path_style_on_virtual_addressing() -> None:
    # TLS wildcards do not cover "a.b.s3.amazonaws.com", so such a bucket goes in the path.
    url = presign(endpoint=AWS_ENDPOINT, region="us-east-1", credentials=AWS_CREDS,
                  now=AWS_NOW, expires=5, method="GET", bucket="my.bucket", key="k")
    assert url.startswith("https://s3.amazonaws.com/my.bucket/k?")


def test_anonymous_credentials_are_refused() -> None:
    with pytest.raises(UsageError, match="object_url"):
        presign(endpoint=AWS_ENDPOINT, region="us-east-1", credentials=Credentials.anonymous(),
                now=AWS_NOW, expires=5, method="GET", bucket="b-1", key="k")


@pytest.mark.parametrize(("value", "seconds"), [
    (1, 1), (MAX_EXPIRES, MAX_EXPIRES), (timedelta(hours=2), 7200), (timedelta(days=7), 604800)])
def test_expires_accepted(value: object, seconds: int) -> None:
    assert check_expires(value) == seconds


@pytest.mark.parametrize("value", [0, -1, MAX_EXPIRES + 1, timedelta(days=7, seconds=1),
                                   timedelta(milliseconds=1500), 1.5, "60", True, None])
def test_expires_refused(value: object) -> None:
    with pytest.raises(UsageError, match="expires"):
        check_expires(value)


def test_response_headers_map_to_s3_parameters() -> None:
    assert response_query({"Content-Disposition": "attachment; filename=a.txt",
                           "response-cache-control": "no-cache"}) == [
        ("response-content-disposition", "attachment; filename=a.txt"),
        ("response-cache-control", "no-cache")]
    assert response_query(None) == []
    with pytest.raises(UsageError, match="can override only"):
        response_query({"x-amz-meta-a": "b"})
    with pytest.raises(UsageError, match="twice"):
        response_query({"Content-Type": "a", "response-content-type": "b"})
    with pytest.raises(UsageError, match="CR"):
        response_query({"Content-Type": "a\r\nb"})
    with pytest.raises(UsageError, match="mapping"):
        response_query([("Content-Type", "a")])  # type: ignore[arg-type]


@pytest.mark.parametrize("token", [None, "FQoG/session+token=="])
@pytest.mark.parametrize("method", ["GET", "PUT"])
def test_same_signature_as_botocore(method: str, token: str | None) -> None:
    # botocore's own presigner (S3SigV4QueryAuth) as the oracle, at the same instant, for a
    # key that needs escaping, signed headers and a session token.
    from unittest import mock

    from botocore.auth import S3SigV4QueryAuth
    from botocore.awsrequest import AWSRequest
    from botocore.credentials import Credentials as BotoCredentials

    endpoint = Endpoint.parse("http://127.0.0.1:9000", region="eu-central-1",
                              addressing="path")
    key = "dir/a b+c%d ünï~.txt"
    headers = {"Content-Type": "text/plain", "x-amz-meta-owner": "ann"} if method == "PUT" \
        else {}
    query = [] if method == "PUT" else [("response-content-disposition", "attachment")]
    creds = Credentials(AWS_CREDS.access_key_id, AWS_CREDS.secret_access_key,
                        session_token=token)
    ours = presign(endpoint=endpoint, region="eu-central-1", credentials=creds, now=AWS_NOW,
                   expires=900, method=method, bucket="my-bucket", key=key, query=query,
                   headers=list(headers.items()))
    url = endpoint.url("my-bucket", key, query)
    request = AWSRequest(method=method, url=url, headers=headers)
    signer = S3SigV4QueryAuth(BotoCredentials(creds.access_key_id, creds.secret_access_key,
                                              token), "s3", "eu-central-1", expires=900)
    with mock.patch("botocore.auth.get_current_datetime", return_value=AWS_NOW):
        signer.add_auth(request)
    theirs = dict(parse_qsl(urlsplit(request.url).query, keep_blank_values=True))
    assert _query(ours)["X-Amz-SignedHeaders"] == theirs["X-Amz-SignedHeaders"]
    assert _query(ours) == theirs


async def test_client_presigns_with_its_clock_region_and_current_credentials(
    caplog: pytest.LogCaptureFixture,
) -> None:
    from s3stream import S3Client

    soon = AWS_NOW + timedelta(minutes=30)
    creds = Credentials("AKIDTEMP", "secret", session_token="tok", expiry=soon)
    async with S3Client(endpoint="http://127.0.0.1:9", region="eu-west-1", credentials=creds,
                        clock=lambda: AWS_NOW) as s3:
        s3._requester.bucket_regions["elsewhere"] = "ap-south-1"
        with caplog.at_level("INFO", logger="s3stream"):
            url = await s3.presign_get("my-bucket", "k", expires=3600)
        assert "temporary credentials" in caplog.text
        query = _query(url)
        assert query["X-Amz-Date"] == "20130524T000000Z"
        assert query["X-Amz-Credential"] == "AKIDTEMP/20130524/eu-west-1/s3/aws4_request"
        assert query["X-Amz-Security-Token"] == "tok"
        other = _query(await s3.presign_upload_part("elsewhere", "k", "up-1", 2, expires=60))
        assert other["X-Amz-Credential"].split("/")[2] == "ap-south-1"
        assert (other["partNumber"], other["uploadId"]) == ("2", "up-1")
        put = await s3.presign_put("my-bucket", "k", headers={"x-amz-acl": "private"})
        assert put.headers == {"x-amz-acl": "private"}
        assert _query(put.url)["X-Amz-SignedHeaders"] == "host;x-amz-acl"
    with pytest.raises(UsageError, match="closed"):
        await s3.presign_get("my-bucket", "k")
