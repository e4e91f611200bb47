"""Credentials from the EC2 instance metadata service (IMDS), IMDSv2 as AWS documents it.

The exchange, three small requests:

1. ``PUT /latest/api/token`` with ``X-aws-ec2-metadata-token-ttl-seconds: 21600``: a session
   token (kept and reused until shortly before its TTL ends);
2. ``GET /latest/meta-data/iam/security-credentials/`` with ``X-aws-ec2-metadata-token``:
   the name of the instance profile's role (first line);
3. ``GET /latest/meta-data/iam/security-credentials/<role>``: a JSON document with ``Code``
   (``"Success"``), ``AccessKeyId``, ``SecretAccessKey``, ``Token`` and ``Expiration``.

What each outcome means:

* ``AWS_EC2_METADATA_DISABLED=true``: None, without any request.
* The token request gets no answer (refused, unreachable, no answer within the timeout):
  not on EC2 (a laptop, a CI runner), so None, quickly: 1 s per request and 1 attempt by
  default, as botocore (``AWS_METADATA_SERVICE_TIMEOUT``, ``AWS_METADATA_SERVICE_NUM_ATTEMPTS``
  or the constructor's ``timeout`` / ``attempts``). In a container on EC2 whose hop limit is 1
  the token's answer never arrives either: raise the instance's hop limit to 2, as AWS advises.
* The token request is answered 403, 404 or 405 (IMDSv1 only, or tokens turned off): like
  botocore, the metadata is read without a token (IMDSv1), unless
  ``AWS_EC2_METADATA_V1_DISABLED=true``, in which case it is a ``CredentialsError``.
* A metadata GET answered 401: the token expired or was revoked; a new token is fetched once
  and the GET sent again.
* The role listing answered 404, or empty: the instance has no instance profile, so None.
* Any other failure of a metadata service that did answer (an error status, a ``Code`` other
  than ``Success``, a document that cannot be read, no answer to a later request): a
  ``CredentialsError``. Its message never holds the token, the secret or the document.

The endpoint is ``http://169.254.169.254``, ``http://[fd00:ec2::254]`` with
``AWS_EC2_METADATA_SERVICE_ENDPOINT_MODE=IPv6``, or ``AWS_EC2_METADATA_SERVICE_ENDPOINT``
(the constructor's ``endpoint`` before all of them). Reading the JSON document is a pure
function (``parse_credentials_document``), shared with the container provider.
"""

from __future__ import annotations

import json
import logging
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING
from urllib.parse import quote, urlsplit

from ..exceptions import CredentialsError, TransportError, UsageError
from ._model import Credentials, ProviderContext

if TYPE_CHECKING:
    from .._protocol import Response

logger = logging.getLogger("s3stream")

DEFAULT_ENDPOINT = "http://169.254.169.254"
IPV6_ENDPOINT = "http://[fd00:ec2::254]"
#: botocore's defaults: a laptop does not wait for a metadata service that is not there.
DEFAULT_TIMEOUT = 1.0
DEFAULT_ATTEMPTS = 1
#: The longest TTL IMDS grants (6 hours).
MAX_TOKEN_TTL = 21600

_TOKEN_PATH = "/latest/api/token"
_ROLES_PATH = "/latest/meta-data/iam/security-credentials/"
_TTL_HEADER = "X-aws-ec2-metadata-token-ttl-seconds"
_TOKEN_HEADER = "X-aws-ec2-metadata-token"
#: Statuses of a token request that mean "no IMDSv2 here" (botocore's list).
_NO_TOKENS = (403, 404, 405)
#: Characters a role name may hold that need no percent-encoding in a path segment.
_ROLE_SAFE = "+=,.@-_"

#: The credentials document's required fields, in the order they are checked. ``Token`` is
#: always there in AWS's answers, and used when it is; an endpoint that serves long-term
#: keys (a local emulator, a test server standing in for S3-compatible stores) may leave
#: it out or empty, and the keys are then used without a session token.
_REQUIRED_FIELDS = ("AccessKeyId", "SecretAccessKey", "Expiration")


def _true(value: str | None) -> bool:
    return value is not None and value.strip().lower() == "true"


def _url_ok(url: str) -> bool:
    parts = urlsplit(url)
    return (parts.scheme in ("http", "https") and bool(parts.netloc)
            and url.isascii() and not any(c.isspace() or ord(c) < 32 for c in url))


