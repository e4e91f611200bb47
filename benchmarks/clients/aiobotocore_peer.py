"""aiobotocore: CreateMultipartUpload, UploadPart x N (``concurrency`` at a time), Complete;
downloads are one ``get_object`` read with ``Body.iter_chunks(1 MiB)``.

Driven by hand the way its users do it: chunks are joined into one ``bytes`` per
part (botocore needs a whole body; each byte is copied once), parts are uploaded by tasks limited
by a semaphore (taken before the part is read, so at most ``concurrency`` parts are in
memory). With no options these are aiobotocore's defaults; over http botocore then
signs the payload (SHA-256) and adds a CRC32 checksum header to every part (over https
it sends ``UNSIGNED-PAYLOAD``, still with the CRC32). The sink's CA goes in ``verify=``.
"""

from __future__ import annotations

import asyncio
from typing import Any

import aiobotocore
from aiobotocore.config import AioConfig
from aiobotocore.session import get_session
from source import Checker, drive_parts

#: iter_chunks' default is 1 KiB; 1 MiB is what s3stream delivers.
READ_CHUNK = 1 << 20


def _client(cfg: Any) -> Any:
    options = dict(cfg.options)
    s3_config: dict[str, Any] = {"addressing_style": "path"}
    if "payload_signing_enabled" in options:
        s3_config["payload_signing_enabled"] = options.pop("payload_signing_enabled")
    config = AioConfig(s3=s3_config, max_pool_connections=max(10, cfg.concurrency),
                       **options)
    return get_session().create_client(
        "s3", endpoint_url=cfg.endpoint, region_name=cfg.region,
        aws_access_key_id=cfg.access_key, aws_secret_access_key=cfg.secret_key,
        config=config, verify=cfg.ca_bundle if cfg.ca_bundle else None,
    )


async def run(cfg: Any) -> dict[str, Any]:
    async with _client(cfg) as s3:
        created = await s3.create_multipart_upload(Bucket=cfg.bucket, Key=cfg.key)
        upload_id = created["UploadId"]
        etags: dict[int, str] = {}
        tasks: list[asyncio.Task[None]] = []

        async def put(number: int, body: bytes) -> None:
            resp = await s3.upload_part(Bucket=cfg.bucket, Key=cfg.key,
                                        UploadId=upload_id, PartNumber=number, Body=body)
            etags[number] = resp["ETag"]

        number = 0
        try:
            number = await drive_parts(cfg.source.aiter(), cfg.part_size, cfg.concurrency,
                                       put, tasks)
            await s3.complete_multipart_upload(
                Bucket=cfg.bucket, Key=cfg.key, UploadId=upload_id,
                MultipartUpload={"Parts": [{"PartNumber": n, "ETag": etags[n]}
                                           for n in sorted(etags)]})
        except BaseException:
            for t in tasks:
                t.cancel()
            await s3.abort_multipart_upload(Bucket=cfg.bucket, Key=cfg.key,
                                            UploadId=upload_id)
            raise
    return {"parts": number, "sent": cfg.size, "version": aiobotocore.__version__}


async def download(cfg: Any) -> dict[str, Any]:
    check = Checker(cfg.verify == "crc")
    async with _client(cfg) as s3:
        resp = await s3.get_object(Bucket=cfg.bucket, Key=cfg.key)
        async with resp["Body"] as body:
            async for chunk in body.iter_chunks(READ_CHUNK):
                check.feed(chunk)
    return {**check.result(), "version": aiobotocore.__version__}
