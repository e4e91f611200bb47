"""Providers that wrap values and callables, the chain, and the AWS SDKs' default order.

The default chain asks, in the AWS SDKs' order: environment variables; web identity
(``AWS_WEB_IDENTITY_TOKEN_FILE`` + ``AWS_ROLE_ARN``, EKS's IRSA); the shared config and
credentials files (static keys, ``role_arn``, ``sso_*``, ``credential_process``);
container credentials (ECS, EKS Pod Identity); EC2 instance metadata (IMDSv2). The
first that has credentials wins; a source that is configured but fails raises, as the
SDKs do, rather than falling through to a different identity.
"""

from __future__ import annotations

import inspect
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import Any

from ..exceptions import UsageError
from ._files import ProfileFiles, profile_sections, read_profile_files, resolve_credentials
from ._model import CredentialProvider, Credentials, CredentialsNotFound, ProviderContext

CredentialsCallable = Callable[[], Awaitable[Credentials]]


class StaticProvider:
    """Credentials given as a value (explicit, or ``Credentials.anonymous()``)."""

    def __init__(self, credentials: Credentials, name: str = "the credentials argument") -> None:
        self.credentials = credentials
        self.name = name

    async def load(self, ctx: ProviderContext) -> Credentials | None:
        return self.credentials

    def __repr__(self) -> str:
        return f"StaticProvider({self.credentials!r})"


class CallableProvider:
    """A user's ``async def get() -> Credentials`` (with ``expiry`` for temporary ones)."""

    def __init__(self, function: CredentialsCallable) -> None:
        self.function = function
        self.name = f"the credentials callable {getattr(function, '__qualname__', function)!r}"

    async def load(self, ctx: ProviderContext) -> Credentials | None:
        found = await self.function()
        if not isinstance(found, Credentials):
            raise UsageError(f"{self.name} returned {type(found).__name__}, not Credentials")
        return found


class EnvironmentProvider:
    """``AWS_ACCESS_KEY_ID`` / ``AWS_SECRET_ACCESS_KEY`` / ``AWS_SESSION_TOKEN``."""

    name = "the environment variables AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY"

    async def load(self, ctx: ProviderContext) -> Credentials | None:
        key = ctx.environ.get("AWS_ACCESS_KEY_ID")
        secret = ctx.environ.get("AWS_SECRET_ACCESS_KEY")
        if not key or not secret:
            return None
        return Credentials(key, secret, ctx.environ.get("AWS_SESSION_TOKEN") or None)


class ChainProvider:
    """Asks ``providers`` in order; the first that has credentials wins."""

    def __init__(self, providers: Sequence[CredentialProvider]) -> None:
        self.providers = tuple(providers)
        self.name = "the credentials chain"
        #: Where the last ``load()`` looked, in order (for ``NoCredentialsError``).
        self.searched: tuple[str, ...] = ()

    async def load(self, ctx: ProviderContext) -> Credentials | None:
        searched: list[str] = []
        for provider in self.providers:
            found = await provider.load(ctx)
            searched.append(provider.name)
            if found is not None:
                return found
        self.searched = tuple(searched)
        return None


def as_provider(credentials: Any) -> CredentialProvider | None:
    """What ``S3Client(credentials=...)`` accepts, as a provider (None: use the chain)."""
    if credentials is None:
        return None
    if isinstance(credentials, Credentials):
        return StaticProvider(credentials)
    load = getattr(credentials, "load", None)
    if callable(load) and isinstance(getattr(credentials, "name", None), str):
        provider: CredentialProvider = credentials
        return provider
    if callable(credentials) and (inspect.iscoroutinefunction(credentials) or
                                  inspect.iscoroutinefunction(type(credentials).__call__)):
        return CallableProvider(credentials)
    raise UsageError(
        "credentials must be an s3stream.Credentials, a provider (an object with a name and "
        "an async load(ctx) method), an async callable returning Credentials, or None to "
        f"find them as AWS's SDKs do; not {type(credentials).__name__}")


def default_chain() -> ChainProvider:
    """The AWS SDKs' order (see the module docstring)."""
    # Imported here: these import the STS, SSO and metadata pieces, which a client with
    # static credentials never needs.
    from ._container import ContainerProvider
    from ._imds import InstanceMetadataProvider
    from ._profiles import ProfileProvider
    from ._web_identity import WebIdentityProvider

    return ChainProvider([EnvironmentProvider(), WebIdentityProvider(), ProfileProvider(),
                          ContainerProvider(), InstanceMetadataProvider()])


#: Profile settings that only a provider of the chain can turn into credentials.
_DYNAMIC_PROFILE_KEYS = ("role_arn", "credential_process", "sso_session", "sso_start_url",
                         "web_identity_token_file")
_DYNAMIC_ENV = ("AWS_WEB_IDENTITY_TOKEN_FILE", "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI",
                "AWS_CONTAINER_CREDENTIALS_FULL_URI")


def imds_disabled(environ: Mapping[str, str]) -> bool:
    return environ.get("AWS_EC2_METADATA_DISABLED", "").strip().lower() == "true"


def resolve_provider(credentials: Any, environ: Mapping[str, str],
                     files: ProfileFiles | None = None) -> CredentialProvider:
    """The provider an ``S3Client`` signs with, decided without any network I/O.

    Static credentials (the argument; else the environment variables; else static keys
    of the profile, when nothing ranked before them in the SDKs' order is configured)
    are used as they are. Otherwise the default chain runs on the first request. Only
    when no source at all can apply (no variables, no profile, the metadata service
    disabled) is ``NoCredentialsError`` raised here, before any request.
    """
    explicit = as_provider(credentials)
    if explicit is not None:
        return explicit
    files = files or read_profile_files(environ)
    found = resolve_credentials(None, environ, files)
    env_has_keys = bool(environ.get("AWS_ACCESS_KEY_ID") and environ.get("AWS_SECRET_ACCESS_KEY"))
    if isinstance(found, Credentials) and env_has_keys:
        return StaticProvider(found, EnvironmentProvider.name)
    sections = profile_sections(environ, files)
    dynamic = any(environ.get(name) for name in _DYNAMIC_ENV) or any(
        section.get(key) for section in sections for key in _DYNAMIC_PROFILE_KEYS)
    if isinstance(found, Credentials) and not dynamic:
        return StaticProvider(found, "the shared credentials and config files")
    if isinstance(found, CredentialsNotFound) and not dynamic and imds_disabled(environ):
        raise CredentialsNotFound(
            (*found.searched, "EC2 instance metadata (AWS_EC2_METADATA_DISABLED=true)")).error()
    return default_chain()
