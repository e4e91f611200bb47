"""A process that uploads a file with ``S3Client.upload(path)`` and dies (SIGKILL, no
cleanup at all) once ``kill_after`` parts are acknowledged: what a crash leaves behind,
for tests/test_resume_real.py to resume.

Arguments: bucket key path part_size kill_after; the server in S3STREAM_TEST_ENDPOINT,
S3STREAM_TEST_REGION, S3STREAM_TEST_KEY, S3STREAM_TEST_SECRET.
"""

from __future__ import annotations

import asyncio
import os
import signal
import sys

from s3stream import Credentials, Progress, S3Client


async def main(bucket: str, key: str, path: str, part_size: int, kill_after: int) -> None:
    env = os.environ

    def progress(p: Progress) -> None:
        if p.parts_done >= kill_after:
            os.kill(os.getpid(), signal.SIGKILL)

    async with S3Client(endpoint=env["S3STREAM_TEST_ENDPOINT"],
                        region=env["S3STREAM_TEST_REGION"],
                        credentials=Credentials(env["S3STREAM_TEST_KEY"],
                                                env["S3STREAM_TEST_SECRET"])) as s3:
        await s3.upload(bucket, key, path, part_size=part_size or None, concurrency=1,
                        progress=progress)
    sys.exit("the upload finished: it was meant to be killed first")


if __name__ == "__main__":
    b, k, p, size, after = sys.argv[1:]
    asyncio.run(main(b, k, p, int(size), int(after)))
