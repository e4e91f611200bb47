"""The data every client uploads: the same stream of uneven chunks, costing ~nothing.

Chunk sizes cycle through a fixed pseudo-random list between 64 KiB and 4 MiB
(log-uniform, mean ~1 MiB), so parts never line up with chunks. The bytes come from
a pool of random data generated once, before timing starts, from a fixed seed: every
client sends byte-for-byte the same object.

Two modes:

* ``pool`` (default for throughput): the generator yields a cycle of pre-built
  ``bytes`` objects, so producing the stream costs no CPU at all and every client is
  measured on its own work. A zero-copy client holds references to the pool here
  instead of fresh memory, so this mode says little about memory.
* ``fresh``: every chunk is a new ``bytes`` object (one copy of a pool slice), as a
  network or file source hands them out. Use it to measure memory: what a client
  keeps alive then really costs RSS. The copy costs ~0.13 CPU-s/GiB on this machine,
  the same for every client (the ``source`` pseudo-client measures it).

``chunk_size=N`` replaces the uneven sizes with chunks of exactly N bytes (the last
may be shorter), as a request body read in small pieces arrives: the small-chunk table
of ``run.py`` uses it down to one-byte chunks. ``pool`` mode then cycles through 16
distinct pre-built chunks of that size, ``fresh`` mode slices each one from the pool.

Sync clients (boto3's ``upload_fileobj``) read the same sequence through
``ChunkFile``, a non-seekable file object.
"""

from __future__ import annotations

import asyncio
import io
import itertools
import random
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator

KiB = 1 << 10
MiB = 1 << 20

MIN_CHUNK = 64 * KiB
MAX_CHUNK = 4 * MiB
SEED = 20240601
#: Pool of random bytes that fresh chunks are copied from (one max chunk + slack for offsets).
POOL_SIZE = MAX_CHUNK + MiB
#: How many distinct pre-built chunks the ``pool`` mode cycles through.
PREBUILT = 16


def chunk_sizes(count: int = 97) -> list[int]:
    rng = random.Random(SEED)
    return [min(MAX_CHUNK, int(MIN_CHUNK * (MAX_CHUNK / MIN_CHUNK) ** rng.random()))
            for _ in range(count)]


class Source:
    """The chunk sequence for an object of ``size`` bytes."""

    def __init__(self, size: int, mode: str = "pool", chunk_size: int | None = None) -> None:
        if mode not in ("pool", "fresh"):
            raise ValueError(f"unknown source mode {mode!r}")
        if chunk_size is not None and not 1 <= chunk_size <= MAX_CHUNK:
            raise ValueError(f"chunk_size must be 1 to {MAX_CHUNK} bytes")
        self.size = size
        self.mode = mode
        self.chunk_size = chunk_size
        rng = random.Random(SEED)
        self.pool = rng.randbytes(POOL_SIZE)
        self.sizes = chunk_sizes() if chunk_size is None else [chunk_size] * PREBUILT
        self.offsets = [rng.randrange(0, POOL_SIZE - s + 1) for s in self.sizes]
        self.prebuilt: list[bytes] = []
        if mode == "pool":
            self.prebuilt = [self.pool[o : o + s]
                             for o, s in zip(self.offsets[:PREBUILT], self.sizes[:PREBUILT],
                                             strict=True)]
            self.pool = b""  # only the pre-built chunks stay alive

    def chunks(self) -> Iterator[bytes]:
        if self.chunk_size is not None:
            return self._fixed_chunks(self.chunk_size)
        return self._uneven_chunks()

    def _fixed_chunks(self, chunk_size: int) -> Iterator[bytes]:
        count, tail = divmod(self.size, chunk_size)
        if self.mode == "pool":
            # C-level iteration: one-byte chunks cost the source ~nothing but the yield.
            yield from itertools.islice(itertools.cycle(self.prebuilt), count)
        else:
            pool = self.pool
            starts = itertools.islice(itertools.cycle(self.offsets), count)
            for start in starts:
                yield pool[start : start + chunk_size]
        if tail:
            yield self.pool[:tail] if self.mode == "fresh" else self.prebuilt[0][:tail]

    def _uneven_chunks(self) -> Iterator[bytes]:
        remaining = self.size
        sizes, offsets, pool = self.sizes, self.offsets, self.pool
        i = 0
        if self.mode == "pool":
            prebuilt = self.prebuilt
            while remaining > 0:
                chunk = prebuilt[i % PREBUILT]
                i += 1
                if len(chunk) > remaining:
                    chunk = chunk[:remaining]
                remaining -= len(chunk)
                yield chunk
            return
        n = len(sizes)
        while remaining > 0:
            k = i % n
            size = min(sizes[k], remaining)
            i += 1
            remaining -= size
            yield pool[offsets[k] : offsets[k] + size]

    async def aiter(self) -> AsyncIterator[bytes]:
        """The async generator the asyncio clients consume."""
        for chunk in self.chunks():
            yield chunk

    def file(self) -> ChunkFile:
        return ChunkFile(self.chunks())