def _positive_float(value: object, name: str) -> float:
    try:
        number = float(value) if isinstance(value, str) else value
    except ValueError:
        number = None
    if (isinstance(number, bool) or not isinstance(number, int | float)
            or not math.isfinite(number) or number <= 0):
        raise UsageError(f"{name} must be a positive number of seconds, not {value!r}")
    return float(number)


def _positive_int(value: object, name: str) -> int:
    try:
        number = int(value.strip()) if isinstance(value, str) else value
    except ValueError:
        number = None
    if isinstance(number, bool) or not isinstance(number, int) or number < 1:
        raise UsageError(f"{name} must be an int >= 1, not {value!r}")
    return number


@dataclass(frozen=True, slots=True)
class ImdsSettings:
    """Where and how patiently to ask IMDS, as resolved from arguments and environment."""

    endpoint: str
    timeout: float
    attempts: int
    #: Whether a refused token request falls back to reading without a token (IMDSv1).
    v1_fallback: bool


def imds_settings(
    environ: Mapping[str, str],
    *,
    endpoint: str | None = None,
    timeout: float | None = None,
    attempts: int | None = None,
) -> ImdsSettings | None:
    """The settings for IMDS (arguments first, then the environment), or None when
    ``AWS_EC2_METADATA_DISABLED=true``. Bad values are a ``UsageError`` naming the setting."""
    if _true(environ.get("AWS_EC2_METADATA_DISABLED")):
        return None
    if endpoint is not None:
        chosen, name = endpoint, "endpoint"
    elif environ.get("AWS_EC2_METADATA_SERVICE_ENDPOINT"):
        chosen, name = (environ["AWS_EC2_METADATA_SERVICE_ENDPOINT"].strip(),
                        "AWS_EC2_METADATA_SERVICE_ENDPOINT")
    else:
        mode = (environ.get("AWS_EC2_METADATA_SERVICE_ENDPOINT_MODE") or "IPv4").strip()
        if mode.lower() not in ("ipv4", "ipv6"):
            raise UsageError("AWS_EC2_METADATA_SERVICE_ENDPOINT_MODE must be IPv4 or IPv6, "
                             f"not {mode!r}")
        chosen, name = (IPV6_ENDPOINT if mode.lower() == "ipv6" else DEFAULT_ENDPOINT), ""
    if not isinstance(chosen, str) or not _url_ok(chosen):
        raise UsageError(f"{name} must be an http:// or https:// URL (percent-encoded), "
                         f"not {chosen!r}")
    if timeout is None:
        raw = environ.get("AWS_METADATA_SERVICE_TIMEOUT")
        timeout = (_positive_float(raw, "AWS_METADATA_SERVICE_TIMEOUT") if raw
                   else DEFAULT_TIMEOUT)
    else:
        timeout = _positive_float(timeout, "timeout")
    if attempts is None:
        raw = environ.get("AWS_METADATA_SERVICE_NUM_ATTEMPTS")
        attempts = (_positive_int(raw, "AWS_METADATA_SERVICE_NUM_ATTEMPTS") if raw
                    else DEFAULT_ATTEMPTS)
    else:
        attempts = _positive_int(attempts, "attempts")
    return ImdsSettings(chosen.rstrip("/"), timeout, attempts,
                        not _true(environ.get("AWS_EC2_METADATA_V1_DISABLED")))


def parse_expiration(value: object, *, provider: str) -> datetime:
    """An ISO 8601 time (``2026-12-02T03:04:05Z``) as an aware datetime; UTC when it has
    no offset."""
    if not isinstance(value, str):
        raise CredentialsError(f"Expiration is a {type(value).__name__}, not a time",
                               provider=provider)
    text = value.strip()
    try:
        when = datetime.fromisoformat(text[:-1] + "+00:00" if text[-1:] in "Zz" and text
                                      else text)
    except ValueError:
        raise CredentialsError(f"Expiration {text[:40]!r} is not an ISO 8601 time",
                               provider=provider) from None
    return when if when.tzinfo is not None else when.replace(tzinfo=UTC)


