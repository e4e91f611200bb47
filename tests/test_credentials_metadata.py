"""The metadata providers (EC2 instance metadata, container endpoints) against local servers
that implement AWS's documented protocols (``aws_metadata``), through the real transport.

The providers get a ``ProviderContext`` whose ``fetch`` is ``Transport().fetch``, the one
the client uses, so what is tested is what is sent on the wire. The pure parts (settings,
the credentials document, allowed hosts) are tested without a network.
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
import threading
import time
from collections.abc import AsyncIterator, Callable, Mapping
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from aws_metadata import (
    ROLES,
    ContainerCredentialsServer,
    InstanceMetadataServer,
    document,
)
from support import read_back, sha256

from s3stream import Credentials, CredentialsError, S3Client, TransportError, UsageError
from s3stream._transport import Transport
from s3stream.credentials import (
    ContainerProvider,
    InstanceMetadataProvider,
    ProviderContext,
    _container,
)
from s3stream.credentials._container import check_full_uri, container_target
from s3stream.credentials._imds import (
    DEFAULT_ENDPOINT,
    IPV6_ENDPOINT,
    imds_settings,
    parse_credentials_document,
    parse_expiration,
)
from s3stream.testing import LocalS3

SECRET = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYSECRETKEY"
SESSION = "FwoGZXIvYXdzEXAMPLESESSIONTOKEN//////////wEaDEXAMPLE"
CREDS = Credentials("ASIAEXAMPLEKEY000001", SECRET, SESSION)
ROTATED = Credentials("ASIAEXAMPLEKEY000002", SECRET + "-rotated", SESSION + "-rotated")
AUTH_TOKEN = "eyJhbGciOiJSUzI1NiJ9.pod-identity-token-SECRET"


class Clock:
    """``ctx.now``: real time, moved forward on demand."""

    def __init__(self) -> None:
        self.offset = timedelta()

    def __call__(self) -> datetime:
        return datetime.now(UTC) + self.offset


class Ctx:
    """Builds ``ProviderContext``s over one transport and records what went through them."""

    def __init__(self, transport: Transport) -> None:
        self.transport = transport
        self.clock = Clock()
        self.fetches: list[tuple[str, str, dict[str, str]]] = []
        self.blocking_calls = 0

    async def fetch(self, method: str, url: str, headers: Any, body: bytes,
                    seconds: float) -> Any:
        self.fetches.append((method, url, dict(headers)))
        return await self.transport.fetch(method, url, headers, body, seconds)

    async def run_blocking(self, fn: Callable[[], Any]) -> Any:
        self.blocking_calls += 1
        return await asyncio.to_thread(fn)

    def __call__(self, environ: Mapping[str, str]) -> ProviderContext:
        return ProviderContext(dict(environ), self.fetch, self.clock, self.run_blocking)


@pytest.fixture
async def ctx() -> AsyncIterator[Ctx]:
    transport = Transport()
    yield Ctx(transport)
    await transport.aclose()


@pytest.fixture
async def imds() -> AsyncIterator[InstanceMetadataServer]:
    async with InstanceMetadataServer(CREDS) as server:
        yield server


@pytest.fixture
async def ecs() -> AsyncIterator[ContainerCredentialsServer]:
    async with ContainerCredentialsServer(CREDS) as server:
        yield server


@pytest.fixture
def closed_port() -> int:
    """A port on 127.0.0.1 that nothing listens on: connections are refused at once."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
    return port


@pytest.fixture
async def silent_server() -> AsyncIterator[str]:
    """Accepts connections, reads, never answers (a firewall that lets SYNs through)."""
    writers: list[asyncio.StreamWriter] = []

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writers.append(writer)
        await reader.read()

    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    yield f"http://127.0.0.1:{port}"
    for w in writers:
        w.close()
    server.close()
    await server.wait_closed()


def env_for(server: InstanceMetadataServer, **extra: str) -> dict[str, str]:
    return {"AWS_EC2_METADATA_SERVICE_ENDPOINT": server.url, **extra}


def assert_same(got: Credentials | None, want: Credentials) -> Credentials:
    assert got is not None
    assert (got.access_key_id, got.secret_access_key, got.session_token) == (
        want.access_key_id, want.secret_access_key, want.session_token)
    return got


