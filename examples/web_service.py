"""An aiohttp service that streams request bodies straight into S3: the pattern to deploy.

``POST /upload/{key}`` (or ``PUT``) hands the request body to ``S3Client.upload()`` as it
arrives: the body is read only as fast as the parts go out, so memory stays near
``(concurrency + 1) * part_size`` per upload, whatever its size, and all uploads together
hold at most ``--memory-limit-mib`` for parts (a request over it waits, reading nothing
more, until memory is given back), however many run at once. The request's
``Content-Length``, when it has one, is the upload's ``size=``. ``GET /health`` answers
200 once the service is up (it does not call S3).

One ``S3Client`` serves every request: it is created when the app starts and closed when
it stops (``cleanup_ctx``), and found through a ``web.AppKey``.

Answers::

    200  {"key", "etag", "size", "parts"}     stored
    400  {"error": "bad_request"}             a bad key, for instance
    408  {"error": "request_timeout"}         the client sent nothing for --idle-timeout
    413  {"error": "too_large"}               over --max-bytes: refused before reading
                                              when Content-Length says so (before the
                                              body is sent, with Expect: 100-continue),
                                              else as soon as the streamed body passes it
    502  {"error": "storage_error"}           S3 answered with an error
    503  {"error": "storage_unavailable"}     S3 unreachable, or no credentials for it
                                              (with Retry-After: 5)

Every failure above is answered after the upload was aborted: nothing is stored, no
multipart upload is left open. Error bodies carry a ``request_id``, also in the service's
log line, which has the details (S3's error code and request id, the upload id); the body
never shows the S3 endpoint, the bucket or an upload id. A client that goes away mid-body
is one INFO line in the log, and its upload is aborted.

Usage (every option also reads an environment variable; a flag wins)::

    python examples/web_service.py [--help] --bucket BUCKET [--host HOST] [--port PORT]
        [--max-bytes N] [--part-size-mib N] [--concurrency N] [--memory-limit-mib N]
        [--idle-timeout SECONDS] [--retry-budget SECONDS]

    --bucket            UPLOAD_BUCKET            where objects go (required)
    --host              UPLOAD_HOST              listen address (127.0.0.1)
    --port              UPLOAD_PORT              listen port (8080)
    --max-bytes         UPLOAD_MAX_BYTES         largest body accepted, bytes (1 GiB)
    --part-size-mib     UPLOAD_PART_SIZE_MIB     part size (s3stream's: 8 MiB, growing)
    --concurrency       UPLOAD_CONCURRENCY       parts in flight per upload (4)
    --memory-limit-mib  UPLOAD_MEMORY_LIMIT_MIB  part memory of all uploads together
                                                 (1024; "none": no limit)
    --idle-timeout      UPLOAD_IDLE_TIMEOUT      seconds a client may send nothing (60)
    --retry-budget      UPLOAD_RETRY_BUDGET      seconds one S3 request is retried (60)
                        LOG_LEVEL                logging level (INFO)

S3's endpoint, region and credentials come from the usual AWS_* variables (or a profile,
or the instance's role), as AWS's SDKs find them::

    export AWS_ENDPOINT_URL_S3=http://127.0.0.1:8333   # omit for AWS itself
    export AWS_ACCESS_KEY_ID=... AWS_SECRET_ACCESS_KEY=... AWS_REGION=us-east-1
    UPLOAD_BUCKET=my-bucket python examples/web_service.py --port 8080

    curl -T big.iso -H "Content-Type: application/octet-stream" \\
        http://127.0.0.1:8080/upload/isos/big.iso

On Linux with glibc, run it with ``MALLOC_MMAP_THRESHOLD_=131072`` in the environment:
request bodies arrive as socket reads of up to 256 KiB that parts keep for seconds, and
with glibc's sliding threshold they come from the heap, which then keeps the free space
between them (measured: 30-45 MiB more peak RSS with 64 uploads under a 256 MiB budget).
"""

from __future__ import annotations

import argparse
import logging
import os
import uuid
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from dataclasses import dataclass

from aiohttp import web

from s3stream import (
    CredentialsError,
    DeadlineError,
    NoCredentialsError,
    Retry,
    S3Client,
    S3StreamError,
    SourceSizeError,
    TransportError,
    UploadError,
    UsageError,
)