class ChunkFile(io.RawIOBase):
    """A non-seekable binary file over the chunk sequence, for sync uploaders.

    ``read(n)`` returns exactly ``n`` bytes until the end (like a ``BufferedReader``);
    s3transfer relies on that for equal part sizes.
    """

    def __init__(self, chunks: Iterator[bytes]) -> None:
        self._chunks = chunks
        self._pending = memoryview(b"")

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return False

    def read(self, n: int = -1) -> bytes:
        out: list[bytes | memoryview] = []
        want = n if n is not None and n >= 0 else 1 << 62
        while want > 0:
            if not self._pending:
                nxt = next(self._chunks, None)
                if nxt is None:
                    break
                self._pending = memoryview(nxt)
            piece = self._pending[:want]
            self._pending = self._pending[len(piece):]
            want -= len(piece)
            out.append(piece)
        if len(out) == 1 and isinstance(out[0], memoryview) and out[0].obj is not None and \
                len(out[0]) == len(out[0].obj):
            return out[0].obj  # a whole chunk: no copy
        return b"".join(out)

    def readinto(self, b: bytearray | memoryview) -> int:  # type: ignore[override]
        data = self.read(len(b))
        b[: len(data)] = data
        return len(data)


async def joined_parts(chunks: AsyncIterator[bytes], part_size: int) -> AsyncIterator[bytes]:
    """Parts of exactly ``part_size`` (the last may be shorter) as ``bytes``.

    What a client that needs whole-``bytes`` bodies must do, with no copy to spare:
    each byte is copied once, by the join; chunks straddling a boundary are split
    with memoryviews.
    """
    pending: list[memoryview] = []
    size = 0
    async for chunk in chunks:
        view = memoryview(chunk)
        while size + len(view) >= part_size:
            need = part_size - size
            pending.append(view[:need])
            yield b"".join(pending)
            pending, size = [], 0
            view = view[need:]
        if len(view):
            pending.append(view)
            size += len(view)
    if size:
        yield b"".join(pending)


async def drive_parts(
    chunks: AsyncIterator[bytes],
    part_size: int,
    concurrency: int,
    put: Callable[[int, bytes], Awaitable[None]],
    tasks: list[asyncio.Task[None]],
) -> int:
    """Upload joined parts with at most ``concurrency`` in memory; returns the part count.

    The slot is taken before a part is read, the way s3stream does it, so every peer
    driven by hand gets the same memory bound. ``tasks`` is filled as parts start so
    the caller can cancel them on failure.
    """
    slots = asyncio.Semaphore(concurrency)

    async def run(number: int, body: bytes) -> None:
        try:
            await put(number, body)
        finally:
            slots.release()

    parts = joined_parts(chunks, part_size)
    number = 0
    while True:
        await slots.acquire()
        body = await anext(parts, None)
        if body is None:
            slots.release()
            break
        number += 1
        tasks.append(asyncio.create_task(run(number, body)))
    await asyncio.gather(*tasks)
    return number


# ----------------------------------------------------------------- download data
#
# The sink serves synthetic objects without storing them: byte ``i`` of every object is
# ``PATTERN[i % PERIOD]``, a fixed pseudo-random block. PERIOD is no power of two, so
# part and chunk boundaries never line up with it, and a byte delivered at the wrong
# offset (a range served twice, skipped, or out of order) fails the sampled check below
# unless it is off by a multiple of PERIOD.

PERIOD = MiB + 4093
#: The most bytes one slice of ``DOUBLED`` may hold (the sink's largest write).
MAX_SLICE = MiB
_PATTERN = random.Random(SEED + 1).randbytes(PERIOD)
#: PATTERN followed by its first MAX_SLICE bytes: any MAX_SLICE bytes of the object,
#: from any offset, are one contiguous slice of it (``pattern_slice``).
DOUBLED = _PATTERN + _PATTERN[:MAX_SLICE]
#: Bytes of every delivered chunk compared with the pattern (``Checker``).
SAMPLE = 32


def pattern_slice(offset: int, n: int) -> memoryview:
    """Bytes ``offset .. offset + n - 1`` of any synthetic object (n <= MAX_SLICE)."""
    start = offset % PERIOD
    return memoryview(DOUBLED)[start : start + n]


def pattern_crc32(size: int) -> int:
    """zlib CRC-32 of a whole synthetic object of ``size`` bytes (the runner, once)."""
    import zlib

    crc, done = 0, 0
    while done < size:
        n = min(MAX_SLICE, size - done)
        crc = zlib.crc32(pattern_slice(done, n), crc)
        done += n
    return crc


class Checker:
    """What a download client does with each chunk: counts it, and compares its first
    ``SAMPLE`` bytes with the pattern at its offset (~a microsecond a chunk, the same
    for every client, so it does not tilt the comparison). ``crc=True`` also computes
    the CRC-32 of every byte (costs ~0.1-0.3 CPU-s/GiB: off by default)."""

    __slots__ = ("crc", "mismatches", "received", "use_crc")

    def __init__(self, crc: bool = False) -> None:
        self.received = 0
        self.mismatches = 0
        self.use_crc = crc
        self.crc = 0

    def feed(self, chunk: bytes | memoryview, offset: int | None = None) -> None:
        """One chunk, at ``offset`` (default: right after the previous one)."""
        at = self.received if offset is None else offset
        n = len(chunk)
        if n:
            view = memoryview(chunk)
            k = min(SAMPLE, n)
            if view[:k] != pattern_slice(at, k):
                self.mismatches += 1
            if self.use_crc:
                import zlib

                self.crc = zlib.crc32(view, self.crc)
        self.received += n

    def result(self) -> dict[str, object]:
        out: dict[str, object] = {"received": self.received,
                                  "sample_mismatches": self.mismatches}
        if self.use_crc:
            out["crc32"] = self.crc
        return out