# ------------------------------------------------------------------ the names


def test_exported_names() -> None:
    import s3stream
    import s3stream.credentials
    import s3stream.exceptions

    assert issubclass(CredentialsError, s3stream.S3StreamError)
    assert not issubclass(CredentialsError, UsageError)
    err = CredentialsError("HTTP 500", provider="EC2 instance metadata (IMDS)")
    assert (err.provider, str(err)) == ("EC2 instance metadata (IMDS)",
                                        "EC2 instance metadata (IMDS): HTTP 500")
    for module, names in ((s3stream, {"CredentialsError"}),
                          (s3stream.exceptions, {"CredentialsError"}),
                          (s3stream.credentials, {"ContainerProvider",
                                                  "InstanceMetadataProvider"})):
        assert names <= set(module.__all__)
        assert module.__all__ == sorted(module.__all__)
    assert "CredentialsError" in (s3stream.exceptions.__doc__ or "")
    for provider in (InstanceMetadataProvider(), ContainerProvider()):
        assert isinstance(provider.name, str) and provider.name


# ------------------------------------------------------------------ the test server itself


async def test_imds_server_enforces_the_documented_token_rules(
        imds: InstanceMetadataServer, ctx: Ctx) -> None:
    fetch = ctx.transport.fetch
    token_url = imds.url + "/latest/api/token"
    assert (await fetch("PUT", token_url, [], b"", 5)).status == 400        # no TTL
    for ttl in ("0", "21601", "six"):
        resp = await fetch("PUT", token_url, [("X-aws-ec2-metadata-token-ttl-seconds", ttl)],
                           b"", 5)
        assert resp.status == 400, ttl
    assert (await fetch("GET", token_url, [], b"", 5)).status == 405
    proxied = [("X-aws-ec2-metadata-token-ttl-seconds", "60"), ("X-Forwarded-For", "1.2.3.4")]
    assert (await fetch("PUT", token_url, proxied, b"", 5)).status == 403
    ok = await fetch("PUT", token_url, [("X-aws-ec2-metadata-token-ttl-seconds", "60")], b"", 5)
    assert ok.status == 200 and ok.headers["x-aws-ec2-metadata-token-ttl-seconds"] == "60"
    token = ok.body.decode()
    assert (await fetch("GET", imds.url + ROLES, [], b"", 5)).status == 401
    bad = [("X-aws-ec2-metadata-token", "AQAEAunknown")]
    assert (await fetch("GET", imds.url + ROLES, bad, b"", 5)).status == 401
    good = [("X-aws-ec2-metadata-token", token)]
    listing = await fetch("GET", imds.url + ROLES, good, b"", 5)
    assert (listing.status, listing.body) == (200, b"s3stream-test-role")
    imds.expire_tokens()
    assert (await fetch("GET", imds.url + ROLES, good, b"", 5)).status == 401
    assert imds.unauthorized == 3


# ------------------------------------------------------------------ IMDS


async def test_imds_happy_path_and_token_reuse(imds: InstanceMetadataServer, ctx: Ctx) -> None:
    provider = InstanceMetadataProvider()
    creds = assert_same(await provider.load(ctx(env_for(imds))), CREDS)
    assert creds.expiry is not None
    assert abs((creds.expiry - datetime.now(UTC)).total_seconds() - 3600) < 5
    assert imds.ttls == [21600]
    assert imds.requests == {("PUT", "/latest/api/token"): 1, ("GET", ROLES): 1,
                             ("GET", ROLES + "s3stream-test-role"): 1}
    # Every GET carried the token; the PUT carried the TTL and no token.
    (put, *gets) = ctx.fetches
    assert put[2] == {"X-aws-ec2-metadata-token-ttl-seconds": "21600"}
    assert all(g[2]["X-aws-ec2-metadata-token"] in imds.issued for g in gets)
    # A second load reuses the token: two GETs, no PUT.
    assert_same(await provider.load(ctx(env_for(imds))), CREDS)
    assert imds.requests[("PUT", "/latest/api/token")] == 1
    assert imds.total == 5


