"""Upload data produced on the fly, of unknown length, without holding it in memory.

Two styles, same result:

* pull: hand ``S3Client.upload()`` an async iterator and let it read;
* push: ``open_upload()`` gives a handle whose ``write()`` you call yourself; leaving the
  ``async with`` block completes the upload, an exception inside it aborts the upload.

Either way ``write()``/the read waits while ``concurrency`` parts are in flight, so a fast
producer is slowed to S3's pace instead of filling memory. Run it with the usual AWS_*
variables set (see upload_file.py)::

    python examples/upload_generator.py --bucket my-bucket --records 200000
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import json
from collections.abc import AsyncIterator, Sequence

from s3stream import S3Client, UploadResult

BATCH_BYTES = 64 * 1024


async def ndjson_records(count: int) -> AsyncIterator[bytes]:
    """``count`` JSON records, one per line, yielded in batches of about 64 KiB.

    Batching keeps the number of chunks (and calls) small; single lines work too.
    """
    batch = bytearray()
    for i in range(count):
        record = {"id": i, "sha256": hashlib.sha256(str(i).encode()).hexdigest()}
        batch += json.dumps(record).encode() + b"\n"
        if len(batch) >= BATCH_BYTES:
            yield bytes(batch)
            batch.clear()
            await asyncio.sleep(0)  # stands in for real awaits: queries, API calls, ...
    if batch:
        yield bytes(batch)


async def upload_pull(s3: S3Client, bucket: str, key: str, records: int) -> UploadResult:
    return await s3.upload(
        bucket, key, ndjson_records(records), content_type="application/x-ndjson"
    )


async def upload_push(s3: S3Client, bucket: str, key: str, records: int) -> UploadResult:
    async with s3.open_upload(bucket, key, content_type="application/x-ndjson") as upload:
        async for chunk in ndjson_records(records):
            await upload.write(chunk)
    assert upload.result is not None  # set once the block has exited cleanly
    return upload.result


async def run(bucket: str, prefix: str, records: int) -> tuple[UploadResult, UploadResult]:
    async with S3Client() as s3:
        pulled = await upload_pull(s3, bucket, f"{prefix}pull.ndjson", records)
        pushed = await upload_push(s3, bucket, f"{prefix}push.ndjson", records)
    return pulled, pushed


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Upload generated NDJSON to S3.")
    parser.add_argument("--bucket", required=True)
    parser.add_argument("--prefix", default="generated/", help="key prefix")
    parser.add_argument("--records", type=int, default=200_000)
    args = parser.parse_args(argv)

    for result in asyncio.run(run(args.bucket, args.prefix, args.records)):
        print(result)


if __name__ == "__main__":
    main()
