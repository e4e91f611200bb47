"""Part planning and cutting: pure, property-tested."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from fake_s3 import FakeS3
from hypothesis import given, settings
from hypothesis import strategies as st

from s3stream import S3Client, SourceSizeError, UsageError
from s3stream._parts import (
    DEFAULT_PART_SIZE,
    GROWTH_INTERVAL,
    Buffer,
    GiB,
    KiB,
    Limits,
    MiB,
    Part,
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


# ---------------------------------------------------------------- small-chunk staging

# Staging with tiny parts: chunks of up to 6 bytes are copied into blocks of 8.
STAGED = {"small": 6, "block": 8}
ROOMY = Limits(min_part_size=1, max_part_size=64, max_parts=100_000, max_object_size=1 << 30)

chunk_mixes = st.lists(
    st.one_of(st.binary(min_size=0, max_size=6), st.binary(min_size=7, max_size=60)),
    max_size=60)


def cut_staged(chunks: list[bytes], sizer: PartSizer, *, use_take: bool = False,
               mutable: bool = False, crc: bool = False) -> list[Part]:
    import zlib

    cutter = PartCutter(sizer, crc=(lambda d, c: zlib.crc32(d, c)) if crc else None, **STAGED)
    parts: list[Part] = []
    reused = bytearray(64)
    fed = 0
    for chunk in chunks:
        if use_take and cutter.take(chunk):
            pass
        elif mutable:
            # The caller's one buffer, overwritten right after each call.
            view = memoryview(reused)[: len(chunk)]
            view[:] = chunk
            parts += cutter.feed(view)
            view[:] = b"\xee" * len(chunk)
        else:
            parts += cutter.feed(chunk)
        fed += len(chunk)
        assert cutter.total == fed
        held = sum(len(b) for b in cutter._pending) + cutter._fill - cutter._handed
        assert held <= sizer.size_of(len(parts) + 1)  # never more than one part held
    last = cutter.finish()
    return parts + ([last] if last is not None else [])


@settings(max_examples=300, deadline=None)
@given(chunks=chunk_mixes, part_size=st.integers(min_value=1, max_value=24),
       use_take=st.booleans(), mutable=st.booleans(), grow=st.booleans())
def test_staged_mixes_rejoin(chunks: list[bytes], part_size: int, use_take: bool,
                             mutable: bool, grow: bool) -> None:
    import zlib

    sizer = PartSizer(part_size, grow=grow, limits=ROOMY)
    parts = cut_staged(chunks, sizer, use_take=use_take, mutable=mutable, crc=True)
    data = b"".join(chunks)
    assert b"".join(p.to_bytes() for p in parts) == data
    assert [p.number for p in parts] == list(range(1, len(parts) + 1))
    for part in parts:
        assert part.size == len(part.to_bytes())
        assert part.crc == zlib.crc32(part.to_bytes())  # every byte once, in order
    for part in parts[:-1]:
        assert part.size == sizer.size_of(part.number)
    if data:
        assert parts[-1].size >= 1
    else:
        assert parts == []


@settings(max_examples=100, deadline=None)
@given(chunks=chunk_mixes, part_size=st.integers(min_value=1, max_value=24))
def test_take_is_feed_without_a_part(chunks: list[bytes], part_size: int) -> None:
    # take() accepts only what completes nothing; the parts are the same either way.
    sizer = PartSizer(part_size, limits=ROOMY)
    with_take = [p.to_bytes() for p in cut_staged(chunks, sizer, use_take=True)]
    without = [p.to_bytes() for p in cut_staged(chunks, sizer)]
    assert with_take == without


def test_take_refuses_large_chunks_mutable_ones_and_part_ends() -> None:
    cutter = PartCutter(PartSizer(10, limits=ROOMY), **STAGED)
    assert not cutter.take(b"x" * 7)  # larger than small: kept by feed(), not copied
    assert not cutter.take(bytearray(b"ab"))  # mutable: feed() copies it
    assert not cutter.take("text")
    assert cutter.take(b"ab") is False  # no block yet: feed() makes one
    assert cutter.feed(b"ab") == []
    assert cutter.take(b"cde")
    assert not cutter.take(b"fgh")  # would fill the block of 8
    assert cutter.feed(b"fgh") == []
    assert cutter.total == 8


def test_large_bytes_are_still_not_copied_between_small_ones() -> None:
    big = bytes(range(100))
    cutter = PartCutter(PartSizer(40, limits=ROOMY), **STAGED)
    parts = cutter.feed(b"abc") + cutter.feed(big) + cutter.feed(b"de")
    last = cutter.finish()
    assert last is not None
    parts.append(last)
    assert b"".join(p.to_bytes() for p in parts) == b"abc" + big + b"de"
    pieces = [c for p in parts for c in p.chunks]
    assert any(memoryview(c).obj is big for c in pieces)


def test_a_part_of_tiny_chunks_holds_few_buffers() -> None:
    cutter = PartCutter(PartSizer(8 * MiB))  # the defaults: 64 KiB small, 512 KiB blocks
    parts: list[Part] = []
    for _ in range(9 * MiB // 100):
        if not cutter.take(b"y" * 100):
            parts += cutter.feed(b"y" * 100)
    (part,) = parts
    assert part.size == 8 * MiB and part.to_bytes() == b"y" * (8 * MiB)
    assert len(part.chunks) <= 8 * MiB // (512 * KiB) + 1


def test_blocks_are_filled_again_once_their_parts_are_gone() -> None:
    cutter = PartCutter(PartSizer(16, limits=ROOMY), **STAGED)
    blocks: list[bytearray] = []  # held here, so no id is reused
    out = []
    for i in range(200):
        out += [part.to_bytes() for part in cutter.feed(bytes([i % 251]) * 3)]  # "sent"
        if not any(b is cutter._stage for b in blocks):
            blocks.append(cutter._stage)
    assert len(out) == 37
    assert b"".join(out) == b"".join(bytes([i % 251]) * 3 for i in range(200))[: 37 * 16]
    # 600 bytes went through blocks of 8: without reuse that would be 75 blocks.
    assert len(blocks) <= 6


def test_a_block_still_viewed_by_a_part_is_never_overwritten() -> None:
    cutter = PartCutter(PartSizer(16, limits=ROOMY), **STAGED)
    kept = []
    for i in range(100):
        kept += cutter.feed(bytes([65 + i % 26]) * 3)
    last = cutter.finish()
    assert last is not None
    kept.append(last)
    expected = b"".join(bytes([65 + i % 26]) * 3 for i in range(100))
    assert b"".join(p.to_bytes() for p in kept) == expected
    for part in kept:
        for piece in part.chunks:
            assert memoryview(piece).readonly


# --------------------------------------------- end to end: S3Client.upload() of small chunks


async def _chunks_of(data: bytes, sizes: list[int], reuse: bool) -> AsyncIterator[object]:
    buffer = bytearray(max(sizes))
    at = 0
    i = 0
    while at < len(data):
        n = sizes[i % len(sizes)]
        i += 1
        piece = data[at : at + n]
        at += len(piece)
        if reuse and i % 3 == 0:
            # One buffer the source overwrites after each yield, as a socket reader does.
            view = memoryview(buffer)[: len(piece)]
            view[:] = piece
            yield view
            view[:] = b"\xee" * len(piece)
        else:
            yield piece


@pytest.mark.parametrize("sizes", [[1], [1, 700, 3], [1000, 1, 5000, 70_000, 2], [64 * KiB],
                                   [4 * KiB, 2 * MiB, 1]])
async def test_upload_of_small_chunks_stores_every_byte(
    fake: FakeS3, client: S3Client, sizes: list[int]
) -> None:
    import random

    total = 11 * MiB + 123 if sizes != [1] else 5 * MiB + 7  # 1-byte chunks: keep it short
    data = random.Random(7).randbytes(total)
    result = await client.upload("bucket", "k", _chunks_of(data, sizes, reuse=True),
                                 part_size=5 * MiB, checksum="crc32")
    assert fake.objects["k"] == data
    assert result.size == total and result.part_count == -(-total // (5 * MiB))


async def test_upload_of_tiny_chunks_past_size_fails_before_sending_them(
    fake: FakeS3, client: S3Client
) -> None:
    data = bytes(6 * MiB)
    with pytest.raises(SourceSizeError):
        await client.upload("bucket", "k", _chunks_of(data, [100, 1], reuse=False),
                            size=5 * MiB + 10, part_size=5 * MiB)
    assert "k" not in fake.objects


def test_staging_blocks_of_sent_parts_are_given_back() -> None:
    # Parts cut from small chunks view staging blocks; once the parts are gone (sent),
    # an upload keeps at most two blocks for reuse, not every block it ever filled.
    cutter = PartCutter(PartSizer(5 * MiB, limits=Limits(5 * MiB, 5 * GiB, 10_000, TiB)))
    chunk = b"x" * (4 * KiB)
    parts: list[Part] = []
    for _ in range(4 * (5 * MiB) // len(chunk)):
        parts.extend(cutter.feed(chunk))
    assert len(parts) == 3
    in_use = cutter.trim_spares()
    assert in_use == 0  # every block still views (or is) a part that is not sent yet
    kept_before = len(cutter._used)
    parts.clear()  # sent: nothing views their blocks any more
    dropped = cutter.trim_spares()
    # What stays: the blocks of the part being filled (not sent yet), and two spares.
    assert dropped > 0 and len(cutter._used) == kept_before - dropped
    assert len(cutter._used) <= (5 * MiB) // (512 * KiB) + 2
