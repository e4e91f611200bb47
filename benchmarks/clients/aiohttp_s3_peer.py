"""aiohttp-s3-client: ``multipart_upload()`` with ``put_part`` driven by hand.

A bare aiohttp uploader: each part's chunks are joined into one ``bytes`` (the one
copy a bytes-body client needs), ``put_part`` tasks run ``concurrency`` at a time.
Unsigned sends ``UNSIGNED-PAYLOAD``; signed computes each part's SHA-256 in a worker
thread (hashlib releases the GIL) before ``put_part``. Over HTTPS the connector's SSL
context trusts the sink's CA.
"""

from __future__ import annotations

import asyncio
import hashlib
import ssl
from typing import Any

import aiohttp
from aiohttp_s3_client import S3Client
from source import drive_parts


async def run(cfg: Any) -> dict[str, Any]:
    sign = bool(cfg.options.get("sign"))
    unsigned = "UNSIGNED-PAYLOAD"
    context = ssl.create_default_context(cafile=cfg.ca_bundle) if cfg.ca_bundle else None
    connector = aiohttp.TCPConnector(limit=max(cfg.concurrency * 2, 16),
                                     ssl=context if context is not None else True)
    async with aiohttp.ClientSession(connector=connector) as session:
        client = S3Client(session=session, url=cfg.endpoint, access_key_id=cfg.access_key,
                          secret_access_key=cfg.secret_key, region=cfg.region)
        tasks: list[asyncio.Task[None]] = []
        async with client.multipart_upload(f"{cfg.bucket}/{cfg.key}") as upload:

            async def put(_number: int, body: bytes) -> None:
                digest = (await asyncio.to_thread(lambda: hashlib.sha256(body).hexdigest())
                          if sign else unsigned)
                await upload.put_part(body, content_sha256=digest)

            number = await drive_parts(cfg.source.aiter(), cfg.part_size, cfg.concurrency,
                                       put, tasks)
    return {"parts": number, "sent": cfg.size}
