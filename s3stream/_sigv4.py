"""AWS Signature Version 4, pure: no clock, no network, no aiohttp.

Functions are named after the steps of the specification ("Create a canonical
request", "Create a string to sign", "Derive a signing key", "Calculate the
signature") so tests can check every intermediate string against AWS's vectors.
The caller passes the time in (``now``), which makes signing deterministic and
lets the client correct its clock offset after ``RequestTimeTooSkewed``.

S3 differs from the generic algorithm in two ways that matter here: the URI path
is encoded once and never normalised (``a//b/../c`` is a valid key), and every
request carries ``x-amz-content-sha256``. ``s3=False`` selects the generic
behaviour, which exists so the whole published suite can run against this core.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Iterable, Sequence
from datetime import UTC, datetime
from functools import lru_cache
from urllib.parse import quote

from .credentials._model import Credentials

ALGORITHM = "AWS4-HMAC-SHA256"
UNSIGNED_PAYLOAD = "UNSIGNED-PAYLOAD"
EMPTY_SHA256 = hashlib.sha256(b"").hexdigest()

Header = tuple[str, str]
Query = Sequence[tuple[str, str]]


def uri_encode(value: str, *, safe: str = "") -> str:
    """Percent-encode UTF-8 bytes, keeping only RFC 3986 unreserved characters (and ``safe``)."""
    # quote() always keeps "A-Za-z0-9_.-~", exactly SigV4's unreserved set.
    return quote(value, safe=safe)


def encode_path(raw_path: str) -> str:
    """The path as it goes on the wire: each segment encoded once, slashes kept."""
    return uri_encode(raw_path, safe="/")


def normalize_path(raw_path: str) -> str:
    """RFC 3986 dot-segment removal plus slash folding: the generic (non-S3) rule."""
    segments: list[str] = []
    for segment in raw_path.split("/"):
        if segment in ("", "."):
            continue
        if segment == "..":
            if segments:
                segments.pop()
            continue
        segments.append(segment)
    path = "/" + "/".join(segments)
    if raw_path.endswith("/") and len(path) > 1:
        path += "/"
    return path


def canonical_uri(raw_path: str, *, s3: bool = True) -> str:
    if not s3:
        raw_path = normalize_path(raw_path)
    return encode_path(raw_path) or "/"


def canonical_query_string(query: Query) -> str:
    """Sorted ``key=value`` pairs of the decoded query; a value-less key signs as ``key=``."""
    pairs = sorted((uri_encode(k), uri_encode(v)) for k, v in query)
    return "&".join(f"{k}={v}" for k, v in pairs)


def _trim(value: str) -> str:
    # Sequential spaces (including folded continuation lines) become one space.
    return " ".join(value.split())


def canonical_headers(headers: Iterable[Header]) -> tuple[str, str]:
    """The canonical headers block and the signed-headers list.

    Names are lower-cased and sorted; repeated names join their values with commas
    in the order given.
    """
    merged: dict[str, list[str]] = {}
    for name, value in headers:
        merged.setdefault(name.strip().lower(), []).append(_trim(value))
    names = sorted(merged)
    block = "".join(f"{name}:{','.join(merged[name])}\n" for name in names)
    return block, ";".join(names)


def canonical_request(
    method: str,
    canonical_uri: str,
    canonical_query: str,
    canonical_headers: str,
    signed_headers: str,
    payload_hash: str,
) -> str:
    return "\n".join(
        (method, canonical_uri, canonical_query, canonical_headers, signed_headers, payload_hash)
    )


def amz_date(now: datetime) -> str:
    return now.astimezone(UTC).strftime("%Y%m%dT%H%M%SZ")


def credential_scope(date: str, region: str, service: str) -> str:
    return f"{date}/{region}/{service}/aws4_request"


def string_to_sign(amz_date: str, scope: str, canonical_request: str) -> str:
    digest = hashlib.sha256(canonical_request.encode("utf-8")).hexdigest()
    return f"{ALGORITHM}\n{amz_date}\n{scope}\n{digest}"


def _hmac(key: bytes, msg: str) -> bytes:
    return hmac.new(key, msg.encode("utf-8"), hashlib.sha256).digest()


@lru_cache(maxsize=32)
def signing_key(secret_access_key: str, date: str, region: str, service: str) -> bytes:
    """Derived once per (secret, day, region, service): four HMACs saved on every request."""
    k_date = _hmac(("AWS4" + secret_access_key).encode("utf-8"), date)
    k_region = _hmac(k_date, region)
    k_service = _hmac(k_region, service)
    return _hmac(k_service, "aws4_request")


def signature(key: bytes, string_to_sign: str) -> str:
    return hmac.new(key, string_to_sign.encode("utf-8"), hashlib.sha256).hexdigest()


def sign_headers(
    *,
    method: str,
    raw_path: str,
    query: Query,
    headers: Iterable[Header],
    payload_hash: str,
    credentials: Credentials,
    region: str,
    now: datetime,
    service: str = "s3",
    s3: bool = True,
) -> dict[str, str]:
    """Headers to add to a request so that it is signed.

    ``headers`` must include ``host``. Returns ``x-amz-date``, ``x-amz-content-sha256``
    (S3 only), ``x-amz-security-token`` (with a session token) and ``Authorization``;
    the first three are signed.
    """
    stamp = amz_date(now)
    added: dict[str, str] = {"x-amz-date": stamp}
    if s3:
        added["x-amz-content-sha256"] = payload_hash
    if credentials.session_token:
        added["x-amz-security-token"] = credentials.session_token
    given = [(n, v) for n, v in headers if n.lower() not in added]
    block, signed = canonical_headers([*given, *added.items()])
    creq = canonical_request(
        method, canonical_uri(raw_path, s3=s3), canonical_query_string(query), block, signed,
        payload_hash,
    )
    scope = credential_scope(stamp[:8], region, service)
    sts = string_to_sign(stamp, scope, creq)
    key = signing_key(credentials.secret_access_key, stamp[:8], region, service)
    added["Authorization"] = (
        f"{ALGORITHM} Credential={credentials.access_key_id}/{scope},"
        f"SignedHeaders={signed},Signature={signature(key, sts)}"
    )
    return added


def presign_query(
    *,
    method: str,
    raw_path: str,
    query: Query,
    host: str,
    credentials: Credentials,
    region: str,
    now: datetime,
    expires: int,
    service: str = "s3",
    headers: Iterable[Header] = (),
) -> list[tuple[str, str]]:
    """The query parameters of a presigned URL (unsigned payload).

    ``host`` is always signed; ``headers`` are signed too, so whoever uses the URL must
    send each of them with exactly that value (S3 refuses the request otherwise).
    """
    stamp = amz_date(now)
    scope = credential_scope(stamp[:8], region, service)
    given = [(n, v) for n, v in headers if n.strip().lower() != "host"]
    block, signed = canonical_headers([("host", host), *given])
    params = [
        *query,
        ("X-Amz-Algorithm", ALGORITHM),
        ("X-Amz-Credential", f"{credentials.access_key_id}/{scope}"),
        ("X-Amz-Date", stamp),
        ("X-Amz-Expires", str(expires)),
        ("X-Amz-SignedHeaders", signed),
    ]
    if credentials.session_token:
        params.append(("X-Amz-Security-Token", credentials.session_token))
    creq = canonical_request(
        method, canonical_uri(raw_path), canonical_query_string(params), block, signed,
        UNSIGNED_PAYLOAD,
    )
    key = signing_key(credentials.secret_access_key, stamp[:8], region, service)
    params.append(("X-Amz-Signature", signature(key, string_to_sign(stamp, scope, creq))))
    return params


def encode_query(query: Query) -> str:
    """The query string as sent: a value-less parameter goes out bare (``?uploads``)."""
    return "&".join(f"{uri_encode(k)}={uri_encode(v)}" if v else uri_encode(k) for k, v in query)
