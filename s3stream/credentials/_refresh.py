"""Temporary credentials, refreshed before they expire, by one refresh at a time.

Modelled on botocore's ``RefreshableCredentials``: an *advisory* window before expiry,
in which a refresh is attempted but a failure keeps the current credentials (they still
work), and a *mandatory* window, in which the current credentials are not used again:
the refresh must succeed. For credentials that live an hour (STS, IMDS) the windows are
botocore's 15 and 10 minutes; for short-lived ones they shrink with the lifetime (half
and a quarter of it), so that a five-second credential is refreshed after a few seconds
rather than on every request.

However many parts wait for credentials at once, one refresh runs; the others wait for
it and use its result. The decision (``refresh_due``) is pure.
"""

from __future__ import annotations

import asyncio
import enum
import logging
from datetime import datetime, timedelta

from ._model import CredentialProvider, Credentials, CredentialsNotFound, ProviderContext

logger = logging.getLogger("s3stream")

ADVISORY = timedelta(minutes=15)
MANDATORY = timedelta(minutes=10)


class Due(enum.Enum):
    NO = "no"
    ADVISORY = "advisory"
    MANDATORY = "mandatory"


def refresh_due(expiry: datetime | None, now: datetime, lifetime: timedelta | None) -> Due:
    """Whether credentials expiring at ``expiry`` (None: never) need a refresh ``now``;
    ``lifetime`` is how long they were valid when loaded (None: unknown)."""
    if expiry is None:
        return Due.NO
    advisory, mandatory = ADVISORY, MANDATORY
    if lifetime is not None and lifetime > timedelta(0):
        advisory, mandatory = min(advisory, lifetime / 2), min(mandatory, lifetime / 4)
    left = expiry - now
    if left <= mandatory:
        return Due.MANDATORY
    if left <= advisory:
        return Due.ADVISORY
    return Due.NO


class RefreshingCredentials:
    """The current credentials of one provider: ``await get()`` before each signature."""

    def __init__(self, provider: CredentialProvider, ctx: ProviderContext) -> None:
        self.provider = provider
        self._ctx = ctx
        self._current: Credentials | None = None
        self._lifetime: timedelta | None = None
        self._stale = False
        self._lock = asyncio.Lock()
        #: How many times the provider was asked (for tests and statistics).
        self.loads = 0

    @property
    def current(self) -> Credentials | None:
        """The last credentials loaded (None before the first request)."""
        return self._current

    def _due(self, creds: Credentials | None) -> Due:
        if creds is None or self._stale:
            return Due.MANDATORY
        return refresh_due(creds.expiry, self._ctx.now(), self._lifetime)

    async def get(self) -> Credentials:
        creds = self._current
        due = self._due(creds)
        if due is Due.NO or (due is Due.ADVISORY and self._lock.locked()):
            assert creds is not None
            return creds  # still good; a refresh, if any, is already running
        async with self._lock:
            if self._current is not creds and self._due(self._current) is not Due.MANDATORY:
                assert self._current is not None
                return self._current  # refreshed while we waited for the lock
            try:
                fresh = await self._load()
            except Exception as exc:
                if due is Due.ADVISORY and creds is not None:
                    logger.warning("refreshing credentials from %s failed (%s); the current "
                                   "ones are still valid", self.provider.name, exc)
                    return creds
                raise
            self._current, self._stale = fresh, False
            if fresh.expiry is not None:
                self._lifetime = fresh.expiry - self._ctx.now()
                if self._due(fresh) is Due.MANDATORY:
                    logger.warning("credentials from %s expire in %s: refreshing on "
                                   "every request", self.provider.name, self._lifetime)
            logger.debug("loaded credentials from %s", self.provider.name)
            return fresh

    async def _load(self) -> Credentials:
        self.loads += 1
        found = await self.provider.load(self._ctx)
        if found is None:
            searched = getattr(self.provider, "searched", None) or (self.provider.name,)
            raise CredentialsNotFound(tuple(searched)).error()
        return found

    def invalidate(self, creds: Credentials) -> None:
        """S3 said these credentials expired (``ExpiredToken``): the next ``get()``
        loads new ones, once, however many requests were refused."""
        if self._current is creds:
            self._stale = True
