"""The load benchmark's peer: the same upload service written with aiobotocore.

``POST /upload/{key}`` streams the body into a multipart upload the way aiobotocore's
users write it by hand (parts joined into one ``bytes`` each, ``UPLOAD_CONCURRENCY``
parts in flight per upload, the slot taken before a part is read), ``GET /health``
answers 200. Configured by the same variables as ``examples/web_service.py``
(``UPLOAD_BUCKET``, ``UPLOAD_PORT``, ``AWS_ENDPOINT_URL_S3``, ``AWS_*``). It has no
client-wide memory budget: aiobotocore has none.
"""

from __future__ import annotations

import asyncio
import os
import sys
from pathlib import Path
from typing import Any

from aiobotocore.config import AioConfig
from aiobotocore.session import get_session
from aiohttp import web

sys.path.insert(0, str(Path(__file__).resolve().parent))
from source import drive_parts

PART_SIZE = 8 << 20
S3: web.AppKey[Any] = web.AppKey("s3", object)


async def upload(request: web.Request) -> web.Response:
    s3 = request.app[S3]
    bucket, key = os.environ["UPLOAD_BUCKET"], request.match_info["key"]
    concurrency = int(os.environ.get("UPLOAD_CONCURRENCY", "4"))
    created = await s3.create_multipart_upload(Bucket=bucket, Key=key)
    upload_id = created["UploadId"]
    etags: dict[int, str] = {}
    tasks: list[asyncio.Task[None]] = []

    async def put(number: int, body: bytes) -> None:
        answer = await s3.upload_part(Bucket=bucket, Key=key, UploadId=upload_id,
                                      PartNumber=number, Body=body)
        etags[number] = answer["ETag"]

    try:
        parts = await drive_parts(request.content.iter_any(), PART_SIZE, concurrency, put,
                                  tasks)
        await asyncio.gather(*tasks)
        await s3.complete_multipart_upload(
            Bucket=bucket, Key=key, UploadId=upload_id,
            MultipartUpload={"Parts": [{"PartNumber": n, "ETag": etags[n]}
                                       for n in sorted(etags)]})
    except BaseException:
        for task in tasks:
            task.cancel()
        await s3.abort_multipart_upload(Bucket=bucket, Key=key, UploadId=upload_id)
        raise
    return web.json_response({"key": key, "parts": parts})


async def health(request: web.Request) -> web.Response:
    return web.json_response({"ok": True})


async def client_ctx(app: web.Application) -> Any:
    session = get_session()
    config = AioConfig(s3={"addressing_style": "path"}, max_pool_connections=256)
    async with session.create_client(
            "s3", endpoint_url=os.environ["AWS_ENDPOINT_URL_S3"],
            region_name=os.environ.get("AWS_REGION", "us-east-1"), config=config) as s3:
        app[S3] = s3
        yield


def main() -> None:
    app = web.Application(client_max_size=0)
    app.cleanup_ctx.append(client_ctx)
    app.router.add_post("/upload/{key:.+}", upload)
    app.router.add_get("/health", health)
    web.run_app(app, host="127.0.0.1", port=int(os.environ["UPLOAD_PORT"]), print=None,
                access_log=None)


if __name__ == "__main__":
    main()
