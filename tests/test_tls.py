"""TLS verification stays on: an untrusted certificate fails, a trusted one works."""

from __future__ import annotations

import ssl
from collections.abc import AsyncIterator

import aiohttp
import pytest
import trustme
from aiohttp import web

from s3stream import Credentials, S3Client, TransportError


@pytest.fixture
def ca() -> trustme.CA:
    return trustme.CA()


@pytest.fixture
async def https_endpoint(ca: trustme.CA) -> AsyncIterator[str]:
    """A tiny HTTPS server answering every PutObject with an ETag."""
    server_ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("127.0.0.1").configure_cert(server_ctx)

    async def put(request: web.Request) -> web.Response:
        await request.read()
        return web.Response(headers={"ETag": '"tls-etag"'})

    app = web.Application()
    app.router.add_put("/{tail:.*}", put)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0, ssl_context=server_ctx)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    try:
        yield f"https://127.0.0.1:{port}"
    finally:
        await runner.cleanup()


async def test_untrusted_certificate_is_refused(https_endpoint: str) -> None:
    async with S3Client(endpoint=https_endpoint, credentials=Credentials("AK", "SK")) as s3:
        with pytest.raises(TransportError) as info:
            await s3.upload("bucket", "k", b"secret data")
    assert "certificate" in repr(info.value.__cause__).lower()
    assert info.value.retryable is False  # a bad certificate is not retried


async def test_callers_session_decides_trust(https_endpoint: str, ca: trustme.CA) -> None:
    client_ctx = ssl.create_default_context()
    ca.configure_trust(client_ctx)
    connector = aiohttp.TCPConnector(ssl=client_ctx)
    async with aiohttp.ClientSession(connector=connector) as session, \
            S3Client(endpoint=https_endpoint, credentials=Credentials("AK", "SK"),
                     session=session) as s3:
        result = await s3.upload("bucket", "k", b"data")
    assert result.etag == '"tls-etag"'
