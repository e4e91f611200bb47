"""Transport configuration as AWS's tools read it: CA bundle, proxies, User-Agent.

The proxy is a real one, proxy.py (a test dependency), run as a process of its own on
127.0.0.1 and an ephemeral port. Which process a server's peer socket belongs to is read
from the OS (psutil) while the request is being served: through the proxy it is one of
proxy.py's processes, direct it is this one. proxy.py logs one access line per client
connection (it relays later requests on a kept-alive connection without logging them),
so its log is compared with the connections, and the socket owners with the requests.
The tests wait on what the proxy printed or the servers recorded, never on sleeps.
"""

from __future__ import annotations

import contextlib
import logging
import os
import platform
import re
import signal
import ssl
import subprocess
import sys
import threading
from collections.abc import AsyncIterator, Collection, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import psutil
import pytest
import trustme
from aiohttp import web
from fake_s3 import FakeS3

import s3stream
from s3stream import Credentials, S3Client, S3ResponseError, TransportError, UsageError, _transport
from s3stream._transport import USER_AGENT, mask_proxy, proxy_for

MiB = 1 << 20
CREDS = Credentials("AK", "SK")
PROXY_SECRET = "s3cr3t-proxy-pw"


# ------------------------------------------------------------- the proxy choice


@pytest.mark.parametrize(("url", "expected"), [
    ("https://s3.amazonaws.com/b/k", "http://secure-proxy:3129"),
    ("http://s3.amazonaws.com/b/k", "http://plain-proxy:3128"),
    ("HTTPS://S3.amazonaws.com/b", "http://secure-proxy:3129"),
])
def test_the_url_scheme_picks_the_variable(url: str, expected: str) -> None:
    env = {"HTTPS_PROXY": "http://secure-proxy:3129", "HTTP_PROXY": "http://plain-proxy:3128"}
    assert proxy_for(url, env) == expected


def test_no_variable_no_proxy() -> None:
    assert proxy_for("https://s3.amazonaws.com/", {}) is None
    # An https URL never falls back to HTTP_PROXY (nor http to HTTPS_PROXY).
    assert proxy_for("https://s3.amazonaws.com/", {"HTTP_PROXY": "http://p:1"}) is None
    assert proxy_for("http://s3.amazonaws.com/", {"HTTPS_PROXY": "http://p:1"}) is None


def test_lower_case_wins_and_empty_means_unset() -> None:
    both = {"HTTPS_PROXY": "http://upper:1", "https_proxy": "http://lower:2"}
    assert proxy_for("https://h/", both) == "http://lower:2"
    assert proxy_for("https://h/", {"https_proxy": "http://lower:2"}) == "http://lower:2"
    # As with urllib (botocore's source): a lower-case variable set empty turns it off.
    assert proxy_for("https://h/", {"HTTPS_PROXY": "http://upper:1", "https_proxy": ""}) is None
    assert proxy_for("https://h/", {"HTTPS_PROXY": ""}) is None
    # NO_PROXY likewise.
    env = {"HTTPS_PROXY": "http://p:1", "NO_PROXY": "h", "no_proxy": "other"}
    assert proxy_for("https://h/", env) == "http://p:1"
    assert proxy_for("https://other/", env) is None


def test_a_proxy_without_a_scheme_is_http() -> None:
    assert proxy_for("https://h/", {"HTTPS_PROXY": "proxy:3128"}) == "http://proxy:3128"
    assert proxy_for("https://h/", {"HTTPS_PROXY": "//proxy:3128"}) == "http://proxy:3128"
    assert proxy_for("https://h/", {"HTTPS_PROXY": "https://proxy:443"}) == "https://proxy:443"


