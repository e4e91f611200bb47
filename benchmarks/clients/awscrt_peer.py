"""awscrt (the AWS Common Runtime's S3 client, used by boto3 on CRT-optimized hosts).

One PUT_OBJECT meta-request whose body is a non-seekable stream of unknown length
(the CRT reads it from its own threads and cuts parts of ``part_size``), connections
capped at ``concurrency``. Signing: ``create_default_s3_signing_config`` signs headers
with ``UNSIGNED-PAYLOAD``; no checksum config.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

import awscrt
from awscrt.auth import AwsCredentialsProvider
from awscrt.http import HttpHeaders, HttpRequest
from awscrt.s3 import (
    S3Client,
    S3RequestTlsMode,
    S3RequestType,
    create_default_s3_signing_config,
)


def run(cfg: Any) -> dict[str, Any]:
    url = urlsplit(cfg.endpoint)
    provider = AwsCredentialsProvider.new_static(cfg.access_key, cfg.secret_key)
    signing = create_default_s3_signing_config(region=cfg.region, credential_provider=provider)
    client = S3Client(region=cfg.region, tls_mode=S3RequestTlsMode.DISABLED,
                      signing_config=signing, part_size=cfg.part_size,
                      max_active_connections_override=cfg.concurrency,
                      **cfg.options)
    headers = HttpHeaders([("Host", url.netloc)])
    request = HttpRequest("PUT", f"/{cfg.bucket}/{cfg.key}", headers,
                          body_stream=cfg.source.file())
    status: dict[str, Any] = {}

    def on_headers(status_code: int, headers: list[tuple[str, str]], **kwargs: Any) -> None:
        status["status"] = status_code

    meta = client.make_request(type=S3RequestType.PUT_OBJECT, request=request,
                               part_size=cfg.part_size, on_headers=on_headers,
                               max_active_connections_override=cfg.concurrency)
    meta.finished_future.result()
    del meta, request
    shutdown = client.shutdown_event
    del client
    shutdown.wait(10)
    return {"sent": cfg.size, "http_status": status.get("status"),
            "version": awscrt.__version__ if hasattr(awscrt, "__version__") else "?"}