def parse_credentials_document(body: bytes, *, provider: str) -> Credentials:
    """The credentials in a metadata service's JSON answer (IMDS's or a container
    endpoint's): ``AccessKeyId``, ``SecretAccessKey`` and ``Expiration``; ``Token`` when it
    is there (AWS always sends one); and, when present, ``Code``, which must be ``Success``.

    Errors are ``CredentialsError`` naming the field, never showing a value of the document.
    """
    try:
        doc = json.loads(body)
    except (ValueError, UnicodeDecodeError):
        raise CredentialsError(f"the answer ({len(body)} bytes) is not JSON",
                               provider=provider) from None
    if not isinstance(doc, dict):
        raise CredentialsError(f"the answer is a JSON {type(doc).__name__}, not an object",
                               provider=provider)
    code = doc.get("Code")
    if code is not None and code != "Success":
        shown = code[:64] if isinstance(code, str) else type(code).__name__
        raise CredentialsError(f"answered Code {shown!r} instead of 'Success'",
                               provider=provider)
    for name in _REQUIRED_FIELDS:
        value = doc.get(name)
        if not isinstance(value, str) or not value.strip():
            what = "is missing" if value is None else "is not a non-empty string"
            raise CredentialsError(f"the answer's {name} {what}", provider=provider)
    token = doc.get("Token")
    if token is not None and not isinstance(token, str):
        raise CredentialsError("the answer's Token is not a string", provider=provider)
    expiry = parse_expiration(doc["Expiration"], provider=provider)
    try:
        return Credentials(doc["AccessKeyId"].strip(), doc["SecretAccessKey"].strip(),
                           (token.strip() or None) if token else None, expiry=expiry)
    except UsageError as exc:
        # Credentials' own checks name the field, never its value.
        raise CredentialsError(f"unusable credentials: {exc}", provider=provider) from None


def _valid_token(text: str) -> bool:
    return bool(text) and text.isascii() and text.isprintable()


