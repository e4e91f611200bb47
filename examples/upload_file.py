"""Upload one file to S3 and print what S3 stored.

The file is read in a worker thread, a part at a time, and its parts go up
concurrently; its size is known up front, so the part size is planned to fit.
Endpoint, region and credentials come from the usual AWS_* variables::

    export AWS_ENDPOINT_URL_S3=http://127.0.0.1:8333   # omit for AWS itself
    export AWS_ACCESS_KEY_ID=... AWS_SECRET_ACCESS_KEY=... AWS_REGION=us-east-1
    python examples/upload_file.py --bucket my-bucket backup.tar.gz [--key backups/today.tgz]
"""

from __future__ import annotations

import argparse
import asyncio
import os
from collections.abc import Sequence

from s3stream import S3Client, UploadResult


async def upload_file(bucket: str, key: str, path: str) -> UploadResult:
    async with S3Client() as s3:
        return await s3.upload(bucket, key, path)


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Upload a file to S3.")
    parser.add_argument("path")
    parser.add_argument("--bucket", required=True)
    parser.add_argument("--key", help="object key (default: the file's name)")
    args = parser.parse_args(argv)

    key = args.key or os.path.basename(args.path)
    result = asyncio.run(upload_file(args.bucket, key, args.path))
    print(result)


if __name__ == "__main__":
    main()
