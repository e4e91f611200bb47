"""A profile of the shared config and credentials files, every way it can give credentials.

Within a profile the settings are taken in botocore's order:

1. ``role_arn`` (without ``web_identity_token_file``): STS ``AssumeRole``, with the
   credentials of ``source_profile`` (itself resolved the same way, so roles chain; a
   profile may name itself to use its own static keys) or of ``credential_source``
   (``Environment``, ``Ec2InstanceMetadata``, ``EcsContainer``);
2. ``web_identity_token_file`` + ``role_arn``: STS ``AssumeRoleWithWebIdentity``;
3. ``sso_session`` / ``sso_start_url``: IAM Identity Center, with the cached token;
4. ``aws_access_key_id`` + ``aws_secret_access_key`` (+ ``aws_session_token``);
5. ``credential_process``.

A profile used as a ``source_profile`` gives its static keys first, when it has any
(botocore does the same: only the profile asked for assumes its role in spite of them).
The credentials file's settings win over the config file's for the same profile. A
profile in neither file, or with none of these settings, gives None; one whose settings
are incomplete or contradictory, or whose source fails, raises ``CredentialsError``.
"""

from __future__ import annotations

import importlib
import logging
from collections.abc import Mapping
from typing import Any

from ..exceptions import CredentialsError, UsageError
from ._files import SharedConfig, load_shared_config, profile_name
from ._model import Credentials, ProviderContext
from ._process import load_process
from ._sso import is_sso_profile, load_sso, sso_config
from ._sts import DEFAULT_TIMEOUT, assume_role, sts_region
from ._web_identity import from_profile, load_web_identity

log = logging.getLogger("s3stream.credentials")

#: ``credential_source`` values, and the provider each names (module, class).
CREDENTIAL_SOURCES: Mapping[str, tuple[str, str] | None] = {
    "Environment": None,
    "Ec2InstanceMetadata": ("._imds", "InstanceMetadataProvider"),
    "EcsContainer": ("._container", "ContainerProvider"),
}

#: How many ``source_profile`` hops a chain may take (botocore has no limit; loops are
#: caught separately, this only bounds a pathological file).
_MAX_CHAIN = 16


def has_static_keys(profile: Mapping[str, str]) -> bool:
    return bool(profile.get("aws_access_key_id") or profile.get("aws_secret_access_key"))


def static_keys(profile: Mapping[str, str], name: str) -> Credentials:
    key, secret = profile.get("aws_access_key_id"), profile.get("aws_secret_access_key")
    if not key or not secret:
        has, lacks = (("aws_access_key_id", "aws_secret_access_key") if key else
                      ("aws_secret_access_key", "aws_access_key_id"))
        raise CredentialsError(f"profile {name!r} has {has} but no {lacks}",
                               provider=f"profile {name!r}")
    try:
        return Credentials(key, secret, profile.get("aws_session_token") or None)
    except UsageError:
        raise CredentialsError(f"profile {name!r} holds unusable static keys",
                               provider=f"profile {name!r}") from None


def _int_setting(profile: Mapping[str, str], key: str, name: str) -> int | None:
    value = profile.get(key)
    if not value:
        return None
    try:
        return int(value)
    except ValueError:
        raise CredentialsError(f"profile {name!r} has a {key} that is not a whole number",
                               provider=f"profile {name!r}") from None


async def source_credentials(ctx: ProviderContext, source: str, name: str,
                             providers: dict[str, Any] | None = None) -> Credentials:
    """What ``credential_source = source`` gives (``Environment`` or another provider).

    ``providers`` keeps the providers made, so that they keep their state (IMDS's
    session token) from one ``load()`` to the next.
    """
    provider = f"profile {name!r}"
    if source not in CREDENTIAL_SOURCES:
        raise CredentialsError(f"credential_source {source!r} is not one of "
                               f"{', '.join(CREDENTIAL_SOURCES)}", provider=provider)
    target = CREDENTIAL_SOURCES[source]
    found: Credentials | None
    if target is None:
        key = ctx.environ.get("AWS_ACCESS_KEY_ID")
        secret = ctx.environ.get("AWS_SECRET_ACCESS_KEY")
        found = (Credentials(key, secret, ctx.environ.get("AWS_SESSION_TOKEN") or None)
                 if key and secret else None)
    else:
        module_name, class_name = target
        made = providers.get(source) if providers is not None else None
        if made is None:
            try:
                # Imported when used: each is a provider of its own, not needed otherwise.
                module = importlib.import_module(module_name, __package__)
                cls: Any = getattr(module, class_name)
            except (ImportError, AttributeError):
                raise CredentialsError(
                    f"credential_source {source!r} needs s3stream.credentials.{class_name}, "
                    "which this version of s3stream does not have",
                    provider=provider) from None
            made = cls()
            if providers is not None:
                providers[source] = made
        found = await made.load(ctx)
    if found is None:
        raise CredentialsError(f"credential_source {source!r} gave no credentials",
                               provider=provider)
    return found


