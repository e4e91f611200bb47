"""Where credentials come from: small providers, usable alone or in the default chain.

``Credentials`` are values; a provider (``CredentialProvider``) finds them in one place.
"""

from ._files import resolve_credentials, resolve_endpoint, resolve_region
from ._model import (
    CredentialProvider,
    Credentials,
    CredentialsNotFound,
    Fetch,
    ProviderContext,
)

__all__ = [
    "CredentialProvider",
    "Credentials",
    "CredentialsNotFound",
    "Fetch",
    "ProviderContext",
    "resolve_credentials",
    "resolve_endpoint",
    "resolve_region",
]
