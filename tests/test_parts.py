"""Part planning and cutting: pure, property-tested."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from s3stream import UsageError
from s3stream._parts import (
    DEFAULT_PART_SIZE,
    GROWTH_INTERVAL,
    Buffer,
    GiB,
    Limits,
    MiB,
    PartCutter,
    PartSizer,
    TiB,
    TooManyParts,
    as_buffer,
    plan,
)

# Tiny limits keep property tests fast while exercising the same code as S3's.
TINY = Limits(min_part_size=4, max_part_size=64, max_parts=50, max_object_size=10_000)


def cut_all(chunks: list[bytes], sizer: PartSizer) -> list[bytes]:
    cutter = PartCutter(sizer)
    parts = []
    numbers = []
    for chunk in chunks:
        for part in cutter.feed(chunk):
            numbers.append(part.number)
            parts.append(part.to_bytes())
            assert part.size == len(parts[-1])
    last = cutter.finish()
    if last is not None:
        numbers.append(last.number)
        parts.append(last.to_bytes())
    assert numbers == list(range(1, len(parts) + 1))
    return parts


@settings(max_examples=300, deadline=None)
@given(
    chunks=st.lists(st.binary(min_size=0, max_size=40), max_size=30),
    part_size=st.integers(min_value=4, max_value=16),
)
def test_fixed_parts_rejoin_and_are_equal(chunks: list[bytes], part_size: int) -> None:
    # 30 chunks of 40 bytes in parts of 4 need up to 300 parts: more than TINY allows.
    roomy = Limits(min_part_size=4, max_part_size=64, max_parts=10_000, max_object_size=1 << 20)
    parts = cut_all(chunks, PartSizer(part_size, limits=roomy))
    data = b"".join(chunks)
    assert b"".join(parts) == data
    assert all(len(p) == part_size for p in parts[:-1])
    if data:
        assert 1 <= len(parts[-1]) <= part_size  # the last part is never empty
    else:
        assert parts == []


@settings(max_examples=100, deadline=None)
@given(chunks=st.lists(st.binary(min_size=1, max_size=64), max_size=60))
def test_growing_parts_rejoin(chunks: list[bytes]) -> None:
    limits = Limits(min_part_size=1, max_part_size=64, max_parts=10_000,
                    max_object_size=1 << 30)
    sizer = PartSizer(2, grow=True, limits=limits)
    parts = cut_all(chunks, sizer)
    assert b"".join(parts) == b"".join(chunks)
    for number, part in enumerate(parts[:-1], start=1):
        assert len(part) == sizer.size_of(number)


def test_cutter_holds_at_most_one_part() -> None:
    cutter = PartCutter(PartSizer(10, limits=TINY))
    assert cutter.feed(b"x" * 10) == []  # full, but unknown whether more follows
    (part,) = cutter.feed(b"y")
    assert part.to_bytes() == b"x" * 10
    last = cutter.finish()
    assert last is not None and last.to_bytes() == b"y" and last.number == 2


def test_bytes_chunks_are_not_copied() -> None:
    chunk = bytes(range(200)) * 10
    cutter = PartCutter(PartSizer(16, limits=Limits(4, 64, 1000, 1 << 20)))
    parts = cutter.feed(chunk)
    for part in parts:
        for piece in part.chunks:
            view = memoryview(piece)
            assert view.obj is chunk


def test_running_crc_reads_the_chunk_itself() -> None:
    # A chunk straddling a part boundary is checksummed in two pieces; slicing the bytes
    # would copy them (once cost 0.04 CPU-s/GiB on the event loop).
    chunk = bytes(range(200)) * 10
    seen: list[object] = []

    def crc(piece: Buffer, value: int) -> int:
        seen.append(piece if isinstance(piece, bytes) else piece.obj)
        return value

    cutter = PartCutter(PartSizer(16, limits=Limits(4, 64, 1000, 1 << 20)), crc=crc)
    cutter.feed(chunk)
    assert len(seen) > 1
    assert all(obj is chunk for obj in seen)


def test_mutable_chunks_are_copied() -> None:
    buf = bytearray(b"a" * 8)
    cutter = PartCutter(PartSizer(4, limits=TINY))
    parts = cutter.feed(buf)
    buf[:] = b"b" * 8  # a caller reusing its buffer must not change what we send
    last = cutter.finish()
    assert [p.to_bytes() for p in parts] == [b"aaaa"]
    assert last is not None and last.to_bytes() == b"aaaa"


@pytest.mark.parametrize("bad", ["text", 12, None, [b"x"]])
def test_non_bytes_chunks_are_type_errors(bad: object) -> None:
    with pytest.raises(TypeError):
        as_buffer(bad)


def test_fixed_part_size_fails_before_the_part_past_the_limit() -> None:
    cutter = PartCutter(PartSizer(4, limits=TINY))
    emitted = 0
    with pytest.raises(TooManyParts, match="50 parts"):
        for _ in range(TINY.max_parts + 5):
            emitted += len(cutter.feed(b"abcd"))
    # Parts 1..49 went out; part 50 would be followed by more bytes, so it is refused
    # before it is sent rather than after 50 parts are already on the server.
    assert emitted == TINY.max_parts - 1


def test_exactly_max_parts_is_fine() -> None:
    cutter = PartCutter(PartSizer(4, limits=TINY))
    parts = []
    for _ in range(TINY.max_parts):
        parts += cutter.feed(b"abcd")
    last = cutter.finish()
    assert last is not None and last.number == TINY.max_parts


def test_unknown_length_default_schedule_reaches_s3_maximum() -> None:
    sizer = plan(size=None, part_size=None)
    assert sizer.grow and sizer.size_of(1) == DEFAULT_PART_SIZE
    assert sizer.size_of(GROWTH_INTERVAL) == 8 * MiB
    assert sizer.size_of(GROWTH_INTERVAL + 1) == 16 * MiB
    assert all(sizer.size_of(n) <= 5 * GiB for n in range(1, 10_001))
    assert sizer.capacity() >= 5 * TiB  # S3's maximum object size fits in 10,000 parts
    # A fixed 8 MiB part size would cap an unknown-length stream at ~78 GiB.
    assert plan(size=None, part_size=8 * MiB).capacity() == 80_000 * MiB


def test_known_size_planning() -> None:
    assert plan(size=100, part_size=None).size_of(1) == DEFAULT_PART_SIZE
    big = plan(size=1 * TiB, part_size=None)
    assert big.size_of(1) * 10_000 >= 1 * TiB
    assert big.size_of(1) % MiB == 0
    with pytest.raises(UsageError, match="more than 10000 parts"):
        plan(size=10_000 * 5 * MiB + 1, part_size=5 * MiB)
    with pytest.raises(UsageError, match="maximum object size"):
        plan(size=5 * TiB + 1, part_size=None)


@pytest.mark.parametrize("bad", [0, 5 * MiB - 1, 5 * GiB + 1, 1.5, True, "8MiB"])
def test_part_size_out_of_range(bad: object) -> None:
    with pytest.raises(UsageError):
        plan(size=None, part_size=bad)  # type: ignore[arg-type]
    assert issubclass(UsageError, ValueError)


def test_views_of_bytes_are_not_copied() -> None:
    data = bytes(100)
    view = memoryview(data)[10:50]
    kept = as_buffer(view)
    assert isinstance(kept, memoryview) and kept.obj is data and len(kept) == 40
    shaped = memoryview(bytes(64)).cast("I")
    assert len(as_buffer(shaped)) == 64  # counted in bytes, not items


@settings(max_examples=200, deadline=None)
@given(
    chunks=st.lists(st.binary(min_size=0, max_size=40), max_size=30),
    part_size=st.integers(min_value=4, max_value=16),
    grow=st.booleans(),
)
def test_running_crc_matches_each_part(chunks: list[bytes], part_size: int, grow: bool) -> None:
    import zlib

    sizer = PartSizer(part_size, grow=grow, limits=Limits(4, 64, 10_000, 1 << 20))
    cutter = PartCutter(sizer, crc=lambda data, crc: zlib.crc32(data, crc))
    parts = [p for c in chunks for p in cutter.feed(c)]
    last = cutter.finish()
    parts += [last] if last else []
    for part in parts:
        assert part.crc == zlib.crc32(part.to_bytes())


def test_limits_are_validated() -> None:
    with pytest.raises(UsageError):
        Limits(min_part_size=10, max_part_size=5)
    with pytest.raises(UsageError):
        Limits(max_parts=0)