@pytest.mark.parametrize(("no_proxy", "url", "bypassed"), [
    ("*", "https://anything.example/", True),
    (" s3.example.com , other", "https://s3.example.com/b", True),   # spaces around entries
    ("s3.example.com", "https://S3.Example.COM/b", True),            # case-insensitive
    ("s3.example.com", "https://b.s3.example.com/k", True),          # names under it
    ("example.com", "https://s3.example.com/", True),                # a domain suffix
    (".example.com", "https://s3.example.com/", True),               # with a leading dot
    (".example.com", "https://example.com/", True),                  # ... the domain too
    ("*.example.com", "https://s3.example.com/", True),
    ("example.com", "https://notexample.com/", False),               # not a label boundary
    ("example.com", "https://example.com.evil.test/", False),
    ("s3.example.com", "https://example.com/", False),
    ("", "https://h/", False),
    (",,", "https://h/", False),
    ("169.254.169.254", "http://169.254.169.254/latest/api/token", True),  # IMDS (AWS docs)
    ("10.0.0.1", "http://10.0.0.12/", False),                        # IPs match exactly
    ("10.0.0.0/8", "http://10.20.30.40:9000/", True),                # CIDR
    ("10.0.0.0/8", "http://11.0.0.1/", False),
    ("192.168.1.7/24", "http://192.168.1.200/", True),               # host bits ignored
    ("10.0.0.0/8", "http://10.example.com/", False),                 # a name is not an IP
    ("::1", "http://[::1]:9000/", True),
    ("[::1]", "http://[::1]:9000/", True),
    ("fd00::/8", "http://[fd12:3456::1]/", True),
    ("fd00::/8", "http://10.0.0.1/", False),
    ("[::1]:9000", "http://[::1]:9000/", True),
    ("[::1]:9000", "http://[::1]:9001/", False),
    ("s3.example.com:9000", "http://s3.example.com:9000/", True),    # host:port
    ("s3.example.com:9000", "http://s3.example.com:9001/", False),
    ("s3.example.com:443", "https://s3.example.com/", True),         # the default port
    ("s3.example.com:80", "https://s3.example.com/", False),
    ("127.0.0.1:8333", "http://127.0.0.1:8333/", True),
    ("10.0.0.0/8:8333", "http://10.1.2.3:8333/", True),
    ("localhost", "http://127.0.0.1/", False),                       # names are not resolved
    ("s3.example.com.", "https://s3.example.com/", True),            # trailing dots
])
def test_no_proxy(no_proxy: str, url: str, bypassed: bool) -> None:
    scheme = url.split(":", 1)[0].upper()
    env = {f"{scheme}_PROXY": "http://proxy:3128", "NO_PROXY": no_proxy}
    assert (proxy_for(url, env) is None) is bypassed


def test_masked_proxy_urls() -> None:
    assert mask_proxy("http://user:pa:ss@proxy:3128") == "http://***:***@proxy:3128"
    assert mask_proxy("http://token@proxy:3128") == "http://***@proxy:3128"
    assert mask_proxy("http://proxy:3128") == "http://proxy:3128"


def test_an_unusable_proxy_variable_is_refused_by_the_constructor() -> None:
    env = {"HTTPS_PROXY": f"socks5://user:{PROXY_SECRET}@proxy:1080"}
    with pytest.raises(UsageError, match="HTTPS_PROXY") as info:
        S3Client(credentials=CREDS, region="us-east-1", environ=env)
    assert PROXY_SECRET not in str(info.value)
    assert "socks5://***:***@proxy:1080" in str(info.value)
    with pytest.raises(UsageError, match="http_proxy"):
        S3Client(credentials=CREDS, region="us-east-1", environ={"http_proxy": "http://"})


@pytest.mark.parametrize(("kwargs", "match"), [
    ({"proxy": 3128}, "proxy must be a proxy URL str or None, not int"),
    ({"proxy": ""}, "not an empty str"),
    ({"proxy": f"ftp://u:{PROXY_SECRET}@p:21"}, r"ftp://\*\*\*:\*\*\*@p:21"),
    ({"ca_bundle": 5}, "ca_bundle must be a path"),
    ({"ca_bundle": ""}, "ca_bundle must not be empty"),
    ({"user_agent_extra": 5}, "user_agent_extra must be a str or None, not int"),
    ({"user_agent_extra": "a\r\nX-Injected: 1"}, "printable ASCII"),
])
def test_option_checks(kwargs: dict[str, Any], match: str) -> None:
    with pytest.raises(UsageError, match=match) as info:
        S3Client(credentials=CREDS, region="us-east-1", environ={}, **kwargs)
    assert PROXY_SECRET not in str(info.value)


