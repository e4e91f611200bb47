"""Pure core: XML, protocol readers, state machine, endpoints, credentials, retry policy."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

import s3stream
from s3stream import Credentials, Retry, S3ResponseError, UsageError, _xml
from s3stream import _protocol as proto
from s3stream.credentials import (
    CredentialsNotFound,
    resolve_credentials,
    resolve_endpoint,
    resolve_region,
)

NS = 'xmlns="http://s3.amazonaws.com/doc/2006-03-01/"'


# ---------------------------------------------------------------------------- XML


def test_render_complete_golden() -> None:
    body = _xml.render_complete([
        _xml.CompletedPart(1, '"etag-1"'),
        _xml.CompletedPart(2, '"etag-2"', {"ChecksumCRC32C": "AAAAAA=="}),
    ])
    assert body == (
        b'<?xml version="1.0" encoding="utf-8"?>\n'
        b'<CompleteMultipartUpload xmlns="http://s3.amazonaws.com/doc/2006-03-01/">'
        b'<Part><PartNumber>1</PartNumber><ETag>"etag-1"</ETag></Part>'
        b'<Part><PartNumber>2</PartNumber><ETag>"etag-2"</ETag>'
        b"<ChecksumCRC32C>AAAAAA==</ChecksumCRC32C></Part>"
        b"</CompleteMultipartUpload>"
    )


def test_render_complete_matches_xmltodict_byte_for_byte() -> None:
    # The body is written by hand (xmltodict costs ~10 ms per 1,000 parts on the loop);
    # xmltodict stays the oracle, markup-like characters in the values included.
    import xmltodict

    parts = [_xml.CompletedPart(n, f'"e&<{n}>"', {"ChecksumCRC32": f"A&B<{n}>==",
                                                  "ChecksumSHA256": "x"})
             for n in range(1, 40)]
    oracle = xmltodict.unparse({"CompleteMultipartUpload": {
        "@xmlns": "http://s3.amazonaws.com/doc/2006-03-01/",
        "Part": [{"PartNumber": str(p.number), "ETag": p.etag, **p.checksums}
                 for p in parts]}}, full_document=True).encode()
    assert _xml.render_complete(parts) == oracle
    assert xmltodict.parse(_xml.render_complete(parts))["CompleteMultipartUpload"][
        "Part"][2]["ETag"] == '"e&<3>"'


def test_render_complete_refuses_a_name_that_is_not_an_element() -> None:
    with pytest.raises(ValueError, match="element name"):
        _xml.render_complete([_xml.CompletedPart(1, '"e"', {"<bad>": "x"})])


def test_parse_initiate_with_and_without_namespace() -> None:
    for ns in (NS, ""):
        body = (f"<InitiateMultipartUploadResult {ns}><Bucket>b</Bucket><Key>k</Key>"
                "<UploadId>abc-123</UploadId></InitiateMultipartUploadResult>").encode()
        assert _xml.parse_initiate(body) == "abc-123"


def test_parse_complete_result_and_error() -> None:
    ok = (f'<?xml version="1.0"?>\n<CompleteMultipartUploadResult {NS}><Location>l</Location>'
          "<Bucket>b</Bucket><Key>k</Key><ETag>\"abc-2\"</ETag>"
          "</CompleteMultipartUploadResult>").encode()
    result = _xml.parse_complete(ok)
    assert isinstance(result, _xml.CompleteResult) and result.etag == '"abc-2"'
    # S3 may send whitespace for a while before the real answer.
    err = b"\n   \n  <Error><Code>InternalError</Code><Message>try again</Message></Error>"
    error = _xml.parse_complete(err)
    assert error == _xml.ErrorBody("InternalError", "try again", None)


def test_single_repeated_element_is_a_list() -> None:
    body = (f"<ListPartsResult {NS}><IsTruncated>false</IsTruncated>"
            "<Part><PartNumber>1</PartNumber><ETag>\"e\"</ETag><Size>5</Size></Part>"
            "</ListPartsResult>").encode()
    page = _xml.parse_list_parts(body)
    assert [p.number for p in page.parts] == [1] and not page.truncated


def test_list_uploads_pages() -> None:
    body = (f"<ListMultipartUploadsResult {NS}><IsTruncated>true</IsTruncated>"
            "<NextKeyMarker>k2</NextKeyMarker><NextUploadIdMarker>u2</NextUploadIdMarker>"
            "<Upload><Key>k1</Key><UploadId>u1</UploadId><Initiated>2026-01-01T00:00:00.000Z"
            "</Initiated></Upload><Upload><Key>k2</Key><UploadId>u2</UploadId></Upload>"
            "</ListMultipartUploadsResult>").encode()
    page = _xml.parse_list_uploads(body)
    assert [(u.key, u.upload_id) for u in page.uploads] == [("k1", "u1"), ("k2", "u2")]
    assert page.truncated and page.next_key_marker == "k2"
    empty = _xml.parse_list_uploads(b"<ListMultipartUploadsResult/>")
    assert empty.uploads == [] and not empty.truncated


@pytest.mark.parametrize("body", [b"", b"<nope", b"not xml at all", b"<a/><b/>",
                                  b"<InitiateMultipartUploadResult/>"])
def test_malformed_xml(body: bytes) -> None:
    with pytest.raises(_xml.MalformedXML):
        _xml.parse_initiate(body)


def test_entities_are_not_expanded() -> None:
    bomb = (b'<?xml version="1.0"?><!DOCTYPE x [<!ENTITY a "aaaaaaaaaa">'
            b'<!ENTITY b "&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;">]>'
            b"<InitiateMultipartUploadResult><UploadId>&b;</UploadId>"
            b"</InitiateMultipartUploadResult>")
    with pytest.raises(_xml.MalformedXML):
        _xml.parse_initiate(bomb)


# ----------------------------------------------------------------- protocol readers

REQ = proto.complete_multipart_upload("bkt", "key", "up1", [_xml.CompletedPart(1, '"e"')])


def test_200_with_error_body_is_an_error() -> None:
    body = b"<Error><Code>InternalError</Code><Message>We hit a snag</Message>" \
           b"<RequestId>R1</RequestId></Error>"
    with pytest.raises(S3ResponseError) as info:
        proto.read_complete(REQ, proto.Response(200, {}, body))
    err = info.value
    assert (err.status, err.code, err.request_id) == (200, "InternalError", "R1")
    assert err.operation == "CompleteMultipartUpload" and err.bucket == "bkt" and err.key == "key"


def test_error_status_without_body_uses_status_and_headers() -> None:
    resp = proto.Response(503, {"x-amz-request-id": "RID", "retry-after": "3"}, b"")
    with pytest.raises(S3ResponseError) as info:
        proto.check(REQ, resp)
    assert info.value.code == "ServiceUnavailable"
    assert info.value.request_id == "RID" and info.value.retry_after == 3.0


def test_abort_tolerates_no_such_upload() -> None:
    req = proto.abort_multipart_upload("bkt", "k", "u")
    body = b"<Error><Code>NoSuchUpload</Code></Error>"
    proto.read_abort(req, proto.Response(404, {}, body))
    with pytest.raises(S3ResponseError):
        proto.read_abort(req, proto.Response(403, {}, b"<Error><Code>AccessDenied</Code></Error>"))


def test_missing_etag_is_malformed() -> None:
    req = proto.upload_part("b", "k", "u", 1, [b"x"], 1)
    with pytest.raises(S3ResponseError) as info:
        proto.read_etag(req, proto.Response(200, {}, b""))
    assert info.value.code == "MalformedResponse"


# ------------------------------------------------------------------- state machine


def test_state_machine_happy_path() -> None:
    st = proto.MultipartState("b", "k")
    st.opened("u1")
    for n in (1, 2):
        st.part_started(n, 10)
    st.part_done(_xml.CompletedPart(2, '"b"'))
    with pytest.raises(proto.ProtocolViolation, match="in flight"):
        st.begin_complete()
    st.part_done(_xml.CompletedPart(1, '"a"'))
    assert [p.number for p in st.begin_complete()] == [1, 2]
    st.completed()
    assert st.state is proto.State.COMPLETED and st.size == 20


def test_state_machine_failure_is_sticky() -> None:
    st = proto.MultipartState("b", "k")
    st.opened("u1")
    st.part_started(1, 10)
    st.failed()
    assert st.needs_abort
    with pytest.raises(proto.ProtocolViolation):
        st.part_done(_xml.CompletedPart(1, '"a"'))
    with pytest.raises(proto.ProtocolViolation):
        st.begin_complete()
    st.aborted()
    assert st.state is proto.State.ABORTED


def test_state_machine_rejects_empty_and_duplicate() -> None:
    st = proto.MultipartState("b", "k")
    with pytest.raises(proto.ProtocolViolation):
        st.part_started(1, 1)  # not opened yet
    st.opened("u")
    with pytest.raises(proto.ProtocolViolation, match="no parts"):
        st.begin_complete()
    st.part_started(1, 1)
    with pytest.raises(proto.ProtocolViolation, match="twice"):
        st.part_started(1, 1)


# ------------------------------------------------------------------------ endpoints


def test_path_style_url_keeps_key_verbatim() -> None:
    ep = proto.Endpoint.parse("http://127.0.0.1:8333", region="us-east-1", addressing="auto")
    assert ep.netloc("bkt") == "127.0.0.1:8333"
    assert ep.url("bkt", "a//b/../c d", ()) == "http://127.0.0.1:8333/bkt/a//b/../c%20d"
    assert ep.url("bkt", "k", (("uploads", ""),)) == "http://127.0.0.1:8333/bkt/k?uploads"
    assert ep.url("bkt", "k", (("partNumber", "3"), ("uploadId", "a/b+c"))) == \
        "http://127.0.0.1:8333/bkt/k?partNumber=3&uploadId=a%2Fb%2Bc"


def test_aws_default_is_virtual_hosted() -> None:
    ep = proto.Endpoint.parse(None, region="eu-west-1", addressing="auto")
    assert ep.url("bkt", "k", ()) == "https://bkt.s3.eu-west-1.amazonaws.com/k"
    # Dotted buckets would break the TLS wildcard certificate: they go path-style.
    assert ep.url("a.b.c", "k", ()) == "https://s3.eu-west-1.amazonaws.com/a.b.c/k"
    forced = proto.Endpoint.parse(None, region="eu-west-1", addressing="path")
    assert forced.url("bkt", "k", ()) == "https://s3.eu-west-1.amazonaws.com/bkt/k"
    custom = proto.Endpoint.parse("https://minio.local", region="x", addressing="virtual")
    assert custom.url("bkt", "k", ()) == "https://bkt.minio.local/k"


def test_default_ports_are_not_in_host() -> None:
    assert proto.Endpoint.parse("https://h:443", region="r", addressing="path").netloc(None) == "h"
    assert proto.Endpoint.parse("http://h:80", region="r", addressing="path").netloc(None) == "h"
    assert proto.Endpoint.parse("http://[::1]:9000", region="r",
                                addressing="path").netloc(None) == "[::1]:9000"


@pytest.mark.parametrize("url", ["ftp://h", "h:9000", "http://", "http://h?x=1"])
def test_bad_endpoints(url: str) -> None:
    with pytest.raises(UsageError):
        proto.Endpoint.parse(url, region="r", addressing="auto")


@pytest.mark.parametrize("name", ["ab", "A_B", "-abc", "abc-", "a..b", "192.168.1.1",
                                  "x" * 64, 7])
def test_invalid_bucket_names(name: object) -> None:
    with pytest.raises(UsageError):
        proto.validate_bucket(name)


def test_headers_are_validated() -> None:
    headers = proto.build_object_headers(
        content_type="video/mp4", metadata={"Origin": "cam"},
        extra_headers={"x-amz-storage-class": "STANDARD_IA"})
    assert headers == (("Content-Type", "video/mp4"), ("x-amz-meta-origin", "cam"),
                       ("x-amz-storage-class", "STANDARD_IA"))
    for kwargs in (
        {"content_type": "a\nb"},
        {"metadata": {"k": "v\r\nInjected: 1"}},
        {"metadata": {"bad key": "v"}},
        {"metadata": {"k": "ünicode"}},
        {"extra_headers": {"Authorization": "x"}},
        {"extra_headers": {"X-Thing": "a\rb"}},
        {"extra_headers": {"Content-Type": "a"}, "content_type": "b"},
    ):
        args = {"content_type": None, "metadata": None, "extra_headers": None, **kwargs}
        with pytest.raises(UsageError):
            proto.build_object_headers(**args)  # type: ignore[arg-type]


# ---------------------------------------------------------------------- credentials


def test_credentials_repr_hides_secrets() -> None:
    creds = Credentials("AKID", "very-secret", "token-value")
    text = repr(creds) + str(creds)
    assert "AKID" in text and "very-secret" not in text and "token-value" not in text
    with pytest.raises(UsageError):
        Credentials("AKID", "")


def test_credentials_chain(tmp_path: Path) -> None:
    env = {"HOME": str(tmp_path)}
    assert isinstance(resolve_credentials(None, env), CredentialsNotFound)
    aws = tmp_path / ".aws"
    aws.mkdir()
    (aws / "credentials").write_text(
        "[default]\naws_access_key_id = FILEKEY\naws_secret_access_key = filesecret\n"
        "[dev]\naws_access_key_id = DEVKEY\naws_secret_access_key = devsecret\n"
        "aws_session_token = devtoken\n")
    (aws / "config").write_text(
        "[default]\nregion = eu-central-1\n[profile dev]\nregion = ap-south-1\n"
        "endpoint_url = http://dev.local:9000\n")
    assert resolve_credentials(None, env) == Credentials("FILEKEY", "filesecret")
    dev = {**env, "AWS_PROFILE": "dev"}
    assert resolve_credentials(None, dev) == Credentials("DEVKEY", "devsecret", "devtoken")
    assert resolve_region(None, env) == "eu-central-1"
    assert resolve_region(None, dev) == "ap-south-1"
    assert resolve_endpoint(None, dev) == "http://dev.local:9000"
    envvars = {**dev, "AWS_ACCESS_KEY_ID": "ENVKEY", "AWS_SECRET_ACCESS_KEY": "envsecret",
               "AWS_REGION": "us-west-2", "AWS_ENDPOINT_URL_S3": "http://s3.local",
               "AWS_ENDPOINT_URL": "http://other.local"}
    assert resolve_credentials(None, envvars) == Credentials("ENVKEY", "envsecret")
    assert resolve_region(None, envvars) == "us-west-2"
    assert resolve_endpoint(None, envvars) == "http://s3.local"
    explicit = Credentials("X", "Y")
    assert resolve_credentials(explicit, envvars) is explicit
    custom = {"HOME": str(tmp_path), "AWS_SHARED_CREDENTIALS_FILE": str(aws / "none"),
              "AWS_CONFIG_FILE": str(aws / "none"), "AWS_DEFAULT_REGION": "sa-east-1"}
    assert isinstance(resolve_credentials(None, custom), CredentialsNotFound)
    assert resolve_region(None, custom) == "sa-east-1"


def test_client_resolves_from_environment(tmp_path: Path) -> None:
    env = {"HOME": str(tmp_path), "AWS_ACCESS_KEY_ID": "K", "AWS_SECRET_ACCESS_KEY": "S",
           "AWS_REGION": "eu-west-3"}
    client = s3stream.S3Client(environ=env)
    assert client.region == "eu-west-3"
    assert client.endpoint == "https://s3.eu-west-3.amazonaws.com/"
    assert client.credentials == Credentials("K", "S")
    assert "S'" not in repr(client)


# ---------------------------------------------------------------------------- retry


def test_retry_policy_decisions() -> None:
    r = Retry()
    assert r.is_retryable_response(503, "SlowDown")
    assert r.is_retryable_response(500, None)
    assert r.is_retryable_response(200, "InternalError")
    assert r.is_retryable_response(400, "RequestTimeout")
    assert r.is_retryable_response(403, "RequestTimeTooSkewed")
    assert not r.is_retryable_response(403, "AccessDenied")
    assert not r.is_retryable_response(404, "NoSuchUpload")
    assert not r.is_retryable_response(501, "NotImplemented")
    assert r.can_retry(19) and not r.can_retry(20)
    assert not Retry(attempts=1).can_retry(1)


def test_retry_backoff_is_full_jitter_with_cap() -> None:
    r = Retry(base=0.5, cap=4.0)
    assert r.delay(1, 0.0) == 0.0
    assert r.delay(1, 0.5) == 0.25
    assert r.delay(3, 0.5) == 1.0
    assert r.delay(10, 1.0) == 4.0
    assert r.delay(1, 0.3, retry_after=2.0) == 2.0
    assert r.delay(1, 0.3, retry_after=60.0) == 4.0


def test_retry_is_immutable_and_validated() -> None:
    r = Retry()
    with pytest.raises(AttributeError):
        r.attempts = 3  # type: ignore[misc]
    assert r.with_attempts(2).attempts == 2 and r.attempts == 20
    with pytest.raises(UsageError):
        Retry(attempts=0)


# ------------------------------------------------------------------------- packaging


def test_public_api_all_is_complete_and_sorted() -> None:
    # "@py_*" names are pytest's assertion rewriting, which also covers the plugin package.
    public = {n for n in dir(s3stream) if not n.startswith(("_", "@"))} - {
        "cli", "credentials", "exceptions", "testing"}
    assert sorted(s3stream.__all__) == s3stream.__all__
    assert public <= set(s3stream.__all__)
    for name in s3stream.__all__:
        assert hasattr(s3stream, name)


def test_exception_tree() -> None:
    for exc in (s3stream.UsageError, s3stream.TransportError, s3stream.S3ResponseError,
                s3stream.UploadError, s3stream.IntegrityError, s3stream.StallError,
                s3stream.NoCredentialsError):
        assert issubclass(exc, s3stream.S3StreamError)
    assert issubclass(s3stream.UsageError, ValueError)
    assert issubclass(s3stream.NoCredentialsError, s3stream.UsageError)
    assert s3stream.exceptions.__all__ == sorted(s3stream.exceptions.__all__)
    assert "NoCredentialsError" in s3stream.exceptions.__all__
    assert issubclass(s3stream.StallError, s3stream.TransportError)


def test_pure_core_imports_without_aiohttp() -> None:
    # Importing the package pulls the client (and aiohttp), so load the pure modules alone.
    code = textwrap.dedent("""
        import sys, types, importlib
        class Block:
            def find_spec(self, name, path=None, target=None):
                if name == "aiohttp" or name.startswith("aiohttp.") or name == "asyncio":
                    raise ImportError("blocked: " + name)
        sys.meta_path.insert(0, Block())
        import importlib.util, pathlib
        root = pathlib.Path(importlib.util.find_spec("s3stream").origin).parent
        pkg = types.ModuleType("s3stream"); pkg.__path__ = [str(root)]
        sys.modules["s3stream"] = pkg
        for name in ("exceptions", "credentials._model", "credentials._files", "_sigv4",
                     "_xml", "_parts", "_retry", "_protocol", "_integrity", "_checksums",
                     "_checks", "_info", "_objects", "_presign", "_ranges", "_resume"):
            importlib.import_module("s3stream." + name)
        print("ok")
    """)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "ok"


def test_plugin_import_does_not_load_aiohttp() -> None:
    # s3stream.testing is a pytest plugin loaded in every pytest session of an environment
    # with s3stream installed: it must stay light.
    code = "import sys, s3stream.testing; print('aiohttp' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "False"
