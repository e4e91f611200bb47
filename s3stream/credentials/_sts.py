"""STS ``AssumeRole`` and ``AssumeRoleWithWebIdentity``: pure builders and readers, and
two async calls that use them.

The builders return a complete ``StsRequest`` (URL, headers, form body); the readers take
an answer's body. Answers are read by their child elements, whatever the root is called
and with or without a namespace, as every other answer in s3stream:
``*Result/Credentials/{AccessKeyId,SecretAccessKey,SessionToken,Expiration}``; errors
are ``ErrorResponse/Error/{Code,Message}``.

The endpoint is ``AWS_ENDPOINT_URL_STS``, else ``AWS_ENDPOINT_URL``, else STS's regional
endpoint ``https://sts.<region>.amazonaws.com``.

No secret, session token or web identity token appears in a repr, an exception message
or a log line: the request's body and headers are hidden from its repr, and an error
message from STS is shown with any of them blanked out.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlencode, urlsplit

from .. import _xml
from .._sigv4 import sign_headers
from ..exceptions import CredentialsError, TransportError, UsageError
from ._model import Credentials, ProviderContext

log = logging.getLogger("s3stream.credentials")

STS_VERSION = "2011-06-15"
#: Seconds one STS request may take in all (connect, send, answer).
DEFAULT_TIMEOUT = 10.0
_FORM = "application/x-www-form-urlencoded; charset=utf-8"


# --------------------------------------------------------------------------- endpoints


def sts_endpoint(environ: Mapping[str, str], region: str) -> str:
    """``AWS_ENDPOINT_URL_STS``, else ``AWS_ENDPOINT_URL``, else the regional endpoint
    (``amazonaws.com.cn`` in the China regions)."""
    custom = environ.get("AWS_ENDPOINT_URL_STS") or environ.get("AWS_ENDPOINT_URL")
    if custom:
        return custom.strip().rstrip("/")
    suffix = "amazonaws.com.cn" if region.startswith("cn-") else "amazonaws.com"
    return f"https://sts.{region}.{suffix}"


def sts_region(environ: Mapping[str, str], profile: Mapping[str, str] | None = None) -> str:
    """``AWS_REGION``, ``AWS_DEFAULT_REGION``, the profile's ``region``, else us-east-1."""
    region = (environ.get("AWS_REGION") or environ.get("AWS_DEFAULT_REGION")
              or (profile or {}).get("region") or "us-east-1").strip()
    if not region or any(c in region for c in "/\r\n ?#@"):
        raise UsageError(f"invalid region {region!r}")
    return region


def default_session_name(now: datetime) -> str:
    """``s3stream-<unix seconds>``, as botocore's ``botocore-session-<seconds>``."""
    return f"s3stream-{int(now.timestamp())}"


# --------------------------------------------------------------------------- requests


@dataclass(frozen=True, slots=True)
class StsRequest:
    """One STS request, complete: ``fetch("POST", url, headers, body, timeout)``."""

    operation: str
    url: str
    role_arn: str
    #: Signed headers (with a session token) or, for web identity, just the form's type.
    headers: tuple[tuple[str, str], ...] = field(repr=False)
    #: The form; for web identity it holds the token.
    body: bytes = field(repr=False)


def _split(endpoint: str) -> tuple[str, str, str]:
    """The URL to POST to, its ``host`` header and its path."""
    parts = urlsplit(endpoint)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise UsageError(f"STS endpoint must be an http:// or https:// URL, not {endpoint!r}")
    if parts.query or parts.fragment:
        raise UsageError("STS endpoint must not have a query or fragment")
    path = parts.path or "/"
    return f"{parts.scheme}://{parts.netloc}{path}", parts.netloc, path


def _form(params: Iterable[tuple[str, str | int | None]]) -> bytes:
    return urlencode([(k, str(v)) for k, v in params if v is not None]).encode("ascii")


def _check_role(role_arn: str, session_name: str, duration_seconds: int | None) -> None:
    if not role_arn or not isinstance(role_arn, str):
        raise UsageError("role_arn must be a non-empty str")
    if not isinstance(session_name, str) or not 2 <= len(session_name) <= 64:
        raise UsageError("role session name must be a str of 2 to 64 characters")
    if duration_seconds is not None and (isinstance(duration_seconds, bool)
                                         or not isinstance(duration_seconds, int)
                                         or duration_seconds < 900):
        raise UsageError(f"duration_seconds must be an int >= 900, not {duration_seconds!r}")


