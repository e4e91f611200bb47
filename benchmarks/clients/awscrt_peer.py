"""awscrt (the AWS Common Runtime's S3 client, used by boto3 on CRT-optimized hosts).

Uploads: one PUT_OBJECT meta-request whose body is a non-seekable stream of unknown
length (the CRT reads it from its own threads and cuts parts of ``part_size``).
Downloads: one GET_OBJECT meta-request (the CRT splits it into ``part_size`` ranged
GETs and delivers the body in order to ``on_body``, on its own threads), each chunk
only checked (``source.Checker``). Connections capped at ``concurrency``. Signing:
``create_default_s3_signing_config`` signs headers with ``UNSIGNED-PAYLOAD``; no
checksum config. Over HTTPS the sink's CA replaces the default trust store
(``TlsContextOptions.override_default_trust_store_from_path``).
"""

from __future__ import annotations

import threading
from typing import Any
from urllib.parse import urlsplit

import awscrt
from awscrt.auth import AwsCredentialsProvider
from awscrt.http import HttpHeaders, HttpRequest
from awscrt.io import ClientTlsContext, TlsContextOptions
from awscrt.s3 import (
    S3Client,
    S3RequestTlsMode,
    S3RequestType,
    create_default_s3_signing_config,
)
from source import Checker


def _client(cfg: Any) -> S3Client:
    provider = AwsCredentialsProvider.new_static(cfg.access_key, cfg.secret_key)
    signing = create_default_s3_signing_config(region=cfg.region, credential_provider=provider)
    tls: dict[str, Any] = {"tls_mode": S3RequestTlsMode.DISABLED}
    if urlsplit(cfg.endpoint).scheme == "https":
        options = TlsContextOptions()
        if cfg.ca_bundle:
            options.override_default_trust_store_from_path(ca_filepath=cfg.ca_bundle)
        tls = {"tls_mode": S3RequestTlsMode.ENABLED,
               "tls_connection_options": ClientTlsContext(options).new_connection_options()}
    return S3Client(region=cfg.region, signing_config=signing, part_size=cfg.part_size,
                    max_active_connections_override=cfg.concurrency, **tls, **cfg.options)


def run(cfg: Any) -> dict[str, Any]:
    client = _client(cfg)
    headers = HttpHeaders([("Host", urlsplit(cfg.endpoint).netloc)])
    request = HttpRequest("PUT", f"/{cfg.bucket}/{cfg.key}", headers,
                          body_stream=cfg.source.file())
    status: dict[str, Any] = {}

    def on_headers(status_code: int, headers: list[tuple[str, str]], **kwargs: Any) -> None:
        status["status"] = status_code

    meta = client.make_request(type=S3RequestType.PUT_OBJECT, request=request,
                               part_size=cfg.part_size, on_headers=on_headers,
                               max_active_connections_override=cfg.concurrency)
    meta.finished_future.result()
    # The client shuts down once nothing refers to it (nor to its requests): waited
    # for, so that its threads' CPU is counted.
    shutdown = client.shutdown_event
    del meta, request, client
    shutdown.wait(10)
    return {"sent": cfg.size, "http_status": status.get("status"),
            "version": awscrt.__version__ if hasattr(awscrt, "__version__") else "?"}


def download(cfg: Any) -> dict[str, Any]:
    client = _client(cfg)
    headers = HttpHeaders([("Host", urlsplit(cfg.endpoint).netloc)])
    request = HttpRequest("GET", f"/{cfg.bucket}/{cfg.key}", headers)
    check = Checker(cfg.verify == "crc")
    lock = threading.Lock()  # on_body runs on the CRT's threads
    status: dict[str, Any] = {}

    def on_headers(status_code: int, headers: list[tuple[str, str]], **kwargs: Any) -> None:
        status["status"] = status_code

    def on_body(chunk: bytes, offset: int, **kwargs: Any) -> None:
        with lock:
            check.feed(chunk, offset)

    meta = client.make_request(type=S3RequestType.GET_OBJECT, request=request,
                               part_size=cfg.part_size, on_headers=on_headers,
                               on_body=on_body,
                               max_active_connections_override=cfg.concurrency)
    meta.finished_future.result()
    shutdown = client.shutdown_event
    del meta, request, client
    shutdown.wait(10)
    return {**check.result(), "http_status": status.get("status"),
            "version": awscrt.__version__ if hasattr(awscrt, "__version__") else "?"}
