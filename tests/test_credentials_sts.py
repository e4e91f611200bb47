"""STS: AssumeRole and AssumeRoleWithWebIdentity, pure and against moto_server.

moto runs with IAM authentication on (``s3stream.testing.Moto``), so an AssumeRole whose
signature is wrong is refused, and the credentials it issues are checked on every later
request (their secret, and their session token). The roles are made through moto's IAM with
boto3, in a few actions moto lets through unauthenticated (``/moto-api/reset-auth``); this
module runs its own moto, since that switch is server-wide.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import urllib.parse
import urllib.request
from collections.abc import AsyncIterator, Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import boto3
import botocore.exceptions
import pytest

from s3stream import Credentials, CredentialsError, S3Client, UsageError
from s3stream._protocol import Response
from s3stream._transport import Transport
from s3stream.credentials import (
    ProfileProvider,
    ProviderContext,
    WebIdentityProvider,
    assume_role,
    assume_role_with_web_identity,
)
from s3stream.credentials._sts import (
    StsAnswerError,
    assume_role_request,
    default_session_name,
    parse_credentials,
    parse_error,
    parse_timestamp,
    sts_endpoint,
    sts_region,
    web_identity_request,
)
from s3stream.testing import LocalS3, Moto

SECRET = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYSECRETKEY"
TOKEN = "FwoGZXIvYXdzEXAMPLESESSIONTOKEN"
WEB_TOKEN = "eyJhbGciOiJSUzI1NiJ9.web-identity-SECRET-token"
ROLE = "arn:aws:iam::123456789012:role/reader"
NOW = datetime(2030, 5, 17, 12, 0, tzinfo=UTC)

ANSWER = b"""<AssumeRoleResponse xmlns="https://sts.amazonaws.com/doc/2011-06-15/">
  <AssumeRoleResult>
    <SourceIdentity>Alice</SourceIdentity>
    <AssumedRoleUser>
      <Arn>arn:aws:sts::123456789012:assumed-role/reader/s</Arn>
      <AssumedRoleId>ARO123EXAMPLE123:s</AssumedRoleId>
    </AssumedRoleUser>
    <Credentials>
      <AccessKeyId>ASIAIOSFODNN7EXAMPLE</AccessKeyId>
      <SecretAccessKey>wJalrXUtnFEMI/K7MDENG/bPxRfiCYzEXAMPLEKEY</SecretAccessKey>
      <SessionToken>AQoDYXdzEPT//////////wEXAMPLEtc764</SessionToken>
      <Expiration>2030-05-17T13:00:00.123Z</Expiration>
    </Credentials>
  </AssumeRoleResult>
  <ResponseMetadata><RequestId>c6104cbe-af31-11e0-8154-cbc7ccf896c7</RequestId></ResponseMetadata>
</AssumeRoleResponse>"""

ERROR = b"""<ErrorResponse xmlns="https://sts.amazonaws.com/doc/2011-06-15/">
  <Error><Type>Sender</Type><Code>AccessDenied</Code>
    <Message>User is not authorized to perform: sts:AssumeRole</Message></Error>
  <RequestId>4bd0b8d4-0000-0000-0000-000000000000</RequestId>
