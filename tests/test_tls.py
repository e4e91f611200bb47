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


async def test_tls_bodies_are_written_in_small_slices_and_arrive_whole(
        ca: trustme.CA, monkeypatch: pytest.MonkeyPatch) -> None:
    # Over TLS every slice is encrypted on the event loop: slices are kept to 128 KiB so
    # a turn of the loop stays short; over plain TCP they are 512 KiB. Either way the
    # server gets exactly the bytes.
    import hashlib

    from aiohttp import http_writer

    server_ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("127.0.0.1").configure_cert(server_ctx)
    received: list[bytes] = []

    async def put(request: web.Request) -> web.Response:
        received.append(await request.read())
        return web.Response(headers={"ETag": '"e"'})

    sizes: list[int] = []
    original = http_writer.StreamWriter.write

    async def spy(self: http_writer.StreamWriter, chunk: bytes, **kw: object) -> None:
        sizes.append(len(chunk))
        await original(self, chunk, **kw)  # type: ignore[arg-type]

    monkeypatch.setattr(http_writer.StreamWriter, "write", spy)
    body = bytes(range(256)) * 5000 + b"tail"  # 1.2 MiB: several slices of either size
    client_ctx = ssl.create_default_context()
    ca.configure_trust(client_ctx)
    for tls in (True, False):
        app = web.Application(client_max_size=4 << 20)
        app.router.add_put("/{tail:.*}", put)
        runner = web.AppRunner(app)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0, ssl_context=server_ctx if tls else None)
        await site.start()
        port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        sizes.clear()
        try:
            connector = aiohttp.TCPConnector(ssl=client_ctx)
            async with aiohttp.ClientSession(connector=connector) as session, \
                    S3Client(endpoint=f"{'https' if tls else 'http'}://127.0.0.1:{port}",
                             credentials=Credentials("AK", "SK"), session=session,
                             checksum=None) as s3:
                await s3.upload("bucket", "k", body)
        finally:
            await runner.cleanup()
        assert hashlib.sha256(received[-1]).digest() == hashlib.sha256(body).digest()
        big = max(sizes)
        assert big == (128 * 1024 if tls else 512 * 1024), (tls, sizes)


async def test_many_part_upload_over_tls_is_whole_and_its_crc_right(ca: trustme.CA) -> None:
    # 300 parts over TLS: every slice encrypted on the loop, and past 256 parts the
    # object's CRC is combined on the hashing threads. The store checks every part's
    # CRC32C and the object's, as S3 does.
    import base64
    import hashlib

    import crc32c
    from fake_s3 import FakeS3

    from s3stream import Limits

    server_ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("127.0.0.1").configure_cert(server_ctx)
    client_ctx = ssl.create_default_context()
    ca.configure_trust(client_ctx)
    part = 64 * 1024
    data = hashlib.shake_256(b"tls parts").digest(300 * part + 1234)
    async with FakeS3(min_part_size=part, ssl_context=server_ctx) as fake:
        connector = aiohttp.TCPConnector(ssl=client_ctx)
        async with aiohttp.ClientSession(connector=connector) as session, \
                S3Client(endpoint=fake.endpoint, credentials=Credentials("AK", "SK"),
                         session=session, checksum="crc32c",
                         limits=Limits(min_part_size=part)) as s3:
            result = await s3.upload("bucket", "many", data, part_size=part)
        assert fake.endpoint.startswith("https://")
        assert fake.objects["many"] == data
        assert fake.open_uploads == set()
    assert result.part_count == 301
    assert result.checksum_type == "FULL_OBJECT"
    assert result.checksum == base64.b64encode(crc32c.crc32c(data).to_bytes(4, "big")).decode()