class InstanceMetadataProvider:
    """Credentials of the EC2 instance's role, from IMDS (see the module's docstring).

    ``endpoint``, ``timeout`` (seconds per request) and ``attempts`` (per request) override
    the environment. The session token is kept by the provider, never shown by its repr.
    """

    name = "EC2 instance metadata (IMDS)"

    def __init__(
        self,
        *,
        endpoint: str | None = None,
        timeout: float | None = None,
        attempts: int | None = None,
        token_ttl: int = MAX_TOKEN_TTL,
    ) -> None:
        # Checked now, with an empty environment, so a bad argument fails at construction.
        imds_settings({}, endpoint=endpoint, timeout=timeout, attempts=attempts)
        if (isinstance(token_ttl, bool) or not isinstance(token_ttl, int)
                or not 1 <= token_ttl <= MAX_TOKEN_TTL):
            raise UsageError(f"token_ttl must be an int from 1 to {MAX_TOKEN_TTL} seconds, "
                             f"not {token_ttl!r}")
        self._endpoint = endpoint
        self._timeout = timeout
        self._attempts = attempts
        self._token_ttl = token_ttl
        #: The cached session token: the endpoint it is for, itself, and until when to use it.
        self._token: tuple[str, str, datetime] | None = None

    def __repr__(self) -> str:
        args = [f"{k}={v!r}" for k, v in (("endpoint", self._endpoint),
                                          ("timeout", self._timeout),
                                          ("attempts", self._attempts)) if v is not None]
        if self._token_ttl != MAX_TOKEN_TTL:
            args.append(f"token_ttl={self._token_ttl}")
        return f"InstanceMetadataProvider({', '.join(args)})"

    def _error(self, message: str) -> CredentialsError:
        return CredentialsError(message, provider=self.name)

    async def load(self, ctx: ProviderContext) -> Credentials | None:
        settings = imds_settings(ctx.environ, endpoint=self._endpoint, timeout=self._timeout,
                                 attempts=self._attempts)
        if settings is None:
            logger.debug("%s: disabled by AWS_EC2_METADATA_DISABLED", self.name)
            return None
        try:
            token = await self._session_token(ctx, settings)
        except TransportError as exc:
            logger.debug("%s: no answer from %s (%s): not on EC2", self.name,
                         settings.endpoint, type(exc).__name__)
            return None
        listing, token = await self._get(ctx, settings, _ROLES_PATH, token)
        if listing.status == 404:
            logger.debug("%s: the instance has no instance profile (404)", self.name)
            return None
        if listing.status != 200:
            raise self._error(f"listing the instance's role answered HTTP {listing.status}")
        role = next((line.strip() for line in listing.body.decode("utf-8", "replace")
                     .splitlines() if line.strip()), "")
        if not role:
            logger.debug("%s: the instance has no instance profile (empty listing)",
                         self.name)
            return None
        answer, _ = await self._get(ctx, settings,
                                    _ROLES_PATH + quote(role, safe=_ROLE_SAFE), token)
        if answer.status == 404:
            raise self._error(f"the role {role!r} was listed but has no credentials "
                              "(HTTP 404)")
        if answer.status != 200:
            raise self._error(f"the credentials of role {role!r} answered HTTP "
                              f"{answer.status}")
        creds = parse_credentials_document(answer.body, provider=self.name)
        logger.debug("%s: credentials of role %s, expiring %s", self.name, role,
                     creds.expiry.isoformat() if creds.expiry else "never")
        return creds

    async def _session_token(self, ctx: ProviderContext, settings: ImdsSettings,
                             *, fresh: bool = False) -> str | None:
        """A session token (cached unless ``fresh``), or None to read without one (IMDSv1).

        Raises ``TransportError`` when the token request gets no answer at all."""
        now = ctx.now()
        cached = self._token
        if (not fresh and cached is not None and cached[0] == settings.endpoint
                and now < cached[2]):
            return cached[1]
        self._token = None
        resp = await self._request(ctx, settings, "PUT", _TOKEN_PATH,
                                   [(_TTL_HEADER, str(self._token_ttl))])
        if resp.status in _NO_TOKENS:
            if not settings.v1_fallback:
                raise self._error(f"the session token request answered HTTP {resp.status} "
                                  "(IMDSv2 unavailable) and AWS_EC2_METADATA_V1_DISABLED "
                                  "forbids reading without one")
            logger.debug("%s: session token refused (HTTP %d): reading without one "
                         "(IMDSv1)", self.name, resp.status)
            return None
        if resp.status != 200:
            raise self._error(f"the session token request answered HTTP {resp.status}")
        token = resp.body.decode("ascii", "replace").strip()
        if not _valid_token(token):
            raise self._error("the session token answer is not a usable header value")
        try:
            ttl = int(resp.headers.get(_TTL_HEADER.lower(), ""))
        except ValueError:
            ttl = self._token_ttl
        ttl = max(1, min(ttl, self._token_ttl))
        # Used until shortly before its end: a minute early, or half its life if shorter.
        margin = min(60.0, ttl / 2)
        self._token = (settings.endpoint, token, now + timedelta(seconds=ttl - margin))
        logger.debug("%s: session token obtained (TTL %d s)", self.name, ttl)
        return token

    async def _get(self, ctx: ProviderContext, settings: ImdsSettings, path: str,
                   token: str | None) -> tuple[Response, str | None]:
        """A metadata GET, and the token it used: on a 401, a new token once, then again."""
        try:
            resp = await self._request(ctx, settings, "GET", path, _token_header(token))
            if resp.status == 401:
                logger.debug("%s: token refused (HTTP 401): getting a new one", self.name)
                token = await self._session_token(ctx, settings, fresh=True)
                resp = await self._request(ctx, settings, "GET", path, _token_header(token))
                if resp.status == 401:
                    self._token = None
                    raise self._error("a metadata request was refused (HTTP 401) with a "
                                      "fresh session token too")
        except TransportError as exc:
            raise self._error(f"the metadata service answered before but not now: {exc}") \
                from exc
        return resp, token

    async def _request(self, ctx: ProviderContext, settings: ImdsSettings, method: str,
                       path: str, headers: Sequence[tuple[str, str]]) -> Response:
        """One request, tried up to ``attempts`` times on no answer or a 5xx."""
        url = settings.endpoint + path
        for attempt in range(1, settings.attempts + 1):
            try:
                resp = await ctx.fetch(method, url, headers, b"", settings.timeout)
            except TransportError:
                if attempt == settings.attempts:
                    raise
                continue
            if resp.status < 500 or attempt == settings.attempts:
                return resp
        raise AssertionError("unreachable")  # pragma: no cover


def _token_header(token: str | None) -> list[tuple[str, str]]:
    return [(_TOKEN_HEADER, token)] if token is not None else []
