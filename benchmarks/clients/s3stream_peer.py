"""s3stream: ``S3Client.upload()`` of the async generator; ``S3Client.download()``
streamed and discarded (each chunk only checked: ``source.Checker``)."""

from __future__ import annotations

from typing import Any

from source import Checker

# S3Client is imported here, not on first use inside the timed upload: ``s3stream`` loads
# its client (and aiohttp) lazily, and the other peers' imports are not timed either.
import s3stream
from s3stream import Credentials, S3Client


def _client(cfg: Any) -> S3Client:
    options = dict(cfg.options)
    if cfg.ca_bundle:
        options["ca_bundle"] = cfg.ca_bundle
    creds = Credentials(cfg.access_key, cfg.secret_key)
    return S3Client(endpoint=cfg.endpoint, region=cfg.region, credentials=creds,
                    addressing="path", **options)


async def run(cfg: Any) -> dict[str, Any]:
    async with _client(cfg) as s3:
        result = await s3.upload(cfg.bucket, cfg.key, cfg.source.aiter(),
                                 part_size=cfg.part_size, concurrency=cfg.concurrency)
    return {"etag": result.etag, "parts": result.part_count, "sent": result.size,
            "version": s3stream.__version__}


async def download(cfg: Any) -> dict[str, Any]:
    """``part_size`` ranges, ``concurrency`` GETs in flight, ``checksum`` left at its
    default (True): the sink offers no checksum, so nothing is checked but the length."""
    check = Checker(cfg.verify == "crc")
    async with _client(cfg) as s3, s3.download(cfg.bucket, cfg.key, part_size=cfg.part_size,
                                               concurrency=cfg.concurrency) as dl:
        async for chunk in dl:
            check.feed(chunk)
    return {**check.result(), "checksum_checked": dl.checksum_checked,
            "peak_buffered_mib": dl.peak_buffered / (1 << 20),
            "version": s3stream.__version__}
