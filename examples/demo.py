"""The s3stream demo: stream a large generated object into a real local S3 and prove it.

It starts SeaweedFS on 127.0.0.1 (with enforced SigV4 credentials), streams
``--size`` bytes from an async generator of uneven chunks into it with s3stream,
reads the object back with boto3 (an independent client), compares SHA-256, and
prints throughput and this process's peak memory against the documented bound.

    python examples/demo.py --size 1GiB --part-size 8MiB --concurrency 4
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import random
import resource
import sys
import time
from collections.abc import AsyncIterator

import s3stream
from s3stream.testing import LocalS3, local_s3

MiB = 1 << 20
UNITS = {"": 1, "b": 1, "kib": 1 << 10, "mib": MiB, "gib": 1 << 30, "k": 1 << 10,
         "m": MiB, "g": 1 << 30}


def parse_size(text: str) -> int:
    text = text.strip().lower()
    number = text.rstrip("abcdefghijklmnopqrstuvwxyz")
    return int(float(number) * UNITS[text[len(number):]])


def peak_rss() -> int:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # Linux reports KiB


MAX_CHUNK = 3 * MiB
# One pool of random bytes that chunks are cut from: generating randomness is not the test.
POOL = random.Random(2026).randbytes(16 * MiB)


async def uneven_chunks(total: int, digest: hashlib._Hash) -> AsyncIterator[bytes]:
    """Chunks of 1 B .. 3 MiB: uneven, and never aligned to the part size."""
    rng = random.Random(2026)
    pool = POOL
    sent = 0
    while sent < total:
        size = min(rng.randint(1, MAX_CHUNK), total - sent)
        start = rng.randrange(0, len(pool) - size + 1)
        chunk = pool[start : start + size]
        digest.update(chunk)
        sent += size
        yield chunk


def read_back_sha256(server: LocalS3, bucket: str, key: str) -> tuple[str, int]:
    import boto3
    import botocore.config

    client = boto3.client(
        "s3", endpoint_url=server.endpoint, region_name=server.region,
        aws_access_key_id=server.credentials.access_key_id,
        aws_secret_access_key=server.credentials.secret_access_key,
        config=botocore.config.Config(s3={"addressing_style": "path"}),
    )
    body = client.get_object(Bucket=bucket, Key=key)["Body"]
    digest = hashlib.sha256()
    size = 0
    for chunk in iter(lambda: body.read(8 * MiB), b""):
        digest.update(chunk)
        size += len(chunk)
    return digest.hexdigest(), size


async def upload(server: LocalS3, args: argparse.Namespace) -> tuple[s3stream.UploadResult,
                                                                      float, str]:
    digest = hashlib.sha256()
    async with s3stream.S3Client(endpoint=server.endpoint, region=server.region,
                                 credentials=server.credentials) as s3:
        start = time.perf_counter()
        result = await s3.upload("demo", "generated/stream.bin",
                                 uneven_chunks(args.size, digest),
                                 part_size=args.part_size, concurrency=args.concurrency)
        elapsed = time.perf_counter() - start
    return result, elapsed, digest.hexdigest()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=parse_size, default=parse_size("1GiB"))
    parser.add_argument("--part-size", type=parse_size, default=8 * MiB)
    parser.add_argument("--concurrency", type=int, default=4)
    args = parser.parse_args(argv)

    print("starting a local S3 (SeaweedFS) ...", flush=True)
    with local_s3(buckets=["demo"]) as server:
        print(f"  {server.endpoint}, SigV4 enforced")
        baseline = peak_rss()
        print(f"uploading {args.size / MiB:.0f} MiB from an async generator of uneven chunks "
              f"(part size {args.part_size / MiB:.0f} MiB, {args.concurrency} in flight) ...",
              flush=True)
        result, elapsed, sent_sha = asyncio.run(upload(server, args))
        peak = peak_rss()
        print(f"  {result.part_count} parts, ETag {result.etag}")
        print(f"  throughput: {args.size / MiB / elapsed:.0f} MiB/s ({elapsed:.2f} s; "
              "the local server is the bottleneck)")
        # The README's bound: the parts in flight, plus a source chunk per part that may
        # straddle a part boundary (it stays alive until both parts are sent).
        bound = (args.concurrency + 1) * (args.part_size + MAX_CHUNK)
        print(f"  peak RSS: {peak / MiB:.0f} MiB = {baseline / MiB:.0f} MiB before the upload "
              f"+ {(peak - baseline) / MiB:.0f} MiB; bound (concurrency + 1) x (part_size + "
              f"largest chunk) = {bound / MiB:.0f} MiB")
        print("reading it back with boto3 and comparing SHA-256 ...", flush=True)
        got_sha, got_size = read_back_sha256(server, "demo", "generated/stream.bin")
    ok = got_sha == sent_sha and got_size == args.size == result.size
    print(f"  sent {sent_sha}\n  read {got_sha}")
    print("OK: byte-exact" if ok else "MISMATCH")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