MiB = 1 << 20
log = logging.getLogger("web_service")


@dataclass(frozen=True)
class Config:
    bucket: str
    host: str = "127.0.0.1"
    port: int = 8080
    max_bytes: int = 1024 * MiB
    part_size: int | None = None  # None: s3stream's choice
    concurrency: int = 4
    memory_limit: int | None = 1024 * MiB  # all uploads' parts together; None: no limit
    idle_timeout: float = 60.0
    retry_budget: float = 60.0

    def new_client(self) -> S3Client:
        """The service's one client (endpoint, region, credentials: from AWS_*)."""
        return S3Client(retry=Retry(budget=self.retry_budget), memory_limit=self.memory_limit)


CONFIG = web.AppKey("config", Config)
S3 = web.AppKey("s3", S3Client)


def refuse_length(request: web.Request) -> web.Response | None:
    """413 when Content-Length says the body is over the maximum: nothing is read."""
    length, limit = request.content_length, request.app[CONFIG].max_bytes
    if length is None or length <= limit:
        return None
    rid = uuid.uuid4().hex[:16]
    log.info("[%s] 413 for %r: Content-Length %d > %d, not read",
             rid, request.match_info["key"], length, limit)
    return error(413, "too_large", rid)


async def expect(request: web.Request) -> web.Response | None:
    """``Expect: 100-continue`` (curl sends it for large files): a body that is too large
    is refused before the client sends it; any other is asked for."""
    if (refused := refuse_length(request)) is not None:
        return refused
    if request.version < (1, 1):
        return None  # an HTTP/1.0 client sends its body anyway
    if request.headers.get("Expect", "").lower() != "100-continue":
        raise web.HTTPExpectationFailed(text="only 100-continue is supported")
    await request.writer.write(b"HTTP/1.1 100 Continue\r\n\r\n")
    return None


async def upload(request: web.Request) -> web.StreamResponse:
    config, s3 = request.app[CONFIG], request.app[S3]
    key = request.match_info["key"]
    if (refused := refuse_length(request)) is not None:
        return refused
    rid = uuid.uuid4().hex[:16]  # in the answer and in the log line: ties the two
    length = request.content_length  # None for a chunked body
    try:
        result = await s3.upload(
            config.bucket, key, request.content,  # streamed, never read into memory whole
            size=length,  # parts planned for it; a body that ends short fails the upload
            max_size=config.max_bytes,  # a chunked body fails the moment it passes this
            source_timeout=config.idle_timeout,  # a client that stops sending
            content_type=request.content_type,
            part_size=config.part_size, concurrency=config.concurrency,
        )
    # Each error is raised after the upload was aborted: nothing is left behind.
    except SourceSizeError as exc:
        if exc.produced > exc.limit:  # passed max_size while streaming
            log.info("[%s] 413 for %r: body passed %d bytes while streaming; upload aborted",
                     rid, key, exc.limit)
            return error(413, "too_large", rid)
        return client_gone(rid, key, f"after {exc.produced} of {exc.limit} bytes")
    except ConnectionResetError:  # raised by the body: the client went away mid-body
        return client_gone(rid, key, "")
    except DeadlineError:
        log.info("[%s] 408 for %r: the client sent nothing for %s s; upload aborted",
                 rid, key, config.idle_timeout)
        return error(408, "request_timeout", rid)
    except NoCredentialsError as exc:  # a UsageError, but the service's fault
        log.error("[%s] upload of %r failed: %s", rid, key, exc)
        return error(503, "storage_unavailable", rid, retry_after=5)
    except UsageError as exc:  # a bad key, for instance: checked before anything is sent
        log.info("[%s] 400 for %r: %s", rid, key, exc)
        return web.json_response({"error": "bad_request", "message": str(exc),
                                  "request_id": rid}, status=400)
    except S3StreamError as exc:  # S3 failed: the details go to the log, not the client
        log.warning("[%s] upload of %r failed: %s", rid, key, exc)  # UploadError: with its cause
        cause = exc.__cause__ if isinstance(exc, UploadError) else exc
        if isinstance(cause, TransportError | CredentialsError):
            return error(503, "storage_unavailable", rid, retry_after=5)
        return error(502, "storage_error", rid)
    log.info("[%s] stored %r: %d bytes in %d part(s)", rid, key, result.size, result.part_count)
    return web.json_response({"key": result.key, "etag": result.etag, "size": result.size,
                              "parts": result.part_count})


