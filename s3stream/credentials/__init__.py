"""Where credentials come from: small providers, usable alone or in the default chain.

``Credentials`` are values; a provider (``CredentialProvider``) finds them in one place.
"""

from ._container import ContainerProvider
from ._files import resolve_credentials, resolve_endpoint, resolve_region
from ._imds import InstanceMetadataProvider
from ._model import (
    CredentialProvider,
    Credentials,
    CredentialsNotFound,
    Fetch,
    ProviderContext,
)
from ._process import ProcessProvider
from ._profiles import ProfileProvider
from ._sso import SsoProvider
from ._sts import assume_role, assume_role_with_web_identity
from ._web_identity import WebIdentityProvider

__all__ = [
    "ContainerProvider",
    "CredentialProvider",
    "Credentials",
    "CredentialsNotFound",
    "Fetch",
    "InstanceMetadataProvider",
    "ProcessProvider",
    "ProfileProvider",
    "ProviderContext",
    "SsoProvider",
    "WebIdentityProvider",
    "assume_role",
    "assume_role_with_web_identity",
    "resolve_credentials",
    "resolve_endpoint",
    "resolve_region",
]
