"""Object operations, sans-IO: request shapes and readers against the dialects S3 speaks."""

from __future__ import annotations

import base64
import hashlib
import xml.etree.ElementTree as ET
from datetime import UTC, datetime

import pytest

from s3stream import NotFoundError, S3ResponseError, UsageError
from s3stream import _objects as ob
from s3stream._protocol import Response


def _resp(body: bytes | str, status: int = 200, **headers: str) -> Response:
    if isinstance(body, str):
        body = body.encode("utf-8")
    return Response(status, {k.replace("_", "-"): v for k, v in headers.items()}, body)


# ------------------------------------------------------------------------- HEAD


def test_head_object_asks_for_checksums_and_version() -> None:
    req = ob.head_object("b-1", "k", version_id="v1")
    assert (req.method, req.query) == ("HEAD", (("versionId", "v1"),))
    assert ("x-amz-checksum-mode", "ENABLED") in req.headers
    assert ob.head_object("b-1", "k").query == ()


def test_read_object_info() -> None:
    req = ob.head_object("b-1", "k")
    info = ob.read_object_info(req, _resp(b"", content_length="11", etag='"abc"',
                                          content_type="text/plain",
                                          x_amz_meta_owner="ann",
                                          x_amz_checksum_crc32c="AAAAAA=="))
    assert (info.bucket, info.key, info.size, info.etag) == ("b-1", "k", 11, '"abc"')
    assert info.metadata == {"owner": "ann"}
    assert info.checksums == {"CRC32C": "AAAAAA=="}


def test_head_404s() -> None:
    with pytest.raises(NotFoundError) as caught:
        ob.read_object_info(ob.head_object("b-1", "k"), _resp(b"", 404))
    assert caught.value.code == "NotFound"
    with pytest.raises(NotFoundError) as caught:
        ob.bucket_reader("us-east-1")(ob.head_bucket("b-1"), _resp(b"", 404))
    assert caught.value.code == "NoSuchBucket"
    assert caught.value.bucket == "b-1"


def test_head_bucket_region() -> None:
    read = ob.bucket_reader("us-east-1")
    assert read(ob.head_bucket("b-1"), _resp(b"", x_amz_bucket_region="eu-west-1")) == \
        ob.BucketInfo("b-1", "eu-west-1")
    assert read(ob.head_bucket("b-1"), _resp(b"")) == ob.BucketInfo("b-1", "us-east-1")
    with pytest.raises(S3ResponseError) as caught:
        read(ob.head_bucket("b-1"), _resp(b"", 403))
    assert caught.value.status == 403 and not isinstance(caught.value, NotFoundError)


# ----------------------------------------------------------------------- delete


def test_delete_object_request() -> None:
    req = ob.delete_object("b-1", "a/b", version_id="v")
    assert (req.operation, req.method, req.key, req.query) == (
        "DeleteObject", "DELETE", "a/b", (("versionId", "v"),))
    assert ob.read_delete(req, _resp(b"", 204)) is None
    with pytest.raises(NotFoundError):
        ob.read_delete(req, _resp("<Error><Code>NoSuchBucket</Code></Error>", 404))


def test_delete_objects_body_and_content_md5() -> None:
    keys = ["a", "b & <c>", "ünï cødé", " spaced "]
    req = ob.delete_objects("b-1", keys)
    body = b"".join(bytes(b) for b in req.body)
    assert req.size == len(body)
    assert req.query == (("delete", ""),)
    headers = dict(req.headers)
    assert headers["Content-MD5"] == base64.b64encode(hashlib.md5(body).digest()).decode()
    root = ET.fromstring(body)
    ns = "{http://s3.amazonaws.com/doc/2006-03-01/}"
    assert root.tag == f"{ns}Delete"
    assert root.findtext(f"{ns}Quiet") == "false"
    assert [o.findtext(f"{ns}Key") for o in root.iter(f"{ns}Object")] == keys


def test_delete_objects_batch_limits_and_key_checks() -> None:
    with pytest.raises(UsageError):
        ob.delete_objects("b-1", [])
    with pytest.raises(UsageError):
        ob.delete_objects("b-1", ["k"] * 1001)
    assert ob.check_delete_keys(iter(["a", "b"])) == ["a", "b"]
    for bad in ("abc", b"abc", 5, None):
        with pytest.raises(UsageError, match="iterable"):
            ob.check_delete_keys(bad)
    with pytest.raises(UsageError):
        ob.check_delete_keys(["ok", ""])
    with pytest.raises(UsageError, match="delete_object"):
        ob.check_delete_keys(["bell\x07"])


