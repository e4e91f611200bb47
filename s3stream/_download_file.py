"""A download written to a file: through a temporary file in the same directory, renamed
over the destination once every byte is in (and checked), removed on any failure or
cancellation, so the destination is either the whole download or untouched. All file
I/O runs in worker threads, never on the event loop.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import secrets
from collections.abc import Callable

from ._download import Download
from ._info import ObjectInfo
from .exceptions import UsageError

__all__ = ["check_path", "download_to"]

#: The bytes written per worker-thread hop (at most one chunk more).
_WRITE_BATCH = 1 << 20


def check_path(path: object) -> str:
    if not isinstance(path, str | os.PathLike):
        raise UsageError(f"path must be a str or os.PathLike, not {type(path).__name__}")
    text = os.fsdecode(path)
    if not text:
        raise UsageError("path must not be empty")
    return text


def _create_beside(directory: str, name: str) -> tuple[int, str]:
    """A new, empty temporary file in ``directory`` (blocking). Created with mode 0o666
    so that the process's umask applies, as to any new file: the renamed download gets
    the permissions a plain ``open(path, "wb")`` would have given it (mkstemp's 0o600
    would make it private)."""
    while True:
        temporary = os.path.join(directory, f".{name}.{secrets.token_hex(6)}.part")
        try:
            return os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666), temporary
        except FileExistsError:
            continue


async def download_to(dl: Download, path: str,
                      progress: Callable[[int, int], object] | None = None) -> ObjectInfo:
    """Write ``dl`` to ``path`` through a temporary file in the same directory, renamed
    over ``path`` once every byte is in (and checked); removed on any failure or
    cancellation. File I/O runs in worker threads."""
    directory, name = os.path.split(await asyncio.to_thread(os.path.abspath, path))
    fd, temporary = await asyncio.to_thread(_create_beside, directory, name)
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
            # Chunks are what each socket read produced (as small as a few KiB over TLS):
            # written a batch per worker-thread hop, not one hop each.
            total = dl.length
            assert total is not None  # known once the first answer is in
            batch: list[bytes] = []
            batched = written = 0
            async for chunk in dl:
                batch.append(chunk)
                batched += len(chunk)
                if batched >= _WRITE_BATCH:
                    await asyncio.to_thread(file.writelines, batch)
                    written += batched
                    batch, batched = [], 0
                    if progress is not None:
                        progress(written, total)
            if batch:
                await asyncio.to_thread(file.writelines, batch)
                written += batched
            if progress is not None:
                progress(written, total)
        await asyncio.to_thread(finish)
    except BaseException:
        try:
            await asyncio.shield(asyncio.to_thread(discard))
        except BaseException:
            discard()  # cancelled again: finish the clean-up here rather than leave it
        raise
    assert dl.info is not None
    return dl.info
