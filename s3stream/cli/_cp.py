"""``s3stream cp SRC DST``: a local file or ``-`` (stdin) to S3, S3 to a local file or ``-``
(stdout), or S3 to S3 (a download piped into an upload, through this machine).

Uploads read their source in a daemon thread (``_pipes``) and give ``upload()`` the size
when it is known (a regular file, or stdin redirected from one), so parts are planned for
it; a pipe's length is unknown and its part size grows as S3's 10,000-part limit requires.
"""

from __future__ import annotations

import asyncio
import mimetypes
import os
import stat
from typing import Any

from ._args import CommandFailed, CommandLineError, S3Url, parse_metadata, parse_target
from ._context import Context
from ._pipes import read_chunks

__all__ = ["cp"]


async def cp(ctx: Context) -> int:
    args = ctx.args
    src, dst = parse_target(args.source), parse_target(args.destination)
    for side in (src, dst):
        if isinstance(side, S3Url) and not side.bucket:
            raise CommandLineError(f"no bucket in {side}: write s3://BUCKET/KEY")
    if isinstance(src, S3Url) and (not src.key or src.key.endswith("/")):
        raise CommandLineError(f"{src} is not an object's key (recursive copies are not "
                               "supported)")
    if isinstance(dst, S3Url):
        if isinstance(src, S3Url):
            return await _copy(ctx, src, dst)
        return await _upload(ctx, src, dst)
    if isinstance(src, S3Url):
        return await _download(ctx, src, dst)
    raise CommandLineError("one side of cp must be s3://BUCKET/KEY (local copies are not "
                           "what this tool is for)")


def _object_key(dst: S3Url, name: str | None) -> S3Url:
    """``dst``, with the source's file name added when it names a "folder" (ends in /)."""
    if dst.key and not dst.key.endswith("/"):
        return dst
    if name is None:
        raise CommandLineError(f"{dst} needs a key when the source has no file name "
                               "(such as -): write s3://BUCKET/KEY")
    return S3Url(dst.bucket, dst.key + name)


def _upload_options(ctx: Context) -> dict[str, Any]:
    """The options that ``cp`` passes to ``upload()`` as given (the library checks them)."""
    args = ctx.args
    options: dict[str, Any] = {"part_size": args.part_size, "concurrency": args.concurrency}
    if args.checksum is not None:
        # Only when given: without it the client's default (CRC32C) applies.
        options["checksum"] = None if args.checksum == "none" else args.checksum
    metadata = parse_metadata(args.metadata)
    if metadata:
        options["metadata"] = metadata
    return options


def _open_local(path: str) -> tuple[int, int | None]:
    """``path`` (``-``: stdin) opened for reading, and its size when it is a regular file."""
    if path == "-":
        fd = 0
    else:
        try:
            fd = os.open(path, os.O_RDONLY)
        except FileNotFoundError:
            raise CommandFailed(f"no such file: {path}") from None
        except OSError as exc:
            raise CommandFailed(f"cannot read {path}: {exc.strerror}") from None
    st = os.fstat(fd)
    if stat.S_ISDIR(st.st_mode):
        os.close(fd)
        raise CommandFailed(f"{path} is a directory (recursive copies are not supported)")
    if not stat.S_ISREG(st.st_mode):
        return fd, None  # a pipe, a FIFO, a terminal: streamed, its length unknown
    # Stdin redirected from a file may already be read in part: the rest is what is sent.
    return fd, st.st_size - os.lseek(fd, 0, os.SEEK_CUR)


async def _upload(ctx: Context, src: str, dst: S3Url) -> int:
    name = None if src == "-" else os.path.basename(src.rstrip(os.sep)) or None
    dst = _object_key(dst, name)
    options = _upload_options(ctx)
    content_type = ctx.args.content_type
    if content_type is None and src != "-":
        # As the AWS CLI does: a file's type from its name, such as text/html for .html.
        content_type = mimetypes.guess_type(src)[0]
    fd, size = _open_local(src)
    bar = ctx.progress(src if src != "-" else "stdin", size)
    # Until the upload's own cleanup has run (a second Ctrl-C may cut it short):
    ctx.stopped = (f"the upload to {dst} may still be open; see what is left with: "
                   f"s3stream uploads ls {dst}")
    try:
        await ctx.s3.upload(
            dst.bucket, dst.key, read_chunks(fd), size=size, content_type=content_type,
            progress=lambda p: bar.update(p.bytes_acknowledged), **options)
    except asyncio.CancelledError as exc:
        bar.abandon()
        # The upload has aborted itself by now; had the abort failed, it says so in a note.
        notes = getattr(exc, "__notes__", [])
        ctx.stopped = (f"the upload to {dst} was aborted, nothing was stored" if not notes
                       else f"the upload to {dst} was stopped; " + "; ".join(notes))
        # The file stays open: the reading thread may still be inside a read of it, and
        # the process is about to exit anyway.
        raise
    except BaseException:
        bar.abandon()
        _close(fd)
        raise
    _close(fd)
    bar.finish()
    ctx.say(f"upload: {src} to {dst}")
    return 0


def _close(fd: int) -> None:
    if fd > 2:
        os.close(fd)


async def _download(ctx: Context, src: S3Url, dst: str) -> int:
    raise CommandLineError("downloads are not available in this version")


async def _copy(ctx: Context, src: S3Url, dst: S3Url) -> int:
    raise CommandLineError("copies between S3 objects are not available in this version")
