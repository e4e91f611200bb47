"""What an upload reads from: the caller's source as one async iterator of chunks.

Opening a source does no network I/O; a file is read in a worker thread so the event
loop never waits on the disk.
"""

from __future__ import annotations

import asyncio
import io
import os
from collections.abc import AsyncIterable, AsyncIterator, Awaitable, Callable
from typing import Any, BinaryIO

from .exceptions import UsageError

#: How much a file source reads per call (in a worker thread).
_FILE_READ_SIZE = 8 << 20

Source = AsyncIterable[bytes | bytearray | memoryview] | bytes | bytearray | memoryview | str | \
    os.PathLike[str] | BinaryIO


_Closer = Callable[[], Awaitable[None]]


def open_source(source: object) -> tuple[AsyncIterator[Any], int | None, _Closer]:
    """The source as (async iterator of chunks, size if known, closer). No network I/O."""

    async def nothing() -> None:
        return None

    if isinstance(source, bytes | bytearray | memoryview):
        view = memoryview(source).cast("B")
        return _iter_buffer(view), len(view), nothing
    if isinstance(source, str | os.PathLike):
        path = os.fspath(source)
        if not isinstance(path, str):
            raise UsageError("file paths must be str or os.PathLike[str]")
        f = open(path, "rb")  # noqa: SIM115 - closed by the returned closer
        size = os.fstat(f.fileno()).st_size

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