async def test_imds_disabled_sends_nothing(imds: InstanceMetadataServer, ctx: Ctx) -> None:
    for value in ("true", "TRUE", " True "):
        got = await InstanceMetadataProvider().load(
            ctx(env_for(imds, AWS_EC2_METADATA_DISABLED=value)))
        assert got is None
    assert imds.total == 0 and ctx.fetches == []
    # Anything else leaves it on.
    got = await InstanceMetadataProvider().load(
        ctx(env_for(imds, AWS_EC2_METADATA_DISABLED="false")))
    assert_same(got, CREDS)


async def test_imds_endpoint_argument_beats_the_environment(
        imds: InstanceMetadataServer, ctx: Ctx, closed_port: int) -> None:
    env = {"AWS_EC2_METADATA_SERVICE_ENDPOINT": f"http://127.0.0.1:{closed_port}"}
    assert await InstanceMetadataProvider().load(ctx(env)) is None
    assert_same(await InstanceMetadataProvider(endpoint=imds.url + "/").load(ctx(env)), CREDS)
    assert all(url.startswith(imds.url + "/latest/") for _, url, _ in ctx.fetches[1:])


def test_imds_settings_from_the_environment() -> None:
    settings = imds_settings({})
    assert settings is not None
    assert (settings.endpoint, settings.timeout, settings.attempts, settings.v1_fallback) == (
        DEFAULT_ENDPOINT, 1.0, 1, True)
    ipv6 = imds_settings({"AWS_EC2_METADATA_SERVICE_ENDPOINT_MODE": "IPv6"})
    assert ipv6 is not None and ipv6.endpoint == IPV6_ENDPOINT == "http://[fd00:ec2::254]"
    both = imds_settings({"AWS_EC2_METADATA_SERVICE_ENDPOINT_MODE": "ipv6",
                          "AWS_EC2_METADATA_SERVICE_ENDPOINT": "http://10.0.0.1:1338/"})
    assert both is not None and both.endpoint == "http://10.0.0.1:1338"
    tuned = imds_settings({"AWS_METADATA_SERVICE_TIMEOUT": "2.5",
                           "AWS_METADATA_SERVICE_NUM_ATTEMPTS": "3",
                           "AWS_EC2_METADATA_V1_DISABLED": "true"})
    assert tuned is not None
    assert (tuned.timeout, tuned.attempts, tuned.v1_fallback) == (2.5, 3, False)
    explicit = imds_settings({"AWS_METADATA_SERVICE_TIMEOUT": "2.5"}, timeout=0.2, attempts=2)
    assert explicit is not None and (explicit.timeout, explicit.attempts) == (0.2, 2)
    assert imds_settings({"AWS_EC2_METADATA_DISABLED": "true"}) is None
    for env, name in (({"AWS_METADATA_SERVICE_TIMEOUT": "soon"}, "AWS_METADATA_SERVICE_TIMEOUT"),
                      ({"AWS_METADATA_SERVICE_TIMEOUT": "-1"}, "AWS_METADATA_SERVICE_TIMEOUT"),
                      ({"AWS_METADATA_SERVICE_NUM_ATTEMPTS": "0"},
                       "AWS_METADATA_SERVICE_NUM_ATTEMPTS"),
                      ({"AWS_EC2_METADATA_SERVICE_ENDPOINT_MODE": "IPv5"},
                       "AWS_EC2_METADATA_SERVICE_ENDPOINT_MODE"),
                      ({"AWS_EC2_METADATA_SERVICE_ENDPOINT": "169.254.169.254"},
                       "AWS_EC2_METADATA_SERVICE_ENDPOINT")):
        with pytest.raises(UsageError, match=name):
            imds_settings(env)
    for kwargs in ({"timeout": 0}, {"attempts": 0}, {"attempts": True}, {"token_ttl": 0},
                   {"token_ttl": 21601}, {"endpoint": "ftp://x"}):
        with pytest.raises(UsageError):
            InstanceMetadataProvider(**kwargs)