def error(status: int, code: str, request_id: str, *, retry_after: int | None = None
          ) -> web.Response:
    headers = {} if retry_after is None else {"Retry-After": str(retry_after)}
    return web.json_response({"error": code, "request_id": request_id}, status=status,
                             headers=headers)


def client_gone(request_id: str, key: str, how_far: str) -> web.Response:
    log.info("[%s] client disconnected mid-body for %r%s; upload aborted",
             request_id, key, f" {how_far}" if how_far else "")
    return web.Response(status=499)  # nobody reads it: the connection is gone


async def health(request: web.Request) -> web.Response:
    return web.json_response({"status": "ok"})


def make_app(config: Config, *, new_client: Callable[[], S3Client] | None = None
             ) -> web.Application:
    """The application; its S3 client lives as long as it runs (``new_client()`` makes it)."""

    async def s3_client(app: web.Application) -> AsyncIterator[None]:
        async with (new_client or config.new_client)() as s3:
            app[S3] = s3
            yield  # serving. On shutdown aiohttp waits for the uploads in flight (then
            # cancels them: s3stream aborts each), and only then is the client closed.

    # aiohttp buffers up to twice read_bufsize (256 KiB by default) of each request body
    # before it stops reading the socket. A body that waits for the client's memory budget
    # holds that much outside the budget, so with many uploads at once it adds up: 64 KiB
    # keeps it to about 128 KiB each (the rest waits in the kernel's socket buffer).
    app = web.Application(handler_args={"read_bufsize": 64 * 1024})
    app[CONFIG] = config
    app.cleanup_ctx.append(s3_client)
    app.add_routes([
        web.post("/upload/{key:.+}", upload, expect_handler=expect),
        web.put("/upload/{key:.+}", upload, expect_handler=expect),
        web.get("/health", health),
    ])
    return app


def parse_config(argv: Sequence[str] | None = None,
                 environ: Mapping[str, str] = os.environ) -> Config:
    env = environ.get
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    # String defaults go through type= as a flag's value would.
    parser.add_argument("--bucket", default=env("UPLOAD_BUCKET"),
                        required="UPLOAD_BUCKET" not in environ)
    parser.add_argument("--host", default=env("UPLOAD_HOST", "127.0.0.1"))
    parser.add_argument("--port", type=int, default=env("UPLOAD_PORT", "8080"))
    parser.add_argument("--max-bytes", type=int, default=env("UPLOAD_MAX_BYTES", str(1 << 30)))
    parser.add_argument("--part-size-mib", type=int, default=env("UPLOAD_PART_SIZE_MIB"))
    parser.add_argument("--concurrency", type=int, default=env("UPLOAD_CONCURRENCY", "4"))
    parser.add_argument("--memory-limit-mib", type=mib_or_none,
                        default=env("UPLOAD_MEMORY_LIMIT_MIB", "1024"))
    parser.add_argument("--idle-timeout", type=float, default=env("UPLOAD_IDLE_TIMEOUT", "60"))
    parser.add_argument("--retry-budget", type=float, default=env("UPLOAD_RETRY_BUDGET", "60"))
    args = parser.parse_args(argv)
    return Config(
        bucket=args.bucket, host=args.host, port=args.port, max_bytes=args.max_bytes,
        part_size=args.part_size_mib * MiB if args.part_size_mib else None,
        concurrency=args.concurrency, memory_limit=args.memory_limit_mib,
        idle_timeout=args.idle_timeout, retry_budget=args.retry_budget,
    )


def mib_or_none(text: str) -> int | None:
    """``"none"``: None; else a number of MiB, in bytes."""
    return None if text.lower() == "none" else int(text) * MiB


def main(argv: Sequence[str] | None = None) -> None:
    config = parse_config(argv)
    logging.basicConfig(level=os.environ.get("LOG_LEVEL", "INFO").upper(),
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    web.run_app(make_app(config), host=config.host, port=config.port, print=None)


if __name__ == "__main__":
    main()
