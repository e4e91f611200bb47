"""boto3 ``upload_fileobj`` of a non-seekable file over the chunk sequence.

TransferConfig: multipart_chunksize=part_size, max_concurrency=concurrency (threads),
multipart_threshold=part_size. With no options these are boto3's defaults; over http
botocore signs the payload (SHA-256) and adds CRC32 to every part. The sink's CA goes
in ``verify=``.
"""

from __future__ import annotations

from typing import Any

import boto3
from boto3.s3.transfer import TransferConfig
from botocore.config import Config


def run(cfg: Any) -> dict[str, Any]:
    options = dict(cfg.options)
    s3_config: dict[str, Any] = {"addressing_style": "path"}
    if "payload_signing_enabled" in options:
        s3_config["payload_signing_enabled"] = options.pop("payload_signing_enabled")
    client = boto3.client(
        "s3", endpoint_url=cfg.endpoint, region_name=cfg.region,
        aws_access_key_id=cfg.access_key, aws_secret_access_key=cfg.secret_key,
        config=Config(s3=s3_config, max_pool_connections=max(10, cfg.concurrency), **options),
        verify=cfg.ca_bundle if cfg.ca_bundle else None,
    )
    transfer = TransferConfig(multipart_threshold=cfg.part_size,
                              multipart_chunksize=cfg.part_size,
                              max_concurrency=cfg.concurrency, use_threads=True,
                              preferred_transfer_client="classic")
    client.upload_fileobj(cfg.source.file(), cfg.bucket, cfg.key, Config=transfer)
    return {"sent": cfg.size, "version": boto3.__version__}