@pytest.mark.parametrize("kwargs", [{"ca_bundle": "/etc/ssl/ca.pem"},
                                    {"proxy": "http://proxy:3128"}])
async def test_options_for_the_owned_session_are_refused_with_a_borrowed_one(
        kwargs: dict[str, Any]) -> None:
    async with aiohttp.ClientSession() as session:
        with pytest.raises(UsageError, match="cannot be used with session="):
            S3Client(credentials=CREDS, region="us-east-1", environ={}, session=session,
                     **kwargs)


# ------------------------------------------------------------------ User-Agent


async def test_user_agent_is_sent_unsigned_and_the_signature_verifies() -> None:
    expected = (f"s3stream/{s3stream.__version__} python/{platform.python_version()} "
                f"aiohttp/{aiohttp.__version__}")
    assert expected == USER_AGENT
    async with FakeS3() as fake:
        env = {"AWS_SDK_UA_APP_ID": "billing app\r\nX-Injected: 1"}
        async with S3Client(endpoint=fake.endpoint, region="us-east-1", credentials=CREDS,
                            environ=env) as s3:
            await s3.upload("bucket", "small", b"hello")
            await s3.upload("bucket", "multi", os.urandom(6 * MiB), part_size=5 * MiB)
        async with S3Client(endpoint=fake.endpoint, region="us-east-1", credentials=CREDS,
                            environ={"AWS_SDK_UA_APP_ID": "id1"},
                            user_agent_extra="my-tool/2.1 (batch)") as s3:
            await s3.upload("bucket", "extra", b"extra")
        async with S3Client(endpoint=fake.endpoint, region="us-east-1", credentials=CREDS,
                            environ={}) as s3:
            await s3.upload("bucket", "plain", b"plain")
    assert [r.op for r in fake.requests] == [
        "PutObject", "CreateMultipartUpload", "UploadPart", "UploadPart",
        "CompleteMultipartUpload", "PutObject", "PutObject"]
    for rec in fake.requests:
        signed = re.search(r"SignedHeaders=([^,]+)", rec.headers["Authorization"])
        assert signed is not None and "user-agent" not in signed.group(1).split(";")
        assert rec.signature_ok is True and rec.outcome == "ok"
        assert "X-Injected" not in rec.headers
    # The app id is sanitised as AWS's SDKs do: no character outside a header token.
    assert {r.headers["User-Agent"] for r in fake.requests[:-2]} == {
        f"{expected} app/billing-app--X-Injected--1"}
    assert fake.requests[-2].headers["User-Agent"] == f"{expected} app/id1 my-tool/2.1 (batch)"
    assert fake.requests[-1].headers.getall("User-Agent") == [expected]


# ------------------------------------------------------------------------ TLS


@dataclass
class HttpsServer:
    url: str
    #: (method, path, headers, pid of the peer socket's process) of every request.
    requests: list[tuple[str, str, Mapping[str, str], int | None]] = field(
        default_factory=list)


@contextlib.asynccontextmanager
async def https_server(ca: trustme.CA, *names: str,
                       peers: Collection[int] = ()) -> AsyncIterator[HttpsServer]:
    """An HTTPS server with a certificate from ``ca`` for ``names`` (default 127.0.0.1),
    answering every PUT like PutObject; ``peers``: the processes a peer may be."""
    server_ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert(*(names or ("127.0.0.1",))).configure_cert(server_ctx)
    served = HttpsServer("")

    async def put(request: web.Request) -> web.Response:
        peer = request.transport.get_extra_info("peername") if request.transport else None
        owner = socket_owner(peer, set(peers)) if peer else None
        served.requests.append((request.method, request.path, request.headers, owner))
        await request.read()
        return web.Response(headers={"ETag": '"tls-etag"'})

    app = web.Application()
    app.router.add_put("/{tail:.*}", put)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0, ssl_context=server_ctx)
    await site.start()
    port = runner.addresses[0][1]
    served.url = f"https://127.0.0.1:{port}"
    try:
        yield served
    finally:
        await runner.cleanup()


