"""Presigned URLs and plain object URLs, pure: no clock, no network, no aiohttp.

A presigned URL carries its signature in the query (SigV4 "query parameters"
authentication), made by ``_sigv4.presign_query``, the same signer that signs every
request. The caller passes in what is current: the credentials, the (skew-corrected)
time, and the endpoint and region that serve the bucket.

Rules kept here:

* The URL is built once, encoded once, exactly as it was signed (``Endpoint.url``).
* ``expires`` is 1 second to 7 days, S3's own limits, checked before anything is signed.
* Headers given to a presigned PUT are *signed*: they are listed in
  ``X-Amz-SignedHeaders`` and whoever uses the URL must send each with exactly that
  value, so the URL cannot be used to store an object with another content type or
  other metadata.
* A presigned URL is valid only as long as the credentials that signed it: with
  temporary (session) credentials, at most until they expire, whatever ``expires`` says.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from ._protocol import Endpoint
from ._sigv4 import encode_query, presign_query
from .credentials._model import Credentials
from .exceptions import UsageError

__all__ = ["MAX_EXPIRES", "PresignedRequest", "check_expires", "object_url", "presign",
           "response_query"]

#: S3 refuses a presigned URL valid for longer than 7 days (604,800 s).
MAX_EXPIRES = 7 * 24 * 3600

#: ``presign_get(response_headers=...)``: the answer headers a GET URL may override, by
#: header name, as the query parameters S3 takes for them.
_RESPONSE_PARAMS = {
    "content-type": "response-content-type",
    "content-language": "response-content-language",
    "expires": "response-expires",
    "cache-control": "response-cache-control",
    "content-disposition": "response-content-disposition",
    "content-encoding": "response-content-encoding",
}


@dataclass(frozen=True, slots=True)
class PresignedRequest:
    """A presigned request: send ``method`` to ``url`` with exactly these ``headers``
    (they are signed; S3 refuses the request without them)."""

    method: str
    url: str
    headers: dict[str, str] = field(default_factory=dict)


def check_expires(expires: object) -> int:
    """Seconds (an int) or a ``timedelta`` of whole seconds, from 1 s to 7 days."""
    if isinstance(expires, timedelta):
        seconds = expires.total_seconds()
        if seconds != int(seconds):
            raise UsageError(f"expires must be a whole number of seconds, not {expires}")
        value = int(seconds)
    elif isinstance(expires, int) and not isinstance(expires, bool):
        value = expires
    else:
        raise UsageError("expires must be an int number of seconds or a timedelta, not "
                         f"{type(expires).__name__}")
    if not 1 <= value <= MAX_EXPIRES:
        raise UsageError(f"expires must be from 1 second to 7 days ({MAX_EXPIRES} s), "
                         f"not {value} s")
    return value


def response_query(response_headers: Mapping[str, str] | None) -> list[tuple[str, str]]:
    """``response-*`` query parameters for the headers a GET URL's answer should carry.

    Names are the headers' (``Content-Disposition``) or S3's parameters'
    (``response-content-disposition``), in any case."""
    if response_headers is None:
        return []
    if not isinstance(response_headers, Mapping):
        raise UsageError("response_headers must be a mapping of header names to values, "
                         f"not {type(response_headers).__name__}")
    out: list[tuple[str, str]] = []
    for name, value in response_headers.items():
        lowered = name.lower() if isinstance(name, str) else ""
        param = _RESPONSE_PARAMS.get(lowered) or (
            lowered if lowered in _RESPONSE_PARAMS.values() else None)
        if param is None:
            raise UsageError(
                f"response_headers: S3 can override only {', '.join(sorted(_RESPONSE_PARAMS))}"
                f", not {name!r}")
        if not isinstance(value, str) or any(c in value for c in "\r\n\0"):
            raise UsageError(f"response_headers[{name!r}] must be a str without CR, LF or NUL")
        if any(p == param for p, _ in out):
            raise UsageError(f"response_headers names {param} twice")
        out.append((param, value))
    return out


def presign(
    *,
    endpoint: Endpoint,
    region: str,
    credentials: Credentials,
    now: datetime,
    expires: int,
    method: str,
    bucket: str,
    key: str,
    query: Sequence[tuple[str, str]] = (),
    headers: Sequence[tuple[str, str]] = (),
) -> str:
    """The presigned URL for ``method`` on ``s3://bucket/key``; ``headers`` are signed."""
    if credentials.is_anonymous:
        raise UsageError("cannot presign with anonymous credentials: an unsigned URL is "
                         "object_url()")
    params = presign_query(
        method=method,
        raw_path=endpoint.raw_path(bucket, key),
        query=query,
        host=endpoint.netloc(bucket),
        credentials=credentials,
        region=region,
        now=now,
        expires=expires,
        headers=headers,
    )
    url = endpoint.url(bucket, key, ())
    return f"{url}?{encode_query(params)}"


def object_url(endpoint: Endpoint, bucket: str, key: str) -> str:
    """The plain, unsigned URL of an object (public objects, or a CDN in front)."""
    return endpoint.url(bucket, key, ())