async def test_imds_401_gets_a_new_token_once_and_rotated_credentials(
        imds: InstanceMetadataServer, ctx: Ctx) -> None:
    provider = InstanceMetadataProvider()
    assert_same(await provider.load(ctx(env_for(imds))), CREDS)
    first_token = next(iter(imds.issued))
    imds.expire_tokens()                       # its TTL has passed on the server's side
    imds.set_credentials(ROTATED, expires_in=120)
    creds = assert_same(await provider.load(ctx(env_for(imds))), ROTATED)
    assert creds.expiry is not None
    assert 110 < (creds.expiry - datetime.now(UTC)).total_seconds() <= 120
    assert imds.unauthorized == 1
    assert imds.requests[("PUT", "/latest/api/token")] == 2
    # The retried listing and the credentials GET went with the new token.
    assert [h.get("X-aws-ec2-metadata-token") == first_token
            for _, _, h in ctx.fetches[3:]] == [True, False, False, False]


async def test_imds_refused_twice_is_an_error(imds: InstanceMetadataServer, ctx: Ctx) -> None:
    provider = InstanceMetadataProvider()
    await provider.load(ctx(env_for(imds)))
    imds.expire_tokens()
    real = ctx.transport.fetch

    async def expiring_fetch(method: str, url: str, headers: Any, body: bytes,
                             seconds: float) -> Any:
        resp = await real(method, url, headers, body, seconds)
        if method == "PUT":
            imds.expire_tokens()     # every new token is dead on arrival
        return resp

    ctx.transport.fetch = expiring_fetch  # type: ignore[method-assign]
    with pytest.raises(CredentialsError, match="401") as err:
        await provider.load(ctx(env_for(imds)))
    assert err.value.provider == provider.name
    assert imds.unauthorized == 2


async def test_imds_token_cached_until_shortly_before_its_ttl(
        imds: InstanceMetadataServer, ctx: Ctx) -> None:
    provider = InstanceMetadataProvider(token_ttl=600)
    await provider.load(ctx(env_for(imds)))
    assert imds.ttls == [600]
    ctx.clock.offset = timedelta(seconds=539)
    await provider.load(ctx(env_for(imds)))
    assert imds.requests[("PUT", "/latest/api/token")] == 1
    ctx.clock.offset = timedelta(seconds=541)       # within a minute of the end: renewed
    await provider.load(ctx(env_for(imds)))
    assert imds.requests[("PUT", "/latest/api/token")] == 2
    assert imds.unauthorized == 0


async def test_imds_unreachable_is_none_fast(ctx: Ctx, closed_port: int) -> None:
    env = {"AWS_EC2_METADATA_SERVICE_ENDPOINT": f"http://127.0.0.1:{closed_port}"}
    started = time.monotonic()
    assert await InstanceMetadataProvider().load(ctx(env)) is None
    assert time.monotonic() - started < 2.0
    assert [m for m, _, _ in ctx.fetches] == ["PUT"]
    # With more attempts, each one is made, and it is still None.
    ctx.fetches.clear()
    env["AWS_METADATA_SERVICE_NUM_ATTEMPTS"] = "3"
    assert await InstanceMetadataProvider().load(ctx(env)) is None
    assert [m for m, _, _ in ctx.fetches] == ["PUT"] * 3


async def test_imds_silent_endpoint_is_none_within_the_timeout(
        ctx: Ctx, silent_server: str) -> None:
    env = {"AWS_EC2_METADATA_SERVICE_ENDPOINT": silent_server,
           "AWS_METADATA_SERVICE_TIMEOUT": "0.3"}
    started = time.monotonic()
    assert await InstanceMetadataProvider().load(ctx(env)) is None
    took = time.monotonic() - started
    assert 0.25 < took < 2.0
    # The default, 1 s, is what a laptop waits at most.
    del env["AWS_METADATA_SERVICE_TIMEOUT"]
    started = time.monotonic()
    assert await InstanceMetadataProvider().load(ctx(env)) is None
    assert 0.9 < time.monotonic() - started < 2.0