@pytest.fixture
def ca() -> trustme.CA:
    return trustme.CA()


@pytest.fixture
def ca_file(ca: trustme.CA, tmp_path: Path) -> str:
    path = tmp_path / "ca.pem"
    ca.cert_pem.write_to_path(str(path))
    return str(path)


@pytest.fixture
def other_ca_file(tmp_path: Path) -> str:
    """A valid bundle of another CA, which did not sign the server's certificate."""
    path = tmp_path / "other-ca.pem"
    trustme.CA().cert_pem.write_to_path(str(path))
    return str(path)


async def put(endpoint: str, environ: Mapping[str, str], **kwargs: Any) -> str:
    async with S3Client(endpoint=endpoint, region="us-east-1", credentials=CREDS,
                        environ=environ, **kwargs) as s3:
        return (await s3.upload("bucket", "k", b"data")).etag


async def test_aws_ca_bundle_is_trusted(ca: trustme.CA, ca_file: str) -> None:
    async with https_server(ca) as server:
        assert await put(server.url, {"AWS_CA_BUNDLE": ca_file}) == '"tls-etag"'
    assert len(server.requests) == 1


async def test_ca_bundle_option_is_trusted_and_wins_over_the_variable(
        ca: trustme.CA, ca_file: str, other_ca_file: str) -> None:
    async with https_server(ca) as server:
        assert await put(server.url, {"AWS_CA_BUNDLE": other_ca_file},
                         ca_bundle=Path(ca_file)) == '"tls-etag"'
        with pytest.raises(TransportError) as info:
            await put(server.url, {"AWS_CA_BUNDLE": ca_file}, ca_bundle=other_ca_file)
    assert "CERTIFICATE_VERIFY_FAILED" in repr(info.value.__cause__)
    assert info.value.retryable is False
    assert len(server.requests) == 1


async def test_without_the_bundle_verification_fails(ca: trustme.CA) -> None:
    async with https_server(ca) as server:
        with pytest.raises(TransportError) as info:
            await put(server.url, {})
    assert "CERTIFICATE_VERIFY_FAILED" in repr(info.value.__cause__)
    assert info.value.retryable is False
    assert server.requests == []


async def test_the_hostname_is_checked_too(ca: trustme.CA, ca_file: str) -> None:
    # Signed by the trusted CA, but for another name than the one connected to.
    async with https_server(ca, "s3.example.test") as server:
        with pytest.raises(TransportError) as info:
            await put(server.url, {"AWS_CA_BUNDLE": ca_file})
    assert "mismatch" in repr(info.value.__cause__)
    assert server.requests == []


@pytest.mark.parametrize("kind", ["missing", "directory", "not-pem", "empty"])
@pytest.mark.parametrize("via", ["AWS_CA_BUNDLE", "ca_bundle"])
async def test_an_unusable_bundle_is_a_usage_error_before_any_request(
        ca: trustme.CA, tmp_path: Path, kind: str, via: str) -> None:
    path = tmp_path / "bundle.pem"
    if kind == "directory":
        path.mkdir()
    elif kind == "not-pem":
        path.write_text("this is not a certificate\n")
    elif kind == "empty":
        path.write_bytes(b"")
    env = {"AWS_CA_BUNDLE": str(path)} if via == "AWS_CA_BUNDLE" else {}
    kwargs = {"ca_bundle": str(path)} if via == "ca_bundle" else {}
    async with https_server(ca) as server:
        # The constructor reads no file: the bundle is read on the first HTTPS request.
        s3 = S3Client(endpoint=server.url, region="us-east-1", credentials=CREDS,
                      environ=env, **kwargs)
        async with s3:
            with pytest.raises(UsageError) as info:
                await s3.upload("bucket", "k", os.urandom(12 * MiB), part_size=5 * MiB)
    message = str(info.value)
    assert repr(str(path)) in message and message.startswith(f"{via}: the CA bundle")
    assert server.requests == []


