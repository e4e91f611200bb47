"""obstore (Rust object_store): ``obstore.put_async`` of the async generator.

Payload signing is S3Config's ``unsigned_payload`` (default False: the SHA-256 of every
part is computed and signed). No ``checksum_algorithm`` is set (obstore's default).
"""

from __future__ import annotations

from typing import Any

import obstore
from obstore.store import S3Store


async def run(cfg: Any) -> dict[str, Any]:
    options = dict(cfg.options)
    store = S3Store(
        cfg.bucket,
        endpoint=cfg.endpoint,
        region=cfg.region,
        access_key_id=cfg.access_key,
        secret_access_key=cfg.secret_key,
        virtual_hosted_style_request=False,
        client_options={"allow_http": True},
        **options,
    )
    result = await obstore.put_async(store, cfg.key, cfg.source.aiter(),
                                     chunk_size=cfg.part_size,
                                     max_concurrency=cfg.concurrency)
    return {"etag": result.get("e_tag"), "sent": cfg.size,
            "version": getattr(obstore, "__version__", "?")}