async def test_imds_v1_fallback_when_tokens_are_refused(ctx: Ctx) -> None:
    async with InstanceMetadataServer(CREDS, tokens=False) as v1_only:
        assert_same(await InstanceMetadataProvider().load(ctx(env_for(v1_only))), CREDS)
        assert [(m, "X-aws-ec2-metadata-token" in h) for m, _, h in ctx.fetches] == [
            ("PUT", False), ("GET", False), ("GET", False)]
        with pytest.raises(CredentialsError, match="AWS_EC2_METADATA_V1_DISABLED"):
            await InstanceMetadataProvider().load(
                ctx(env_for(v1_only, AWS_EC2_METADATA_V1_DISABLED="true")))


async def test_imds_without_a_role_is_none(ctx: Ctx) -> None:
    async with InstanceMetadataServer(CREDS, role=None) as no_role:
        assert await InstanceMetadataProvider().load(ctx(env_for(no_role))) is None
        assert no_role.requests[("GET", ROLES)] == 1


@pytest.mark.parametrize(("status", "code", "match"), [
    (200, "AssumeRoleUnauthorizedAccess", "AssumeRoleUnauthorizedAccess"),
    (500, "Success", "HTTP 500"),
    (403, "Success", "HTTP 403"),
])
async def test_imds_answering_with_an_error_raises(
        imds: InstanceMetadataServer, ctx: Ctx, status: int, code: str, match: str) -> None:
    imds.fail_credentials = (status, code)
    with pytest.raises(CredentialsError, match=match) as err:
        await InstanceMetadataProvider().load(ctx(env_for(imds)))
    assert err.value.provider == InstanceMetadataProvider.name
    assert SECRET not in str(err.value) and SESSION not in str(err.value)


async def test_imds_gone_after_answering_raises(imds: InstanceMetadataServer, ctx: Ctx) -> None:
    provider = InstanceMetadataProvider()
    await provider.load(ctx(env_for(imds)))         # a token is now cached
    await imds.__aexit__(None, None, None)          # the service goes away
    with pytest.raises(CredentialsError, match="answered before") as err:
        await provider.load(ctx(env_for(imds)))
    assert isinstance(err.value.__cause__, TransportError)
    await imds.__aenter__()                         # so that the fixture can close it


# ------------------------------------------------------------------ the document (pure)


def _doc(**changes: Any) -> bytes:
    import json

    doc: dict[str, Any] = document(CREDS, 60)
    for key, value in changes.items():
        if value is None:
            doc.pop(key)
        else:
            doc[key] = value
    return json.dumps(doc).encode()


def test_parse_credentials_document() -> None:
    creds = parse_credentials_document(_doc(Expiration="2026-12-02T03:04:05Z"), provider="p")
    assert_same(creds, CREDS)
    assert creds.expiry == datetime(2026, 12, 2, 3, 4, 5, tzinfo=UTC)
    # Long-term keys (a local emulator's) come without a token, or with an empty one.
    for token in (None, "", "  "):
        keys = parse_credentials_document(_doc(Token=token), provider="p")
        assert keys.session_token is None and keys.secret_access_key == SECRET
    for bad, match in ((b"<html>", "not JSON"), (b"[1]", "list"), (b"\xff", "not JSON"),
                       (_doc(Token=7), "Token is not a string"),
                       (_doc(Expiration=None), "Expiration is missing"),
                       (_doc(AccessKeyId=""), "AccessKeyId is not"),
                       (_doc(SecretAccessKey=7), "SecretAccessKey is not"),
                       (_doc(Expiration="tomorrow"), "not an ISO 8601"),
                       (_doc(Code="Expired"), "'Expired'"),
                       (_doc(Token="two\nlines"), "line break")):
        with pytest.raises(CredentialsError, match=match) as err:
            parse_credentials_document(bad, provider="p")
        assert SECRET not in str(err.value) and SESSION not in str(err.value)
        assert err.value.provider == "p"


def test_parse_expiration_forms() -> None:
    want = datetime(2026, 12, 2, 3, 4, 5, tzinfo=UTC)
    for text in ("2026-12-02T03:04:05Z", "2026-12-02T03:04:05+00:00", "2026-12-02T03:04:05",
                 "2026-12-02T05:04:05+02:00", " 2026-12-02T03:04:05z "):
        assert parse_expiration(text, provider="p") == want, text
    assert parse_expiration("2026-12-02T03:04:05.250Z", provider="p") == want.replace(
        microsecond=250000)
    for bad in ("", "Z", "2026-13-02T00:00:00Z", 1700000000):
        with pytest.raises(CredentialsError):
            parse_expiration(bad, provider="p")


