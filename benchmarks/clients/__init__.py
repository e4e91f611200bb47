"""One module per uploader. Each has ``run(cfg)`` (a coroutine for asyncio clients, a
plain function for sync ones) that uploads ``cfg.source`` to ``cfg.bucket/cfg.key``
with ``cfg.part_size`` parts and ``cfg.concurrency`` parts in flight, and returns a
dict of facts about the run (e.g. what it signed). Timing, CPU and memory are measured
around it by ``run_client.py``; the sink verifies the bytes.

Module names end in ``_peer`` so they never shadow the package they drive.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class Variant:
    name: str
    module: str
    #: Passed to the client module as cfg.options (merged with --kwargs).
    options: dict[str, Any] = field(default_factory=dict)
    #: What is stated in the table.
    signing: str = "unsigned"
    checksum: str = "none"
    is_async: bool = True
    note: str = ""


VARIANTS: dict[str, Variant] = {v.name: v for v in [
    Variant("source", "source_peer", signing="-", note="only consumes the generator"),
    # checksum=None explicitly: S3Client's default adds an integrity checksum.
    Variant("s3stream", "s3stream_peer", {"sign_payload": False, "checksum": None}),
    Variant("s3stream-signed", "s3stream_peer", {"sign_payload": True, "checksum": None},
            signing="signed"),
    Variant("s3stream-checksum", "s3stream_peer", {"sign_payload": False},
            checksum="(--kwargs)", note="checksum= from --kwargs (run.py: --checksum)"),
    Variant("s3stream-signed-checksum", "s3stream_peer", {"sign_payload": True},
            signing="signed", checksum="(--kwargs)",
            note="checksum= from --kwargs (run.py: --checksum)"),
    Variant("obstore", "obstore_peer", {"unsigned_payload": True}),
    Variant("obstore-signed", "obstore_peer", {"unsigned_payload": False}, signing="signed"),
    Variant("aiobotocore", "aiobotocore_peer", {}, signing="signed", checksum="crc32",
            note="defaults (over http botocore signs the payload and adds CRC32)"),
    Variant("aiobotocore-unsigned", "aiobotocore_peer",
            {"payload_signing_enabled": False, "request_checksum_calculation": "when_required"},
            note="payload_signing_enabled=False, checksums only when required"),
    Variant("boto3", "boto3_peer", {}, signing="signed", checksum="crc32", is_async=False,
            note="upload_fileobj defaults (signed payload + CRC32 over http)"),
    Variant("boto3-unsigned", "boto3_peer",
            {"payload_signing_enabled": False, "request_checksum_calculation": "when_required"},
            is_async=False, note="upload_fileobj, unsigned, checksums only when required"),
    Variant("aiohttp-s3-client", "aiohttp_s3_peer", {"sign": False},
            note="MultipartUploader.put_part driven by hand, parts joined to bytes"),
    Variant("aiohttp-s3-client-signed", "aiohttp_s3_peer", {"sign": True}, signing="signed",
            note="as above, SHA-256 of each part in a worker thread"),
    Variant("awscrt", "awscrt_peer", {}, is_async=False,
            note="awscrt.s3.S3Client, streaming body of unknown length"),
]}


def load(variant: Variant) -> Any:
    import importlib

    return importlib.import_module(f"clients.{variant.module}")
