"""The signer against published vectors.

* ``aws4_testsuite/``: AWS's SigV4 test suite, every case, in generic mode (``s3=False``).
* ``s3-examples.json``: the S3 documentation's examples, in S3 mode (``s3=True``).

Each step (canonical request, string to sign, Authorization) is checked separately so a
failure points at the step that went wrong. See ``tests/vectors/sigv4/README.md``.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from urllib.parse import parse_qsl, unquote, urlsplit

import pytest

from s3stream._sigv4 import (
    amz_date,
    canonical_headers,
    canonical_query_string,
    canonical_request,
    canonical_uri,
    credential_scope,
    encode_path,
    encode_query,
    presign_query,
    sign_headers,
    signature,
    signing_key,
    string_to_sign,
)
from s3stream.credentials import Credentials

VECTORS = Path(__file__).parent / "vectors" / "sigv4"
SUITE = VECTORS / "aws4_testsuite"

# Parameters of the AWS test suite (not stored in its files).
SUITE_ACCESS_KEY = "AKIDEXAMPLE"
SUITE_SECRET_KEY = "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY"
SUITE_REGION = "us-east-1"
SUITE_SERVICE = "service"
SUITE_NOW = datetime(2015, 8, 30, 12, 36, 0, tzinfo=UTC)
# The token post-sts-header-after adds once the request is signed (post-sts-token/readme.txt).
STS_TOKEN = (
    "AQoDYXdzEPT//////////wEXAMPLEtc764bNrC9SAPBSM22wDOk4x4HIZ8j4FZTwdQWLWsKWHGBuFqwAeMicRXmxfpSPf"
    "IeoIYRqTflfKD8YUuwthAx7mSEI/qkPpKPi/kMcGdQrmGdeehM4IC1NtBmUpp2wUE8phUZampKsburEDy0KPkyQDYwT7WZ"
    "0wq5VSXDvp75YU9HFvlRd8Tx6q6fE8YQcHNVXAkiY9q6d+xo0rKwT38xVqr7ZD0u0iPPkUL64lIZbqBAz+scqKmlzm8FDr"
    "ypNC9Yjc8fPOLn9FX9KSYvKTr4rvx3iSIlTJabIQwj2ICCR/oLxBA=="
)


def _read(path: Path) -> str:
    return path.read_bytes().decode("utf-8")


def _suite_cases() -> list[str]:
    """Every case directory (one holding ``<name>/<name>.req``), nested groups included."""
    return sorted(
        req.parent.relative_to(SUITE).as_posix()
        for req in SUITE.rglob("*.req")
        if req.stem == req.parent.name
    )


SUITE_CASES = _suite_cases()


@dataclass
class ParsedRequest:
    method: str
    raw_path: str
    query: list[tuple[str, str]]
    headers: list[tuple[str, str]]
    body: bytes


def parse_req(text: str) -> ParsedRequest:
    """Parse a suite ``.req`` file: request line, ``Name:value`` headers, blank line, body.

    Continuation lines (leading whitespace) are folded into the previous header's value with
    their line break kept, so the signer's own trimming is what collapses them. Repeated header
    names stay separate pairs, in file order.
    """
    lines = text.split("\n")
    method, rest = lines[0].split(" ", 1)
    target, version = rest.rsplit(" ", 1)  # the path may contain spaces ("/example space/")
    assert version == "HTTP/1.1"
    raw_path, _, query_string = target.partition("?")
    # Paths are raw (unencoded) in the files. Query parameters are raw too except in
    # get-vanilla-query-order-encoded, which has %-escapes: decode them so the signer re-encodes.
    query = []
    for pair in query_string.split("&"):
        if pair:
            key, _, value = pair.partition("=")
            query.append((unquote(key), unquote(value)))
    headers: list[tuple[str, str]] = []
    end = len(lines)
    for index, line in enumerate(lines[1:], start=1):
        if line == "":
            end = index
            break
        if line[0] in " \t":
            name, value = headers[-1]
            headers[-1] = (name, f"{value}\n{line}")
        else:
            name, _, value = line.partition(":")
            headers.append((name, value))
    body = "\n".join(lines[end + 1 :]).encode("utf-8")
    return ParsedRequest(method, raw_path, query, headers, body)


def test_parse_req_folds_continuations_and_keeps_duplicates() -> None:
    req = parse_req("GET /a b/?x=1&y HTTP/1.1\nH:v1\n  v2\nH:v3\nZ: z\n\nbody\nmore")
    assert req.method == "GET"
    assert req.raw_path == "/a b/"
    assert req.query == [("x", "1"), ("y", "")]
    assert req.headers == [("H", "v1\n  v2"), ("H", "v3"), ("Z", " z")]
    assert req.body == b"body\nmore"


def test_suite_is_complete() -> None:
    # 34 cases, including the nested groups and the four cases botocore's harness skips.
    assert len(SUITE_CASES) == 34
    assert "normalize-path/get-space" in SUITE_CASES
    assert "post-sts-token/post-sts-header-before" in SUITE_CASES
    assert "post-sts-token/post-sts-header-after" in SUITE_CASES
    assert "get-vanilla-query-order-key" in SUITE_CASES


def _creq_token(creq: str) -> str | None:
    for line in creq.split("\n"):
        if line.startswith("x-amz-security-token:"):
            return line.partition(":")[2]
    return None


def _authz_parts(authz: str) -> tuple[str, list[str]]:
    algorithm, _, rest = authz.partition(" ")
    return algorithm, [part.strip() for part in rest.split(",")]


@pytest.mark.parametrize("case", SUITE_CASES)
def test_aws4_testsuite(case: str) -> None:
    directory = SUITE / case
    name = directory.name
    req = parse_req(_read(directory / f"{name}.req"))
    expected_creq = _read(directory / f"{name}.creq")
    expected_sts = _read(directory / f"{name}.sts")
    expected_authz = _read(directory / f"{name}.authz")

    # The session token, when the case signs one, is a credential: the signer adds and signs
    # x-amz-security-token itself. post-sts-header-before carries it in the .req;
    # get-vanilla-with-session-token only in the .creq. post-sts-header-after adds the token
    # after signing, so that case signs with token-less credentials (no token in its .creq).
    given = dict((n.lower(), v) for n, v in req.headers)
    token = given.get("x-amz-security-token") or _creq_token(expected_creq)
    credentials = Credentials(SUITE_ACCESS_KEY, SUITE_SECRET_KEY, session_token=token)
    payload_hash = hashlib.sha256(req.body).hexdigest()

    # Step by step.
    headers = list(req.headers)
    if token and "x-amz-security-token" not in given:
        headers.append(("X-Amz-Security-Token", token))
    block, signed = canonical_headers(headers)
    creq = canonical_request(
        req.method,
        canonical_uri(req.raw_path, s3=False),
        canonical_query_string(req.query),
        block,
        signed,
        payload_hash,
    )
    assert creq == expected_creq
    stamp = amz_date(SUITE_NOW)
    assert stamp == given["x-amz-date"] == "20150830T123600Z"
    scope = credential_scope(stamp[:8], SUITE_REGION, SUITE_SERVICE)
    sts = string_to_sign(stamp, scope, creq)
    assert sts == expected_sts
    key = signing_key(SUITE_SECRET_KEY, stamp[:8], SUITE_REGION, SUITE_SERVICE)
    assert expected_authz.endswith(f"Signature={signature(key, sts)}")

    # The whole thing, through the public entry point.
    added = sign_headers(
        method=req.method,
        raw_path=req.raw_path,
        query=req.query,
        headers=req.headers,
        payload_hash=payload_hash,
        credentials=credentials,
        region=SUITE_REGION,
        now=SUITE_NOW,
        service=SUITE_SERVICE,
        s3=False,
    )
    # The suite separates the Authorization components with ", ", the S3 documentation (and
    # this signer) with ","; AWS accepts either, so compare the components exactly.
    assert _authz_parts(added["Authorization"]) == _authz_parts(expected_authz)
    assert added["Authorization"] == expected_authz.replace(", ", ",")
    assert added["x-amz-date"] == "20150830T123600Z"
    assert "x-amz-content-sha256" not in added  # generic mode
    assert added.get("x-amz-security-token") == token


def test_aws4_testsuite_sts_header_after() -> None:
    """The token is added to the request after signing: present on the wire, not signed."""
    directory = SUITE / "post-sts-token" / "post-sts-header-after"
    sreq = _read(directory / "post-sts-header-after.sreq")
    authz = _read(directory / "post-sts-header-after.authz")
    assert f"\nX-Amz-Security-Token:{STS_TOKEN}\n" in sreq
    assert "SignedHeaders=host;x-amz-date," in authz
    # Signing with the token (the "before" convention) gives another signature.
    req = parse_req(_read(directory / "post-sts-header-after.req"))
    with_token = sign_headers(
        method=req.method,
        raw_path=req.raw_path,
        query=req.query,
        headers=req.headers,
        payload_hash=hashlib.sha256(req.body).hexdigest(),
        credentials=Credentials(SUITE_ACCESS_KEY, SUITE_SECRET_KEY, session_token=STS_TOKEN),
        region=SUITE_REGION,
        now=SUITE_NOW,
        service=SUITE_SERVICE,
        s3=False,
    )
    assert with_token["Authorization"] != authz.replace(", ", ",")
    before = _read(
        SUITE / "post-sts-token" / "post-sts-header-before" / "post-sts-header-before.authz"
    )
    assert with_token["Authorization"] == before.replace(", ", ",")


# --- S3 documentation examples (S3 mode) -------------------------------------------------------
#
# The file's "streaming" entries (aws-chunked STREAMING-AWS4-HMAC-SHA256-PAYLOAD and its
# -TRAILER variant) are deliberately not tested: the signer has no chunked-streaming API
# (no seed/chunk/trailer signatures), so there is nothing to run them against.

S3 = json.loads(_read(VECTORS / "s3-examples.json"))
S3_CREDS = S3["credentials"]
S3_NOW = datetime(2013, 5, 24, 0, 0, 0, tzinfo=UTC)
S3_CREDENTIALS = Credentials(S3_CREDS["access_key"], S3_CREDS["secret_key"])


def test_s3_examples_parameters() -> None:
    assert amz_date(S3_NOW) == S3_CREDS["amz_date"] == "20130524T000000Z"
    assert S3_CREDS["region"] == "us-east-1"
    assert S3_CREDS["service"] == "s3"
    assert len(S3["header_auth"]) == 4


@pytest.mark.parametrize("entry", S3["header_auth"], ids=lambda entry: entry["name"])
def test_s3_header_auth(entry: dict[str, object]) -> None:
    url = urlsplit(str(entry["url"]))
    raw_path = unquote(url.path)
    assert encode_path(raw_path) == url.path  # e.g. test$file.text <-> /test%24file.text
    if "object_key" in entry:
        assert raw_path == "/" + str(entry["object_key"])
    query = parse_qsl(url.query, keep_blank_values=True)
    assert encode_query(query) == url.query  # "?lifecycle" goes out bare
    given = dict(entry["headers"])  # type: ignore[call-overload]
    payload_hash = given["x-amz-content-sha256"]
    assert hashlib.sha256(str(entry["body"]).encode()).hexdigest() == payload_hash
    assert given["x-amz-date"] == S3_CREDS["amz_date"]
    method = str(entry["method"])
    region, service = S3_CREDS["region"], S3_CREDS["service"]

    # Step by step.
    block, signed = canonical_headers([("host", url.netloc), *given.items()])
    assert signed == entry["expected_signed_headers"]
    creq = canonical_request(
        method,
        canonical_uri(raw_path, s3=True),
        canonical_query_string(query),
        block,
        signed,
        payload_hash,
    )
    assert creq == entry["canonical_request"]
    stamp = amz_date(S3_NOW)
    scope = credential_scope(stamp[:8], region, service)
    sts = string_to_sign(stamp, scope, creq)
    assert sts == entry["string_to_sign"]
    key = signing_key(S3_CREDS["secret_key"], stamp[:8], region, service)
    assert signature(key, sts) == entry["expected_signature"]

    # Through the public entry point: only the request's own headers go in; x-amz-date and
    # x-amz-content-sha256 come back from the signer.
    own = [(n, v) for n, v in given.items() if n not in ("x-amz-date", "x-amz-content-sha256")]
    added = sign_headers(
        method=method,
        raw_path=raw_path,
        query=query,
        headers=[("Host", url.netloc), *own],
        payload_hash=payload_hash,
        credentials=S3_CREDENTIALS,
        region=region,
        now=S3_NOW,
        service=service,
        s3=True,
    )
    assert added["Authorization"] == entry["expected_authorization"]
    assert added["x-amz-date"] == given["x-amz-date"]
    assert added["x-amz-content-sha256"] == payload_hash
    assert "x-amz-security-token" not in added


def test_s3_presigned() -> None:
    entry = S3["presigned"]
    url = urlsplit(entry["url"])
    params = presign_query(
        method=entry["method"],
        raw_path=unquote(url.path),
        query=parse_qsl(url.query, keep_blank_values=True),
        host=url.netloc,
        credentials=S3_CREDENTIALS,
        region=S3_CREDS["region"],
        now=S3_NOW,
        expires=entry["expires"],
        service=S3_CREDS["service"],
    )
    assert params[-1] == ("X-Amz-Signature", entry["expected_signature"])
    assert dict(params) == entry["expected_query"]
    assert f"{entry['url']}?{encode_query(params)}" == entry["expected_url"]
