"""Web identity: an OIDC token in a file, exchanged for a role's credentials with STS
``AssumeRoleWithWebIdentity`` (EKS's IRSA, GitHub Actions, any OIDC provider).

Configured by ``AWS_WEB_IDENTITY_TOKEN_FILE`` + ``AWS_ROLE_ARN`` (+ ``AWS_ROLE_SESSION_NAME``),
else by the profile's ``web_identity_token_file`` + ``role_arn`` (+ ``role_session_name``).
The token file is read on every ``load()``, since EKS rotates it.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from ..exceptions import CredentialsError
from ._files import load_shared_config, profile_name
from ._model import Credentials, ProviderContext
from ._sts import DEFAULT_TIMEOUT, assume_role_with_web_identity, sts_region

_PROVIDER = "web identity"


@dataclass(frozen=True, slots=True)
class WebIdentityConfig:
    """Where the token is and which role it is for (no secret: the token is in the file)."""

    token_file: str
    role_arn: str | None
    session_name: str | None = None
    #: Which settings said so, for messages ("AWS_WEB_IDENTITY_TOKEN_FILE", "profile 'ci'").
    source: str = "AWS_WEB_IDENTITY_TOKEN_FILE"
    duration_seconds: int | None = None


def from_environment(environ: Mapping[str, str]) -> WebIdentityConfig | None:
    token_file = (environ.get("AWS_WEB_IDENTITY_TOKEN_FILE") or "").strip()
    if not token_file:
        return None
    return WebIdentityConfig(token_file, (environ.get("AWS_ROLE_ARN") or "").strip() or None,
                             (environ.get("AWS_ROLE_SESSION_NAME") or "").strip() or None)


def from_profile(profile: Mapping[str, str], name: str) -> WebIdentityConfig | None:
    token_file = profile.get("web_identity_token_file")
    if not token_file:
        return None
    return WebIdentityConfig(token_file, profile.get("role_arn") or None,
                             profile.get("role_session_name") or None, f"profile {name!r}",
                             _duration(profile))


def _duration(profile: Mapping[str, str]) -> int | None:
    value = profile.get("duration_seconds")
    try:
        return int(value) if value else None
    except ValueError:
        return None


def _read_token(path: str) -> str:
    with open(path, encoding="utf-8") as f:
        return f.read().strip()


async def load_web_identity(ctx: ProviderContext, config: WebIdentityConfig, *,
                            region: str | None = None,
                            request_timeout: float = DEFAULT_TIMEOUT) -> Credentials:
    """Read the token (now: it rotates) and exchange it for the role's credentials."""
    if not config.role_arn:
        where = "AWS_ROLE_ARN" if config.source == "AWS_WEB_IDENTITY_TOKEN_FILE" else "role_arn"
        raise CredentialsError(f"{config.source} names a web identity token file but {where} "
                               "is not set", provider=_PROVIDER)
    try:
        token: str = await ctx.run_blocking(lambda: _read_token(config.token_file))
    except (OSError, UnicodeDecodeError) as exc:
        raise CredentialsError(
            f"cannot read the web identity token file {config.token_file} (from "
            f"{config.source}): {type(exc).__name__}"
            f"{': ' + exc.strerror if isinstance(exc, OSError) and exc.strerror else ''}",
            provider=_PROVIDER) from None
    if not token:
        raise CredentialsError(f"the web identity token file {config.token_file} is empty",
                               provider=_PROVIDER)
    return await assume_role_with_web_identity(
        ctx, token=token, role_arn=config.role_arn, session_name=config.session_name,
        region=region, duration_seconds=config.duration_seconds,
        request_timeout=request_timeout,
        provider=_PROVIDER)


class WebIdentityProvider:
    """``AWS_WEB_IDENTITY_TOKEN_FILE`` + ``AWS_ROLE_ARN``, else the profile's
    ``web_identity_token_file`` + ``role_arn``; None when neither is configured.

    ``profile`` defaults to ``AWS_PROFILE`` (then ``default``).
    """

    name = "web identity (AWS_WEB_IDENTITY_TOKEN_FILE / the profile's web_identity_token_file)"

    def __init__(self, profile: str | None = None, *, timeout: float = DEFAULT_TIMEOUT) -> None:
        self.profile = profile
        self.timeout = timeout

    def __repr__(self) -> str:
        return f"WebIdentityProvider(profile={self.profile!r})"

    async def load(self, ctx: ProviderContext) -> Credentials | None:
        config = from_environment(ctx.environ)
        profile: Mapping[str, str] | None = None
        if config is None or not (ctx.environ.get("AWS_REGION")
                                  or ctx.environ.get("AWS_DEFAULT_REGION")):
            # The profile configures the token, or at least the region STS is in.
            shared = await ctx.run_blocking(lambda: load_shared_config(ctx.environ))
            name = self.profile or profile_name(ctx.environ)
            profile = shared.profile(name)
            if config is None:
                config = from_profile(profile, name) if profile is not None else None
        if config is None:
            return None
        return await load_web_identity(ctx, config, region=sts_region(ctx.environ, profile),
                                       request_timeout=self.timeout)
