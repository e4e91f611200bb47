"""Focused, pure tests of the SigV4 signer's building blocks."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from urllib.parse import unquote
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given
from hypothesis import strategies as st

from s3stream._sigv4 import (
    canonical_headers,
    canonical_query_string,
    canonical_uri,
    encode_path,
    encode_query,
    normalize_path,
    presign_query,
    sign_headers,
    signing_key,
    uri_encode,
)
from s3stream.credentials import Credentials

CREDS = Credentials("AKIAIOSFODNN7EXAMPLE", "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY")
NOW = datetime(2013, 5, 24, 0, 0, 0, tzinfo=UTC)
UNRESERVED = "-._~0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
EMPTY = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"


def _sign(
    credentials: Credentials = CREDS, now: datetime = NOW, **overrides: object
) -> dict[str, str]:
    kwargs: dict[str, object] = {
        "method": "GET",
        "raw_path": "/key",
        "query": [],
        "headers": [("host", "bucket.s3.amazonaws.com")],
        "payload_hash": EMPTY,
        "credentials": credentials,
        "region": "us-east-1",
        "now": now,
    }
    kwargs.update(overrides)
    return sign_headers(**kwargs)  # type: ignore[arg-type]


def _signed_headers(authorization: str) -> list[str]:
    return authorization.split("SignedHeaders=")[1].split(",")[0].split(";")


def _signature(authorization: str) -> str:
    return authorization.split("Signature=")[1]


# --- query ---------------------------------------------------------------------------------------


def test_valueless_query_param_signs_with_equals_and_goes_out_bare() -> None:
    assert canonical_query_string([("uploads", "")]) == "uploads="
    assert encode_query([("uploads", "")]) == "uploads"


def test_query_sorted_by_encoded_key_then_value() -> None:
    query = [("uploadId", "b c"), ("partNumber", "2"), ("a", "2"), ("a", "1"), ("~", "+")]
    assert canonical_query_string(query) == "a=1&a=2&partNumber=2&uploadId=b%20c&~=%2B"
    # On the wire the caller's order is kept; only values with content get "=".
    assert encode_query(query) == "uploadId=b%20c&partNumber=2&a=2&a=1&~=%2B"


def test_query_encodes_reserved_characters_in_keys_and_values() -> None:
    assert canonical_query_string([("prefix", "a/b c&d=e")]) == "prefix=a%2Fb%20c%26d%3De"


# --- paths ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("char", "encoded"),
    [
        (" ", "%20"),
        ("+", "%2B"),
        ("%", "%25"),
        ("~", "~"),
        ("=", "%3D"),
        ("&", "%26"),
        ("(", "%28"),
        (")", "%29"),
        (":", "%3A"),
        ("@", "%40"),
        ("$", "%24"),
        ("*", "%2A"),
        ("é", "%C3%A9"),
        ("ሴ", "%E1%88%B4"),
        ("😀", "%F0%9F%98%80"),
    ],
)
def test_path_character_encoding(char: str, encoded: str) -> None:
    assert uri_encode(char) == encoded
    assert encode_path(f"/a{char}b/{char}") == f"/a{encoded}b/{encoded}"
    assert canonical_uri(f"/a{char}b/{char}", s3=True) == f"/a{encoded}b/{encoded}"


def test_unreserved_characters_are_kept() -> None:
    assert uri_encode(UNRESERVED) == UNRESERVED
    assert encode_path("/" + UNRESERVED) == "/" + UNRESERVED


def test_slash_kept_in_paths_but_encoded_in_query_values() -> None:
    assert encode_path("/dir/sub dir/file") == "/dir/sub%20dir/file"
    assert uri_encode("dir/file") == "dir%2Ffile"


def test_path_is_encoded_once() -> None:
    # A key that contains a literal "%20" is not a space: its "%" is encoded.
    assert canonical_uri("/100%20off", s3=True) == "/100%2520off"
    assert canonical_uri("/test$file.text", s3=True) == "/test%24file.text"


def test_s3_keys_are_never_normalised() -> None:
    assert canonical_uri("/a//b/../c", s3=True) == "/a//b/../c"
    assert canonical_uri("/bucket/./x/", s3=True) == "/bucket/./x/"
    assert canonical_uri("//", s3=True) == "//"


def test_generic_mode_normalises() -> None:
    assert canonical_uri("/a//b/../c", s3=False) == "/a/c"
    assert normalize_path("/a//b/../c/") == "/a/c/"
    assert normalize_path("/..") == "/"
    assert canonical_uri("", s3=False) == "/"
    assert canonical_uri("", s3=True) == "/"


def test_sign_headers_s3_mode_signs_the_unnormalised_key() -> None:
    plain = _sign(raw_path="/a/c")
    dotted = _sign(raw_path="/a//b/../c")
    assert _signature(plain["Authorization"]) != _signature(dotted["Authorization"])
    assert dotted == _sign(raw_path="/a//b/../c", s3=True)
    # Generic mode normalises both to the same canonical URI (no x-amz-content-sha256 then).
    generic_plain = _sign(raw_path="/a/c", s3=False)
    assert generic_plain == _sign(raw_path="/a//b/../c", s3=False)


# --- headers -------------------------------------------------------------------------------------


def test_canonical_headers_lowercase_sort_trim_and_join_duplicates() -> None:
    block, signed = canonical_headers(
        [("X-B", "  two   words "), ("Host", "h"), ("x-b", "again"), ("A", "x\n  y")]
    )
    assert block == "a:x y\nhost:h\nx-b:two words,again\n"
    assert signed == "a;host;x-b"


def test_s3_mode_signs_content_sha256_and_date() -> None:
    added = _sign()
    assert added["x-amz-content-sha256"] == EMPTY
    assert added["x-amz-date"] == "20130524T000000Z"
    assert _signed_headers(added["Authorization"]) == [
        "host",
        "x-amz-content-sha256",
        "x-amz-date",
    ]


def test_session_token_is_signed() -> None:
    creds = Credentials(CREDS.access_key_id, CREDS.secret_access_key, session_token="TOKEN/+=")
    added = _sign(credentials=creds)
    assert added["x-amz-security-token"] == "TOKEN/+="
    assert "x-amz-security-token" in _signed_headers(added["Authorization"])
    assert _signature(added["Authorization"]) != _signature(_sign()["Authorization"])


def test_session_token_in_presigned_query_is_signed() -> None:
    creds = Credentials(CREDS.access_key_id, CREDS.secret_access_key, session_token="TOKEN")
    kwargs: dict = {
        "method": "GET",
        "raw_path": "/test.txt",
        "query": [],
        "host": "examplebucket.s3.amazonaws.com",
        "region": "us-east-1",
        "now": NOW,
        "expires": 60,
    }
    with_token = presign_query(credentials=creds, **kwargs)
    without = presign_query(credentials=CREDS, **kwargs)
    assert ("X-Amz-Security-Token", "TOKEN") in with_token
    assert with_token[-1][0] == without[-1][0] == "X-Amz-Signature"
    assert with_token[-1] != without[-1]


def test_caller_cannot_override_signer_headers() -> None:
    # A stale x-amz-date from a retried request is replaced, not signed twice.
    added = _sign(headers=[("host", "h"), ("X-Amz-Date", "20000101T000000Z")])
    assert added == _sign(headers=[("host", "h")])


# --- key derivation and time ---------------------------------------------------------------------


def test_signing_key_is_cached() -> None:
    args = ("cache-test-secret", "20130524", "us-east-1", "s3")
    first = signing_key(*args)
    hits = signing_key.cache_info().hits
    second = signing_key(*args)
    assert signing_key.cache_info().hits == hits + 1
    assert first == second
    assert len(first) == 32


def test_signing_key_known_value() -> None:
    # The derived key of the AWS documentation's "Derive a signing key" walkthrough
    # (AKIDEXAMPLE, 20150830, us-east-1, iam).
    key = signing_key("wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY", "20150830", "us-east-1", "iam")
    assert key.hex() == "c4afb1cc5771d871763a393e44b703571b55cc28424d1a5e86da6ed3c154a4b9"


def test_different_time_gives_different_date_and_signature() -> None:
    later = _sign(now=NOW + timedelta(seconds=1))
    base = _sign()
    assert later["x-amz-date"] == "20130524T000001Z"
    assert later["x-amz-date"] != base["x-amz-date"]
    assert _signature(later["Authorization"]) != _signature(base["Authorization"])
    # Non-UTC input is converted to UTC (the scope's date follows).
    tokyo = _sign(now=NOW.astimezone(ZoneInfo("Asia/Tokyo")))
    assert tokyo == base


# --- properties ----------------------------------------------------------------------------------


# Any Unicode scalar value (surrogates cannot be UTF-8 encoded, so they are not keys), mixed
# with the ASCII characters that need care. Built from code points rather than st.text()'s
# default alphabet, which costs about a second on a fresh checkout (unicode table build).
KEY_CHARS = st.one_of(
    st.sampled_from(list("/ +%~=&()@:$*?#!'\",;[]{}|\\^`<>.-_\t\n\x00\x7f")),
    st.integers(0, 0x10FFFF).filter(lambda c: not 0xD800 <= c <= 0xDFFF).map(chr),
)


@given(st.text(alphabet=KEY_CHARS))
def test_encode_path_round_trips(key: str) -> None:
    encoded = encode_path(key)
    assert unquote(encoded) == key
    assert encode_path(unquote(encoded)) == encoded
    # Slashes survive one-for-one; nothing else outside the unreserved set does.
    assert encoded.count("/") == key.count("/")
    assert set(encoded) <= set(UNRESERVED + "/%")
    assert re.fullmatch(r"([^%]|%[0-9A-F]{2})*", encoded)
    assert canonical_uri("/" + key, s3=True) == "/" + encoded
