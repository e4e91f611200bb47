"""What an upload reads from: the caller's source as one async iterator of chunks.

Opening a source does no network I/O; a file is opened and read in worker threads so
the event loop never waits on the disk.
"""

from __future__ import annotations

import asyncio
import errno
import io
import os
import stat
from collections.abc import AsyncIterable, AsyncIterator, Awaitable, Callable
from typing import Any, BinaryIO

from .exceptions import UsageError

#: How much a file source reads per call (in a worker thread).
_FILE_READ_SIZE = 8 << 20
#: How much of a missing path an error message quotes.
_SHOWN_PATH_LIMIT = 80

Source = AsyncIterable[bytes | bytearray | memoryview] | bytes | bytearray | memoryview | str | \
    os.PathLike[str] | BinaryIO


_Closer = Callable[[], Awaitable[None]]


async def open_source(source: object) -> tuple[AsyncIterator[Any], int | None, _Closer]:
    """The source as (async iterator of chunks, size if known, closer). No network I/O;
    a file path is opened (and its size read) in a worker thread."""

    async def nothing() -> None:
        return None

    if isinstance(source, bytes | bytearray | memoryview):
        view = memoryview(source).cast("B")
        return _iter_buffer(view), len(view), nothing
    if isinstance(source, str | os.PathLike):
        path = os.fspath(source)
        if not isinstance(path, str):
            raise UsageError("file paths must be str or os.PathLike[str]")
        f, size = await _in_thread_closing(_open_path, path, isinstance(source, str))

        async def close_file() -> None:
            f.close()

        return _iter_file(f), size, close_file
    if isinstance(source, io.TextIOBase):
        raise TypeError("the source is a text file; open it in binary mode ('rb')")
    if hasattr(source, "iter_any") and callable(source.iter_any):
        # An aiohttp StreamReader: iterating it directly would split the body on b"\n".
        return aiter(source.iter_any()), None, nothing
    if isinstance(source, AsyncIterable):
        return aiter(source), None, nothing
    if hasattr(source, "read") and callable(source.read):
        return _iter_file(source), _file_size(source), nothing
    raise TypeError(
        f"cannot upload a {type(source).__name__}: pass an async iterable of bytes, "
        "bytes-like data, a file path or a binary file object"
    )


async def _in_thread_closing(
    opener: Callable[[str, bool], tuple[BinaryIO, int | None]], path: str, given_str: bool
) -> tuple[BinaryIO, int | None]:
    """``opener`` in a worker thread. If the caller is cancelled meanwhile, the thread still
    finishes: the file it opens is then closed rather than left to the garbage collector."""
    task = asyncio.ensure_future(asyncio.to_thread(opener, path, given_str))
    try:
        return await asyncio.shield(task)
    except asyncio.CancelledError:
        def close_late(done: asyncio.Future[tuple[BinaryIO, int | None]]) -> None:
            if not done.cancelled() and done.exception() is None:
                done.result()[0].close()

        task.add_done_callback(close_late)
        raise


def _shown(path: str) -> str:
    """The path for a message, shortened: a str that was meant as data may be long."""
    if len(path) <= _SHOWN_PATH_LIMIT:
        return repr(path)
    return f"{path[:_SHOWN_PATH_LIMIT]!r}... ({len(path)} characters)"


def _open_path(path: str, given_str: bool) -> tuple[BinaryIO, int | None]:
    """Open a file source and read its size (blocking: runs in a worker thread)."""
    # A str is read as a path; a caller who meant its text gets told how to send it.
    hint = "; to upload the text itself, pass bytes: s.encode()" if given_str else ""
    try:
        f = open(path, "rb")  # noqa: SIM115 - closed by the caller's closer
    except FileNotFoundError as exc:
        raise UsageError(f"no such file: {_shown(path)}{hint}") from exc
    except IsADirectoryError as exc:
        raise UsageError(f"the source is a directory, not a file: {_shown(path)}") from exc
    except OSError as exc:
        if exc.errno != errno.ENAMETOOLONG:
            raise  # permissions and the like: the OS's own error is the truth
        raise UsageError(f"no such file (the name is too long for a path): "
                         f"{_shown(path)}{hint}") from exc
    except ValueError as exc:  # "embedded null byte"
        raise UsageError(f"not a file path (it contains a NUL character): "
                         f"{_shown(path)}{hint}") from exc
    try:
        st = os.fstat(f.fileno())
        if stat.S_ISDIR(st.st_mode):  # where open() accepts directories
            raise UsageError(f"the source is a directory, not a file: {_shown(path)}")
    except BaseException:
        f.close()
        raise
    # Only a regular file's size is its length: a FIFO or a device reports 0 (or nothing
    # meaningful), so it is streamed as an unknown length instead.
    return f, st.st_size if stat.S_ISREG(st.st_mode) else None


def _file_size(f: Any) -> int | None:
    try:
        if f.seekable():
            return int(os.fstat(f.fileno()).st_size - f.tell())
    except (AttributeError, OSError, ValueError, io.UnsupportedOperation):
        pass
    try:
        if f.seekable():
            here = f.tell()
            end = f.seek(0, io.SEEK_END)
            f.seek(here)
            return int(end - here)
    except (AttributeError, OSError, ValueError, io.UnsupportedOperation):
        pass
    return None


async def _iter_buffer(view: memoryview) -> AsyncIterator[bytes | memoryview]:
    if view.readonly and isinstance(view.obj, bytes):
        # Slices of immutable bytes are kept as they are: no copy.
        for start in range(0, len(view), _FILE_READ_SIZE):
            yield view[start : start + _FILE_READ_SIZE]
    else:
        for start in range(0, len(view), _FILE_READ_SIZE):
            yield bytes(view[start : start + _FILE_READ_SIZE])


async def _iter_file(f: Any) -> AsyncIterator[bytes]:
    while True:
        chunk = await asyncio.to_thread(f.read, _FILE_READ_SIZE)
        if not chunk:
            return
        yield chunk
