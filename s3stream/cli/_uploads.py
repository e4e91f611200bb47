"""``s3stream uploads ls`` and ``s3stream uploads abort``: the multipart uploads still in
progress in a bucket (parts S3 keeps, and bills, until the upload completes or is aborted)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from ._args import CommandLineError, S3Url, parse_target
from ._context import Context

__all__ = ["uploads_abort", "uploads_ls"]


def _bucket_url(text: str) -> S3Url:
    target = parse_target(text)
    if not isinstance(target, S3Url) or not target.bucket:
        raise CommandLineError(f"expected s3://BUCKET[/PREFIX], not {text!r}")
    return target


def _when(moment: datetime | None) -> str:
    return "-" if moment is None else \
        moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _age(duration: timedelta) -> str:
    return str(duration).removesuffix(", 0:00:00")


async def uploads_ls(ctx: Context) -> int:
    """One line per upload: key, upload id and when it was initiated (UTC), tab-separated."""
    target = _bucket_url(ctx.args.target)
    older_than: timedelta | None = ctx.args.older_than
    cutoff = None if older_than is None else datetime.now(UTC) - older_than
    async for upload in ctx.s3.list_multipart_uploads(target.bucket, prefix=target.key):
        if cutoff is not None and (upload.initiated is None or upload.initiated > cutoff):
            continue
        # Printed even with --quiet: the listing is what was asked for.
        print(f"{upload.key}\t{upload.upload_id}\t{_when(upload.initiated)}",
              file=ctx.stdout, flush=True)
    return 0


async def uploads_abort(ctx: Context) -> int:
    args = ctx.args
    target = _bucket_url(args.target)
    if args.upload_id is not None and args.older_than is not None:
        raise CommandLineError("give --upload-id or --older-than, not both")
    if args.upload_id is not None:
        if not target.key:
            raise CommandLineError("--upload-id needs the upload's key: s3://BUCKET/KEY")
        await ctx.s3.abort_multipart_upload(target.bucket, target.key, args.upload_id)
        ctx.say(f"abort: {target} upload {args.upload_id}")
        return 0
    if args.older_than is None:
        raise CommandLineError("give --upload-id ID (one upload) or --older-than DURATION "
                               "(every upload under the prefix started before then)")
    count = await ctx.s3.abort_stale(target.bucket, older_than=args.older_than,
                                     prefix=target.key)
    under = f"s3://{target.bucket}/{target.key}"
    ctx.say(f"aborted {count} multipart upload{'' if count == 1 else 's'} under {under} "
            f"started more than {_age(args.older_than)} ago")
    return 0
