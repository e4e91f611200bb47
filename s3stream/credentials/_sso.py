"""IAM Identity Center (SSO): a role's credentials for the token ``aws sso login`` cached.

A profile names its account and role (``sso_account_id``, ``sso_role_name``) and its
portal either through an ``[sso-session NAME]`` section of the config file
(``sso_session = NAME``; ``sso_start_url``, ``sso_region`` there) or, the legacy form, with
``sso_start_url`` and ``sso_region`` in the profile itself. The AWS CLI caches the access
token in ``~/.aws/sso/cache/<sha1 hex>.json``, of the session's name (or, legacy, of the
start URL). s3stream only reads that cache: it never logs in and never refreshes the token,
so an expired or missing one is a ``CredentialsError`` telling the user to run
``aws sso login``.

The portal is ``https://portal.sso.<sso_region>.amazonaws.com`` unless
``AWS_ENDPOINT_URL_SSO`` (else ``AWS_ENDPOINT_URL``) says otherwise, as in AWS's SDKs.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from .._sigv4 import encode_query
from ..exceptions import CredentialsError, TransportError, UsageError
from ._files import SharedConfig, load_shared_config, profile_name
from ._model import Credentials, ProviderContext
from ._sts import StsAnswerError, parse_timestamp, scrub

log = logging.getLogger("s3stream.credentials")

_PROVIDER = "SSO"
DEFAULT_TIMEOUT = 10.0


@dataclass(frozen=True, slots=True)
class SsoConfig:
    start_url: str
    region: str
    account_id: str
    role_name: str
    #: The ``sso-session`` section's name; None for the legacy form.
    session_name: str | None
    profile: str

    @property
    def cache_key(self) -> str:
        return hashlib.sha1((self.session_name or self.start_url).encode("utf-8"),
                            usedforsecurity=False).hexdigest()

    def login_hint(self) -> str:
        how = (f"--sso-session {self.session_name}" if self.session_name else
               f"--profile {self.profile}")
        return f"run `aws sso login {how}`"


def is_sso_profile(profile: Mapping[str, str]) -> bool:
    return bool(profile.get("sso_session") or profile.get("sso_start_url")
                or profile.get("sso_account_id") or profile.get("sso_role_name"))


def sso_config(shared: SharedConfig, name: str, profile: Mapping[str, str]) -> SsoConfig:
    """The profile's SSO settings, checked; ``CredentialsError`` naming what is missing."""
    session = profile.get("sso_session")
    if session:
        section = shared.sso_session(session)
        if section is None:
            raise CredentialsError(f"profile {name!r} names sso_session {session!r}, but "
                                   f"{shared.config_path} has no [sso-session {session}] "
                                   "section", provider=_PROVIDER)
        settings: dict[str, str] = {**profile, **section}
        where = f"[sso-session {session}]"
        for key in ("sso_start_url", "sso_region"):
            # A profile that repeats a session's setting must agree with it (as the CLI checks).
            if profile.get(key) and profile[key] != section.get(key):
                raise CredentialsError(f"profile {name!r} sets {key} to something other "
                                       f"than its {where} does", provider=_PROVIDER)
    else:
        settings, where = dict(profile), f"profile {name!r}"
    missing = [k for k in ("sso_start_url", "sso_region") if not settings.get(k)]
    missing += [k for k in ("sso_account_id", "sso_role_name") if not profile.get(k)]
    if missing:
        raise CredentialsError(f"{where} is missing {', '.join(missing)}", provider=_PROVIDER)
    region = settings["sso_region"]
    if any(c in region for c in "/\r\n ?#@"):
        raise UsageError(f"invalid sso_region {region!r}")
    return SsoConfig(settings["sso_start_url"], region, profile["sso_account_id"],
                     profile["sso_role_name"], session or None, name)


def cache_path(environ: Mapping[str, str], config: SsoConfig) -> str:
    home = environ.get("HOME") or str(Path.home())
    return os.path.join(home, ".aws", "sso", "cache", f"{config.cache_key}.json")


def _read_json(path: str) -> Any:
    with open(path, encoding="utf-8") as f:
        return json.load(f)


@dataclass(frozen=True, slots=True)
class SsoToken:
    access_token: str
    expires_at: datetime

    def __repr__(self) -> str:
        return f"SsoToken(access_token='***', expires_at={self.expires_at.isoformat()!r})"


def parse_token(doc: Any) -> SsoToken:
    """The cache file's ``accessToken`` and ``expiresAt``; ``ValueError`` naming a field."""
    if not isinstance(doc, dict):
        raise ValueError("not a JSON object")
    token, expires = doc.get("accessToken"), doc.get("expiresAt")
    if not isinstance(token, str) or not token:
        raise ValueError("no accessToken")
    if not isinstance(expires, str):
        raise ValueError("no expiresAt")
    try:
        return SsoToken(token, parse_timestamp(expires))
    except StsAnswerError:
        raise ValueError("an unreadable expiresAt") from None


def sso_endpoint(environ: Mapping[str, str], region: str) -> str:
    custom = environ.get("AWS_ENDPOINT_URL_SSO") or environ.get("AWS_ENDPOINT_URL")
    if custom:
        return custom.strip().rstrip("/")
    return f"https://portal.sso.{region}.amazonaws.com"


