"""Pure tests of how S3 answers are read (any root name, with or without a namespace)
and of the retry policy's time budget. No network, no event loop."""

from __future__ import annotations

import zlib

import pytest

from s3stream import Retry, _xml
from s3stream import _checksums as cks
from s3stream import _protocol as proto
from s3stream._integrity import ChecksumPlan, Conclusion, head_shows
from s3stream._retry import is_clock_skew
from s3stream.exceptions import IntegrityError, S3ResponseError

NS = 'xmlns="http://s3.amazonaws.com/doc/2006-03-01/"'
CREATE = proto.create_multipart_upload("bucket", "k", ())


@pytest.mark.parametrize("root", ["InitiateMultipartUploadResult", "InitiateMultipartUpload",
                                  "CreateMultipartUploadResponse", "s3:Whatever"])
@pytest.mark.parametrize("ns", [NS, "", 'xmlns:s3="urn:x"'])
def test_initiate_by_its_children(root: str, ns: str) -> None:
    body = f"<{root} {ns}><Extra>1</Extra><UploadId>u-1</UploadId></{root}>".encode()
    assert _xml.parse_initiate(body) == "u-1"


def test_error_root_is_an_error_under_200() -> None:
    body = b"<Error><Code>SlowDown</Code><Message>later</Message></Error>"
    with pytest.raises(S3ResponseError) as info:
        proto.read_create(CREATE, proto.Response(200, {}, body))
    assert info.value.code == "SlowDown" and info.value.status == 200
    with pytest.raises(S3ResponseError):
        proto.read_list_parts(CREATE, proto.Response(200, {}, body))


def test_unreadable_create_salvages_the_upload_id() -> None:
    body = b"<InitiateMultipartUploadResult><UploadId> abc/123 </UploadId><Key>trunc"
    with pytest.raises(proto.UnreadableCreate) as info:
        proto.read_create(CREATE, proto.Response(200, {}, body))
    assert info.value.code == "MalformedResponse" and info.value.upload_id == "abc/123"
    with pytest.raises(proto.UnreadableCreate) as none:
        proto.read_create(CREATE, proto.Response(200, {}, b"<garbage"))
    assert none.value.upload_id is None


@pytest.mark.parametrize("body", [b"", b"  \n ", b"<CompleteMultipartUploadResult/>",
                                  b"<R><ETag/></R>", b"<R><ETag>", b"not xml"])
def test_complete_without_an_etag_is_not_a_failure(body: bytes) -> None:
    request = proto.complete_multipart_upload("bucket", "k", "u", [_xml.CompletedPart(1, "e")])
    result = proto.read_complete(request, proto.Response(200, {}, body))
    assert result.etag is None  # the engine must confirm with HeadObject


def test_complete_any_root_with_checksum() -> None:
    body = (f"<CompleteMultipartUpload {NS}><ETag>\"e-2\"</ETag>"
            "<ChecksumCRC32C>AAAAAA==</ChecksumCRC32C><Junk/></CompleteMultipartUpload>")
    result = _xml.parse_complete(body.encode())
    assert isinstance(result, _xml.CompleteResult)
    assert result.etag == '"e-2"' and result.checksums == {"ChecksumCRC32C": "AAAAAA=="}


def test_list_parts_response_root_and_empty_entries() -> None:
    body = (f"<ListPartsResponse {NS}><IsTruncated>true</IsTruncated><Part/>"
            "<Part><PartNumber>2</PartNumber><ETag>\"e\"</ETag><Size>9</Size></Part>"
            "<NextPartNumberMarker>2</NextPartNumberMarker></ListPartsResponse>").encode()
    page = _xml.parse_list_parts(body)
    assert [(p.number, p.size) for p in page.parts] == [(2, 9)]
    assert page.truncated and page.next_part_number_marker == 2


def test_abort_reader_tells_no_such_upload_apart() -> None:
    abort = proto.abort_multipart_upload("bucket", "k", "u")
    assert proto.read_abort(abort, proto.Response(204, {}, b"")) is True
    gone = b"<Error><Code>NoSuchUpload</Code></Error>"
    assert proto.read_abort(abort, proto.Response(404, {}, gone)) is False
    with pytest.raises(S3ResponseError):
        proto.read_abort(abort, proto.Response(404, {}, b"<Error><Code>NoSuchBucket</Code>"
                                                         b"</Error>"))


# -------------------------------------------------------------------- retry budget


def test_budget_stops_retries_that_would_end_past_it() -> None:
    r = Retry(attempts=100, budget=10.0)
    assert r.can_retry(1, elapsed=9.0, wait=1.0)
    assert not r.can_retry(1, elapsed=9.0, wait=1.5)
    assert not r.can_retry(100, elapsed=0.0)
    assert Retry(budget=None).can_retry(5, elapsed=1e9)
    assert not Retry(attempts=1).can_retry(1)


def test_defaults_ride_out_a_5_s_outage_even_with_unlucky_jitter() -> None:
    # The smallest total wait the defaults allow when every draw is at the 1st percentile.
    r = Retry()
    waits = [r.delay(n, 0.01) for n in range(1, r.attempts)]
    assert sum(waits) < 5  # not by the floor alone...
    median = [r.delay(n, 0.5) for n in range(1, r.attempts)]
    assert sum(median) > 5 * 5  # ...but the typical span is many times the outage
    assert r.budget is not None and r.budget >= sum(median)