async def test_the_bundle_is_read_once_in_a_worker_thread(
        ca: trustme.CA, ca_file: str, monkeypatch: pytest.MonkeyPatch) -> None:
    threads: list[threading.Thread] = []
    load = _transport._load_ca_bundle

    def spy(path: str, source: str) -> ssl.SSLContext:
        threads.append(threading.current_thread())
        return load(path, source)

    monkeypatch.setattr(_transport, "_load_ca_bundle", spy)
    async with https_server(ca) as server, S3Client(
            endpoint=server.url, region="us-east-1", credentials=CREDS,
            environ={"AWS_CA_BUNDLE": ca_file}) as s3:
        assert threads == []
        for key in ("a", "b", "c"):
            await s3.upload("bucket", key, b"data")
    assert len(threads) == 1 and threads[0] is not threading.main_thread()
    assert len(server.requests) == 3


async def test_a_plain_http_endpoint_never_reads_the_bundle() -> None:
    async with FakeS3() as fake:
        await put(fake.endpoint, {"AWS_CA_BUNDLE": "/nonexistent/ca.pem"})
    assert [r.op for r in fake.requests] == ["PutObject"]


async def test_a_borrowed_session_keeps_its_own_trust(ca: trustme.CA) -> None:
    client_ctx = ssl.create_default_context()
    ca.configure_trust(client_ctx)
    async with https_server(ca) as server, aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(ssl=client_ctx)) as session:
        # AWS_CA_BUNDLE is for the client's own session: a borrowed one is not touched.
        etag = await put(server.url, {"AWS_CA_BUNDLE": "/nonexistent/ca.pem"},
                         session=session)
    assert etag == '"tls-etag"'
    assert server.requests[0][2]["User-Agent"] == USER_AGENT


# --------------------------------------------------------------- a real proxy


class ProxyPy:
    """proxy.py in a process group of its own: ``with ProxyPy() as proxy: proxy.url``.

    Its output is read by a thread into ``lines``; ``wait_for`` blocks on a condition
    until a line matches (or the timeout passes), so no test sleeps. Leaving the block
    stops the whole group and checks that no process of it is left.
    """

    def __init__(self, *args: str) -> None:
        self._args = args
        self.lines: list[str] = []
        self._changed = threading.Condition()
        self.url = ""
        self.port = 0

    def __enter__(self) -> ProxyPy:
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "proxy", "--hostname", "127.0.0.1", "--port", "0",
             "--num-acceptors", "1", "--num-workers", "1", "--log-level", "DEBUG",
             *self._args],
            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
            text=True, start_new_session=True)
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()
        try:
            line = self.wait_for(r"Listening on 127\.0\.0\.1:(\d+)", timeout=30)
            self.port = int(re.search(r"127\.0\.0\.1:(\d+)", line).group(1))  # type: ignore[union-attr]
            self.wait_for(r"Started 1 acceptors", timeout=30)
            self.url = f"http://127.0.0.1:{self.port}"
        except BaseException:
            self.__exit__()
            raise
        return self

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            with self._changed:
                self.lines.append(line.rstrip("\n"))
                self._changed.notify_all()
        with self._changed:
            self._changed.notify_all()

    def wait_for(self, pattern: str, *, count: int = 1, timeout: float = 10) -> str:
        """The ``count``-th line matching ``pattern``, once proxy.py has printed it."""
        regex = re.compile(pattern)
        with self._changed:
            found: list[str] = []
            ok = self._changed.wait_for(
                lambda: len(found := [x for x in self.lines if regex.search(x)]) >= count
                or self.proc.poll() is not None, timeout=timeout)
            found = [x for x in self.lines if regex.search(x)]
            if not ok or len(found) < count:
                tail = "\n".join(self.lines[-20:])
                raise AssertionError(f"proxy.py printed no {count} x {pattern!r}:\n{tail}")
            return found[count - 1]

    def matching(self, pattern: str) -> list[str]:
        with self._changed:
            return [x for x in self.lines if re.search(pattern, x)]

    def pids(self) -> set[int]:
        with contextlib.suppress(psutil.NoSuchProcess):
            parent = psutil.Process(self.proc.pid)
            return {parent.pid, *(c.pid for c in parent.children(recursive=True))}
        return set()

    def __exit__(self, *exc_info: object) -> None:
        group = self.pids()
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.proc.pid, signal.SIGTERM)
        try:
            self.proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(timeout=15)
        _, alive = psutil.wait_procs(
            [p for p in map(_process, group) if p is not None], timeout=15)
        for p in alive:
            with contextlib.suppress(psutil.NoSuchProcess):
                p.kill()
        self._reader.join(timeout=15)
        assert alive == [], f"proxy.py processes left running: {alive}"

    @property
    def access_lines(self) -> list[str]:
        return self.matching(r"access_log")


