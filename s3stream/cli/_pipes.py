"""Reading stdin or a file, and writing stdout or a file, without blocking the event loop.

Each stream gets a daemon thread of its own that does the blocking ``os.read``/``os.write``
calls while the loop goes on sending and receiving parts. Not ``asyncio.to_thread``: its
threads are joined when the process exits, so after Ctrl-C a read from a pipe whose writer
is still open (``cat | s3stream cp - ...``) would hold the process forever. A daemon
thread blocked in a read is simply left behind at exit. The threads call ``os.read`` and
``os.write`` on the descriptor, not ``sys.stdin.buffer``: a daemon thread that holds a
buffered stream's lock when the interpreter shuts down makes the shutdown fail.

Memory stays bounded: nothing is read before the upload asks for it, and the caller
awaits each write, so a slow consumer of stdout slows the download down instead of
filling memory.
"""

from __future__ import annotations

import asyncio
import os
import queue
import threading
from collections.abc import AsyncIterator, Callable
from typing import Any, TypeVar

__all__ = ["CHUNK_SIZE", "DaemonWorker", "read_chunks", "write_all"]

#: Bytes per read: a pipe hands out at most 64 KiB per call, so reads are gathered into
#: chunks this large, which keeps the hand-overs to the loop few.
CHUNK_SIZE = 1 << 20

T = TypeVar("T")
_Job = tuple[asyncio.AbstractEventLoop, "asyncio.Future[Any]", Callable[..., Any], tuple[Any, ...]]


def _settle(future: asyncio.Future[Any], ok: bool, value: Any) -> None:
    if future.done():  # the caller was cancelled meanwhile: nobody wants the answer
        return
    if ok:
        future.set_result(value)
    else:
        future.set_exception(value)


class DaemonWorker:
    """One daemon thread that runs blocking calls, one at a time, for the event loop."""

    def __init__(self, name: str) -> None:
        self._jobs: queue.SimpleQueue[_Job | None] = queue.SimpleQueue()
        self._thread = threading.Thread(target=self._serve, name=name, daemon=True)
        self._thread.start()

    async def run(self, function: Callable[..., T], *args: Any) -> T:
        loop = asyncio.get_running_loop()
        future: asyncio.Future[T] = loop.create_future()
        self._jobs.put((loop, future, function, args))
        return await future

    def close(self) -> None:
        """Let the thread end once its current call returns (if it ever does)."""
        self._jobs.put(None)

    def _serve(self) -> None:
        while (job := self._jobs.get()) is not None:
            loop, future, function, args = job
            try:
                outcome: tuple[bool, Any] = (True, function(*args))
            except BaseException as exc:  # handed to the awaiting task, raised there
                outcome = (False, exc)
            try:
                loop.call_soon_threadsafe(_settle, future, *outcome)
            except RuntimeError:  # the loop is closed: the process is on its way out
                return


class _Reader:
    def __init__(self, fd: int, chunk_size: int) -> None:
        self._fd = fd
        self._chunk_size = chunk_size
        # Once a read has returned b"", never read again: on a terminal, Ctrl-D ends one
        # read only, and the next would wait for more typing.
        self._eof = False

    def read(self) -> bytes:
        """Up to ``chunk_size`` bytes; fewer only at the end of the input."""
        pieces: list[bytes] = []
        have = 0
        while have < self._chunk_size and not self._eof:
            piece = os.read(self._fd, self._chunk_size - have)
            if not piece:
                self._eof = True
                break
            pieces.append(piece)
            have += len(piece)
        return b"".join(pieces)


async def read_chunks(fd: int, *, chunk_size: int = CHUNK_SIZE,
                      on_read: Callable[[int], object] | None = None) -> AsyncIterator[bytes]:
    """The bytes of ``fd`` (stdin, a file, a FIFO) in chunks, read in a daemon thread."""
    worker = DaemonWorker(f"s3stream read fd {fd}")
    reader = _Reader(fd, chunk_size)
    try:
        while chunk := await worker.run(reader.read):
            if on_read is not None:
                on_read(len(chunk))
            yield chunk
    finally:
        worker.close()


def _write_all(fd: int, data: bytes | memoryview) -> None:
    view = memoryview(data)
    while view:
        written = os.write(fd, view)
        view = view[written:]


async def write_all(worker: DaemonWorker, fd: int, data: bytes | memoryview) -> None:
    """Write all of ``data`` to ``fd`` in ``worker``'s thread."""
    await worker.run(_write_all, fd, data)
