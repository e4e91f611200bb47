"""Not an uploader: consumes the chunk generator, to show what the source itself costs."""

from __future__ import annotations

from typing import Any


async def run(cfg: Any) -> dict[str, Any]:
    total = 0
    async for chunk in cfg.source.aiter():
        total += len(chunk)
    return {"sent": total, "verify": False}