</ErrorResponse>"""


# --------------------------------------------------------------------------- pure


def test_parse_credentials_reads_children_whatever_the_root() -> None:
    got = parse_credentials(ANSWER)
    assert got.access_key_id == "ASIAIOSFODNN7EXAMPLE"
    assert got.secret_access_key == "wJalrXUtnFEMI/K7MDENG/bPxRfiCYzEXAMPLEKEY"
    assert got.session_token == "AQoDYXdzEPT//////////wEXAMPLEtc764"
    assert got.expiry == datetime(2030, 5, 17, 13, 0, 0, 123000, tzinfo=UTC)
    # Another root, no namespace, a prefix on every element: the same credentials.
    other = (b"<x:Whatever xmlns:x='urn:x'><x:AssumeRoleWithWebIdentityResult><x:Credentials>"
             b"<x:AccessKeyId>A</x:AccessKeyId><x:SecretAccessKey>S</x:SecretAccessKey>"
             b"<x:SessionToken>T</x:SessionToken><x:Expiration>2030-01-01T00:00:00+02:00"
             b"</x:Expiration><x:Unknown/></x:Credentials></x:AssumeRoleWithWebIdentityResult>"
             b"</x:Whatever>")
    got = parse_credentials(other)
    assert (got.access_key_id, got.session_token) == ("A", "T")
    assert got.expiry == datetime(2029, 12, 31, 22, 0, tzinfo=UTC)


@pytest.mark.parametrize(("body", "says"), [
    (b"", "not XML"),
    (b"<html>oops", "not XML"),
    (ERROR, "<ErrorResponse>"),
    (b"<AssumeRoleResponse><AssumeRoleResult/></AssumeRoleResponse>", "no <Credentials>"),
    (b"<R><Credentials><AccessKeyId>A</AccessKeyId><SecretAccessKey>S</SecretAccessKey>"
     b"</Credentials></R>", "no <SessionToken>"),
    (b"<R><Credentials><AccessKeyId>A</AccessKeyId><SecretAccessKey>S-SECRET</SecretAccessKey>"
     b"<SessionToken>T</SessionToken><Expiration>tomorrow</Expiration></Credentials></R>",
     "unreadable timestamp"),
])
def test_parse_credentials_refuses_what_is_not_usable(body: bytes, says: str) -> None:
    with pytest.raises(StsAnswerError, match=says) as info:
        parse_credentials(body)
    assert "S-SECRET" not in str(info.value)


def test_parse_error() -> None:
    error = parse_error(ERROR)
    assert error is not None
    assert (error.code, error.request_id) == ("AccessDenied",
                                              "4bd0b8d4-0000-0000-0000-000000000000")
    assert "not authorized" in error.message
    bare = parse_error(b"<Error><Code>Throttling</Code><Message>slow</Message></Error>")
    assert bare is not None and bare.code == "Throttling"
    assert parse_error(ANSWER) is None
    assert parse_error(b"not xml") is None


def test_timestamps() -> None:
    assert parse_timestamp("2030-01-01T00:00:00Z") == datetime(2030, 1, 1, tzinfo=UTC)
    assert parse_timestamp("2030-01-01T00:00:00UTC") == datetime(2030, 1, 1, tzinfo=UTC)
    # No offset: UTC, as AWS means it.
    assert parse_timestamp("2030-01-01T00:00:00") == datetime(2030, 1, 1, tzinfo=UTC)
    with pytest.raises(StsAnswerError):
        parse_timestamp("soon")


def test_endpoint_and_region_resolution() -> None:
    assert sts_endpoint({}, "eu-west-3") == "https://sts.eu-west-3.amazonaws.com"
    assert sts_endpoint({}, "cn-north-1") == "https://sts.cn-north-1.amazonaws.com.cn"
    assert sts_endpoint({"AWS_ENDPOINT_URL": "http://h:1/"}, "x") == "http://h:1"
    assert sts_endpoint({"AWS_ENDPOINT_URL": "http://h:1", "AWS_ENDPOINT_URL_STS": "http://s:2"},
                        "x") == "http://s:2"
    assert sts_region({}) == "us-east-1"
    assert sts_region({}, {"region": "ap-south-1"}) == "ap-south-1"
    assert sts_region({"AWS_DEFAULT_REGION": "eu-north-1"}, {"region": "x"}) == "eu-north-1"
    assert sts_region({"AWS_REGION": "eu-west-1", "AWS_DEFAULT_REGION": "x"}) == "eu-west-1"
    with pytest.raises(UsageError):
        sts_region({"AWS_REGION": "evil.com/"})
    assert default_session_name(NOW) == f"s3stream-{int(NOW.timestamp())}"


def test_assume_role_request_is_a_signed_form_post() -> None:
    source = Credentials("AKIDEXAMPLE", SECRET, TOKEN)
    request = assume_role_request(
        endpoint="https://sts.eu-west-1.amazonaws.com", region="eu-west-1", credentials=source,
        role_arn=ROLE, session_name="my session", now=NOW, duration_seconds=900,
        external_id="ext-1",
    )
    assert request.url == "https://sts.eu-west-1.amazonaws.com/"
    form = urllib.parse.parse_qs(request.body.decode())
    assert form == {"Action": ["AssumeRole"], "Version": ["2011-06-15"], "RoleArn": [ROLE],
                    "RoleSessionName": ["my session"], "DurationSeconds": ["900"],
                    "ExternalId": ["ext-1"]}
    headers = dict(request.headers)
    assert headers["content-type"].startswith("application/x-www-form-urlencoded")
    assert headers["x-amz-date"] == "20300517T120000Z"
    assert headers["x-amz-security-token"] == TOKEN
    auth = headers["Authorization"]
    assert auth.startswith("AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20300517/eu-west-1/sts/"
                           "aws4_request,SignedHeaders=")
    assert "SignedHeaders=content-type;host;x-amz-date;x-amz-security-token," in auth
    assert "x-amz-content-sha256" not in headers  # S3's header, not STS's
    # Optional parameters are left out, not sent empty.
    plain = assume_role_request(endpoint="http://127.0.0.1:9/base", region="us-east-1",
                                credentials=Credentials("AKID", SECRET), role_arn=ROLE,
                                session_name="s1", now=NOW)
    assert plain.url == "http://127.0.0.1:9/base"
    assert set(urllib.parse.parse_qs(plain.body.decode())) == {
        "Action", "Version", "RoleArn", "RoleSessionName"}
    for shown in (repr(request), repr(plain)):
        assert SECRET not in shown and TOKEN not in shown and "Signature" not in shown


def test_web_identity_request_is_unsigned_and_hides_the_token() -> None:
    request = web_identity_request(endpoint="https://sts.us-east-1.amazonaws.com", role_arn=ROLE,
                                   session_name="pod", token=WEB_TOKEN)
    form = urllib.parse.parse_qs(request.body.decode())
    assert form["Action"] == ["AssumeRoleWithWebIdentity"]
    assert form["WebIdentityToken"] == [WEB_TOKEN]
    assert "Authorization" not in dict(request.headers)
    assert WEB_TOKEN not in repr(request)


@pytest.mark.parametrize("kwargs", [
    {"role_arn": ""}, {"session_name": "x"}, {"session_name": "s" * 65},
    {"duration_seconds": 60}, {"duration_seconds": True},
    {"endpoint": "ftp://sts"}, {"endpoint": "https://sts/?a=b"},
])
def test_builders_refuse_bad_arguments(kwargs: dict[str, Any]) -> None:
    args: dict[str, Any] = {"endpoint": "https://sts.amazonaws.com", "role_arn": ROLE,
                            "session_name": "ok", "token": WEB_TOKEN, **kwargs}
    with pytest.raises(UsageError):
        web_identity_request(**args)


# --------------------------------------------------------------------------- fake fetch


class FakeSts:
    """``ctx.fetch`` answering with a fixed response, recording the requests."""

    def __init__(self, status: int, body: bytes) -> None:
        self.status, self.body = status, body
        self.requests: list[tuple[str, str, dict[str, str], bytes]] = []

    async def fetch(self, method: str, url: str, headers: Any, body: bytes,
                    seconds: float) -> Response:
        self.requests.append((method, url, dict(headers), body))
        return Response(self.status, {}, self.body)


async def _blocking(fn: Callable[[], Any]) -> Any:
    return await asyncio.to_thread(fn)


def fake_ctx(sts: FakeSts, **environ: str) -> ProviderContext:
    return ProviderContext(environ, sts.fetch, lambda: NOW, _blocking)


async def test_assume_role_error_names_the_code_never_a_secret(
        caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG, logger="s3stream")
    # An error message that (absurdly) quotes the secret is shown with it blanked out.
    body = ERROR.replace(b"sts:AssumeRole", b"sts:AssumeRole " + SECRET.encode())
    sts = FakeSts(403, body)
    with pytest.raises(CredentialsError) as info:
        await assume_role(fake_ctx(sts, AWS_REGION="eu-west-2"),
                          source=Credentials("AKID", SECRET, TOKEN), role_arn=ROLE)
    text = str(info.value)
    assert "HTTP 403 AccessDenied" in text and ROLE in text
    assert "https://sts.eu-west-2.amazonaws.com/" in text
    assert SECRET not in text and TOKEN not in text
    assert SECRET not in caplog.text and TOKEN not in caplog.text
    assert info.value.provider == "STS AssumeRole"
    (method, url, _headers, body_sent), = sts.requests
    assert (method, url) == ("POST", "https://sts.eu-west-2.amazonaws.com/")
    assert b"RoleSessionName=s3stream-" in body_sent


async def test_assume_role_answer_without_credentials() -> None:
    sts = FakeSts(200, b"<AssumeRoleResponse><AssumeRoleResult/></AssumeRoleResponse>")
    with pytest.raises(CredentialsError, match="without usable credentials"):
        await assume_role(fake_ctx(sts), source=Credentials("AKID", SECRET), role_arn=ROLE)


async def test_assume_role_with_anonymous_source_is_refused_before_sending() -> None:
    sts = FakeSts(200, ANSWER)
    with pytest.raises(CredentialsError, match="anonymous"):
        await assume_role(fake_ctx(sts), source=Credentials.anonymous(), role_arn=ROLE)
    assert sts.requests == []


async def test_transport_failure_is_a_credentials_error(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG, logger="s3stream")
    transport = Transport()
    try:
        ctx = ProviderContext({"AWS_ENDPOINT_URL_STS": "http://127.0.0.1:9"}, transport.fetch,
                              lambda: NOW, _blocking)
        with pytest.raises(CredentialsError, match="AssumeRoleWithWebIdentity") as info:
            await assume_role_with_web_identity(ctx, token=WEB_TOKEN, role_arn=ROLE)
    finally:
        await transport.aclose()
    assert info.value.__cause__ is not None
    assert WEB_TOKEN not in str(info.value) and WEB_TOKEN not in caplog.text


async def test_web_identity_provider_not_configured_is_none(tmp_path: Path) -> None:
    sts = FakeSts(200, ANSWER)
    ctx = fake_ctx(sts, HOME=str(tmp_path))
    assert await WebIdentityProvider().load(ctx) is None
    assert sts.requests == []


async def test_web_identity_provider_needs_a_role(tmp_path: Path) -> None:
    token_file = tmp_path / "token"
    token_file.write_text(WEB_TOKEN)
    ctx = fake_ctx(FakeSts(200, ANSWER), HOME=str(tmp_path),
                   AWS_WEB_IDENTITY_TOKEN_FILE=str(token_file))
    with pytest.raises(CredentialsError, match="AWS_ROLE_ARN is not set"):
        await WebIdentityProvider().load(ctx)


async def test_web_identity_provider_unreadable_token_file(tmp_path: Path) -> None:
    ctx = fake_ctx(FakeSts(200, ANSWER), HOME=str(tmp_path), AWS_ROLE_ARN=ROLE,
                   AWS_WEB_IDENTITY_TOKEN_FILE=str(tmp_path / "missing"))
    with pytest.raises(CredentialsError, match="cannot read the web identity token file"):
        await WebIdentityProvider().load(ctx)


async def test_web_identity_from_the_profile(tmp_path: Path) -> None:
    token_file = tmp_path / "token"
    token_file.write_text(WEB_TOKEN + "\n")
    config = tmp_path / "config"
    config.write_text(f"[profile ci]\nweb_identity_token_file = {token_file}\n"
                      f"role_arn = {ROLE}\nrole_session_name = ci-job\nregion = ca-central-1\n")
    sts = FakeSts(200, ANSWER)
    ctx = fake_ctx(sts, HOME=str(tmp_path), AWS_CONFIG_FILE=str(config), AWS_PROFILE="ci")
    got = await WebIdentityProvider().load(ctx)
    assert got is not None and got.access_key_id == "ASIAIOSFODNN7EXAMPLE"
    (_method, url, headers, body), = sts.requests
    assert url == "https://sts.ca-central-1.amazonaws.com/"
    assert "Authorization" not in headers
    form = urllib.parse.parse_qs(body.decode())
    assert form["WebIdentityToken"] == [WEB_TOKEN]  # stripped of its newline
    assert form["RoleSessionName"] == ["ci-job"]
    # The environment wins over the profile.
    other = tmp_path / "other-token"
    other.write_text("other-token")
    ctx = fake_ctx(sts, HOME=str(tmp_path), AWS_CONFIG_FILE=str(config), AWS_PROFILE="ci",
                   AWS_WEB_IDENTITY_TOKEN_FILE=str(other), AWS_ROLE_ARN=ROLE + "2")
    await WebIdentityProvider().load(ctx)
    form = urllib.parse.parse_qs(sts.requests[-1][3].decode())
    assert form["WebIdentityToken"] == ["other-token"] and form["RoleArn"] == [ROLE + "2"]
    assert form["RoleSessionName"][0].startswith("s3stream-")
    assert sts.requests[-1][1] == "https://sts.ca-central-1.amazonaws.com/"


# --------------------------------------------------------------------------- moto

_TRUST = json.dumps({"Version": "2012-10-17", "Statement": [{
    "Effect": "Allow", "Principal": {"AWS": "*"},
    "Action": ["sts:AssumeRole", "sts:AssumeRoleWithWebIdentity"]}]})
_ALLOW = json.dumps({"Version": "2012-10-17", "Statement": [{
    "Effect": "Allow", "Action": ["s3:*", "sts:AssumeRole"], "Resource": "*"}]})


def free_actions(local: LocalS3, count: int) -> None:
    """Let the next ``count`` AWS actions through unauthenticated (0: check them all)."""
    request = urllib.request.Request(
        local.endpoint + "/moto-api/reset-auth", data=str(count).encode(), method="POST",
        headers={"content-type": "text/plain"})
    with urllib.request.urlopen(request, timeout=10) as answer:
        assert json.loads(answer.read())["status"] == "ok"


def boto(local: LocalS3, service: str, credentials: Credentials) -> Any:
    return boto3.client(
        service, endpoint_url=local.endpoint, region_name=local.region,
        aws_access_key_id=credentials.access_key_id,
        aws_secret_access_key=credentials.secret_access_key,
        aws_session_token=credentials.session_token)


class Roles:
    def __init__(self, local: LocalS3, first: str, second: str) -> None:
        self.local, self.first, self.second = local, first, second


@pytest.fixture(scope="module")
def roles() -> Iterator[Roles]:
    """A moto of its own, with two roles (each may assume the other, and use S3) and its
    user allowed to assume them."""
    with Moto() as local:
        iam = boto(local, "iam", local.credentials)
        free_actions(local, 5)
        arns = []
        for name in ("first", "second"):
            arns.append(iam.create_role(RoleName=name,
                                        AssumeRolePolicyDocument=_TRUST)["Role"]["Arn"])
            iam.put_role_policy(RoleName=name, PolicyName="allow", PolicyDocument=_ALLOW)
        iam.put_user_policy(UserName="s3stream-tester", PolicyName="sts", PolicyDocument=_ALLOW)
        free_actions(local, 0)
        yield Roles(local, arns[0], arns[1])


@pytest.fixture
async def transport() -> AsyncIterator[Transport]:
    t = Transport()
    yield t
    await t.aclose()


def real_ctx(transport: Transport, local: LocalS3, **environ: str) -> ProviderContext:
    env = {"AWS_ENDPOINT_URL_STS": local.endpoint, "AWS_REGION": local.region, **environ}
    return ProviderContext(env, transport.fetch, lambda: datetime.now(UTC), _blocking)


def assert_works_in_moto(local: LocalS3, got: Credentials, role: str, session: str) -> None:
    """moto accepts them (secret and session token) and says who they are."""
    assert got.access_key_id.startswith("ASIA")
    assert got.session_token
    assert got.expiry is not None
    assert datetime.now(UTC) < got.expiry <= datetime.now(UTC) + timedelta(hours=12, minutes=1)
    identity = boto(local, "sts", got).get_caller_identity()
    assert identity["Arn"].endswith(f":assumed-role/{role.rsplit('/', 1)[1]}/{session}")
    boto(local, "s3", got).list_buckets()
    for wrong in (Credentials(got.access_key_id, got.secret_access_key + "x", got.session_token),
                  Credentials(got.access_key_id, got.secret_access_key, "wrong-token")):
        with pytest.raises(botocore.exceptions.ClientError):
            boto(local, "s3", wrong).list_buckets()


async def test_assume_role_against_moto(roles: Roles, transport: Transport,
                                        caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG, logger="s3stream")
    local = roles.local
    got = await assume_role(real_ctx(transport, local), source=local.credentials,
                            role_arn=roles.first, session_name="moto-test",
                            duration_seconds=1800)
    assert_works_in_moto(local, got, roles.first, "moto-test")
    assert got.expiry is not None
    assert got.expiry - datetime.now(UTC) <= timedelta(seconds=1800)
    for secret in (got.secret_access_key, got.session_token or "-",
                   local.credentials.secret_access_key):
        assert secret not in caplog.text
        assert secret not in repr(got)


async def test_assume_role_with_a_wrong_secret_is_refused_by_moto(
        roles: Roles, transport: Transport) -> None:
    local = roles.local
    wrong = Credentials(local.credentials.access_key_id, "not-the-secret-at-all")
    with pytest.raises(CredentialsError, match="HTTP 403") as info:
        await assume_role(real_ctx(transport, local), source=wrong, role_arn=roles.first)
    assert "not-the-secret-at-all" not in str(info.value)


async def test_web_identity_against_moto_reads_the_token_every_time(
        roles: Roles, transport: Transport, tmp_path: Path,
        caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG, logger="s3stream")
    local = roles.local
    token_file = tmp_path / "token"
    sent: list[bytes] = []

    async def recording(method: str, url: str, headers: Any, body: bytes,
                        seconds: float) -> Response:
        sent.append(body)
        assert not any(name.lower() == "authorization" for name, _ in headers)
        return await transport.fetch(method, url, headers, body, seconds)

    env = {"AWS_ENDPOINT_URL_STS": local.endpoint, "AWS_REGION": local.region,
           "HOME": str(tmp_path), "AWS_WEB_IDENTITY_TOKEN_FILE": str(token_file),
           "AWS_ROLE_ARN": roles.first, "AWS_ROLE_SESSION_NAME": "pod-1"}
    ctx = ProviderContext(env, recording, lambda: datetime.now(UTC), _blocking)
    provider = WebIdentityProvider()
    for token in (WEB_TOKEN, WEB_TOKEN + "-rotated"):
        token_file.write_text(token)
        # moto cannot serve an unsigned request with its authentication on: this one
        # request is let through, every later one is checked again.
        free_actions(local, 1)
        got = await provider.load(ctx)
        assert got is not None
        assert_works_in_moto(local, got, roles.first, "pod-1")
        assert urllib.parse.parse_qs(sent[-1].decode())["WebIdentityToken"] == [token]
    assert WEB_TOKEN not in caplog.text


def shared_files(tmp_path: Path, credentials: str, config: str) -> dict[str, str]:
    (tmp_path / "credentials").write_text(credentials)
    (tmp_path / "config").write_text(config)
    return {"HOME": str(tmp_path), "AWS_SHARED_CREDENTIALS_FILE": str(tmp_path / "credentials"),
            "AWS_CONFIG_FILE": str(tmp_path / "config")}


async def test_chained_role_profiles_against_moto(roles: Roles, transport: Transport,
                                                  tmp_path: Path,
                                                  caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG, logger="s3stream")
    local, user = roles.local, roles.local.credentials
    env = shared_files(
        tmp_path,
        f"[base]\naws_access_key_id = {user.access_key_id}\n"
        f"aws_secret_access_key = {user.secret_access_key}\n",
        f"[profile one]\nrole_arn = {roles.first}\nsource_profile = base\n"
        "role_session_name = hop-one\n"
        f"[profile two]\nrole_arn = {roles.second}\nsource_profile = one\n"
        "role_session_name = hop-two\nduration_seconds = 900\n",
    )
    sent: list[tuple[str, bytes]] = []

    async def recording(method: str, url: str, headers: Any, body: bytes,
                        seconds: float) -> Response:
        sent.append((dict(headers)["Authorization"], body))
        return await transport.fetch(method, url, headers, body, seconds)

    ctx = ProviderContext({"AWS_ENDPOINT_URL_STS": local.endpoint, "AWS_REGION": local.region,
                           **env}, recording, lambda: datetime.now(UTC), _blocking)
    got = await ProfileProvider("two").load(ctx)
    assert got is not None
    assert_works_in_moto(local, got, roles.second, "hop-two")
    assert got.expiry is not None and got.expiry - datetime.now(UTC) <= timedelta(seconds=900)
    # Two hops: the user's keys assume the first role, whose credentials assume the second.
    (auth_one, body_one), (auth_two, body_two) = sent
    assert f"Credential={user.access_key_id}/" in auth_one
    assert urllib.parse.parse_qs(body_one.decode())["RoleArn"] == [roles.first]
    assert "Credential=ASIA" in auth_two
    assert urllib.parse.parse_qs(body_two.decode())["RoleArn"] == [roles.second]
    assert user.secret_access_key not in caplog.text
    assert got.secret_access_key not in caplog.text


async def test_role_profile_sourcing_its_own_keys_or_the_environment(
        roles: Roles, transport: Transport, tmp_path: Path) -> None:
    local, user = roles.local, roles.local.credentials
    env = shared_files(
        tmp_path,
        f"[selfie]\naws_access_key_id = {user.access_key_id}\n"
        f"aws_secret_access_key = {user.secret_access_key}\n",
        f"[profile selfie]\nrole_arn = {roles.first}\nsource_profile = selfie\n"
        "role_session_name = self-sourced\n"
        f"[profile from-env]\nrole_arn = {roles.second}\ncredential_source = Environment\n"
        "role_session_name = env-sourced\n",
    )
    # A profile with static keys and a role assumes the role (botocore's order) with them.
    got = await ProfileProvider("selfie").load(real_ctx(transport, local, **env))
    assert got is not None
    assert_works_in_moto(local, got, roles.first, "self-sourced")
    got = await ProfileProvider("from-env").load(real_ctx(
        transport, local, AWS_ACCESS_KEY_ID=user.access_key_id,
        AWS_SECRET_ACCESS_KEY=user.secret_access_key, **env))
    assert got is not None
    assert_works_in_moto(local, got, roles.second, "env-sourced")


# ------------------------------------------------- S3Client() through the default chain


async def test_s3client_with_a_role_profile_uploads(roles: Roles, tmp_path: Path) -> None:
    """No credentials argument: the chain assumes a chained role through moto's STS and the
    upload to moto's S3 is signed with the role's temporary credentials."""
    local, user = roles.local, roles.local.credentials
    env = shared_files(
        tmp_path,
        f"[base]\naws_access_key_id = {user.access_key_id}\n"
        f"aws_secret_access_key = {user.secret_access_key}\n",
        f"[profile one]\nrole_arn = {roles.first}\nsource_profile = base\n"
        f"[profile two]\nrole_arn = {roles.second}\nsource_profile = one\n")
    env.update(AWS_PROFILE="two", AWS_ENDPOINT_URL_STS=local.endpoint,
               AWS_EC2_METADATA_DISABLED="true")
    boto(local, "s3", user).create_bucket(Bucket="chain-role")
    data = os.urandom(6 << 20)
    async with S3Client(endpoint=local.endpoint, region=local.region, environ=env) as s3:
        result = await s3.upload("chain-role", "k", data, part_size=5 << 20)
        current = s3._requester.credentials.current
    assert result.part_count == 2
    assert current is not None and current.access_key_id.startswith("ASIA")
    assert boto(local, "s3", user).get_object(Bucket="chain-role", Key="k")["Body"].read() \
        == data


async def test_s3client_with_web_identity_uploads(roles: Roles, tmp_path: Path) -> None:
    local, user = roles.local, roles.local.credentials
    token_file = tmp_path / "token"
    token_file.write_text(WEB_TOKEN)
    env = {"HOME": str(tmp_path), "AWS_WEB_IDENTITY_TOKEN_FILE": str(token_file),
           "AWS_ROLE_ARN": roles.first, "AWS_ENDPOINT_URL_STS": local.endpoint,
           "AWS_EC2_METADATA_DISABLED": "true"}
    boto(local, "s3", user).create_bucket(Bucket="chain-irsa")
    async with S3Client(endpoint=local.endpoint, region=local.region, environ=env) as s3:
        free_actions(local, 1)  # the unsigned AssumeRoleWithWebIdentity (see above)
        await s3.upload("chain-irsa", "k", b"from a pod")
    assert boto(local, "s3", user).get_object(Bucket="chain-irsa", Key="k")["Body"].read() \
        == b"from a pod"
