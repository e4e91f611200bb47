"""s3stream._ranges, pure: range planning, Range / Content-Range, the GetObject request,
argument checks and the checksum decision. No network; aiohttp is not needed."""

from __future__ import annotations

import base64
import os
import zlib

import crc32c
import pytest

from s3stream import UsageError
from s3stream import _ranges as rg
from s3stream._info import object_info


def test_range_header() -> None:
    assert rg.range_header(0, 0) == "bytes=0-0"
    assert rg.range_header(5, 99) == "bytes=5-99"
    with pytest.raises(ValueError, match="no such range"):
        rg.range_header(5, 4)


@pytest.mark.parametrize(("value", "parsed"), [
    ("bytes 0-99/1000", rg.ContentRange(0, 99, 1000)),
    ("bytes 5-5/6", rg.ContentRange(5, 5, 6)),
    ("BYTES 0-0/1", rg.ContentRange(0, 0, 1)),
    ("bytes */0", rg.ContentRange(None, None, 0)),
    ("bytes 0-9/*", rg.ContentRange(0, 9, None)),
    (None, None), ("", None), ("bytes 9-0/10", None), ("bytes 0-10/10", None),
    ("items 0-1/2", None), ("bytes 0-1", None),
])
def test_parse_content_range(value: str | None, parsed: rg.ContentRange | None) -> None:
    assert rg.parse_content_range(value) == parsed


def test_plan_covers_exactly_the_bytes_served() -> None:
    for size, offset, length, part in [(0, 0, None, 8), (1, 0, None, 8), (16, 0, None, 8),
                                       (17, 0, None, 8), (100, 3, 50, 7), (100, 99, None, 7),
                                       (100, 10, 1000, 9)]:
        p = rg.plan(size, offset, length, part)
        end = size if length is None else min(size, offset + length)
        covered = [b for i in range(p.count) for b in range(p.bounds(i)[0], p.bounds(i)[1] + 1)]
        assert covered == list(range(offset, end))
        assert (p.offset, p.length) == (offset, end - offset)
        assert all(p.bounds(i)[1] - p.bounds(i)[0] + 1 == part for i in range(p.count - 1))
    assert rg.plan(10, 0, None, 4).whole and not rg.plan(10, 1, None, 4).whole
    assert not rg.plan(10, 0, 9, 4).whole
    for size, offset in [(10, 10), (10, 11), (0, 1)]:
        with pytest.raises(ValueError, match="past the end"):
            rg.plan(size, offset, None, 4)


def test_first_range() -> None:
    assert rg.first_range(0, None, 8) == (0, 7)
    assert rg.first_range(10, 3, 8) == (10, 12)
    assert rg.first_range(10, 30, 8) == (10, 17)


def test_get_object_request() -> None:
    request = rg.get_object("b", "k", 8, 15, version_id="v1", if_match='"e"',
                            checksum_mode=True)
    assert (request.operation, request.method, request.bucket, request.key) == \
        ("GetObject", "GET", "b", "k")
    assert request.query == (("versionId", "v1"),)
    assert dict(request.headers) == {"Range": "bytes=8-15", "If-Match": '"e"',
                                     "x-amz-checksum-mode": "ENABLED"}
    plain = rg.get_object("b", "k", 0, 0, version_id=None, if_match=None, checksum_mode=False)
    assert plain.query == () and dict(plain.headers) == {"Range": "bytes=0-0"}


@pytest.mark.parametrize("kwargs", [
    {"offset": -1}, {"offset": True}, {"length": 0}, {"length": 1.0}, {"part_size": 0},
    {"part_size": 6 << 30}, {"concurrency": 0}, {"concurrency": False},
    {"version_id": ""}, {"if_match": 3}, {"if_match": "a\r\nb"}, {"checksum": None},
])
def test_check_arguments_refuses(kwargs: dict[str, object]) -> None:
    arguments: dict[str, object] = {"offset": 0, "length": None, "part_size": None,
                                    "concurrency": 4, "version_id": None, "if_match": None,
                                    "checksum": True}
    arguments.update(kwargs)
    with pytest.raises(UsageError):
        rg.check_arguments(**arguments)  # type: ignore[arg-type]


