"""An aiohttp service that streams request bodies straight into S3.

``POST /upload/{key}`` hands ``request.content`` to ``S3Client.upload()``: the body is
read only as fast as the parts go out, so memory stays near
``(concurrency + 1) * part_size`` whatever the size of the upload. ``GET /health``
answers once the service is up.

Run it (endpoint, region and credentials come from the usual AWS_* variables)::

    export AWS_ENDPOINT_URL_S3=http://127.0.0.1:8333   # omit for AWS itself
    export AWS_ACCESS_KEY_ID=... AWS_SECRET_ACCESS_KEY=... AWS_REGION=us-east-1
    python examples/web_service.py --bucket my-bucket --port 8080

    curl -X POST -T big.iso -H "Content-Type: application/octet-stream" \\
        http://127.0.0.1:8080/upload/isos/big.iso
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence

from aiohttp import web

from s3stream import S3Client, S3StreamError, UsageError

MiB = 1 << 20


def make_app(
    s3: S3Client, bucket: str, *, part_size: int | None = None, concurrency: int = 4
) -> web.Application:
    """The application. ``s3`` stays owned by the caller (close it on shutdown)."""

    async def upload(request: web.Request) -> web.Response:
        key = request.match_info["key"]
        try:
            result = await s3.upload(
                bucket,
                key,
                request.content,  # streamed: never read into memory as a whole
                content_type=request.content_type,
                part_size=part_size,
                concurrency=concurrency,
            )
        except UsageError as exc:  # a bad key, for instance: the client's fault
            return web.json_response({"error": str(exc)}, status=400)
        except S3StreamError as exc:  # S3 refused or failed; the upload has been aborted
            return web.json_response({"error": f"S3 upload failed: {exc}"}, status=502)
        return web.json_response(
            {
                "key": result.key,
                "etag": result.etag,
                "size": result.size,
                "parts": result.part_count,
            }
        )

    async def health(request: web.Request) -> web.Response:
        return web.json_response({"status": "ok"})

    app = web.Application()
    app.add_routes([web.post("/upload/{key:.+}", upload), web.get("/health", health)])
    return app


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Stream POSTed bodies into S3.")
    parser.add_argument("--bucket", required=True)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8080)
    parser.add_argument(
        "--part-size-mib",
        type=int,
        default=None,
        help="part size in MiB (default: s3stream's choice, 8 MiB)",
    )
    parser.add_argument("--concurrency", type=int, default=4, help="parts in flight per upload")
    args = parser.parse_args(argv)

    s3 = S3Client()  # endpoint, region and credentials from the environment
    part_size = args.part_size_mib * MiB if args.part_size_mib else None
    app = make_app(s3, args.bucket, part_size=part_size, concurrency=args.concurrency)

    async def close_client(app: web.Application) -> None:
        await s3.aclose()

    app.on_cleanup.append(close_client)
    web.run_app(app, host=args.host, port=args.port)


if __name__ == "__main__":
    main()
