"""Credentials from a container credentials endpoint: ECS and Fargate tasks, EKS Pod Identity.

Configured by the environment the platform sets, read as botocore does:

* ``AWS_CONTAINER_CREDENTIALS_RELATIVE_URI`` (ECS, Fargate): ``http://169.254.170.2`` + the
  path. It comes first when both are set.
* ``AWS_CONTAINER_CREDENTIALS_FULL_URI`` (EKS Pod Identity, Greengrass, local emulators): any
  ``https://`` URL, or an ``http://`` one whose host is a loopback address (``localhost``,
  ``127.0.0.1``, ``[::1]``...), ``169.254.170.2``, ``169.254.170.23`` or ``[fd00:ec2::23]``.
  Any other host is refused with a ``UsageError`` naming the variable and the host, since
  the request carries an authorization token.
* ``Authorization`` header: the content of ``AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE``, read
  again for every request (EKS rotates it) in a worker thread (``ctx.run_blocking``), never
  on the event loop; else ``AWS_CONTAINER_AUTHORIZATION_TOKEN``.

The answer is a JSON document with ``AccessKeyId``, ``SecretAccessKey``, ``Token`` and
``Expiration``. Neither variable set: None, with nothing sent. Set, but the endpoint gives no
credentials (no answer after ``attempts`` tries, an error status, a document that cannot be
read, an unreadable token file): ``CredentialsError``. No token or secret ever shows in a
message, a repr or a log line.
"""

from __future__ import annotations

import ipaddress
import logging
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from urllib.parse import quote, urlsplit

from ..exceptions import CredentialsError, TransportError, UsageError
from ._imds import parse_credentials_document
from ._model import Credentials, ProviderContext

logger = logging.getLogger("s3stream")

RELATIVE_BASE = "http://169.254.170.2"
#: botocore's container fetcher: 2 s per request, 3 attempts.
DEFAULT_TIMEOUT = 2.0
DEFAULT_ATTEMPTS = 3

RELATIVE_VAR = "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI"
FULL_VAR = "AWS_CONTAINER_CREDENTIALS_FULL_URI"
TOKEN_FILE_VAR = "AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE"
TOKEN_VAR = "AWS_CONTAINER_AUTHORIZATION_TOKEN"

#: Hosts a full URI may name over plain http, besides loopback addresses (botocore's list).
ALLOWED_HTTP_HOSTS = frozenset({"localhost", "169.254.170.2", "169.254.170.23", "fd00:ec2::23"})
#: What stays as it is when a URI from the environment is percent-encoded: the reserved
#: characters and ``%`` itself (an already-encoded URI is left unchanged).
_URL_SAFE = ":/?#[]@!$&'()*+,;=%~"


@dataclass(frozen=True, slots=True)
class ContainerTarget:
    """Where to ask and with what authorization, as the environment configures it."""

    url: str
    #: Which variable gave the URL.
    variable: str
    #: Read for every request when set.
    token_file: str | None = None
    token: str | None = field(default=None, repr=False)


def _encoded(uri: str) -> str:
    return quote(uri, safe=_URL_SAFE)


def _host_allowed(host: str) -> bool:
    if host in ALLOWED_HTTP_HOSTS:
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def check_full_uri(uri: str) -> str:
    """``uri`` percent-encoded, when it is one s3stream may send an authorization token to;
    else a ``UsageError`` naming the variable and the host (never the whole URI, whose
    query could hold a secret)."""
    parts = urlsplit(uri.strip())
    scheme = parts.scheme.lower()
    if scheme not in ("http", "https") or not parts.hostname:
        raise UsageError(f"{FULL_VAR} must be an http:// or https:// URL with a host "
                         f"(its scheme is {scheme or 'missing'!r})")
    if scheme == "http" and not _host_allowed(parts.hostname):
        raise UsageError(
            f"{FULL_VAR} names host {parts.hostname!r}, which is not allowed over http: "
            "use https, or a loopback address, 169.254.170.2, 169.254.170.23 or "
            "[fd00:ec2::23]"
        )
    return _encoded(uri.strip())


def container_target(environ: Mapping[str, str], *,
                     relative_base: str = RELATIVE_BASE) -> ContainerTarget | None:
    """The endpoint the environment configures, or None when it configures none. Pure."""
    relative = environ.get(RELATIVE_VAR, "").strip()
    full = environ.get(FULL_VAR, "").strip()
    if relative:
        if not relative.startswith("/"):
            raise UsageError(f"{RELATIVE_VAR} must be a path starting with '/'")
        url, variable = relative_base.rstrip("/") + _encoded(relative), RELATIVE_VAR
    elif full:
        url, variable = check_full_uri(full), FULL_VAR
    else:
        return None
    token_file = environ.get(TOKEN_FILE_VAR, "").strip() or None
    token = None if token_file else (environ.get(TOKEN_VAR) or None)
    return ContainerTarget(url, variable, token_file, token)


