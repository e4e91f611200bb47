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

__all__ = [
    "ContainerProvider",
    "CredentialProvider",
    "Credentials",
    "CredentialsNotFound",
    "Fetch",
    "InstanceMetadataProvider",
    "ProviderContext",
    "resolve_credentials",
    "resolve_endpoint",
    "resolve_region",
]