def test_read_delete_result_single_and_many() -> None:
    req = ob.delete_objects("b-1", ["a", "b", "c"])
    one = """<?xml version="1.0"?><DeleteResult xmlns="http://s3.amazonaws.com/doc/2006-03-01/">
      <Deleted><Key>a</Key></Deleted>
      <Error><Key>b</Key><Code>AccessDenied</Code><Message>Access Denied</Message></Error>
    </DeleteResult>"""
    result = ob.read_delete_objects(req, _resp(one))
    assert result.deleted == ["a"]
    assert result.errors == [ob.DeleteError("b", "AccessDenied", "Access Denied")]
    assert not result.ok
    many = ("<DeleteObjectsOutput><Deleted><Key>a</Key></Deleted><Deleted><Key> c </Key>"
            "<VersionId>1</VersionId></Deleted></DeleteObjectsOutput>")
    result = ob.read_delete_objects(req, _resp(many))
    assert result.deleted == ["a", " c "] and result.ok
    assert ob.read_delete_objects(req, _resp("<DeleteResult/>")) == ob.DeleteResult()


def test_delete_objects_200_with_error_document() -> None:
    req = ob.delete_objects("b-1", ["a"])
    with pytest.raises(S3ResponseError) as caught:
        ob.read_delete_objects(req, _resp(
            "<Error><Code>InternalError</Code><Message>boom</Message></Error>"))
    assert (caught.value.status, caught.value.code) == (200, "InternalError")
    with pytest.raises(S3ResponseError) as caught:
        ob.read_delete_objects(req, _resp("<DeleteResult><Deleted>"))
    assert caught.value.code == "MalformedResponse"


# ---------------------------------------------------------------------- listing


def test_list_request_query() -> None:
    req = ob.list_objects("b-1", prefix="p/", delimiter="/", start_after="p/a", max_keys=7)
    assert req.query == (("list-type", "2"), ("encoding-type", "url"), ("prefix", "p/"),
                         ("delimiter", "/"), ("start-after", "p/a"), ("max-keys", "7"))
    # A continuation token replaces start-after (S3 ignores it then anyway).
    req = ob.list_objects("b-1", start_after="x", token="tok")
    assert dict(req.query)["continuation-token"] == "tok"
    assert "start-after" not in dict(req.query)


AWS_PAGE = """<?xml version="1.0" encoding="UTF-8"?>
<ListBucketResult xmlns="http://s3.amazonaws.com/doc/2006-03-01/">
  <Name>b-1</Name><Prefix>p%2F</Prefix><KeyCount>3</KeyCount><MaxKeys>3</MaxKeys>
  <Delimiter>%2F</Delimiter><EncodingType>url</EncodingType><IsTruncated>true</IsTruncated>
  <Contents><Key>p%2Fa+b%2Bc%25d</Key><LastModified>2026-01-02T03:04:05.000Z</LastModified>
    <ETag>&quot;e1&quot;</ETag><Size>5</Size><StorageClass>STANDARD</StorageClass></Contents>
  <Contents><Key>p%2Fz</Key><Size>0</Size></Contents>
  <CommonPrefixes><Prefix>p%2Fm%2F</Prefix></CommonPrefixes>
  <NextContinuationToken>1ueGcxLPRx1Tr/XYExHnhbYLgveDs2J/wm36Hy4vbOwM=</NextContinuationToken>
</ListBucketResult>"""


def test_read_list_page_decodes_url_encoded_names_and_merges_in_order() -> None:
    page = ob.read_list_objects(ob.list_objects("b-1"), _resp(AWS_PAGE))
    assert page.truncated
    assert page.next_token == "1ueGcxLPRx1Tr/XYExHnhbYLgveDs2J/wm36Hy4vbOwM="
    assert page.items == [
        ob.ObjectSummary("p/a b+c%d", 5, '"e1"', datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC),
                         "STANDARD"),
        ob.CommonPrefix("p/m/"),
        ob.ObjectSummary("p/z", 0, None, None, None),
    ]


def test_read_list_page_raw_names_when_not_encoded() -> None:
    # No <EncodingType>: the server ignored encoding-type=url; names are as stored.
    body = ("<ListBucketResult><IsTruncated>false</IsTruncated>"
            "<Contents><Key>  a+b%41 </Key><Size>1</Size></Contents>"
            "<CommonPrefixes><Prefix>d/</Prefix></CommonPrefixes></ListBucketResult>")
    page = ob.read_list_objects(ob.list_objects("b-1"), _resp(body))
    assert page.items == [ob.ObjectSummary("  a+b%41 ", 1, None, None), ob.CommonPrefix("d/")]
    assert not page.truncated and page.next_token is None


def test_read_empty_and_odd_pages() -> None:
    req = ob.list_objects("b-1")
    assert ob.read_list_objects(req, _resp("<ListBucketResult/>")).items == []
    assert ob.read_list_objects(req, _resp(
        "<x:ListBucketResult xmlns:x='urn:y'><x:KeyCount>0</x:KeyCount></x:ListBucketResult>"
    )).items == []
    with pytest.raises(S3ResponseError, match="Key"):
        ob.read_list_objects(req, _resp("<L><Contents><Size>1</Size></Contents></L>"))
    with pytest.raises(NotFoundError) as caught:
        ob.read_list_objects(req, _resp("<Error><Code>NoSuchBucket</Code></Error>", 404))
    assert caught.value.code == "NoSuchBucket"