def test_check_arguments_defaults() -> None:
    assert rg.check_arguments(offset=0, length=None, part_size=None, concurrency=4,
                              version_id=None, if_match=None, checksum=True) == \
        (0, None, rg.DEFAULT_PART_SIZE, 4)


def _b64(value: int, width: int = 4) -> str:
    return base64.b64encode(value.to_bytes(width, "big")).decode()


def _info(headers: dict[str, str], size: int = 10) -> object:
    return object_info("b", "k", {"etag": '"e"', **headers}, size=size)


def test_verifier_only_for_whole_full_object_crcs() -> None:
    whole = rg.plan(10, 0, None, 4)
    crc = _b64(zlib.crc32(b"x" * 10))
    found = rg.verifier_for(_info({"x-amz-checksum-crc32": crc}), whole)  # type: ignore[arg-type]
    assert found is not None and found.algorithm == "CRC32"
    full = {"x-amz-checksum-crc32c": crc, "x-amz-checksum-type": "FULL_OBJECT"}
    assert rg.verifier_for(_info(full), whole) is not None  # type: ignore[arg-type]
    for headers in ({"x-amz-checksum-crc32c": crc + "-3"},
                    {"x-amz-checksum-crc32c": crc, "x-amz-checksum-type": "COMPOSITE"},
                    {"x-amz-checksum-sha256": base64.b64encode(b"x" * 32).decode()},
                    {"x-amz-checksum-crc32": "not base64!"},
                    {"x-amz-checksum-crc32": _b64(1, 8)},  # the wrong width
                    {}):
        assert rg.verifier_for(_info(headers), whole) is None, headers  # type: ignore[arg-type]
    # A sub-range, or an empty object, is never checked.
    sub = rg.plan(10, 1, None, 4)
    assert rg.verifier_for(_info({"x-amz-checksum-crc32": crc}), sub) is None  # type: ignore[arg-type]
    assert rg.verifier_for(_info({"x-amz-checksum-crc32": _b64(0)}, 0),  # type: ignore[arg-type]
                           rg.plan(0, 0, None, 4)) is None


@pytest.mark.parametrize("algorithm", ["CRC32", "CRC32C", "CRC64NVME"])
def test_crcs_combined_in_order_equal_the_whole(algorithm: str) -> None:
    data = os.urandom(100_003)
    width = 8 if algorithm == "CRC64NVME" else 4
    whole = {"CRC32": lambda d: zlib.crc32(d), "CRC32C": lambda d: crc32c.crc32c(d)}
    if algorithm == "CRC64NVME":
        awscrt = pytest.importorskip("awscrt.checksums")
        whole["CRC64NVME"] = lambda d: awscrt.crc64nvme(d)
    expected = whole[algorithm](data)
    info = _info({f"x-amz-checksum-{algorithm.lower()}": _b64(expected, width)}, len(data))
    plan = rg.plan(len(data), 0, None, 7_777)
    verifier = rg.verifier_for(info, plan)  # type: ignore[arg-type]
    assert verifier is not None and verifier.expected == expected
    total = 0
    for index in range(plan.count):
        start, end = plan.bounds(index)
        piece = memoryview(bytearray(data[start:end + 1]))
        total = verifier.combine(total, verifier.crc(piece, 0), end - start + 1)
    assert total == expected
    assert rg.b64_crc(algorithm, total) == _b64(expected, width)


def test_pure_without_aiohttp_or_asyncio() -> None:
    import subprocess
    import sys

    code = ("import sys; sys.modules['aiohttp'] = None; sys.modules['asyncio'] = None\n"
            "import s3stream._ranges\n"
            "assert 'aiohttp' not in {m.split('.')[0] for m in sys.modules if sys.modules[m]}")
    subprocess.run([sys.executable, "-c", code], check=True)