# ------------------------------------------------------------------ container endpoints


async def test_container_relative_uri(ecs: ContainerCredentialsServer, ctx: Ctx) -> None:
    provider = ContainerProvider(relative_base=ecs.url)
    env = {"AWS_CONTAINER_CREDENTIALS_RELATIVE_URI": ecs.path}
    creds = assert_same(await provider.load(ctx(env)), CREDS)
    assert creds.expiry is not None and creds.expiry > datetime.now(UTC)
    assert ecs.authorizations == [None]
    # Without the override, a relative URI is ECS's link-local address.
    target = container_target(env)
    assert target is not None and target.url == "http://169.254.170.2" + ecs.path


async def test_container_full_uri_with_token(ctx: Ctx) -> None:
    async with ContainerCredentialsServer(CREDS, path="/creds",
                                          expected_token=AUTH_TOKEN) as server:
        env = {"AWS_CONTAINER_CREDENTIALS_FULL_URI": server.url + "/creds",
               "AWS_CONTAINER_AUTHORIZATION_TOKEN": AUTH_TOKEN}
        assert_same(await ContainerProvider().load(ctx(env)), CREDS)
        assert server.authorizations == [AUTH_TOKEN]
        # The relative URI comes first when both are set.
        both = container_target({**env, "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI": "/v2/x"})
        assert both is not None and both.variable == "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI"
        # A wrong token: the endpoint's 401 is an error that shows no token.
        env["AWS_CONTAINER_AUTHORIZATION_TOKEN"] = "wrong-" + AUTH_TOKEN
        with pytest.raises(CredentialsError, match="HTTP 401") as err:
            await ContainerProvider().load(ctx(env))
        assert AUTH_TOKEN not in str(err.value)
        assert "AWS_CONTAINER_CREDENTIALS_FULL_URI" in str(err.value)