class _Resolution:
    """One ``load()``: the files as read, and the profiles visited so far."""

    def __init__(self, ctx: ProviderContext, shared: SharedConfig, region: str,
                 timeout: float, providers: dict[str, Any]) -> None:
        self.ctx = ctx
        self.providers = providers
        self.shared = shared
        self.region = region
        self.timeout = timeout

    async def profile(self, name: str, profile: Mapping[str, str],
                      visited: tuple[str, ...]) -> Credentials | None:
        """``name``'s credentials; ``visited`` is the chain that led here (empty at the top)."""
        if visited and has_static_keys(profile):
            return static_keys(profile, name)
        if profile.get("role_arn") and not profile.get("web_identity_token_file"):
            return await self.assume(name, profile, visited)
        web = from_profile(profile, name)
        if web is not None:
            return await load_web_identity(self.ctx, web, region=self.region,
                                           request_timeout=self.timeout)
        if is_sso_profile(profile):
            return await load_sso(self.ctx, sso_config(self.shared, name, profile),
                                  request_timeout=self.timeout)
        if has_static_keys(profile):
            return static_keys(profile, name)
        command = profile.get("credential_process")
        if command:
            return await load_process(self.ctx, command, source=f"profile {name!r}")
        return None

    async def assume(self, name: str, profile: Mapping[str, str],
                     visited: tuple[str, ...]) -> Credentials:
        provider = f"profile {name!r}"
        role_arn = profile["role_arn"]
        source_profile = profile.get("source_profile")
        credential_source = profile.get("credential_source")
        if source_profile and credential_source:
            raise CredentialsError("has both source_profile and credential_source; set one",
                                   provider=provider)
        if profile.get("mfa_serial"):
            raise CredentialsError("sets mfa_serial: s3stream cannot ask for an MFA code (use "
                                   "a credential_process that does, or other credentials)",
                                   provider=provider)
        chain = (*visited, name)
        if credential_source:
            source = await source_credentials(self.ctx, credential_source, name,
                                            self.providers)
        elif source_profile:
            source = await self.source_profile(name, profile, source_profile, chain)
        else:
            raise CredentialsError("has role_arn but neither source_profile nor "
                                   "credential_source", provider=provider)
        log.debug("credentials: profile %r assumes %s", name, role_arn)
        return await assume_role(
            self.ctx, source=source, role_arn=role_arn,
            session_name=profile.get("role_session_name") or None, region=self.region,
            duration_seconds=_int_setting(profile, "duration_seconds", name),
            external_id=profile.get("external_id") or None, request_timeout=self.timeout,
            provider=f"profile {name!r} (AssumeRole)",
        )

    async def source_profile(self, name: str, profile: Mapping[str, str], source: str,
                             chain: tuple[str, ...]) -> Credentials:
        provider = f"profile {name!r}"
        if source in chain:
            # A profile may name itself to keep its static keys and its role together.
            if source == name and has_static_keys(profile):
                return static_keys(profile, name)
            raise CredentialsError(
                f"source_profile {source!r} makes a loop: {' -> '.join((*chain, source))}",
                provider=provider)
        if len(chain) >= _MAX_CHAIN:
            raise CredentialsError(f"more than {_MAX_CHAIN} source_profile hops",
                                   provider=provider)
        found = self.shared.profile(source)
        if found is None:
            raise CredentialsError(f"source_profile {source!r} is in neither "
                                   f"{self.shared.credentials_path} nor "
                                   f"{self.shared.config_path}", provider=provider)
        credentials = await self.profile(source, found, chain)
        if credentials is None:
            raise CredentialsError(f"source_profile {source!r} has no credentials",
                                   provider=provider)
        return credentials


class ProfileProvider:
    """A profile of the shared config and credentials files (``AWS_CONFIG_FILE``,
    ``AWS_SHARED_CREDENTIALS_FILE``), in every form the AWS CLI reads it: static keys,
    assumed roles (chained), web identity, SSO, ``credential_process``.

    ``profile`` defaults to ``AWS_PROFILE`` (then ``AWS_DEFAULT_PROFILE``, ``default``).
    The files are read on every ``load()``, off the event loop.
    """

    def __init__(self, profile: str | None = None, *, timeout: float = DEFAULT_TIMEOUT) -> None:
        if profile is not None and (not isinstance(profile, str) or not profile):
            raise UsageError(f"profile must be a non-empty str or None, not {profile!r}")
        self.profile = profile
        self.timeout = timeout
        self._sources: dict[str, Any] = {}
        self.name = (f"profile {profile!r} in the shared config and credentials files"
                     if profile else "the profile (AWS_PROFILE, else 'default') in the shared "
                     "config and credentials files")

    def __repr__(self) -> str:
        return f"ProfileProvider(profile={self.profile!r})"

    async def load(self, ctx: ProviderContext) -> Credentials | None:
        shared: SharedConfig = await ctx.run_blocking(lambda: load_shared_config(ctx.environ))
        name = self.profile or profile_name(ctx.environ)
        profile = shared.profile(name)
        if profile is None:
            return None
        resolution = _Resolution(ctx, shared, sts_region(ctx.environ, profile), self.timeout,
                                 self._sources)
        return await resolution.profile(name, profile, ())
