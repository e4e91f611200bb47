"""``s3stream ls``, ``s3stream rm`` and ``s3stream presign``: object operations."""

from __future__ import annotations

from ._args import CommandLineError
from ._context import Context

__all__ = ["ls", "presign", "rm"]


async def ls(ctx: Context) -> int:
    raise CommandLineError("ls is not available in this version")


async def rm(ctx: Context) -> int:
    raise CommandLineError("rm is not available in this version")


async def presign(ctx: Context) -> int:
    raise CommandLineError("presign is not available in this version")
