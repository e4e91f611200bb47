"""The client-wide memory budget: bytes held for parts by all uploads of one client.

An upload reserves a part's worth *before* it reads the source into that part, and the
reservation lives until the part has been sent (and is no longer kept for retries). A
producer that cannot reserve waits, so a service's memory for part buffers is set by one
number however many uploads run at once (the idea of aws-c-s3's buffer pool).

Rules that keep it live and fair:

* Waiters are served strictly in arrival order (no overtaking by small requests), so a
  new upload cannot starve one that waits already.
* A request larger than the whole budget is granted once nothing else is held: an upload
  always gets at least one part's worth, however small the budget.
* Reservations for parts in flight never wait for more memory, so the parts that hold
  the budget always finish and give it back: no cycle, no deadlock.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib

from .exceptions import UsageError


class MemoryBudget:
    def __init__(self, limit: int) -> None:
        if isinstance(limit, bool) or not isinstance(limit, int) or limit < 1:
            raise UsageError(f"memory_limit must be an int number of bytes >= 1, not {limit!r}")
        self.limit = limit
        self.held = 0
        #: The most ever held at once (for tests and statistics).
        self.peak = 0
        self._waiters: collections.deque[tuple[int, asyncio.Future[None]]] = collections.deque()

    def _fits(self, amount: int) -> bool:
        return self.held + amount <= self.limit or self.held == 0

    def would_wait(self, amount: int) -> bool:
        """Whether ``acquire(amount)`` would wait now (others in line, or no room)."""
        return amount > 0 and (bool(self._waiters) or not self._fits(amount))

    async def acquire(self, amount: int) -> int:
        """Reserve ``amount`` bytes (waiting in line as long as needed); returns what was
        reserved, which the caller gives back with ``release()``."""
        if amount <= 0:
            return 0
        if not self._waiters and self._fits(amount):
            self._take(amount)
            return amount
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        entry = (amount, future)
        self._waiters.append(entry)
        try:
            await future
        except BaseException:
            if future.done() and not future.cancelled():
                # Granted just as we were cancelled: hand it back, to the next in line.
                self.release(amount)
            else:
                # Still in line, unless a release already dropped it as done.
                with contextlib.suppress(ValueError):
                    self._waiters.remove(entry)
                self._wake()
            raise
        return amount

    def _take(self, amount: int) -> None:
        self.held += amount
        self.peak = max(self.peak, self.held)

    def release(self, amount: int) -> None:
        if amount <= 0:
            return
        self.held -= amount
        assert self.held >= 0, "released more than was reserved"
        self._wake()

    def _wake(self) -> None:
        while self._waiters:
            amount, future = self._waiters[0]
            if future.done():
                self._waiters.popleft()
                continue
            if not self._fits(amount):
                return  # the head waits; nobody overtakes it
            self._waiters.popleft()
            self._take(amount)
            future.set_result(None)

    @property
    def waiting(self) -> int:
        return sum(1 for _, f in self._waiters if not f.done())
