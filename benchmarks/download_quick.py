"""A quick download measurement: one object (1 GiB by default) from a local SeaweedFS,
streamed with ``S3Client.download()`` and discarded, MiB/s printed per round.

    python benchmarks/download_quick.py [--mib 1024] [--part-size-mib 8] [--concurrency 4]
                                        [--rounds 3]

The object is uploaded once (with s3stream, CRC32C FULL_OBJECT where available), so the
download also checks the object's checksum (``checksum_checked`` is printed). The
server runs on this machine, sharing its cores with the client: the figure is what one
process gets from a local store, not a network's speed.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import time
from collections.abc import AsyncIterator

from s3stream import S3Client
from s3stream.testing import local_s3

MiB = 1 << 20


async def source(total: int) -> AsyncIterator[bytes]:
    block = os.urandom(8 * MiB)
    sent = 0
    while sent < total:
        chunk = block[: min(len(block), total - sent)]
        sent += len(chunk)
        yield chunk


async def run(args: argparse.Namespace) -> None:
    total = args.mib * MiB
    with local_s3(buckets=["bench"]) as server:
        async with S3Client(endpoint=server.endpoint, region=server.region,
                            credentials=server.credentials) as s3:
            await s3.upload("bench", "object", source(total), size=total)
            for round_ in range(1, args.rounds + 1):
                got = 0
                started = time.perf_counter()
                async with s3.download("bench", "object", part_size=args.part_size_mib * MiB,
                                       concurrency=args.concurrency) as dl:
                    async for chunk in dl:
                        got += len(chunk)
                elapsed = time.perf_counter() - started
                assert got == total, (got, total)
                print(f"round {round_}: {args.mib} MiB in {elapsed:.2f} s = "
                      f"{args.mib / elapsed:.0f} MiB/s (checked: {dl.checksum_checked}, "
                      f"peak buffered {dl.peak_buffered / MiB:.0f} MiB)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--mib", type=int, default=1024)
    parser.add_argument("--part-size-mib", type=int, default=8)
    parser.add_argument("--concurrency", type=int, default=4)
    parser.add_argument("--rounds", type=int, default=3)
    asyncio.run(run(parser.parse_args()))


if __name__ == "__main__":
    main()