@pytest.mark.parametrize("bad", [-1, "1", True])
def test_budget_is_validated(bad: object) -> None:
    with pytest.raises(ValueError, match="budget"):
        Retry(budget=bad)  # type: ignore[arg-type]


def test_conditional_conflict_is_retryable() -> None:
    assert Retry().is_retryable_response(409, "ConditionalRequestConflict")
    assert not Retry().is_retryable_response(409, "OperationAborted")


# ---------------------------------------------------------------- checksum refusals


@pytest.mark.parametrize(("status", "code", "refusal"), [
    (400, "InvalidArgument", True), (501, "NotImplemented", True), (400, "InvalidRequest", True),
    (400, "BadDigest", False), (400, "XAmzContentChecksumMismatch", False),
    (403, "AccessDenied", False), (400, "EntityTooSmall", False)])
def test_what_counts_as_a_checksum_refusal(status: int, code: str, refusal: bool) -> None:
    assert cks.rejects_checksums(status, code) is refusal


def test_store_support_only_goes_down() -> None:
    store = cks.StoreSupport()
    assert store.lower(cks.COMPOSITE) and not store.lower(cks.COMPOSITE)
    assert not store.lower(cks.FULL) and store.level == cks.COMPOSITE
    assert store.lower(cks.NONE) and store.level == cks.NONE


# ------------------------------------------------------------------ checksum plan


def _plan_with_parts(level: int = cks.FULL) -> ChecksumPlan:
    plan = ChecksumPlan.start("crc32", strict=False, store_level=level)
    for number, data in ((1, b"a" * 10), (2, b"bc")):
        digest = cks.digest_part([data], sha256=False, algorithm="crc32")
        listed = plan.part_done(number, digest, len(data), digest.checksum_b64, echoed=True)
        assert listed == {"ChecksumCRC32": digest.checksum_b64}
    plan.seal([1, 2])
    return plan


def test_plan_steps_down_and_builds_headers_per_level() -> None:
    plan = ChecksumPlan.start("crc32", strict=False, store_level=cks.FULL)
    assert plan.create_headers() == (("x-amz-checksum-algorithm", "CRC32"),
                                     ("x-amz-checksum-type", "FULL_OBJECT"))
    assert plan.may_step_down(400, "InvalidArgument")
    plan.step_down(cks.COMPOSITE)
    assert plan.create_headers() == (("x-amz-checksum-algorithm", "CRC32"),)
    plan.step_down(cks.NONE)  # a part's header: all or nothing
    assert plan.level == cks.NONE and plan.create_headers() == ()
    assert not plan.may_step_down(400, "InvalidArgument")
    strict = ChecksumPlan.start("crc32", strict=True, store_level=cks.NONE)
    assert strict.level == cks.FULL and not strict.may_step_down(501, "NotImplemented")


def test_plan_concludes_full_object_composite_or_mismatch() -> None:
    plan = _plan_with_parts()
    whole = cks.b64(zlib.crc32(b"a" * 10 + b"bc").to_bytes(4, "big"))
    assert plan.full == whole and plan.composite is not None and plan.composite.endswith("-2")
    assert plan.conclude(whole, 2, "x") == Conclusion(whole, "crc32", "FULL_OBJECT", True)
    assert plan.conclude(plan.composite, 2, "x").checksum_type == "COMPOSITE"
    unconfirmed = _plan_with_parts()
    unconfirmed.echoed.clear()
    assert unconfirmed.conclude(None, 2, "x").confirmed is False
    with pytest.raises(IntegrityError):
        plan.conclude("AAAAAA==", 2, "s3://b/k")


def test_head_shows_only_the_object_sent() -> None:
    plan = _plan_with_parts()
    ok = {"etag": '"abc-2"', "content-length": "12", "x-amz-checksum-crc32": plan.full or ""}
    found = head_shows(ok, size=12, part_count=2, plan=plan)
    assert found is not None and found.etag == '"abc-2"'
    assert head_shows({**ok, "content-length": "13"}, size=12, part_count=2, plan=plan) is None
    assert head_shows({**ok, "etag": '"abc-3"'}, size=12, part_count=2, plan=plan) is None
    assert head_shows({**ok, "x-amz-checksum-crc32": "AAAAAA=="}, size=12, part_count=2,
                      plan=plan) is None
    # A store whose ETags carry no part count, and which keeps no checksum.
    plain = {"etag": '"d41d8cd98f00b204e9800998ecf8427e"', "content-length": "12"}
    assert head_shows(plain, size=12, part_count=2, plan=plan) is not None


def test_clock_skew_is_known_by_its_words_too() -> None:
    assert is_clock_skew("RequestTimeTooSkewed", "")
    assert is_clock_skew("AccessDenied", "The difference between the request time and the "
                                         "server's time exceeds the maximum allowed.")
    assert not is_clock_skew("AccessDenied", "Access Denied")


def test_no_such_upload_on_a_listing_is_an_empty_listing() -> None:
    request = proto.list_multipart_uploads("bucket", "", None, None)
    body = b"<Error><Code>NoSuchUpload</Code></Error>"
    page = proto.read_list_uploads(request, proto.Response(404, {}, body))
    assert page.uploads == [] and not page.truncated
    with pytest.raises(S3ResponseError):
        proto.read_list_uploads(request, proto.Response(404, {}, b"<Error><Code>NoSuchBucket"
                                                                  b"</Code></Error>"))
