"""The pure half of resuming (s3stream._resume): the part plan, the part size inferred from
a listing, how each listed part is verified, and which upload is the newest."""

from __future__ import annotations

import base64
import hashlib
import zlib

import pytest

from s3stream import UsageError
from s3stream._parts import Limits
from s3stream._resume import Check, check_for, infer_part_size, newest_upload, plan_resume
from s3stream._xml import PartListing, UploadListing, parse_list_parts

MiB = 1 << 20


def listed(number: int, size: int, etag: str = '"0123456789abcdef0123456789abcdef"',
           **checksums: str) -> PartListing:
    return PartListing(number, etag, size, "", checksums)


def test_plan_of_a_file_without_listed_parts() -> None:
    plan = plan_resume(20 * MiB + 5, [], part_size=None)
    assert plan.part_size == 8 * MiB  # what upload(path) plans for the same size
    assert [(p.number, p.offset, p.size) for p in plan.parts] == [
        (1, 0, 8 * MiB), (2, 8 * MiB, 8 * MiB), (3, 16 * MiB, 4 * MiB + 5)]
    assert plan.to_verify == ()


def test_part_size_is_inferred_from_the_listing() -> None:
    size = 5 * 5 * MiB + 777
    parts = [listed(n, 5 * MiB) for n in (1, 2, 3)]
    assert infer_part_size(size, parts) == 5 * MiB
    # Only the short last part listed: upload()'s default (8 MiB) explains it as well as
    # anything, and is preferred.
    assert infer_part_size(20 * MiB + 5, [listed(3, 4 * MiB + 5)]) == 8 * MiB
    # A listed size S3 would not allow for a part before the last is no candidate.
    assert infer_part_size(20 * MiB, [listed(1, 1 * MiB)]) == 8 * MiB
    # Equal scores: the default first, then the larger size.
    assert infer_part_size(12 * MiB, [listed(1, 6 * MiB), listed(2, 6 * MiB)]) == 6 * MiB


def test_listed_parts_are_verified_by_size_and_checksum() -> None:
    size = 3 * 5 * MiB
    parts = [listed(1, 5 * MiB), listed(2, 4 * MiB), listed(3, 5 * MiB, etag='"not-md5"'),
             listed(5, 5 * MiB)]
    plan = plan_resume(size, parts, part_size=5 * MiB)
    assert [p.number for p in plan.to_verify] == [1]
    assert plan.wrong_size == (2,)
    assert plan.uncheckable == (3,)
    assert plan.dropped == (5,)
    assert plan.parts[0].check == Check("md5", bytes.fromhex("0123456789abcdef" * 2))


def test_stored_checksum_is_preferred_to_the_etag() -> None:
    crc = base64.b64encode(zlib.crc32(b"x").to_bytes(4, "big")).decode()
    sha = base64.b64encode(hashlib.sha256(b"x").digest()).decode()
    part = listed(1, 1, ChecksumCRC32=crc, ChecksumSHA256=sha)
    assert check_for(part, preferred="sha256", computable=("crc32", "sha256")) == \
        Check("sha256", hashlib.sha256(b"x").digest())
    assert check_for(part, preferred=None, computable=("crc32", "sha256")).algorithm in (
        "crc32", "sha256")
    # A checksum this process cannot compute: the ETag, read as an MD5.
    only = listed(1, 1, ChecksumCRC32C="AAAAAA==")
    assert check_for(only, preferred=None, computable=("crc32",)) == \
        Check("md5", bytes.fromhex("0123456789abcdef" * 2))
    # SSE-KMS-like ETags are not MD5s; nothing else to check with: not verifiable.
    assert check_for(listed(1, 1, etag='"abc-1"'), preferred=None, computable=()) is None


def test_bad_inputs_are_usage_errors() -> None:
    with pytest.raises(UsageError, match="empty"):
        plan_resume(0, [])
    with pytest.raises(UsageError, match="part_size"):
        plan_resume(10 * MiB, [], part_size=1 * MiB)
    with pytest.raises(UsageError, match="more than 10 parts"):
        plan_resume(100 * MiB, [], part_size=5 * MiB, limits=Limits(max_parts=10))


def test_newest_upload_of_exactly_the_key() -> None:
    uploads = [UploadListing("k", "old", "2026-01-01T00:00:00.000Z"),
               UploadListing("k", "new", "2026-01-02T00:00:00Z"),
               UploadListing("k2", "other", "2026-01-03T00:00:00Z")]
    assert newest_upload(uploads, "k", "b") == "new"
    assert newest_upload(uploads[2:], "k2", "b") == "other"
    with pytest.raises(UsageError, match="no multipart upload"):
        newest_upload(uploads[2:], "k", "b")
    # moto reports the same Initiated for every upload: the newest cannot be told.
    same = [UploadListing("k", "a", "2010-11-10T20:48:33.000Z"),
            UploadListing("k", "b", "2010-11-10T20:48:33.000Z")]
    with pytest.raises(UsageError, match="pass upload_id"):
        newest_upload(same, "k", "b")


def test_list_parts_reads_stored_checksums_and_the_upload_checksum() -> None:
    page = parse_list_parts(
        b"<ListPartsResult><ChecksumAlgorithm>CRC32</ChecksumAlgorithm>"
        b"<ChecksumType>FULL_OBJECT</ChecksumType><Part><PartNumber>1</PartNumber>"
        b"<ETag>\"e\"</ETag><Size>3</Size><ChecksumCRC32>AAAAAA==</ChecksumCRC32></Part>"
        b"</ListPartsResult>")
    assert (page.checksum_algorithm, page.checksum_type) == ("CRC32", "FULL_OBJECT")
    assert page.parts[0].checksums == {"ChecksumCRC32": "AAAAAA=="}


def test_checksum_plan_follows_what_the_store_reports() -> None:
    from s3stream import _checksums as cks
    from s3stream._resume import checksum_plan

    plan = checksum_plan([], "CRC32", "COMPOSITE", "crc32c", False, cks.FULL, "w")
    assert (plan.algorithm, plan.level, plan.strict) == ("crc32", cks.COMPOSITE, True)
    # From a part's stored checksum when the upload's algorithm is not reported.
    plan = checksum_plan([listed(1, 1, ChecksumSHA256="x")], None, None, None, False,
                         cks.FULL, "w")
    assert plan.algorithm == "sha256"
    # Nothing reported: what upload() would have used, as far as the store takes it.
    plan = checksum_plan([listed(1, 1)], None, None, "crc32", False, cks.COMPOSITE, "w")
    assert (plan.algorithm, plan.level, plan.strict) == ("crc32", cks.COMPOSITE, False)
    with pytest.raises(UsageError, match="created with the crc32 checksum"):
        checksum_plan([], "CRC32", None, "sha256", True, cks.FULL, "w")