def assume_role_request(
    *,
    endpoint: str,
    region: str,
    credentials: Credentials,
    role_arn: str,
    session_name: str,
    now: datetime,
    duration_seconds: int | None = None,
    external_id: str | None = None,
) -> StsRequest:
    """``AssumeRole``, form-encoded and signed (service ``sts``) with ``credentials``."""
    _check_role(role_arn, session_name, duration_seconds)
    url, host, path = _split(endpoint)
    body = _form([
        ("Action", "AssumeRole"), ("Version", STS_VERSION), ("RoleArn", role_arn),
        ("RoleSessionName", session_name), ("DurationSeconds", duration_seconds),
        ("ExternalId", external_id or None),
    ])
    headers = [("host", host), ("content-type", _FORM)]
    signed = sign_headers(
        method="POST", raw_path=path, query=(), headers=headers,
        payload_hash=hashlib.sha256(body).hexdigest(), credentials=credentials,
        region=region, now=now, service="sts", s3=False,
    )
    # ``host`` is aiohttp's to send; it was signed as the URL's host.
    return StsRequest("AssumeRole", url, role_arn, (headers[1], *signed.items()), body)


def web_identity_request(
    *,
    endpoint: str,
    role_arn: str,
    session_name: str,
    token: str,
    duration_seconds: int | None = None,
) -> StsRequest:
    """``AssumeRoleWithWebIdentity``: unsigned, the token is the proof."""
    _check_role(role_arn, session_name, duration_seconds)
    if not token:
        raise UsageError("the web identity token is empty")
    url, _host, _path = _split(endpoint)
    body = _form([
        ("Action", "AssumeRoleWithWebIdentity"), ("Version", STS_VERSION),
        ("RoleArn", role_arn), ("RoleSessionName", session_name),
        ("WebIdentityToken", token), ("DurationSeconds", duration_seconds),
    ])
    return StsRequest("AssumeRoleWithWebIdentity", url, role_arn, (("content-type", _FORM),),
                      body)


# --------------------------------------------------------------------------- answers


class StsAnswerError(ValueError):
    """An STS answer without usable credentials (the message names elements, no values)."""


def parse_timestamp(value: str) -> datetime:
    """An ISO 8601 time (``Z``, an offset or none, which is UTC) as an aware datetime."""
    text = value.strip()
    if text.endswith("UTC"):  # older SSO caches: "2021-01-01T00:00:00UTC"
        text = text[:-3] + "+00:00"
    try:
        parsed = datetime.fromisoformat(text)
    except ValueError:
        raise StsAnswerError(f"unreadable timestamp {value[:40]!r}") from None
    return parsed if parsed.tzinfo is not None else parsed.replace(tzinfo=UTC)


def _find(content: Any, name: str, depth: int = 0) -> Any:
    """The first element ``name``: a child, else at any depth (a few levels)."""
    if not isinstance(content, dict) or depth > 4:
        return None
    if name in content:
        return content[name]
    for value in content.values():
        found = _find(value, name, depth + 1)
        if found is not None:
            return found
    return None


def _text(content: Mapping[str, Any], name: str) -> str | None:
    value = content.get(name)
    if isinstance(value, dict):
        value = value.get("#text")
    return value.strip() if isinstance(value, str) and value.strip() else None


def parse_credentials(body: bytes) -> Credentials:
    """``Credentials`` (with their expiry) from an ``AssumeRole*Response``."""
    try:
        root, content = _xml.parse(body)
    except _xml.MalformedXML:
        raise StsAnswerError("the answer is not XML") from None
    if root in ("ErrorResponse", "Error"):
        raise StsAnswerError(f"<{root}> where credentials were expected")
    found = _find(content, "Credentials")
    if not isinstance(found, dict):
        raise StsAnswerError(f"<{root}> has no <Credentials>")
    values = {n: _text(found, n) for n in ("AccessKeyId", "SecretAccessKey", "SessionToken",
                                           "Expiration")}
    missing = [n for n in ("AccessKeyId", "SecretAccessKey", "SessionToken") if not values[n]]
    if missing:
        raise StsAnswerError(f"<Credentials> has no <{'>, <'.join(missing)}>")
    expiration = values["Expiration"]
    try:
        return Credentials(
            values["AccessKeyId"] or "", values["SecretAccessKey"] or "",
            values["SessionToken"],
            expiry=parse_timestamp(expiration) if expiration else None,
        )
    except UsageError:
        raise StsAnswerError("<Credentials> holds unusable values") from None


