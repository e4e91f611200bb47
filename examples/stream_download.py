"""An aiohttp service that streams S3 objects to its clients, ranges included.

``GET /objects/{key}`` streams the object through ``S3Client.download()`` into a
``web.StreamResponse``: bytes go out as they arrive from S3 (ranged GETs, a few at a
time), so memory stays near ``(concurrency + 1) * part_size`` per request whatever the
object's size, and a client that reads slowly slows the download down instead of
filling memory. ``HEAD /objects/{key}`` answers the same headers without a body.

A client's ``Range: bytes=a-b`` (also ``bytes=a-`` and the suffix form ``bytes=-n``) is
passed through: ``206 Partial Content`` with ``Content-Range``, or ``416`` with
``Content-Range: bytes */<size>`` when no byte of the object is in it (any range of an
empty object). A Range header of another form (several ranges, another unit, bad syntax)
is ignored, as HTTP allows: the whole object, 200.

Answers::

    200 / 206  the bytes, with Content-Length, Content-Type, ETag, Last-Modified,
               Accept-Ranges: bytes
    404        no such object
    416        unsatisfiable range
    502        S3 answered with an error (before the first byte was sent; after it, the
               connection is closed, so the client sees a truncated body, never a
               complete-looking one)

Every range of one answer comes from one version of the object: the download pins its
ETag, and an object replaced mid-answer ends the answer (closed connection) rather than
mix two versions.

Usage::

    export AWS_ENDPOINT_URL_S3=http://127.0.0.1:8333   # omit for AWS itself
    export AWS_ACCESS_KEY_ID=... AWS_SECRET_ACCESS_KEY=... AWS_REGION=us-east-1
    python examples/stream_download.py --bucket my-bucket [--host 127.0.0.1] [--port 8081]

    curl -r 0-99 http://127.0.0.1:8081/objects/isos/big.iso
"""

from __future__ import annotations

import argparse
import logging
import re
from collections.abc import AsyncIterator

from aiohttp import web

import s3stream

logger = logging.getLogger("stream_download")

CLIENT = web.AppKey("client", s3stream.S3Client)
BUCKET = web.AppKey("bucket", str)

_RANGE = re.compile(r"^bytes=(\d*)-(\d*)$")


def parse_range(header: str | None) -> tuple[int | None, int | None] | None:
    """``Range: bytes=a-b`` as ``(a, b)``; ``bytes=a-`` as ``(a, None)``; the suffix
    ``bytes=-n`` as ``(None, n)``; None for no header or one this service ignores."""
    if not header:
        return None
    match = _RANGE.match(header.strip().replace(" ", ""))
    if match is None or match[1] == match[2] == "":
        return None
    first = int(match[1]) if match[1] else None
    last = int(match[2]) if match[2] else None
    if first is not None and last is not None and last < first:
        return None  # not a valid range: ignored, per RFC 9110
    if first is None and last == 0:
        return None
    return first, last


async def object_info(s3: s3stream.S3Client, bucket: str, key: str) -> s3stream.ObjectInfo:
    """The object's info (size, type, ETag) from a one-byte ranged GET, body unused."""
    async with s3.download(bucket, key, length=1, checksum=False) as dl:
        assert dl.info is not None
        return dl.info


def _headers(info: s3stream.ObjectInfo) -> dict[str, str]:
    headers = {"Accept-Ranges": "bytes",
               "Content-Type": info.content_type or "application/octet-stream"}
    if info.etag:
        headers["ETag"] = info.etag
    if "last-modified" in info.headers:
        headers["Last-Modified"] = info.headers["last-modified"]
    return headers


def _unsatisfiable(size: int) -> web.Response:
    return web.Response(status=416, headers={"Content-Range": f"bytes */{size}"})


async def _head(s3: s3stream.S3Client, bucket: str, key: str,
                wanted: tuple[int | None, int | None] | None, offset: int,
                length: int | None) -> web.StreamResponse:
    """HEAD: the GET's headers, from the object's info (no body is fetched)."""
    info = await object_info(s3, bucket, key)
    if wanted is not None and offset >= info.size:
        return _unsatisfiable(info.size)
    served = info.size - offset if length is None else min(length, info.size - offset)
    headers = {**_headers(info), "Content-Length": str(served)}
    if wanted is None:
        return web.Response(status=200, headers=headers)
    headers["Content-Range"] = f"bytes {offset}-{offset + served - 1}/{info.size}"
    return web.Response(status=206, headers=headers)


async def serve_object(request: web.Request) -> web.StreamResponse:
    s3, bucket = request.app[CLIENT], request.app[BUCKET]
    key = request.match_info["key"]
    wanted = parse_range(request.headers.get("Range"))
    try:
        offset, length = 0, None
        if wanted is not None:
            first, last = wanted
            if first is None:  # the last n bytes: needs the size first
                assert last is not None
                size = (await object_info(s3, bucket, key)).size
                if size == 0:
                    return _unsatisfiable(0)
                offset, length = max(size - last, 0), min(last, size)
            else:
                offset, length = first, None if last is None else last - first + 1
        if request.method == "HEAD":
            return await _head(s3, bucket, key, wanted, offset, length)
        download = s3.download(bucket, key, offset=offset, length=length)
        async with download as dl:
            info = dl.info
            assert info is not None and dl.length is not None
            if wanted is not None and dl.length == 0:
                return _unsatisfiable(info.size)  # a range of an empty object
            headers = _headers(info)
            headers["Content-Length"] = str(dl.length)
            status = 200
            if wanted is not None:
                status = 206
                headers["Content-Range"] = \
                    f"bytes {dl.offset}-{dl.offset + dl.length - 1}/{info.size}"
            response = web.StreamResponse(status=status, headers=headers)
            await response.prepare(request)
            async for chunk in dl:
                await response.write(chunk)
            await response.write_eof()
            return response
    except s3stream.NotFoundError:
        return web.json_response({"error": "not_found"}, status=404)
    except s3stream.S3ResponseError as exc:
        if exc.status == 416:
            return _unsatisfiable((await object_info(s3, bucket, key)).size)
        logger.warning("s3://%s/%s: %s", bucket, key, exc)
        return web.json_response({"error": "storage_error"}, status=502)


def make_app(bucket: str, client: s3stream.S3Client | None = None) -> web.Application:
    """The service; ``client`` (closed by its owner) or one made from the environment
    when the app starts (closed when it stops)."""
    app = web.Application()
    app[BUCKET] = bucket

    async def s3_client(app: web.Application) -> AsyncIterator[None]:
        if client is not None:
            app[CLIENT] = client
            yield
            return
        async with s3stream.S3Client() as s3:
            app[CLIENT] = s3
            yield

    app.cleanup_ctx.append(s3_client)
    # GET routes answer HEAD too.
    app.router.add_get("/objects/{key:.+}", serve_object)
    return app


def main() -> None:
    parser = argparse.ArgumentParser(description="Stream S3 objects over HTTP, with ranges.")
    parser.add_argument("--bucket", required=True)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8081)
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO)
    web.run_app(make_app(args.bucket), host=args.host, port=args.port)


if __name__ == "__main__":
    main()
