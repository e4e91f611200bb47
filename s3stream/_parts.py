"""S3's multipart limits as data, part-size planning, and the cutter that turns a
byte stream into parts. Pure: no I/O, no event loop.

The cutter never holds more than one part plus the chunk being cut (small chunks it
has copied count toward that part; the staging blocks it keeps for reuse are those the
parts in flight were cut from). It emits a part only once at least one byte *beyond*
it has arrived, so the part it emits from ``finish()`` is always the non-empty last
part. That one rule means an object of exactly N parts never ends with an empty part,
and a stream that ends inside (or exactly at the end of) the first part is known to be
a single PutObject.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from .exceptions import UsageError

KiB = 1 << 10
MiB = 1 << 20
GiB = 1 << 30
TiB = 1 << 40

Buffer = bytes | memoryview


@dataclass(frozen=True, slots=True)
class Limits:
    """The service's multipart rules (AWS S3's by default)."""

    min_part_size: int = 5 * MiB
    max_part_size: int = 5 * GiB
    max_parts: int = 10_000
    max_object_size: int = 5 * TiB

    def __post_init__(self) -> None:
        values = (self.min_part_size, self.max_part_size, self.max_parts, self.max_object_size)
        if any(isinstance(v, bool) or not isinstance(v, int) or v < 1 for v in values):
            raise UsageError("Limits fields must be positive ints")
        if self.min_part_size > self.max_part_size:
            raise UsageError("Limits.min_part_size must not exceed max_part_size")


S3_LIMITS = Limits()
DEFAULT_PART_SIZE = 8 * MiB
#: With an unknown length and no part_size, the size doubles every this many parts:
#: 8 MiB parts up to ~7.8 GiB, then 16 MiB, ... and 10,000 parts reach ~8 TiB, past S3's
#: 5 TiB object limit, while memory stays small for the streams most services see.
GROWTH_INTERVAL = 1_000


def validate_part_size(part_size: int, limits: Limits = S3_LIMITS) -> None:
    if isinstance(part_size, bool) or not isinstance(part_size, int):
        raise UsageError(f"part_size must be an int number of bytes, not {part_size!r}")
    if not limits.min_part_size <= part_size <= limits.max_part_size:
        raise UsageError(
            f"part_size={part_size} is outside S3's limits: "
            f"{limits.min_part_size} (5 MiB) to {limits.max_part_size} (5 GiB) bytes"
        )


def _round_up(value: int, step: int) -> int:
    return -(-value // step) * step


@dataclass(frozen=True, slots=True)
class PartSizer:
    """Which size part number ``n`` (1-based) has."""

    base: int
    grow: bool = False
    limits: Limits = S3_LIMITS

    def size_of(self, number: int) -> int:
        if not self.grow:
            return self.base
        tier = (number - 1) // GROWTH_INTERVAL
        return min(self.base << tier, self.limits.max_part_size)

    def capacity(self) -> int:
        """How many bytes ``max_parts`` parts can hold."""
        if not self.grow:
            return self.base * self.limits.max_parts
        full_tiers, rest = divmod(self.limits.max_parts, GROWTH_INTERVAL)
        total = sum(self.size_of(t * GROWTH_INTERVAL + 1) * GROWTH_INTERVAL
                    for t in range(full_tiers))
        return total + rest * self.size_of(full_tiers * GROWTH_INTERVAL + 1)


def plan(
    *, size: int | None, part_size: int | None, limits: Limits = S3_LIMITS
) -> PartSizer:
    """Choose part sizes before any I/O, failing early when the object cannot fit."""
    if part_size is not None:
        validate_part_size(part_size, limits)
    if size is None:
        if part_size is None:
            return PartSizer(DEFAULT_PART_SIZE, grow=True, limits=limits)
        return PartSizer(part_size, limits=limits)
    if size > limits.max_object_size:
        raise UsageError(
            f"object of {size} bytes exceeds S3's maximum object size of "
            f"{limits.max_object_size} bytes"
        )
    if part_size is None:
        # Smallest MiB-aligned size that fits the object in max_parts, never below the default.
        needed = _round_up(-(-size // limits.max_parts), MiB)
        return PartSizer(max(DEFAULT_PART_SIZE, needed), limits=limits)
    if size > part_size * limits.max_parts:
        raise UsageError(
            f"object of {size} bytes needs more than {limits.max_parts} parts of "
            f"part_size={part_size}; use part_size >= {-(-size // limits.max_parts)} "
            "or leave part_size=None"
        )
    return PartSizer(part_size, limits=limits)


@dataclass(frozen=True, slots=True)
class Part:
    """One part's bytes, held as the slices of the caller's chunks that make it up."""

    number: int
    chunks: Sequence[Buffer]
    size: int
    #: The part's CRC, when the cutter was given a CRC function to run as bytes arrive.
    crc: int | None = None

    def to_bytes(self) -> bytes:
        return b"".join(self.chunks)


class TooManyParts(UsageError):
    pass


#: Chunks of at most this many bytes are copied into a staging block rather than kept:
#: a part made of thousands of tiny chunks would cost a send (and a turn of the event
#: loop) per chunk. Larger chunks of ``bytes`` are kept as they are, without a copy.
SMALL_CHUNK = 64 * KiB
#: Free staging blocks a cutter keeps for reuse (beyond them, they go back to the allocator).
_SPARE_BLOCKS = 2
#: The size of a staging block (the transport's write slice).
STAGE_BLOCK = 512 * KiB


class PartCutter:
    """Cut a stream of byte chunks into parts of the planned sizes.

    ``feed()`` returns the parts that are now complete; ``finish()`` returns the last,
    non-empty part (None for an empty stream). Chunks of type ``bytes`` are sliced
    without copying; mutable buffers are copied, because callers reuse them.

    Chunks of at most ``small`` bytes are copied into a staging block of ``block``
    bytes, filled front to back; its filled bytes join the pending ones (a read-only
    view of them) when the block is full, when a part boundary falls inside them, or
    before a large chunk, so a part holds a few buffers per block whatever the chunk
    size. A block whose views are all gone (its parts were sent) is filled again:
    fresh memory for every block would cost a page fault per 4 KiB. The defaults stage
    only when parts are large next to a block; tiny test sizers pass ``small`` and
    ``block`` to exercise it.
    """

    def __init__(self, sizer: PartSizer, crc: Callable[[Buffer, int], int] | None = None,
                 *, small: int | None = None, block: int | None = None) -> None:
        self._sizer = sizer
        self._limits = sizer.limits
        self._pending: deque[Buffer] = deque()
        self._pending_size = 0
        self._next_number = 1
        self._target = sizer.size_of(1)
        if block is None:
            block = min(STAGE_BLOCK, self._target // 8)
        if small is None:
            small = min(SMALL_CHUNK, block // 4)
        self._block_size = max(1, block)
        self._small = min(small, self._block_size)
        #: The block being filled (none until a small chunk comes), a read-only view of
        #: it, how far it is filled, and how much of that is already pending.
        self._stage = bytearray()
        self._view = memoryview(self._stage).toreadonly()
        self._fill = self._handed = 0
        #: Full blocks, oldest first, to be filled again once nothing views them.
        self._used: deque[bytearray] = deque()
        #: ``take()`` stages a chunk only if it ends before this fill position (the end
        #: of the block, or one byte past the current part): it then completes nothing.
        self._flush_at = 0
        #: Bytes moved to ``_pending`` so far (the staged ones are added in ``total``).
        self._fed = 0
        # A running CRC is kept per part while its bytes are still hot in the CPU cache
        # (just produced by the source, or just copied into a block): a later pass would
        # read them from memory again.
        self._crc = crc
        self._crcs: deque[int] = deque()
        self._crc_value = 0
        self._crc_filled = 0
        self._crc_target = self._target

    @property
    def small(self) -> int:
        """Chunks of at most this many bytes are staged (copied into a block)."""
        return self._small

    @property
    def total(self) -> int:
        """Bytes fed so far."""
        return self._fed + self._fill - self._handed

    def take(self, chunk: object) -> bool:
        """Stage a small ``bytes`` chunk at once if that completes no part and fills no
        block. True: taken, nothing more to do. False: nothing was taken; ``feed()`` it."""
        if chunk.__class__ is bytes:
            n = len(chunk)
            fill = self._fill
            end = fill + n
            if end < self._flush_at and n <= self._small:
                self._stage[fill:end] = chunk
                self._fill = end
                return True
        return False

    def feed(self, chunk: object) -> list[Part]:
        if chunk.__class__ is bytes or chunk.__class__ is bytearray:
            n = len(chunk)
        elif isinstance(chunk, memoryview) and chunk.c_contiguous:
            n = chunk.nbytes
        else:
            chunk = as_buffer(chunk)  # the TypeError for what is not bytes-like
            n = len(chunk)
        if n <= self._small:
            if n:
                self._stage_copy(chunk, n)  # a copy: the caller may reuse its buffer
        else:
            view = as_buffer(chunk)  # bytes and views of bytes kept, mutable ones copied
            self._hand_over()  # the staged bytes before it, in order
            self._keep(view)
        out: list[Part] = []
        while self._pending_size > self._target:
            if self._next_number >= self._limits.max_parts:
                # Bytes beyond the last allowed part exist: fail before sending that part.
                raise TooManyParts(
                    f"the stream needs more than {self._limits.max_parts} parts "
                    f"(it is longer than {self._sizer.capacity()} bytes); pass a larger "
                    "part_size, or leave part_size=None so parts grow"
                )
            out.append(self._cut(self._target))
        # Pending and staged bytes together never exceed one part.
        self._flush_at = min(len(self._stage),
                             self._handed + self._target - self._pending_size + 1)
        return out

    def finish(self) -> Part | None:
        self._hand_over()
        # The blocks stay alive only as long as the parts that view them.
        self._stage = bytearray()
        self._view = memoryview(self._stage).toreadonly()
        self._fill = self._handed = self._flush_at = 0
        self._used.clear()
        if self._pending_size == 0:
            return None
        if self._crc is not None and self._crc_filled:
            self._crcs.append(self._crc_value)
            self._crc_filled = 0
        return self._cut(self._pending_size)

    def _stage_copy(self, chunk: Buffer | bytearray, n: int) -> None:
        fill = self._fill
        if fill + n <= len(self._stage):
            self._stage[fill : fill + n] = chunk
            self._fill = fill + n
        else:
            source = memoryview(chunk).cast("B")
            done = len(self._stage) - fill
            if done:
                self._stage[fill:] = source[:done]
                self._fill += done
            self._next_block()
            self._stage[: n - done] = source[done:]
            self._fill = n - done
        if self._fill == len(self._stage) or \
                self._pending_size + self._fill - self._handed > self._target:
            self._hand_over()

    def _hand_over(self) -> None:
        """The staged bytes join the pending ones, as a read-only view of the block."""
        if self._fill > self._handed:
            self._keep(self._view[self._handed : self._fill])
            self._handed = self._fill

    def _next_block(self) -> None:
        self._hand_over()
        used = self._used
        if self._stage:
            used.append(self._stage)
        self._view.release()  # its slices are the parts' own views
        # Parts are sent about in order: the oldest block is the one likely free again.
        if used and _unviewed(used[0]):
            self._stage = used.popleft()
        else:
            self._stage = bytearray(self._block_size)
        self._view = memoryview(self._stage).toreadonly()
        self._fill = self._handed = 0

    def trim_spares(self, keep: int = _SPARE_BLOCKS) -> int:
        """Drop all but ``keep`` of the staging blocks no part views any more; returns
        how many were dropped. Their memory was a part's, which the client's memory
        budget no longer counts once the part is sent: an upload waiting for its next
        reservation must not go on holding it."""
        kept: deque[bytearray] = deque()
        spare = dropped = 0
        for block in self._used:
            if _unviewed(block):
                spare += 1
                if spare > keep:
                    dropped += 1
                    continue
            kept.append(block)
        self._used = kept
        return dropped

    def drop_stage(self) -> bool:
        """Let go of the block being filled when none of its bytes wait for the next
        part (all it holds are views of parts already cut): its free tail would otherwise
        stay allocated, uncounted, while this upload waits for memory. A fresh block is
        made when the next small chunk comes. True if it was dropped."""
        if self._fill > self._handed or not self._stage:
            return False
        self._view.release()
        self._stage = bytearray()
        self._view = memoryview(self._stage).toreadonly()
        self._fill = self._handed = self._flush_at = 0
        return True

    def _keep(self, view: Buffer) -> None:
        n = len(view)
        self._fed += n
        if self._fed > self._limits.max_object_size:
            raise UsageError(
                f"stream is longer than S3's maximum object size of "
                f"{self._limits.max_object_size} bytes"
            )
        self._pending.append(view)
        self._pending_size += n
        if self._crc is not None:
            self._run_crc(view)

    def _run_crc(self, view: Buffer) -> None:
        assert self._crc is not None
        start, n = 0, len(view)
        while start < n:
            take = min(self._crc_target - self._crc_filled, n - start)
            # Sliced through a memoryview: a slice of bytes would be a copy.
            piece = view if take == n else memoryview(view)[start : start + take]
            self._crc_value = self._crc(piece, self._crc_value)
            self._crc_filled += take
            start += take
            if self._crc_filled == self._crc_target:
                self._crcs.append(self._crc_value)
                self._crc_value = self._crc_filled = 0
                self._crc_target = self._sizer.size_of(len(self._crcs) + self._next_number)

    def _cut(self, size: int) -> Part:
        taken: list[Buffer] = []
        remaining = size
        while remaining:
            head = self._pending[0]
            if len(head) <= remaining:
                taken.append(head)
                self._pending.popleft()
                remaining -= len(head)
            else:
                mv = head if isinstance(head, memoryview) else memoryview(head)
                taken.append(mv[:remaining])
                self._pending[0] = mv[remaining:]
                remaining = 0
        self._pending_size -= size
        crc = self._crcs.popleft() if self._crc is not None else None
        part = Part(self._next_number, taken, size, crc)
        self._next_number += 1
        self._target = self._sizer.size_of(self._next_number)
        return part


def _unviewed(block: bytearray) -> bool:
    """Whether no buffer views ``block``: resizing a viewed bytearray is refused."""
    try:
        block.append(block.pop())
    except BufferError:
        return False
    return True


def as_buffer(chunk: object) -> Buffer:
    """A chunk as an immutable buffer we may keep, or TypeError for non-bytes."""
    if isinstance(chunk, bytes):
        return chunk
    if isinstance(chunk, memoryview) and isinstance(chunk.obj, bytes) and chunk.c_contiguous:
        # A view of immutable bytes cannot change under us: keep it, no copy.
        return chunk.cast("B") if chunk.format != "B" or chunk.ndim != 1 else chunk
    if isinstance(chunk, bytearray | memoryview):
        return bytes(chunk)
    if isinstance(chunk, str):
        raise TypeError("the source yielded str; S3 stores bytes: encode it first")
    raise TypeError(
        f"the source yielded {type(chunk).__name__}; expected bytes, bytearray or memoryview"
    )