async def test_container_token_file_is_read_again_off_the_loop(
        ctx: Ctx, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    token_file = tmp_path / "eks-pod-identity-token"
    token_file.write_text("token-one\n")
    threads: list[int] = []
    real_read = _container.read_token_file

    def recording_read(path: str) -> str:
        threads.append(threading.get_ident())
        return real_read(path)

    monkeypatch.setattr(_container, "read_token_file", recording_read)
    async with ContainerCredentialsServer(CREDS, path="/creds",
                                          expected_token="token-one") as server:
        env = {"AWS_CONTAINER_CREDENTIALS_FULL_URI": server.url + "/creds",
               "AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE": str(token_file),
               # The file wins over the variable.
               "AWS_CONTAINER_AUTHORIZATION_TOKEN": "ignored"}
        provider = ContainerProvider()
        assert_same(await provider.load(ctx(env)), CREDS)
        token_file.write_text("token-two")           # the platform rotates it
        server.expected_token = "token-two"
        server.set_credentials(ROTATED, expires_in=900)
        assert_same(await provider.load(ctx(env)), ROTATED)
        assert server.authorizations == ["token-one", "token-two"]
        assert ctx.blocking_calls == 2
        assert len(threads) == 2 and threading.get_ident() not in threads
        token_file.unlink()
        with pytest.raises(CredentialsError, match="AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE"):
            await provider.load(ctx(env))
        token_file.write_text("two\nlines")
        with pytest.raises(CredentialsError, match="not a legal header value") as err:
            await provider.load(ctx(env))
        assert "two" not in str(err.value).split(str(token_file))[-1]
        assert server.total == 2


async def test_container_not_configured_sends_nothing(ctx: Ctx) -> None:
    for env in ({}, {"AWS_CONTAINER_CREDENTIALS_RELATIVE_URI": "",
                     "AWS_CONTAINER_CREDENTIALS_FULL_URI": "",
                     "AWS_CONTAINER_AUTHORIZATION_TOKEN": AUTH_TOKEN}):
        assert await ContainerProvider().load(ctx(env)) is None
    assert ctx.fetches == [] and ctx.blocking_calls == 0


async def test_container_refused_host(ctx: Ctx) -> None:
    env = {"AWS_CONTAINER_CREDENTIALS_FULL_URI":
           "http://169.254.169.254.evil.example/creds?sig=" + AUTH_TOKEN,
           "AWS_CONTAINER_AUTHORIZATION_TOKEN": AUTH_TOKEN}
    with pytest.raises(UsageError, match="AWS_CONTAINER_CREDENTIALS_FULL_URI") as err:
        await ContainerProvider().load(ctx(env))
    assert "169.254.169.254.evil.example" in str(err.value)
    assert AUTH_TOKEN not in str(err.value)
    assert ctx.fetches == []
    for uri in ("ftp://127.0.0.1/creds", "http://10.0.0.8/creds", "http://169.254.170.3/",
                "http:///creds", "http://[fd00:ec2::24]/creds", "http://localhost.evil/x"):
        with pytest.raises(UsageError, match="AWS_CONTAINER_CREDENTIALS_FULL_URI"):
            check_full_uri(uri)
    for uri in ("https://creds.example.com/v1", "http://localhost:8080/c", "http://127.0.0.1/c",
                "http://127.8.9.10:99/c", "http://[::1]:51679/c", "http://169.254.170.2/v2/c",
                "http://169.254.170.23/v1/credentials", "http://[fd00:ec2::23]/v1/credentials",
                "HTTP://LOCALHOST/c"):
        assert check_full_uri(uri) == uri
    assert check_full_uri("http://127.0.0.1/a b") == "http://127.0.0.1/a%20b"
    with pytest.raises(UsageError, match="AWS_CONTAINER_CREDENTIALS_RELATIVE_URI"):
        container_target({"AWS_CONTAINER_CREDENTIALS_RELATIVE_URI": "v2/credentials"})


async def test_container_retries_a_5xx_then_succeeds(
        ecs: ContainerCredentialsServer, ctx: Ctx) -> None:
    ecs.fail_times = 2
    env = {"AWS_CONTAINER_CREDENTIALS_RELATIVE_URI": ecs.path}
    assert_same(await ContainerProvider(relative_base=ecs.url).load(ctx(env)), CREDS)
    assert ecs.total == 3
    ecs.fail_times, ecs.fail_status = 1, 403          # a 4xx is not retried
    with pytest.raises(CredentialsError, match="HTTP 403"):
        await ContainerProvider(relative_base=ecs.url).load(ctx(env))
    assert ecs.total == 4


async def test_container_unreachable_is_an_error(ctx: Ctx, closed_port: int) -> None:
    env = {"AWS_CONTAINER_CREDENTIALS_FULL_URI": f"http://127.0.0.1:{closed_port}/creds"}
    started = time.monotonic()
    with pytest.raises(CredentialsError, match="after 2 tries") as err:
        await ContainerProvider(attempts=2, timeout=0.5).load(ctx(env))
    assert time.monotonic() - started < 2.0
    assert isinstance(err.value.__cause__, TransportError)
    assert len(ctx.fetches) == 2


# ------------------------------------------------------------------ secrets


async def test_no_secret_in_reprs_errors_or_debug_logs(
        ctx: Ctx, tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    shown: list[str] = []
    imds_provider = InstanceMetadataProvider(timeout=2.0)
    async with InstanceMetadataServer(CREDS) as imds:
        creds = await imds_provider.load(ctx(env_for(imds)))
        imds.expire_tokens()
        await imds_provider.load(ctx(env_for(imds)))            # the 401 path
        for failure in ((200, "Failure"), (500, "Success")):
            imds.fail_credentials = failure
            with pytest.raises(CredentialsError) as err:
                await imds_provider.load(ctx(env_for(imds)))
            shown += [str(err.value), repr(err.value)]
        tokens = imds.issued
    assert len(tokens) == 2
    token_file = tmp_path / "token"
    token_file.write_text(AUTH_TOKEN)
    async with ContainerCredentialsServer(CREDS, expected_token=AUTH_TOKEN) as ecs:
        container = ContainerProvider(relative_base=ecs.url)
        env = {"AWS_CONTAINER_CREDENTIALS_RELATIVE_URI": ecs.path,
               "AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE": str(token_file)}
        creds2 = await container.load(ctx(env))
        ecs.expected_token = "another"
        with pytest.raises(CredentialsError) as err:
            await container.load(ctx(env))
        shown += [str(err.value), repr(err.value)]
        target = container_target(env)
    shown += [repr(imds_provider), repr(container), repr(creds), repr(creds2), repr(target),
              repr(container_target({"AWS_CONTAINER_CREDENTIALS_FULL_URI": "http://[::1]/c",
                                     "AWS_CONTAINER_AUTHORIZATION_TOKEN": AUTH_TOKEN}))]
    # The providers did log, at DEBUG, on each path.
    for logged in ("session token obtained", "token refused (HTTP 401)",
                   "credentials of role", "credentials from"):
        assert logged in caplog.text
    text = caplog.text + "\n".join(shown)
    for secret in (SECRET, SESSION, AUTH_TOKEN, *tokens):
        assert secret not in text


# ------------------------------------------------------------------ end to end


@pytest.mark.real_s3
async def test_real_upload_with_credentials_from_imds(
        s3stream_local_s3: LocalS3, bucket: str, boto: Any) -> None:
    """An S3Client whose credentials come from IMDS uploads to SeaweedFS; credentials that
    live 2 s are fetched again during the upload, with the same IMDS session token."""
    keys = s3stream_local_s3.credentials
    # SeaweedFS's long-term keys: served without a Token (SeaweedFS refuses one it did
    # not issue), as a local emulator serves them.
    served = Credentials(keys.access_key_id, keys.secret_access_key)
    chunk = os.urandom(1 << 20)

    async def slow_source() -> AsyncIterator[bytes]:
        for _ in range(16):  # 16 MiB at about 4 MiB/s: longer than the 2 s credentials
            yield chunk
            await asyncio.sleep(0.25)  # the source's pace, not synchronisation

    async with InstanceMetadataServer(served, expires_in=2) as imds:
        provider = InstanceMetadataProvider(endpoint=imds.url)
        async with S3Client(endpoint=s3stream_local_s3.endpoint,
                            region=s3stream_local_s3.region, credentials=provider,
                            environ={}) as client:
            assert client.credentials is provider
            small = await client.upload(bucket, "imds/small.txt", b"from IMDS")
            result = await client.upload(bucket, "imds/long.bin", slow_source(),
                                         part_size=5 << 20)
        role_gets = imds.requests[("GET", ROLES + "s3stream-test-role")]
    assert small.size == 9 and read_back(boto, bucket, "imds/small.txt") == b"from IMDS"
    assert result.part_count == 4
    assert sha256(read_back(boto, bucket, "imds/long.bin")) == sha256(chunk * 16)
    assert role_gets >= 3
    assert imds.requests[("PUT", "/latest/api/token")] == 1 and imds.unauthorized == 0
    assert keys.secret_access_key not in repr(client)


@pytest.mark.real_s3
async def test_real_upload_with_credentials_from_a_container_endpoint(
        s3stream_local_s3: LocalS3, bucket: str, boto: Any, tmp_path: Path) -> None:
    keys = s3stream_local_s3.credentials
    served = Credentials(keys.access_key_id, keys.secret_access_key)
    token_file = tmp_path / "token"
    token_file.write_text(AUTH_TOKEN)
    async with ContainerCredentialsServer(served, path="/creds",
                                          expected_token=AUTH_TOKEN) as ecs:
        env = {"AWS_CONTAINER_CREDENTIALS_FULL_URI": ecs.url + "/creds",
               "AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE": str(token_file)}
        async with S3Client(endpoint=s3stream_local_s3.endpoint,
                            region=s3stream_local_s3.region, credentials=ContainerProvider(),
                            environ=env) as client:
            await client.upload(bucket, "ecs/object.txt", b"from ECS")
    assert read_back(boto, bucket, "ecs/object.txt") == b"from ECS"
    assert ecs.authorizations == [AUTH_TOKEN]
