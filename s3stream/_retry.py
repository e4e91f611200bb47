"""An immutable retry policy. It decides; it never sleeps (only the client does)."""

from __future__ import annotations

from dataclasses import dataclass, field, replace

from .exceptions import UsageError

RETRYABLE_STATUSES = frozenset({500, 502, 503, 504})
RETRYABLE_CODES = frozenset(
    {
        "SlowDown",
        "InternalError",
        "RequestTimeout",
        "ServiceUnavailable",
        "Throttling",
        "ThrottlingException",
        "RequestTimeTooSkewed",
    }
)


@dataclass(frozen=True, slots=True)
class Retry:
    """How often and how patiently to retry a request.

    ``attempts`` counts every try, so ``Retry(attempts=1)`` disables retrying. The wait
    before retry ``n`` (1-based) is full jitter: a uniform draw from
    ``[0, min(cap, base * 2 ** (n - 1))]``, or the server's ``Retry-After`` when it sent
    one (capped too). Only what is safe to repeat is retried: connection errors and
    timeouts, the statuses in ``statuses`` and the S3 error codes in ``codes``; any
    other 4xx never is.
    """

    attempts: int = 5
    base: float = 0.1
    cap: float = 20.0
    statuses: frozenset[int] = field(default=RETRYABLE_STATUSES)
    codes: frozenset[str] = field(default=RETRYABLE_CODES)

    def __post_init__(self) -> None:
        if isinstance(self.attempts, bool) or not isinstance(self.attempts, int):
            raise UsageError(f"Retry.attempts must be an int, not {self.attempts!r}")
        if self.attempts < 1:
            raise UsageError("Retry.attempts must be at least 1 (1 means no retries)")
        if self.base < 0 or self.cap < 0:
            raise UsageError("Retry.base and Retry.cap must not be negative")

    def with_attempts(self, attempts: int) -> Retry:
        return replace(self, attempts=attempts)

    def is_retryable_response(self, status: int, code: str | None) -> bool:
        if code is not None and code in self.codes:
            return True
        if 400 <= status < 500:
            return False
        return status in self.statuses

    def can_retry(self, attempt: int) -> bool:
        """Whether another try may follow try number ``attempt`` (1-based)."""
        return attempt < self.attempts

    def delay(self, attempt: int, rand: float, retry_after: float | None = None) -> float:
        """Seconds to wait after failed try ``attempt``; ``rand`` is uniform in [0, 1)."""
        if retry_after is not None and retry_after >= 0:
            return min(retry_after, self.cap)
        ceiling = min(self.cap, self.base * 2.0 ** (attempt - 1))
        return rand * ceiling


def parse_retry_after(value: str | None) -> float | None:
    """Seconds from a ``Retry-After`` header (the delta-seconds form; dates are ignored)."""
    if not value:
        return None
    try:
        seconds = float(value.strip())
    except ValueError:
        return None
    return seconds if seconds >= 0 else None
