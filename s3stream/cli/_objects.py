"""``s3stream ls``, ``s3stream rm`` and ``s3stream presign``: object operations, printed as
the AWS CLI's ``aws s3 ls``/``rm``/``presign`` print them."""

from __future__ import annotations

from datetime import datetime

from ._args import CommandFailed, CommandLineError, S3Url, parse_target
from ._context import Context
from ._progress import format_bytes

__all__ = ["ls", "presign", "rm"]


def _url(text: str, *, key: bool) -> S3Url:
    target = parse_target(text)
    if not isinstance(target, S3Url):
        raise CommandLineError(f"expected an s3:// URL, not {text!r}")
    if not target.bucket:
        # ListBuckets is not part of the library: there is no bucket to list objects of.
        raise CommandLineError("listing buckets is not supported: give s3://BUCKET[/PREFIX]")
    if key and not target.key:
        raise CommandLineError(f"{text} names no object: write s3://BUCKET/KEY")
    return target


def _when(moment: datetime | None) -> str:
    # Local time, as `aws s3 ls` prints it.
    return moment.astimezone().strftime("%Y-%m-%d %H:%M:%S") if moment else " " * 19


async def ls(ctx: Context) -> int:
    """``aws s3 ls`` lines: ``PRE name/`` for each common prefix (right-aligned in 30
    columns), then ``date time size name`` for each object; without ``--recursive`` names
    are the last part of the key, with it the whole key."""
    from s3stream import CommonPrefix

    args = ctx.args
    target = _url(args.target, key=False)
    count = total = 0
    async for item in ctx.s3.list_objects(target.bucket, prefix=target.key,
                                          delimiter=None if args.recursive else "/"):
        if isinstance(item, CommonPrefix):
            line = f"{'PRE':>30} {item.prefix.split('/')[-2]}/"
        else:
            count += 1
            total += item.size
            name = item.key if args.recursive else item.key.split("/")[-1]
            size = format_bytes(item.size) if args.human_readable else str(item.size)
            line = f"{_when(item.last_modified)} {size:>10} {name}"
        print(line, file=ctx.stdout)
    if args.summarize:
        size = format_bytes(total) if args.human_readable else f"{total} Bytes"
        print(f"\nTotal Objects: {count}\n   Total Size: {size}", file=ctx.stdout)
    ctx.stdout.flush()
    return 0


async def rm(ctx: Context) -> int:
    from s3stream import ObjectSummary

    args = ctx.args
    target = _url(args.target, key=not args.recursive)
    if not args.recursive:
        # As in S3, deleting a key that does not exist succeeds.
        await ctx.s3.delete_object(target.bucket, target.key)
        ctx.say(f"delete: {target}")
        return 0
    # Listed first, then deleted: deleting while paging would move the listing under it.
    keys = [item.key async for item in ctx.s3.list_objects(target.bucket, prefix=target.key)
            if isinstance(item, ObjectSummary)]
    result = await ctx.s3.delete_objects(target.bucket, keys)
    for key in result.deleted:
        ctx.say(f"delete: s3://{target.bucket}/{key}")
    if not result.ok:
        first = result.errors[0]
        raise CommandFailed(
            f"{len(result.errors)} of {len(keys)} objects were not deleted, such as "
            f"s3://{target.bucket}/{first.key}: {first.code} {first.message}".rstrip())
    return 0


async def presign(ctx: Context) -> int:
    target = _url(ctx.args.target, key=True)
    url = await ctx.s3.presign_get(target.bucket, target.key, expires=ctx.args.expires)
    # Printed even with --quiet: the URL is what was asked for.
    print(url, file=ctx.stdout, flush=True)
    return 0
