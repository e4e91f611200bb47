"""obstore (Rust object_store): ``obstore.put_async`` of the async generator; downloads
are one streaming GET (``get_async`` then ``stream()``, its default 10 MiB
``min_chunk_size``), each chunk only checked (``source.Checker``).

Payload signing is S3Config's ``unsigned_payload`` (default False: the SHA-256 of every
part is computed and signed). No ``checksum_algorithm`` is set (obstore's default).
Over HTTPS the sink's CA is added with ``client_options={"root_certificate": PEM}``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import obstore
from obstore.store import S3Store
from source import Checker


def _store(cfg: Any, options: dict[str, Any]) -> S3Store:
    client_options: dict[str, Any] = {"allow_http": True}
    if cfg.ca_bundle:
        client_options["root_certificate"] = Path(cfg.ca_bundle).read_text()
    return S3Store(
        cfg.bucket,
        endpoint=cfg.endpoint,
        region=cfg.region,
        access_key_id=cfg.access_key,
        secret_access_key=cfg.secret_key,
        virtual_hosted_style_request=False,
        client_options=client_options,
        **options,
    )


async def run(cfg: Any) -> dict[str, Any]:
    store = _store(cfg, dict(cfg.options))
    result = await obstore.put_async(store, cfg.key, cfg.source.aiter(),
                                     chunk_size=cfg.part_size,
                                     max_concurrency=cfg.concurrency)
    return {"etag": result.get("e_tag"), "sent": cfg.size,
            "version": getattr(obstore, "__version__", "?")}


async def download(cfg: Any) -> dict[str, Any]:
    store = _store(cfg, dict(cfg.options))
    check = Checker(cfg.verify == "crc")
    result = await obstore.get_async(store, cfg.key)
    async for chunk in result.stream():
        check.feed(chunk)
    return {**check.result(), "version": getattr(obstore, "__version__", "?")}
