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
        # AWS documents it as retryable: a conditional write raced another request.
        "ConditionalRequestConflict",
    }
)


@dataclass(frozen=True, slots=True)
class Retry:
    """How often and how patiently to retry a request.

    ``attempts`` counts every try, so ``Retry(attempts=1)`` disables retrying.
    ``budget`` is a time limit (seconds, from the first try): no retry starts whose
    wait would end past it (None: attempts alone decide). The wait before retry ``n``
    (1-based) is full jitter: a uniform draw from ``[0, min(cap, base * 2 ** (n - 1))]``,
    or the server's ``Retry-After`` when it sent one (capped too). Only what is safe to
    repeat is retried: connection errors and timeouts, the statuses in ``statuses`` and
    the S3 error codes in ``codes``; any other 4xx never is.

    The defaults are patient because a part cannot be re-read from its source: one part
    out of retries loses the whole upload. 20 tries with waits capped at 5 s ride out
    a server that is unreachable for several seconds (a restart, a failover): the
    waits after the sixth are uniform in [0, 5] s, and 14 of them summing to less than
    5 s has a probability below 1e-10. The 60 s budget bounds how long one request is
    retried.
    """

    attempts: int = 20
    base: float = 0.1
    cap: float = 5.0
    budget: float | None = 60.0
    statuses: frozenset[int] = field(default=RETRYABLE_STATUSES)
    codes: frozenset[str] = field(default=RETRYABLE_CODES)

    def __post_init__(self) -> None:
        if isinstance(self.attempts, bool) or not isinstance(self.attempts, int):
            raise UsageError(f"Retry.attempts must be an int, not {self.attempts!r}")
        if self.attempts < 1:
            raise UsageError("Retry.attempts must be at least 1 (1 means no retries)")
        for name in ("base", "cap", "budget"):
            value = getattr(self, name)
            if value is None and name == "budget":
                continue
            if isinstance(value, bool) or not isinstance(value, int | float) or value < 0:
                raise UsageError(f"Retry.{name} must be a non-negative number, not {value!r}")

    def with_attempts(self, attempts: int) -> Retry:
        return replace(self, attempts=attempts)

    def with_budget(self, budget: float | None) -> Retry:
        return replace(self, budget=budget)

    def is_retryable_response(self, status: int, code: str | None) -> bool:
        if code is not None and code in self.codes:
            return True
        if 400 <= status < 500:
            return False
        return status in self.statuses

    def can_retry(self, attempt: int, elapsed: float = 0.0, wait: float = 0.0) -> bool:
        """Whether another try may follow try number ``attempt`` (1-based), ``elapsed``
        seconds after the first try began, after waiting ``wait`` seconds."""
        if attempt >= self.attempts:
            return False
        return self.budget is None or elapsed + wait <= self.budget

    def delay(self, attempt: int, rand: float, retry_after: float | None = None) -> float:
        """Seconds to wait after failed try ``attempt``; ``rand`` is uniform in [0, 1)."""
        if retry_after is not None and retry_after >= 0:
            return min(retry_after, self.cap)
        ceiling = min(self.cap, self.base * 2.0 ** (attempt - 1))
        return rand * ceiling


#: What AWS says with RequestTimeTooSkewed. Some stores send it under another code (moto:
#: 400 AccessDenied), so the words are what identify it.
_SKEW_MESSAGE = "difference between the request time and the server's time"


def is_clock_skew(code: str, message: str) -> bool:
    """Whether an error says our clock is off the server's (retry after correcting it)."""
    return code == "RequestTimeTooSkewed" or _SKEW_MESSAGE in message.lower()


def parse_retry_after(value: str | None) -> float | None:
    """Seconds from a ``Retry-After`` header (the delta-seconds form; dates are ignored)."""
    if not value:
        return None
    try:
        seconds = float(value.strip())
    except ValueError:
        return None
    return seconds if seconds >= 0 else None
