"""Credentials as values, and what a credentials provider is. Pure: no I/O.

A provider is one source of credentials (environment variables, the shared files, a
metadata service, STS...), small and usable on its own: ``await provider.load(ctx)``
returns ``Credentials`` (with an ``expiry`` for temporary ones), or None when the source
is not configured here, and raises ``CredentialsError`` when it is configured but fails.
Everything a provider needs from the outside world comes through ``ProviderContext``: the
environment, an HTTP ``fetch``, the clock, and a way to run blocking work off the loop.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any, ClassVar, Protocol

from ..exceptions import NoCredentialsError, UsageError


@dataclass(frozen=True, slots=True)
class Credentials:
    """AWS access key, secret and optional session token. The secret never shows in a repr.

    ``Credentials.anonymous()`` is the one value whose requests are sent unsigned (public
    buckets); it is never chosen for you.
    """

    access_key_id: str
    secret_access_key: str = field(repr=False)
    session_token: str | None = field(default=None, repr=False)
    #: When temporary credentials stop working (timezone-aware); None: they do not expire.
    expiry: datetime | None = field(default=None, compare=False)

    #: True only for ``Credentials.anonymous()``.
    is_anonymous: ClassVar[bool] = False

    def __post_init__(self) -> None:
        for name in ("access_key_id", "secret_access_key", "session_token"):
            value = getattr(self, name)
            if value is not None and not isinstance(value, str):
                raise UsageError(f"Credentials.{name} must be a str, not {type(value).__name__}")
        if not self.access_key_id or not self.secret_access_key:
            raise UsageError("Credentials need a non-empty access_key_id and secret_access_key "
                             "(for unsigned requests use Credentials.anonymous())")
        for name in ("access_key_id", "secret_access_key", "session_token"):
            value = getattr(self, name)
            if value is not None and any(c in value for c in "\r\n"):
                raise UsageError(f"Credentials.{name} contains a line break")
        if self.expiry is not None and (not isinstance(self.expiry, datetime)
                                        or self.expiry.tzinfo is None):
            raise UsageError("Credentials.expiry must be a timezone-aware datetime or None")

    def __repr__(self) -> str:
        token = ", session_token='***'" if self.session_token else ""
        expiry = f", expiry={self.expiry.isoformat()!r}" if self.expiry else ""
        return (f"Credentials(access_key_id={self.access_key_id!r}, secret_access_key='***'"
                f"{token}{expiry})")

    @classmethod
    def anonymous(cls) -> Credentials:
        """No credentials, on purpose: requests go out without a signature."""
        return _ANONYMOUS


@dataclass(frozen=True, slots=True, repr=False)
class _AnonymousCredentials(Credentials):
    # A subclass rather than a flag field, so that no constructor call can produce it by
    # accident (Credentials("", "") is still refused) and there is exactly one of it.
    is_anonymous: ClassVar[bool] = True

    def __post_init__(self) -> None:
        pass

    def __repr__(self) -> str:
        return "Credentials.anonymous()"

    def __reduce__(self) -> tuple[object, tuple[()]]:
        # Copies and unpickled values stay the singleton.
        return (Credentials.anonymous, ())


_ANONYMOUS: Credentials = _AnonymousCredentials("", "")


@dataclass(frozen=True, slots=True)
class CredentialsNotFound:
    """The result of a resolution that found nothing: every place looked at, in order,
    each with why it gave nothing.

    A value rather than an exception, so that a resolver that runs later (such as a
    credentials chain that asks a metadata service on first use) can hold it and raise
    ``error()`` where it is needed; ``S3Client`` raises it at construction.
    """

    searched: tuple[str, ...]

    def error(self) -> NoCredentialsError:
        places = "; ".join(self.searched)
        return NoCredentialsError(
            f"no AWS credentials found. Looked at: {places}. Pass "
            "credentials=s3stream.Credentials(access_key_id, secret_access_key), set "
            "AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, or, to send unsigned requests "
            "(public buckets only), pass credentials=s3stream.Credentials.anonymous()",
            searched=self.searched,
        )




if TYPE_CHECKING:  # _protocol imports the signer, which imports Credentials from here
    from .._protocol import Response

#: ``fetch(method, url, headers, body, timeout)``: one HTTP request, its whole answer.
Fetch = Callable[[str, str, Sequence[tuple[str, str]], bytes, float], Awaitable["Response"]]


@dataclass(frozen=True, slots=True)
class ProviderContext:
    """What providers may use of the outside world (tests pass their own)."""

    environ: Mapping[str, str]
    fetch: Fetch
    now: Callable[[], datetime]
    #: Runs a blocking function (a file read, a subprocess) off the event loop.
    run_blocking: Callable[[Callable[[], Any]], Awaitable[Any]]


class CredentialProvider(Protocol):
    """One source of credentials."""

    #: Says where it looks, for the "no credentials found" error ("environment variables").
    name: str

    async def load(self, ctx: ProviderContext) -> Credentials | None: ...
