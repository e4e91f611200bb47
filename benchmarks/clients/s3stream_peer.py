"""s3stream: ``S3Client.upload()`` of the async generator."""

from __future__ import annotations

from typing import Any

# S3Client is imported here, not on first use inside the timed upload: ``s3stream`` loads
# its client (and aiohttp) lazily, and the other peers' imports are not timed either.
import s3stream
from s3stream import Credentials, S3Client


async def run(cfg: Any) -> dict[str, Any]:
    options = dict(cfg.options)
    creds = Credentials(cfg.access_key, cfg.secret_key)
    async with S3Client(endpoint=cfg.endpoint, region=cfg.region, credentials=creds,
                                 addressing="path", **options) as s3:
        result = await s3.upload(cfg.bucket, cfg.key, cfg.source.aiter(),
                                 part_size=cfg.part_size, concurrency=cfg.concurrency)
    return {"etag": result.etag, "parts": result.part_count, "sent": result.size,
            "version": s3stream.__version__}
