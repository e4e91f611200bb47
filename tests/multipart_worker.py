"""A worker process of a multipart upload spread over machines (tests/test_multipart_remote.py).

It knows nothing of S3 credentials or of s3stream: it gets presigned UploadPart URLs on
stdin as JSON ``{"path": ..., "parts": [{"number", "offset", "size", "url"}, ...]}``, PUTs
each part's bytes of the file with plain aiohttp, and prints ``{"number": "etag"}``.
"""

from __future__ import annotations

import asyncio
import json
import sys

import aiohttp
from yarl import URL


def read(path: str, offset: int, size: int) -> bytes:
    with open(path, "rb") as f:
        f.seek(offset)
        return f.read(size)


async def main() -> None:
    job = json.load(sys.stdin)
    etags: dict[str, str] = {}
    async with aiohttp.ClientSession() as session:
        for part in job["parts"]:
            body = await asyncio.to_thread(read, job["path"], part["offset"], part["size"])
            # The URL's query is already encoded: yarl must send it as it is.
            async with session.put(URL(part["url"], encoded=True),
                                   data=body) as response:
                text = await response.text()
                if response.status != 200:
                    sys.exit(f"part {part['number']}: HTTP {response.status}: {text}")
                etags[str(part["number"])] = response.headers["ETag"]
    json.dump(etags, sys.stdout)


if __name__ == "__main__":
    asyncio.run(main())
