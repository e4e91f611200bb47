"""One multipart upload, its parts sent by workers that hold no credentials.

The coordinator (a web service, in real life) creates the upload and hands out one
presigned UploadPart URL per part; each worker (a browser, or a process on another
machine) PUTs its parts' bytes to those URLs with a plain HTTP client; the coordinator
then completes the upload from what ListParts reports. S3 is the only shared state:
the coordinator needs no word from the workers beyond "done", and if anything fails it
aborts the upload, so no parts are left behind::

    export AWS_ENDPOINT_URL_S3=http://127.0.0.1:8333   # omit for AWS itself
    export AWS_ACCESS_KEY_ID=... AWS_SECRET_ACCESS_KEY=... AWS_REGION=us-east-1
    python examples/presigned_parts.py --bucket my-bucket video.mp4 [--workers 3]

Here the workers are subprocesses of this script (``--worker``, a job as JSON on stdin);
they use aiohttp only, never s3stream or the AWS_* variables.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
from collections.abc import Sequence
from typing import Any

#: This script, run again as a worker.
_SELF = os.path.abspath(__file__)
#: Every part but the last must be at least 5 MiB (S3's rule, checked on Complete).
PART_SIZE = 8 << 20


# ------------------------------------------------------------------ coordinator


async def hand_out(s3: Any, bucket: str, key: str, upload_id: str, size: int,
                   workers: int, *, part_size: int = PART_SIZE,
                   expires: int = 3600) -> list[list[dict[str, Any]]]:
    """Each worker's parts: number, where in the file, and the URL to PUT it to."""
    jobs: list[list[dict[str, Any]]] = [[] for _ in range(workers)]
    for index, offset in enumerate(range(0, size, part_size)):
        number = index + 1
        url = await s3.presign_upload_part(bucket, key, upload_id, number, expires=expires)
        jobs[index % workers].append({"number": number, "offset": offset,
                                      "size": min(part_size, size - offset), "url": url})
    return jobs


async def run_worker(path: str, parts: list[dict[str, Any]]) -> None:
    proc = await asyncio.create_subprocess_exec(
        sys.executable, _SELF, "--worker", stdin=asyncio.subprocess.PIPE,
        # The worker gets no AWS_* setting: the URLs are all it needs.
        env={k: v for k, v in os.environ.items() if not k.startswith("AWS_")})
    await proc.communicate(json.dumps({"path": path, "parts": parts}).encode())
    if proc.returncode != 0:
        raise RuntimeError(f"a worker failed (exit status {proc.returncode})")


async def coordinate(bucket: str, key: str, path: str, workers: int) -> Any:
    from s3stream import S3Client

    size = await asyncio.to_thread(os.path.getsize, path)
    async with S3Client() as s3:
        upload_id = await s3.create_multipart_upload(bucket, key)
        try:
            jobs = await hand_out(s3, bucket, key, upload_id, size, workers)
            await asyncio.gather(*(run_worker(path, parts) for parts in jobs if parts))
            # Whatever the workers sent, S3 lists: no ETags need to come back from them.
            return await s3.complete_multipart_upload(bucket, key, upload_id)
        except BaseException:
            # Aborted for any failure (or Ctrl-C): the parts sent so far are not kept.
            await s3.abort_multipart_upload(bucket, key, upload_id)
            raise


# ----------------------------------------------------------------------- worker


def _read(path: str, offset: int, size: int) -> bytes:
    with open(path, "rb") as f:
        f.seek(offset)
        return f.read(size)


async def work(job: dict[str, Any]) -> None:
    """PUT each part's bytes to its presigned URL: any HTTP client would do."""
    import aiohttp
    from yarl import URL

    async with aiohttp.ClientSession() as session:
        for part in job["parts"]:
            body = await asyncio.to_thread(_read, job["path"], part["offset"], part["size"])
            # encoded=True: the signed query must go out exactly as it was signed.
            async with session.put(URL(part["url"], encoded=True), data=body) as response:
                if response.status != 200:
                    sys.exit(f"part {part['number']}: HTTP {response.status} "
                             f"{await response.text()}")
            print(f"part {part['number']} sent ({part['size']} bytes)", file=sys.stderr)


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Upload a file through presigned part URLs.")
    parser.add_argument("path", nargs="?")
    parser.add_argument("--bucket")
    parser.add_argument("--key", help="object key (default: the file's name)")
    parser.add_argument("--workers", type=int, default=3)
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.worker:
        asyncio.run(work(json.load(sys.stdin)))
        return
    if not args.path or not args.bucket:
        parser.error("a path and --bucket are needed")
    key = args.key or os.path.basename(args.path)
    print(asyncio.run(coordinate(args.bucket, key, args.path, max(1, args.workers))))


if __name__ == "__main__":
    main()