@dataclass(frozen=True, slots=True)
class StsError:
    code: str
    message: str
    request_id: str | None = None


def parse_error(body: bytes) -> StsError | None:
    """``ErrorResponse/Error/{Code,Message}`` (or a bare ``<Error>``); None if not one."""
    try:
        root, content = _xml.parse(body)
    except _xml.MalformedXML:
        return None
    error = content if root == "Error" else _find(content, "Error")
    if not isinstance(error, dict):
        return None
    return StsError(_text(error, "Code") or "UnknownError", _text(error, "Message") or "",
                    _text(content, "RequestId") or _text(error, "RequestId"))


def scrub(text: str, secrets: Iterable[str | None]) -> str:
    """``text`` with every occurrence of a secret blanked out, and bounded in length."""
    for secret in secrets:
        if secret and len(secret) >= 4:
            text = text.replace(secret, "***")
    text = " ".join(text.split())
    return text if len(text) <= 300 else text[:300] + "..."


# --------------------------------------------------------------------------- calls


async def _call(ctx: ProviderContext, request: StsRequest, *, provider: str,
                secrets: Iterable[str | None], request_timeout: float) -> Credentials:
    secrets = tuple(secrets)
    what = f"{request.operation} of {request.role_arn} at {request.url}"
    log.debug("credentials: STS %s", what)
    try:
        response = await ctx.fetch("POST", request.url, request.headers, request.body,
                                   request_timeout)
    except TransportError as exc:
        # TransportError's message names the method and the URL without its query.
        raise CredentialsError(f"{what} failed: {scrub(str(exc), secrets)}",
                               provider=provider) from exc
    if response.status != 200:
        error = parse_error(response.body)
        detail = (f"{error.code}: {scrub(error.message, secrets)}" if error else
                  "(no STS error document)")
        rid = f" [request id {error.request_id}]" if error and error.request_id else ""
        raise CredentialsError(f"{what} answered HTTP {response.status} {detail}{rid}",
                               provider=provider)
    try:
        found = parse_credentials(response.body)
    except StsAnswerError as exc:
        raise CredentialsError(f"{what} answered 200 without usable credentials: {exc}",
                               provider=provider) from None
    log.debug("credentials: STS %s gave access key %s, expiring %s", request.operation,
              found.access_key_id, found.expiry.isoformat() if found.expiry else "never")
    return found


async def assume_role(
    ctx: ProviderContext,
    *,
    source: Credentials,
    role_arn: str,
    session_name: str | None = None,
    region: str | None = None,
    endpoint: str | None = None,
    duration_seconds: int | None = None,
    external_id: str | None = None,
    request_timeout: float = DEFAULT_TIMEOUT,
    provider: str = "STS AssumeRole",
) -> Credentials:
    """The role's temporary credentials, asked for with ``source``'s.

    ``region`` and ``endpoint`` default as the module docstring says.
    """
    if source.is_anonymous:
        raise CredentialsError(f"cannot assume {role_arn} with anonymous credentials",
                               provider=provider)
    region = region or sts_region(ctx.environ)
    now = ctx.now()
    request = assume_role_request(
        endpoint=endpoint or sts_endpoint(ctx.environ, region), region=region,
        credentials=source, role_arn=role_arn,
        session_name=session_name or default_session_name(now), now=now,
        duration_seconds=duration_seconds, external_id=external_id,
    )
    return await _call(ctx, request, provider=provider, request_timeout=request_timeout,
                       secrets=(source.secret_access_key, source.session_token, external_id))


async def assume_role_with_web_identity(
    ctx: ProviderContext,
    *,
    token: str,
    role_arn: str,
    session_name: str | None = None,
    region: str | None = None,
    endpoint: str | None = None,
    duration_seconds: int | None = None,
    request_timeout: float = DEFAULT_TIMEOUT,
    provider: str = "STS AssumeRoleWithWebIdentity",
) -> Credentials:
    """The role's temporary credentials for an OIDC token (unsigned request)."""
    region = region or sts_region(ctx.environ)
    request = web_identity_request(
        endpoint=endpoint or sts_endpoint(ctx.environ, region), role_arn=role_arn,
        session_name=session_name or default_session_name(ctx.now()), token=token,
        duration_seconds=duration_seconds,
    )
    return await _call(ctx, request, provider=provider, secrets=(token,),
                       request_timeout=request_timeout)