def read_token_file(path: str) -> str:
    """The authorization token in ``path`` (blocking: run it off the loop)."""
    with open(path, encoding="utf-8") as f:
        return f.read()


class ContainerProvider:
    """Credentials from the ECS / EKS Pod Identity endpoint (see the module's docstring).

    ``timeout`` is per request, ``attempts`` how many requests at most; ``relative_base``
    is where a relative URI points (ECS's link-local address: tests point it elsewhere).
    """

    name = "container credentials endpoint (ECS, EKS Pod Identity)"

    def __init__(self, *, timeout: float = DEFAULT_TIMEOUT, attempts: int = DEFAULT_ATTEMPTS,
                 relative_base: str = RELATIVE_BASE) -> None:
        if (isinstance(timeout, bool) or not isinstance(timeout, int | float)
                or not math.isfinite(timeout) or timeout <= 0):
            raise UsageError(f"timeout must be a positive number of seconds, not {timeout!r}")
        if isinstance(attempts, bool) or not isinstance(attempts, int) or attempts < 1:
            raise UsageError(f"attempts must be an int >= 1, not {attempts!r}")
        if not isinstance(relative_base, str) or urlsplit(relative_base).scheme not in (
                "http", "https"):
            raise UsageError(f"relative_base must be an http:// or https:// URL, not "
                             f"{relative_base!r}")
        self._timeout = float(timeout)
        self._attempts = attempts
        self._relative_base = relative_base

    def __repr__(self) -> str:
        base = ("" if self._relative_base == RELATIVE_BASE
                else f", relative_base={self._relative_base!r}")
        return f"ContainerProvider(timeout={self._timeout}, attempts={self._attempts}{base})"

    def _error(self, message: str) -> CredentialsError:
        return CredentialsError(message, provider=self.name)

    async def _authorization(self, ctx: ProviderContext, target: ContainerTarget) -> str | None:
        if target.token_file is not None:
            path = target.token_file
            try:
                raw = await ctx.run_blocking(lambda: read_token_file(path))
            except (OSError, UnicodeDecodeError) as exc:
                why = exc.strerror if isinstance(exc, OSError) and exc.strerror else \
                    type(exc).__name__
                raise self._error(f"cannot read {TOKEN_FILE_VAR} {path}: {why}") from None
            token, source = str(raw).strip(), f"{TOKEN_FILE_VAR} {path}"
        elif target.token is not None:
            token, source = target.token.strip(), TOKEN_VAR
        else:
            return None
        if not token:
            raise self._error(f"the authorization token in {source} is empty")
        if not (token.isascii() and token.isprintable()):
            raise self._error(f"the authorization token in {source} is not a legal header "
                              "value (line break or control character)")
        return token

    async def load(self, ctx: ProviderContext) -> Credentials | None:
        # Imported here: the credentials package stays importable without asyncio.
        import asyncio

        target = container_target(ctx.environ, relative_base=self._relative_base)
        if target is None:
            return None
        where = f"{target.url.split('?')[0]} (from {target.variable})"
        last: TransportError | None = None
        for attempt in range(1, self._attempts + 1):
            # Read again on every try: a rotated token file is picked up at once.
            token = await self._authorization(ctx, target)
            headers = [("Accept", "application/json")]
            if token is not None:
                headers.append(("Authorization", token))
            try:
                resp = await ctx.fetch("GET", target.url, headers, b"", self._timeout)
            except TransportError as exc:
                last = exc
                logger.debug("%s: no answer from %s, try %d of %d (%s)", self.name, where,
                             attempt, self._attempts, type(exc).__name__)
                if attempt < self._attempts:
                    await asyncio.sleep(0.1 * attempt)
                continue
            if resp.status >= 500 and attempt < self._attempts:
                logger.debug("%s: HTTP %d from %s, try %d of %d", self.name, resp.status,
                             where, attempt, self._attempts)
                await asyncio.sleep(0.1 * attempt)
                continue
            if resp.status != 200:
                raise self._error(f"{where} answered HTTP {resp.status}")
            creds = parse_credentials_document(resp.body, provider=self.name)
            logger.debug("%s: credentials from %s, expiring %s", self.name, where,
                         creds.expiry.isoformat() if creds.expiry else "never")
            return creds
        raise self._error(f"no answer from {where} after {self._attempts} tries: {last}") \
            from last