def _process(pid: int) -> psutil.Process | None:
    try:
        return psutil.Process(pid)
    except psutil.NoSuchProcess:
        return None


def socket_owner(local: tuple[str, int], pids: set[int]) -> int | None:
    """Which of ``pids`` has a TCP socket whose local address is ``local``."""
    for pid in pids:
        proc = _process(pid)
        if proc is None:
            continue
        with contextlib.suppress(psutil.NoSuchProcess):
            for conn in proc.net_connections(kind="tcp"):
                if conn.laddr and (conn.laddr.ip, conn.laddr.port) == local[:2]:
                    return pid
    return None


class PeerFakeS3(FakeS3):
    """FakeS3 that notes, for every request, which process the peer socket belongs to
    (looked up while the connection is certainly open: during the request)."""

    def __init__(self, candidates: set[int], **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.candidates = candidates
        self.peers: list[tuple[tuple[str, int], int | None]] = []

    async def _handle(self, request: web.BaseRequest) -> web.StreamResponse:
        peer = request.transport.get_extra_info("peername") if request.transport else None
        assert peer is not None
        self.peers.append((peer[:2], socket_owner(peer, self.candidates)))
        return await super()._handle(request)


@pytest.fixture
def proxy() -> Iterator[ProxyPy]:
    with ProxyPy() as running:
        yield running


async def upload_through(endpoint: str, environ: Mapping[str, str], **kwargs: Any) -> None:
    async with S3Client(endpoint=endpoint, region="us-east-1", credentials=CREDS,
                        environ=environ, **kwargs) as s3:
        await s3.upload("bucket", "big", os.urandom(12 * MiB), part_size=5 * MiB,
                        concurrency=2)
        await s3.upload("bucket", "small", b"small")


async def test_http_requests_go_through_http_proxy_and_no_proxy_bypasses_it(
        proxy: ProxyPy) -> None:
    me = os.getpid()
    async with PeerFakeS3(proxy.pids() | {me}) as fake:
        target = fake.endpoint.removeprefix("http://")
        # HTTPS_PROXY is for https URLs: it must not catch this http endpoint.
        await upload_through(fake.endpoint, {"HTTP_PROXY": proxy.url,
                                             "HTTPS_PROXY": "http://127.0.0.1:9"})
        through = list(fake.peers)
        ops = [r.op for r in fake.requests]
        assert ops.count("UploadPart") == 3 and ops[-1] == "PutObject"
        assert all(r.signature_ok and r.outcome == "ok" for r in fake.requests)
        # Every request reached the store from a socket of proxy.py's, none from ours.
        owners = {owner for _, owner in through}
        assert owners and owners <= proxy.pids() and me not in owners
        # proxy.py logged each connection it relayed (at close: the client has closed
        # them), every one to the store.
        connections = {peer for peer, _ in through}
        line = proxy.wait_for(r"access_log", count=len(connections))
        assert len(proxy.access_lines) == len(connections)
        assert all(f" {target}/bucket/" in x for x in proxy.access_lines), line

        for no_proxy in ("127.0.0.1", "localhost,127.0.0.0/8", f".example.com,{target}", "*"):
            before = len(fake.peers)
            await upload_through(fake.endpoint, {"HTTP_PROXY": proxy.url,
                                                 "no_proxy": no_proxy})
            direct = fake.peers[before:]
            assert len(direct) == 6 and {owner for _, owner in direct} == {me}, no_proxy
        assert len(proxy.access_lines) == len(connections)


async def test_https_goes_through_a_connect_tunnel(
        proxy: ProxyPy, ca: trustme.CA, ca_file: str) -> None:
    me = os.getpid()
    async with https_server(ca, peers=proxy.pids() | {me}) as server:
        await put(server.url, {"HTTPS_PROXY": proxy.url, "AWS_CA_BUNDLE": ca_file})
        # HTTP_PROXY is for http URLs: this one goes direct.
        await put(server.url, {"HTTP_PROXY": proxy.url, "AWS_CA_BUNDLE": ca_file})
    target = server.url.removeprefix("https://")
    line = proxy.wait_for(rf"access_log.* CONNECT {re.escape(target)} ")
    assert len(proxy.access_lines) == 1, line
    (_, _, tunnelled, via), (_, _, direct, direct_peer) = server.requests
    assert via in proxy.pids() and direct_peer == me
    assert tunnelled["User-Agent"] == direct["User-Agent"] == USER_AGENT
    assert "Proxy-Authorization" not in tunnelled  # only ever on the CONNECT


async def test_an_explicit_proxy_wins_over_the_environment(proxy: ProxyPy) -> None:
    me = os.getpid()
    async with PeerFakeS3(proxy.pids() | {me}) as fake:
        await put(fake.endpoint, {"HTTP_PROXY": "http://127.0.0.1:9"}, proxy=proxy.url)
        await put(fake.endpoint, {"HTTP_PROXY": "http://127.0.0.1:9", "NO_PROXY": "*"},
                  proxy=proxy.url)
    assert [owner in proxy.pids() for _, owner in fake.peers] == [True, True]


@pytest.fixture
def auth_proxy() -> Iterator[ProxyPy]:
    with ProxyPy("--basic-auth", f"user:{PROXY_SECRET}") as running:
        yield running


async def test_proxy_credentials_are_sent_and_never_shown(
        auth_proxy: ProxyPy, ca: trustme.CA, ca_file: str,
        caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    good = auth_proxy.url.replace("://", f"://user:{PROXY_SECRET}@")
    bad = auth_proxy.url.replace("://", "://user:wrong-pw@")
    async with https_server(ca, peers=auth_proxy.pids()) as server:
        assert await put(server.url, {"HTTPS_PROXY": good, "AWS_CA_BUNDLE": ca_file}) \
            == '"tls-etag"'
        with pytest.raises(TransportError) as info:
            await put(server.url, {"HTTPS_PROXY": bad, "AWS_CA_BUNDLE": ca_file})
    assert len(server.requests) == 1 and server.requests[0][3] in auth_proxy.pids()
    assert "Proxy-Authorization" not in server.requests[0][2]
    error = info.value
    assert "407" in str(error) and error.retryable is False
    assert "through proxy http://***:***@127.0.0.1:" in str(error)
    async with PeerFakeS3(auth_proxy.pids()) as fake:
        await put(fake.endpoint, {"HTTP_PROXY": good})
        with pytest.raises(S3ResponseError) as refused:
            await put(fake.endpoint, {"HTTP_PROXY": bad})
    assert refused.value.status == 407
    assert len(fake.requests) == 1 and fake.peers[0][1] in auth_proxy.pids()
    # proxy.py strips the header it checked before relaying the request.
    assert "Proxy-Authorization" not in fake.requests[0].headers
    assert "through proxy http://***:***@127.0.0.1" in caplog.text
    for shown in (str(error), repr(error), str(error.__cause__), repr(error.__cause__),
                  str(refused.value), repr(refused.value), caplog.text):
        assert PROXY_SECRET not in shown and "wrong-pw" not in shown


async def test_a_proxy_that_is_not_there_is_a_transport_error_naming_it() -> None:
    async with FakeS3() as fake:
        with pytest.raises(TransportError) as info:
            await put(fake.endpoint, {"HTTP_PROXY": f"http://u:{PROXY_SECRET}@127.0.0.1:9"},
                      retry=s3stream.Retry(attempts=1))
    assert "through proxy http://***:***@127.0.0.1:9" in str(info.value)
    assert PROXY_SECRET not in str(info.value) + repr(info.value.__cause__)
    assert fake.requests == []
