"""The one module that imports aiohttp: it carries signed bytes and maps errors.

It decides nothing. Every aiohttp or OS error is turned into ``TransportError``
here, at the boundary, with the original as ``__cause__``, so no aiohttp type ever
reaches a caller. The URL is passed to aiohttp as an already-encoded ``yarl.URL``:
a plain ``str`` would be re-quoted and have its ``..`` segments removed, and the
request would no longer be the one that was signed.

What it bounds, so that a misbehaving peer costs time and memory in proportion to
the settings, never more:

* ``stall_timeout`` while sending the body (no progress for that long), on the whole
  response head once the request is sent (a head trickled a byte at a time would
  keep a per-read timer alive forever), and between reads of the response body;
* the response body's size: an error answer is read up to ``_ERROR_BODY_CAP`` and
  the rest discarded with the connection; a success answer past ``_OK_BODY_CAP``
  is an error.

What it configures, as AWS's tools do, for the session it owns (a borrowed session is
the caller's to configure: ``ca_bundle=`` and ``proxy=`` are refused with it, and the
environment variables below are left to it):

* trust: ``ca_bundle=`` or else ``AWS_CA_BUNDLE`` names a PEM file that replaces the
  system's CAs, with verification and the hostname check on. The file is read on the
  first request that needs it (an HTTPS URL or an HTTPS proxy), in a worker thread, so
  neither the constructor nor the event loop does file I/O; a bundle that cannot be read
  or holds no certificate is a ``UsageError`` naming it, raised before that request is
  sent. With a plain-HTTP endpoint it is never read.
* proxies: ``proxy=`` for every request, or else ``HTTPS_PROXY`` for https URLs and
  ``HTTP_PROXY`` for http ones (each also lower case, which wins), except for hosts that
  ``NO_PROXY`` names (``proxy_for``). Proxy credentials (``http://user:pass@host:3128``)
  are sent as ``Proxy-Authorization`` and shown nowhere: messages and logs mask them.
* ``User-Agent: s3stream/<v> python/<v> aiohttp/<v>`` (`` app/<AWS_SDK_UA_APP_ID>``,
  then ``user_agent_extra=``), added after signing: proxies rewrite it, so it must never
  be a signed header.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import ipaddress
import logging
import math
import os
import platform
import re
import ssl
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from typing import Any, NamedTuple

import aiohttp
import aiohttp.payload
from yarl import URL

from . import __version__
from ._parts import Buffer
from ._protocol import Response
from .exceptions import StallError, TransportError, UsageError

#: Body writes are sliced, with a yield to the event loop after each slice, so one part
#: never holds the loop for more than a slice's worth of send() (the loop also serves the
#: caller's other requests) and a stalled peer is noticed within ``stall_timeout``. Each
#: part in flight writes a slice per turn of the loop, so a turn costs about
#: ``concurrency`` slices. Over TLS a slice is also encrypted and copied three times on
#: the loop: 128 KiB there (against 64 and 512 KiB, 1 GiB with 8 parts in flight) kept a
#: turn to a few ms and was also the fastest, the slice staying in cache between TLS's
#: copies of it. Over plain TCP 512 KiB and 128 KiB measured the same within noise.
_WRITE_SLICE = 512 * 1024
_TLS_WRITE_SLICE = 128 * 1024

#: An error answer is read up to this much; the rest is never read (the connection is
#: closed instead). S3's ``<Error>`` documents are under 1 KiB, and the code, message and
#: request id come first; a proxy or a broken server may send megabytes of HTML.
_ERROR_BODY_CAP = 64 * 1024

#: A success answer longer than this is refused. The bodies this transport reads are
#: small XML documents; the largest are listing pages of 1,000 entries: ListParts is
#: about 300 KiB, ListMultipartUploads at worst about 7 MiB (1,000 keys of 1,024 bytes,
#: each byte escaped to up to 6 characters, plus ~700 bytes of ids, owner and dates per
#: upload). 16 MiB leaves twice that worst case, so no legitimate answer is refused,
#: while a runaway body (a misconfigured endpoint serving a file) costs a bounded amount.
_OK_BODY_CAP = 16 * 1024 * 1024

#: aiohttp >= 3.10 tells a connect timeout apart from a read timeout.
_CONNECT_TIMEOUT: Any = getattr(aiohttp, "ConnectionTimeoutError", ())

logger = logging.getLogger("s3stream")

#: What every request says it is; ``app/<id>`` follows when AWS_SDK_UA_APP_ID is set.
USER_AGENT = (f"s3stream/{__version__} python/{platform.python_version()} "
              f"aiohttp/{aiohttp.__version__}")
#: The characters AWS's SDKs keep in a user-agent value; any other becomes "-" (so no
#: value can break the header, or the line, it is in).
_UA_UNSAFE = re.compile(r"[^A-Za-z0-9!#$%&'*+\-.^_`|~]")


def _mib(n: int) -> str:
    return f"{n / (1 << 20):g} MiB" if n >= 1 << 20 else f"{n // 1024} KiB"


def _too_large(status: int, cap: int, operation: str) -> TransportError:
    return TransportError(
        f"{operation}: HTTP {status} answer larger than {_mib(cap)}, more than any S3 "
        "answer this client reads (is the endpoint an S3 API?)",
        operation=operation,
        # The server did answer: asking again gets the same answer.
        retryable=False,
    )


def _check_timeout(name: str, value: object) -> float | None:
    if value is None:
        return None
    if (isinstance(value, bool) or not isinstance(value, int | float)
            or not math.isfinite(value) or value <= 0):
        raise UsageError(
            f"{name} must be a positive, finite number of seconds (or None for no limit), "
            f"not {value!r}"
        )
    return float(value)


# ---------------------------------------------------------------- configuration


def _env(environ: Mapping[str, str], name: str) -> str | None:
    """``name`` (upper case) from ``environ``, its lower-case twin winning as with AWS's
    tools (and urllib, which botocore uses); set but empty means unset."""
    value = environ.get(name.lower())
    if value is None:
        value = environ.get(name)
    return value or None


def mask_proxy(url: str) -> str:
    """``url`` for messages and logs: its credentials, if any, become ``***``."""
    scheme, sep, rest = url.rpartition("://")
    userinfo, at, hostport = rest.rpartition("@")
    if not at:
        return url
    masked = "***:***" if ":" in userinfo else "***"
    return f"{scheme}{sep}{masked}@{hostport}"


def _normalise_proxy(url: str) -> str:
    # As botocore does: a proxy given as "host:port" or "//host:port" is an HTTP proxy.
    if url.startswith("//"):
        return "http:" + url
    if "://" not in url:
        return "http://" + url
    return url


class _NoProxyEntry(NamedTuple):
    name: str  # lower case, without leading "*." or ".", or "*"
    port: int | None
    network: ipaddress.IPv4Network | ipaddress.IPv6Network | None


def _parse_no_proxy(value: str | None) -> tuple[_NoProxyEntry, ...]:
    entries: list[_NoProxyEntry] = []
    for raw in (value or "").split(","):
        item = raw.strip().lower()
        if not item:
            continue
        port: int | None = None
        if item.startswith("["):  # [v6] or [v6]:port
            host, _, tail = item[1:].partition("]")
            if tail.startswith(":") and tail[1:].isdigit():
                port = int(tail[1:])
            item = host
        elif item.count(":") == 1:  # host:port (more colons: a bare IPv6 address)
            host, _, tail = item.partition(":")
            if tail.isdigit():
                item, port = host, int(tail)
        network = None
        try:
            network = ipaddress.ip_network(item, strict=False)
        except ValueError:
            item = item.removeprefix("*.").lstrip(".").rstrip(".")
        if item or network is not None:
            entries.append(_NoProxyEntry(item, port, network))
    return tuple(entries)


def _bypasses(host: str, port: int, entries: Sequence[_NoProxyEntry]) -> bool:
    host = host.lower().strip("[]").rstrip(".")
    try:
        address: ipaddress.IPv4Address | ipaddress.IPv6Address | None = \
            ipaddress.ip_address(host)
    except ValueError:
        address = None
    for entry in entries:
        if entry.name == "*":
            return True
        if entry.port is not None and entry.port != port:
            continue
        if entry.network is not None:
            if address is not None and address.version == entry.network.version \
                    and address in entry.network:
                return True
        elif host == entry.name or (address is None and host.endswith("." + entry.name)):
            return True
    return False


_DEFAULT_PORTS = {"http": 80, "https": 443}
_PROXY_VARIABLES = ("HTTPS_PROXY", "HTTP_PROXY", "NO_PROXY")
#: Origins whose proxy choice is remembered, at most (one per bucket, virtual-hosted).
_PROXY_CACHE = 256


def proxy_for(url: str, environ: Mapping[str, str]) -> str | None:
    """The proxy the AWS CLI would send ``url`` through, given ``environ``: None for none.

    ``HTTPS_PROXY`` for https URLs, ``HTTP_PROXY`` for http ones (lower-case names win;
    a proxy without a scheme is ``http://``), unless ``NO_PROXY`` (comma-separated) names
    the URL's host: ``*`` (every host), a hostname, a domain (``example.com`` or
    ``.example.com``: the domain and every name under it), an IP address or CIDR network
    (``10.0.0.0/8``, ``fd00::/8``), each optionally with ``:port`` (then only that port).
    Pure: reads nothing but its arguments.
    """
    parsed = URL(url)
    scheme = parsed.scheme.lower()
    proxy = _env(environ, "HTTPS_PROXY" if scheme == "https" else "HTTP_PROXY")
    if proxy is None or scheme not in _DEFAULT_PORTS:
        return None
    port = parsed.explicit_port or _DEFAULT_PORTS[scheme]
    if _bypasses(parsed.raw_host or "", port, _parse_no_proxy(_env(environ, "NO_PROXY"))):
        return None
    return _normalise_proxy(proxy)


class _Proxy(NamedTuple):
    """A proxy as aiohttp is given it: the URL without credentials, which go in a header
    (aiohttp keeps the URL in its connection keys, whose ``repr`` would show them)."""

    url: URL
    authorization: str | None
    shown: str


def _parse_proxy(value: str, source: str) -> _Proxy:
    shown = mask_proxy(_normalise_proxy(value))
    try:
        url = URL(_normalise_proxy(value))
    except ValueError:
        raise UsageError(f"{source} is not a proxy URL: {shown}") from None
    if url.scheme not in ("http", "https") or not url.host:
        raise UsageError(f"{source} must be an http:// or https:// proxy URL with a host, "
                         f"not {shown}")
    authorization = None
    if url.user is not None or url.password is not None:
        userpass = f"{url.user or ''}:{url.password or ''}".encode()
        authorization = "Basic " + base64.b64encode(userpass).decode("ascii")
    return _Proxy(url.with_user(None).with_password(None), authorization, shown)


def check_ca_bundle(ca_bundle: object) -> str | None:
    """``ca_bundle=`` as a path string (or None); only its type is checked: no I/O."""
    if ca_bundle is None:
        return None
    if not isinstance(ca_bundle, str | os.PathLike):
        raise UsageError(f"ca_bundle must be a path (str or os.PathLike) or None, "
                         f"not {type(ca_bundle).__name__}")
    path = os.fsdecode(ca_bundle)
    if not path:
        raise UsageError("ca_bundle must not be empty (pass None to use the default)")
    return path


def check_transport_options(*, session: object, ca_bundle: object,
                            proxy: object) -> tuple[str | None, str | None]:
    """``ca_bundle=`` and ``proxy=`` checked (no I/O): valid types and syntax, and not
    with a borrowed session, which the caller configures."""
    path = check_ca_bundle(ca_bundle)
    if proxy is not None:
        if not isinstance(proxy, str) or not proxy:
            shown = "an empty str" if proxy == "" else type(proxy).__name__
            raise UsageError(f"proxy must be a proxy URL str or None, not {shown}")
        _parse_proxy(proxy, "proxy")
    if session is not None:
        for name, value in (("ca_bundle", path), ("proxy", proxy)):
            if value is not None:
                raise UsageError(
                    f"{name}= cannot be used with session=: s3stream does not configure a "
                    "session it borrows. Configure that session instead (its connector's "
                    "ssl= for trust, proxy= on the session for a proxy)")
    return path, proxy


def _load_ca_bundle(path: str, source: str) -> ssl.SSLContext:
    """An SSLContext trusting exactly the CAs in ``path``, verification and hostname check
    on. Blocking (it reads the file): called in a worker thread."""
    try:
        context = ssl.create_default_context(cafile=path)
    except FileNotFoundError:
        raise UsageError(f"{source}: the CA bundle {path!r} does not exist") from None
    except OSError as exc:
        raise UsageError(
            f"{source}: the CA bundle {path!r} cannot be read ({exc.strerror or exc})"
        ) from None
    except ssl.SSLError as exc:
        raise UsageError(
            f"{source}: the CA bundle {path!r} holds no usable PEM certificate "
            f"({exc.reason or exc})") from None
    if not context.get_ca_certs():
        raise UsageError(f"{source}: the CA bundle {path!r} holds no CA certificate")
    return context


def check_user_agent_extra(extra: object) -> str | None:
    """``user_agent_extra=``: printable text, appended as it is (as botocore's is)."""
    if extra is None:
        return None
    if not isinstance(extra, str):
        raise UsageError(f"user_agent_extra must be a str or None, not {type(extra).__name__}")
    if not extra.isprintable() or not extra.isascii():
        raise UsageError("user_agent_extra must be printable ASCII (no line breaks)")
    return extra


def _user_agent(environ: Mapping[str, str], extra: str | None = None) -> str:
    agent = USER_AGENT
    app_id = environ.get("AWS_SDK_UA_APP_ID")
    if app_id:
        agent += f" app/{_UA_UNSAFE.sub('-', app_id)}"
    return f"{agent} {extra}" if extra else agent


class _BuffersPayload(aiohttp.payload.Payload):
    """A request body made of the buffers a part already holds: sent without joining."""

    _autoclose = True

    def __init__(self, buffers: Sequence[Buffer], size: int, stall_timeout: float | None) -> None:
        super().__init__(buffers, content_type="application/octet-stream")
        self._size = size
        self._stall_timeout = stall_timeout
        self.stalled = False
        #: Called once the last byte is handed to the socket: the response head's clock.
        self.on_sent: Callable[[], None] | None = None

    def decode(self, encoding: str = "utf-8", errors: str = "strict") -> str:
        raise TypeError("a binary request body has no text form")

    async def write(self, writer: Any) -> None:
        # Marked consumed so aiohttp never silently resends the body after a reset:
        # retries belong to the caller's Retry policy, which re-signs and counts them.
        self._consumed = True
        # Without this, aiohttp joins the headers with the first slice: a copy per part.
        send_headers = getattr(writer, "send_headers", None)
        if send_headers is not None:
            send_headers()
        stall = self._stall_timeout
        loop = asyncio.get_running_loop()
        transport = getattr(writer, "transport", None)
        tls = transport is not None and transport.get_extra_info("ssl_object") is not None
        step = _TLS_WRITE_SLICE if tls else _WRITE_SLICE
        try:
            # One timer per body, pushed forward on progress: a timeout context per slice
            # costs more than the slice's own bookkeeping. It is moved at most every
            # stall/4 seconds, so a stall is detected after 3/4 to 1 x stall_timeout.
            async with asyncio.timeout(None) as deadline:
                due = loop.time()
                for buf in self._value:
                    view = memoryview(buf)
                    for start in range(0, len(view), step):
                        if stall is not None and (now := loop.time()) >= due:
                            deadline.reschedule(now + stall)
                            due = now + stall / 4
                        await writer.write(view[start : start + step])
                        await asyncio.sleep(0)
        except TimeoutError:
            self.stalled = True
            raise
        if self.on_sent is not None:
            self.on_sent()

    async def write_with_length(self, writer: Any, content_length: int | None) -> None:
        await self.write(writer)


#: The most bytes one socket read of a streamed body takes, where the transport lets us
#: say (asyncio's plain-TCP transport reads at most 256 KiB by default). Each read costs a
#: round of Python work (the loop's callback, aiohttp's parser and buffer, a download's
#: step), so fewer, larger reads cost less CPU per GiB; the bytes are the same.
_STREAM_READ_SIZE = 1 << 20


def _widen_reads(resp: aiohttp.ClientResponse) -> None:
    """Let the connection under ``resp`` read up to ``_STREAM_READ_SIZE`` bytes at a time.

    Only asyncio's selector transport has the knob (``max_size``, read per call); other
    transports (TLS, uvloop) are left as they are. The connection keeps the larger size
    for the requests it carries next, which is harmless: a read takes what is there."""
    connection = resp.connection
    transport = connection.transport if connection is not None else None
    if transport is None:
        return
    current = getattr(type(transport), "max_size", None)
    if isinstance(current, int) and current < _STREAM_READ_SIZE:
        transport.max_size = _STREAM_READ_SIZE  # type: ignore[attr-defined]


class BodyStream:
    """The answer to ``Transport.stream()``: status, lower-cased headers, and its body
    read into the caller's memory."""

    def __init__(self, resp: aiohttp.ClientResponse, operation: str) -> None:
        self._resp = resp
        self._operation = operation
        self.status = resp.status
        self.headers: Mapping[str, str] = {k.lower(): v for k, v in resp.headers.items()}

    async def readinto(self, view: memoryview) -> int:
        """Up to ``len(view)`` bytes of the body copied into ``view``; 0 at its end."""
        chunk = await self._resp.content.read(len(view))
        got = len(chunk)
        view[:got] = chunk
        return got

    async def read_piece(self) -> bytes:
        """The body's next bytes as they arrived from the socket, without a copy (the
        ``bytes`` aiohttp made); ``b""`` at its end. A download keeps these pieces and
        hands them to the consumer as they are: copying them into a buffer of its own,
        then out again per chunk, cost more CPU than the network read itself."""
        content = self._resp.content
        while True:
            piece, end_of_http_chunk = await content.readchunk()
            # (b"", True) marks the end of one HTTP chunk (chunked encoding), not of the
            # body, which is (b"", False).
            if piece or not end_of_http_chunk:
                return piece

    async def error_body(self) -> bytes:
        """An error answer's body (up to the error cap): for ``error_from``."""
        return await Transport._read_body(self._resp, "GET", self._operation)


class Transport:
    """Sends one HTTP request and returns its whole (small) response.

    The connection pool belongs to one event loop: the one the transport is first used
    in (or, for a borrowed session, the session's). Use from any other loop is refused
    with ``UsageError`` before anything is sent, since aiohttp would otherwise fail
    half-way through (after, say, CreateMultipartUpload) with a bare ``RuntimeError``.

    ``environ`` (default ``os.environ``) is read here, once: ``AWS_CA_BUNDLE``, the proxy
    variables and ``AWS_SDK_UA_APP_ID``. The CA bundle file itself is read later (see the
    module's docstring).
    """

    def __init__(
        self,
        session: aiohttp.ClientSession | None = None,
        *,
        connect_timeout: float | None = 10.0,
        stall_timeout: float | None = 60.0,
        max_connections: int = 64,
        environ: Mapping[str, str] | None = None,
        ca_bundle: str | os.PathLike[str] | None = None,
        proxy: str | None = None,
        user_agent_extra: str | None = None,
    ) -> None:
        if session is not None and not isinstance(session, aiohttp.ClientSession):
            raise UsageError(f"session must be an aiohttp.ClientSession, not {session!r}")
        if (isinstance(max_connections, bool) or not isinstance(max_connections, int)
                or max_connections < 1):
            raise UsageError(f"max_connections must be an int >= 1, not {max_connections!r}")
        connect_timeout = _check_timeout("connect_timeout", connect_timeout)
        stall_timeout = _check_timeout("stall_timeout", stall_timeout)
        ca_path, proxy = check_transport_options(session=session, ca_bundle=ca_bundle,
                                                 proxy=proxy)
        env = os.environ if environ is None else environ
        self._user_agent = _user_agent(env, check_user_agent_extra(user_agent_extra))
        #: (path, where it came from) of the CA bundle; its context is made on first need.
        self._ca_bundle: tuple[str, str] | None = None
        self._ssl_context: ssl.SSLContext | None = None
        self._explicit_proxy = _parse_proxy(proxy, "proxy") if proxy is not None else None
        #: The proxy variables as they were now (AWS's tools read them once, at start).
        self._proxy_env: dict[str, str] = {}
        #: origin ("https://host:port") -> the proxy chosen for it (None: direct).
        self._proxies: dict[str, _Proxy | None] = {}
        if session is None:
            env_bundle = env.get("AWS_CA_BUNDLE")
            if ca_path is not None:
                self._ca_bundle = (ca_path, "ca_bundle")
            elif env_bundle:
                self._ca_bundle = (env_bundle, "AWS_CA_BUNDLE")
            if self._explicit_proxy is None:
                self._proxy_env = {name: env[name] for base in _PROXY_VARIABLES
                                   for name in (base, base.lower()) if name in env}
                for base in ("HTTPS_PROXY", "HTTP_PROXY"):
                    value = _env(self._proxy_env, base)
                    if value is not None:  # refused now, rather than on first use
                        name = base.lower() if self._proxy_env.get(base.lower()) else base
                        _parse_proxy(value, name)
        self._session = session
        self._owns_session = session is None
        # A borrowed session is bound to the loop it was made in (aiohttp keeps it only
        # privately: the public ``loop`` property is deprecated). Ours binds on first use.
        self._loop: asyncio.AbstractEventLoop | None = (
            getattr(session, "_loop", None) if session is not None else None
        )
        self._closed = False
        self._stall_timeout = stall_timeout
        self._max_connections = max_connections
        self._timeout = aiohttp.ClientTimeout(
            total=None, sock_connect=connect_timeout, sock_read=stall_timeout
        )

    def _session_for(self, loop: asyncio.AbstractEventLoop) -> aiohttp.ClientSession:
        """The session to send with from ``loop``; per request, so kept to a few compares."""
        if self._closed:
            raise UsageError("this S3Client is closed; create a new one to send more requests")
        session = self._session
        if session is None:
            connector = aiohttp.TCPConnector(limit=self._max_connections)
            session = aiohttp.ClientSession(connector=connector, auto_decompress=False)
            self._session, self._loop = session, loop
            return session
        if self._loop is not loop:
            if self._loop is None:  # a borrowed session whose loop aiohttp did not expose
                self._loop = loop
            else:
                raise UsageError(self._wrong_loop(self._loop))
        if session.closed:
            raise UsageError(
                "the aiohttp session passed as session= has been closed by its owner; "
                "pass an open one (s3stream borrows it and never closes it)"
            )
        return session

    def _proxy_for(self, url: str) -> _Proxy | None:
        """The proxy for ``url``: one dict look-up per request once its origin was seen."""
        if self._explicit_proxy is not None:
            return self._explicit_proxy
        if not self._proxy_env:
            return None
        origin = "/".join(url.split("/", 3)[:3])
        try:
            return self._proxies[origin]
        except KeyError:
            pass
        chosen = proxy_for(origin, self._proxy_env)
        proxy = None if chosen is None else _parse_proxy(chosen, "proxy")
        if len(self._proxies) >= _PROXY_CACHE:
            self._proxies.clear()
        self._proxies[origin] = proxy
        logger.debug("requests to %s go %s", origin,
                     "direct" if proxy is None else f"through proxy {proxy.shown}")
        return proxy

    async def _ssl_for(self, url: str, proxy: _Proxy | None) -> ssl.SSLContext | bool:
        """What aiohttp verifies TLS with: its default (True), or the CA bundle's context,
        made (in a worker thread: it reads a file) by the first request that needs it."""
        if self._ca_bundle is None or not (
                url.startswith("https:") or (proxy is not None and proxy.url.scheme == "https")):
            return True
        if self._ssl_context is None:
            context = await asyncio.to_thread(_load_ca_bundle, *self._ca_bundle)
            # Two first requests may both have loaded it: the first one kept.
            if self._ssl_context is None:
                self._ssl_context = context
        return self._ssl_context

    def _wrong_loop(self, bound: asyncio.AbstractEventLoop) -> str:
        if bound.is_closed():
            why = ("its event loop has been closed (was it first used under an earlier "
                   "asyncio.run()?)")
        else:
            why = "it belongs to another event loop than the running one"
        if self._owns_session:
            what = "this S3Client's connection pool"
            fix = ("Create the S3Client inside the running event loop (in your async main "
                   "or at application startup), one client per event loop")
        else:
            what = "the aiohttp session passed as session="
            fix = ("Create the aiohttp session and the S3Client inside the running event "
                   "loop, one of each per event loop")
        return f"{what} cannot be used here: {why}. {fix}. Nothing was sent."

    async def aclose(self) -> None:
        self._closed = True
        session, self._session = self._session, None
        if not self._owns_session or session is None:
            return
        try:
            running: asyncio.AbstractEventLoop | None = asyncio.get_running_loop()
        except RuntimeError:
            running = None
        # A session's sockets can only be closed by its own loop; from any other (or
        # after that loop was closed) it is dropped, as there is nothing left to run it.
        if running is self._loop:
            await session.close()

    @contextlib.asynccontextmanager
    async def _exchange(
        self,
        method: str,
        url: str,
        headers: Sequence[tuple[str, str]],
        body: Sequence[Buffer],
        size: int,
        *,
        operation: str,
    ) -> AsyncIterator[aiohttp.ClientResponse]:
        """One request, sent; the response (head read) for the block to read its body.

        Errors of aiohttp or the OS, while sending, waiting for the head or in the block
        (reading the body), come out as ``TransportError``/``StallError``."""
        loop = asyncio.get_running_loop()
        session = self._session_for(loop)
        proxy = self._proxy_for(url)
        tls = await self._ssl_for(url, proxy)
        # Added after signing, so never signed: proxies may rewrite it. A User-Agent the
        # caller chose (and had signed) is left alone.
        sent_headers = list(headers)
        if not any(name.lower() == "user-agent" for name, _ in sent_headers):
            sent_headers.append(("User-Agent", self._user_agent))
        proxy_headers: dict[str, str] | None = None
        if proxy is not None and proxy.authorization is not None:
            if url.startswith("https:"):  # on the CONNECT only, never inside the tunnel
                proxy_headers = {"Proxy-Authorization": proxy.authorization}
            else:  # forwarded HTTP: the proxy reads (and should strip) it from the request
                sent_headers.append(("Proxy-Authorization", proxy.authorization))
        stall = self._stall_timeout
        # Always our payload, even when empty: it is what stops aiohttp's own silent resend,
        # and aiohttp calls its write() even for an empty body, right after the headers go.
        payload = _BuffersPayload(body, size, stall)
        # aiohttp's sock_read restarts on every byte, so it alone cannot see a head that
        # trickles in. This deadline, armed when the body is sent (the server cannot
        # answer a request it has not received), bounds the whole head.
        head_deadline = asyncio.timeout(None)
        awaiting_head = True
        if stall is not None:
            def start_head_clock() -> None:
                # The body may end after an early answer (a 403 before the body was read).
                if awaiting_head:
                    head_deadline.reschedule(loop.time() + stall)

            payload.on_sent = start_head_clock
        try:
            async with head_deadline:
                resp = await session.request(
                    method,
                    URL(url, encoded=True),
                    headers=sent_headers,
                    data=payload,
                    proxy=None if proxy is None else proxy.url,
                    proxy_headers=proxy_headers,
                    ssl=tls,
                    timeout=self._timeout,
                    allow_redirects=False,
                    raise_for_status=False,
                    auto_decompress=False,
                )
                awaiting_head = False
            async with resp:
                yield resp
        except (aiohttp.ClientError, OSError) as exc:
            if payload.stalled:
                raise StallError(
                    f"{operation}: no progress sending the body for {stall} s",
                    operation=operation,
                ) from exc
            if head_deadline.expired():
                raise StallError(
                    f"{operation}: no complete response head within {stall} s of sending "
                    "the request",
                    operation=operation,
                ) from exc
            via = "" if proxy is None else f" (through proxy {proxy.shown})"
            if isinstance(exc, _CONNECT_TIMEOUT):
                raise TransportError(
                    f"{operation}: could not connect within {self._timeout.sock_connect} s"
                    f"{via}",
                    operation=operation,
                ) from exc
            if isinstance(exc, asyncio.TimeoutError | aiohttp.ServerTimeoutError):
                raise StallError(
                    f"{operation}: no response data for {stall} s",
                    operation=operation,
                ) from exc
            # A certificate or TLS setup failure will not fix itself on a retry, nor will
            # a proxy's refusal of our credentials.
            permanent = isinstance(exc, aiohttp.ClientSSLError) or (
                isinstance(exc, aiohttp.ClientHttpProxyError) and exc.status == 407)
            raise TransportError(
                f"{operation}: {type(exc).__name__}: {exc}{via}", operation=operation,
                retryable=not permanent,
            ) from exc

    async def send(
        self,
        method: str,
        url: str,
        headers: Sequence[tuple[str, str]],
        body: Sequence[Buffer],
        size: int,
        *,
        operation: str,
    ) -> Response:
        async with self._exchange(method, url, headers, body, size,
                                  operation=operation) as resp:
            content = await self._read_body(resp, method, operation)
            return Response(resp.status, {k.lower(): v for k, v in resp.headers.items()},
                            content)

    @contextlib.asynccontextmanager
    async def stream(self, method: str, url: str, headers: Sequence[tuple[str, str]], *,
                     operation: str) -> AsyncIterator[BodyStream]:
        """A request without a body whose answer's body the block reads bit by bit
        (``BodyStream.read_piece``, or ``readinto`` memory it owns): a download's range.

        The same bounds and error mapping as ``send()``: ``stall_timeout`` between reads
        (``StallError``), a reset mid-body is a retryable ``TransportError``. Leaving the
        block before the body is read closes the connection instead of reading the rest.
        """
        async with self._exchange(method, url, headers, (), 0, operation=operation) as resp:
            _widen_reads(resp)
            yield BodyStream(resp, operation)

    async def fetch(self, method: str, url: str, headers: Sequence[tuple[str, str]],
                    body: bytes, timeout: float) -> Response:  # noqa: ASYNC109
        """One small request to a credentials service (IMDS, STS, SSO...), bounded by
        ``timeout`` seconds in all: a laptop must not wait for a metadata service that
        is not there. Errors are ``TransportError``, like every other request's."""
        try:
            async with asyncio.timeout(timeout):
                return await self.send(method, url, headers, (body,) if body else (),
                                       len(body), operation=f"{method} {url.split('?')[0]}")
        except TimeoutError:
            raise TransportError(f"{method} {url.split('?')[0]}: no answer within {timeout} s",
                                 operation="credentials") from None

    @staticmethod
    async def _read_body(resp: aiohttp.ClientResponse, method: str, operation: str) -> bytes:
        """The body, up to its cap; what lies past the cap is never read into memory."""
        if method == "HEAD":
            return b""
        ok = 200 <= resp.status < 300
        cap = _OK_BODY_CAP if ok else _ERROR_BODY_CAP
        if ok and resp.content_length is not None and resp.content_length > cap:
            resp.close()
            raise _too_large(resp.status, cap, operation)
        chunks: list[bytes] = []
        got = 0
        # One byte past the cap tells "exactly the cap" from "more".
        while got <= cap:
            chunk = await resp.content.read(cap + 1 - got)
            if not chunk:
                return b"".join(chunks)
            chunks.append(chunk)
            got += len(chunk)
        # Closing the connection discards the rest without reading it; the connection
        # could not be reused before the rest was read anyway.
        resp.close()
        if ok:
            raise _too_large(resp.status, cap, operation)
        return b"".join(chunks)[:cap]