def role_credentials_request(endpoint: str, config: SsoConfig,
                             token: SsoToken) -> tuple[str, tuple[tuple[str, str], ...]]:
    """``GetRoleCredentials``: the URL (percent-encoded) and the headers."""
    query = encode_query([("account_id", config.account_id),
                          ("role_name", config.role_name)])
    return (f"{endpoint}/federation/credentials?{query}",
            (("x-amz-sso_bearer_token", token.access_token), ("accept", "application/json")))


def parse_role_credentials(body: bytes) -> Credentials:
    """``roleCredentials{accessKeyId, secretAccessKey, sessionToken, expiration}`` (the
    expiration in milliseconds since the epoch); ``ValueError`` naming a field."""
    try:
        doc = json.loads(body)
    except (ValueError, UnicodeDecodeError):
        raise ValueError("the answer is not JSON") from None
    found = doc.get("roleCredentials") if isinstance(doc, dict) else None
    if not isinstance(found, dict):
        raise ValueError("the answer has no roleCredentials")
    for name in ("accessKeyId", "secretAccessKey", "sessionToken"):
        if not isinstance(found.get(name), str) or not found[name]:
            raise ValueError(f"roleCredentials has no {name}")
    expiration = found.get("expiration")
    if isinstance(expiration, bool) or not isinstance(expiration, int | float):
        raise ValueError("roleCredentials has no numeric expiration")
    try:
        expiry = datetime.fromtimestamp(expiration / 1000, UTC)
        return Credentials(found["accessKeyId"], found["secretAccessKey"],
                           found["sessionToken"], expiry=expiry)
    except (UsageError, OverflowError, OSError, ValueError):
        raise ValueError("roleCredentials holds unusable values") from None


async def load_sso(ctx: ProviderContext, config: SsoConfig, *,
                   request_timeout: float = DEFAULT_TIMEOUT) -> Credentials:
    path = cache_path(ctx.environ, config)
    try:
        doc = await ctx.run_blocking(lambda: _read_json(path))
        token = parse_token(doc)
    except FileNotFoundError:
        raise CredentialsError(f"no cached SSO token for {config.start_url} ({path}); "
                               f"{config.login_hint()}", provider=_PROVIDER) from None
    except (OSError, ValueError) as exc:
        # json's messages quote nothing of the file, but say only the kind of error.
        what = str(exc) if type(exc) is ValueError else type(exc).__name__
        raise CredentialsError(f"the cached SSO token {path} is unusable ({what}); "
                               f"{config.login_hint()}", provider=_PROVIDER) from None
    if token.expires_at <= ctx.now():
        raise CredentialsError(f"the cached SSO token for {config.start_url} expired at "
                               f"{token.expires_at.isoformat()}; {config.login_hint()}",
                               provider=_PROVIDER)
    url, headers = role_credentials_request(sso_endpoint(ctx.environ, config.region), config,
                                            token)
    base = url.split("?")[0]
    log.debug("credentials: SSO GetRoleCredentials at %s for role %s in account %s", base,
              config.role_name, config.account_id)
    try:
        response = await ctx.fetch("GET", url, headers, b"", request_timeout)
    except TransportError as exc:
        raise CredentialsError(f"SSO GetRoleCredentials at {base} failed: "
                               f"{scrub(str(exc), (token.access_token,))}",
                               provider=_PROVIDER) from exc
    if response.status in (401, 403):
        raise CredentialsError(f"SSO GetRoleCredentials at {base} refused the cached token "
                               f"(HTTP {response.status}); {config.login_hint()}",
                               provider=_PROVIDER)
    if response.status != 200:
        raise CredentialsError(f"SSO GetRoleCredentials at {base} answered HTTP "
                               f"{response.status}{_error_detail(response.body, token)}",
                               provider=_PROVIDER)
    try:
        found = parse_role_credentials(response.body)
    except ValueError as exc:
        raise CredentialsError(f"SSO GetRoleCredentials at {base} answered 200 without usable "
                               f"credentials: {exc}", provider=_PROVIDER) from None
    log.debug("credentials: SSO gave access key %s, expiring %s", found.access_key_id,
              found.expiry.isoformat() if found.expiry else "never")
    return found


def _error_detail(body: bytes, token: SsoToken) -> str:
    try:
        doc = json.loads(body)
    except (ValueError, UnicodeDecodeError):
        return ""
    if not isinstance(doc, dict):
        return ""
    message = doc.get("message") or doc.get("Message") or ""
    kind = doc.get("__type") or ""
    text = ": ".join(str(p) for p in (kind, message) if p)
    return f" {scrub(text, (token.access_token,))}" if text else ""


class SsoProvider:
    """The profile's ``sso_*`` settings and the token ``aws sso login`` cached; None when
    the profile has no ``sso_*`` settings. ``profile`` defaults to ``AWS_PROFILE``."""

    name = "SSO (the profile's sso_session / sso_start_url and the cached token)"

    def __init__(self, profile: str | None = None, *, timeout: float = DEFAULT_TIMEOUT) -> None:
        self.profile = profile
        self.timeout = timeout

    def __repr__(self) -> str:
        return f"SsoProvider(profile={self.profile!r})"

    async def load(self, ctx: ProviderContext) -> Credentials | None:
        shared = await ctx.run_blocking(lambda: load_shared_config(ctx.environ))
        name = self.profile or profile_name(ctx.environ)
        profile = shared.profile(name)
        if profile is None or not is_sso_profile(profile):
            return None
        return await load_sso(ctx, sso_config(shared, name, profile),
                              request_timeout=self.timeout)
