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
from collections.abc import AsyncIterator
from typing import Any

from ._args import CommandFailed, CommandLineError, S3Url, parse_metadata, parse_target
from ._context import Context
from ._pipes import DaemonWorker, read_chunks, write_all
from ._progress import Progress

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


def _download_options(ctx: Context) -> dict[str, Any]:
    args = ctx.args
    options: dict[str, Any] = {"part_size": args.part_size, "concurrency": args.concurrency}
    if args.checksum is not None:
        # A download has no algorithm to choose: it checks the stored one, unless "none".
        options["checksum"] = args.checksum != "none"
    return options


async def _stream_to(ctx: Context, src: S3Url, fd: int) -> None:
    """Write the object to ``fd`` in order, each write done before the next chunk is
    taken (so a slow reader of a pipe slows the download instead of filling memory)."""
    worker = DaemonWorker(f"s3stream write fd {fd}")
    try:
        async with ctx.s3.download(src.bucket, src.key, **_download_options(ctx)) as dl:
            bar = ctx.progress(str(src), dl.length)
            done = 0
            try:
                async for chunk in dl:
                    await write_all(worker, fd, chunk)
                    done += len(chunk)
                    bar.update(done)
            except BaseException:
                bar.abandon()
                raise
            bar.finish()
    finally:
        worker.close()


async def _download(ctx: Context, src: S3Url, dst: str) -> int:
    if ctx.args.content_type is not None or ctx.args.metadata:
        raise CommandLineError("--content-type and --metadata are for uploads to S3")
    name = src.key.rsplit("/", 1)[-1]
    if dst == "-":
        ctx.stopped = f"the download of {src} was stopped"
        await _stream_to(ctx, src, 1)  # stdout, binary: the bytes as stored
        return 0
    path = _target_path(dst, name)
    ctx.stopped = f"the download of {src} was stopped, {path} left as it was"
    bar: Progress | None = None

    def show(written: int, total: int) -> None:
        nonlocal bar
        if bar is None:
            bar = ctx.progress(str(src), total)
        bar.update(written)

    try:
        # Through a temporary file beside it, renamed once complete: the target is then
        # either the whole object or as it was.
        await ctx.s3.download_to(src.bucket, src.key, path, progress=show,
                                 **_download_options(ctx))
    except BaseException:
        if bar is not None:
            bar.abandon()
        raise
    if bar is not None:
        bar.finish()
    ctx.say(f"download: {src} to {path}")
    return 0


def _target_path(dst: str, name: str) -> str:
    """``dst``, or ``dst/name`` when it is a directory (one ``stat``, as the AWS CLI does)."""
    return os.path.join(dst, name) if dst.endswith(os.sep) or os.path.isdir(dst) else dst


async def _copy(ctx: Context, src: S3Url, dst: S3Url) -> int:
    """S3 to S3 through this machine: the download's chunks are the upload's source, so
    memory stays at the two engines' bounds. The object's content type and metadata go
    with it unless --content-type or --metadata say otherwise."""
    dst = _object_key(dst, src.key.rsplit("/", 1)[-1])
    options = _upload_options(ctx)
    async with ctx.s3.download(src.bucket, src.key, **_download_options(ctx)) as dl:
        assert dl.info is not None
        bar = ctx.progress(f"{src} to {dst}", dl.length)
        moved = 0

        async def chunks() -> AsyncIterator[bytes]:
            nonlocal moved
            async for chunk in dl:
                moved += len(chunk)
                bar.update(moved)
                yield chunk

        options.setdefault("metadata", dict(dl.info.metadata) or None)
        ctx.stopped = (f"the copy to {dst} may still be open; see what is left with: "
                       f"s3stream uploads ls {dst}")
        try:
            await ctx.s3.upload(dst.bucket, dst.key, chunks(), size=dl.length,
                                content_type=ctx.args.content_type or dl.info.content_type,
                                **options)
        except asyncio.CancelledError:
            ctx.stopped = f"the copy to {dst} was aborted, nothing was stored"
            bar.abandon()
            raise
        except BaseException:
            bar.abandon()
            raise
    bar.finish()
    ctx.say(f"copy: {src} to {dst}")
    return 0
