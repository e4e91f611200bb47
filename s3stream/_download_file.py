"""A download written to a file: through a temporary file in the same directory, renamed
over the destination once every byte is in (and checked), removed on any failure or
cancellation, so the destination is either the whole download or untouched. All file
I/O runs in worker threads, never on the event loop.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import tempfile

from ._download import Download
from ._info import ObjectInfo
from .exceptions import UsageError

__all__ = ["check_path", "download_to"]


def check_path(path: object) -> str:
    if not isinstance(path, str | os.PathLike):
        raise UsageError(f"path must be a str or os.PathLike, not {type(path).__name__}")
    text = os.fsdecode(path)
    if not text:
        raise UsageError("path must not be empty")
    return text


async def download_to(dl: Download, path: str) -> ObjectInfo:
    """Write ``dl`` to ``path`` through a temporary file in the same directory, renamed
    over ``path`` once every byte is in (and checked); removed on any failure or
    cancellation. File I/O runs in worker threads."""
    directory, name = os.path.split(await asyncio.to_thread(os.path.abspath, path))
    fd, temporary = await asyncio.to_thread(
        tempfile.mkstemp, dir=directory, prefix=f".{name}.", suffix=".part")
    file = os.fdopen(fd, "wb")

    def finish() -> None:
        file.close()
        os.replace(temporary, path)

    def discard() -> None:
        file.close()
        with contextlib.suppress(FileNotFoundError):
            os.unlink(temporary)

    try:
        async with dl:
            async for chunk in dl:
                await asyncio.to_thread(file.write, chunk)
        await asyncio.to_thread(finish)
    except BaseException:
        try:
            await asyncio.shield(asyncio.to_thread(discard))
        except BaseException:
            discard()  # cancelled again: finish the clean-up here rather than leave it
        raise
    assert dl.info is not None
    return dl.info
