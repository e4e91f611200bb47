"""Profiles of the shared files (botocore's order within a profile, chained roles, loops),
``credential_process`` (real child processes) and SSO (a local portal, a token cache).

STS itself is tested in ``test_credentials_sts.py`` (against moto); here it is a fake that
answers every AssumeRole with credentials naming the role they are for, so a test can tell
which path a profile took.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import re
import shlex
import sys
import urllib.parse
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from s3stream import Credentials, CredentialsError
from s3stream._protocol import Response
from s3stream._transport import Transport
from s3stream.credentials import (
    ProcessProvider,
    ProfileProvider,
    ProviderContext,
    SsoProvider,
    _profiles,
)
from s3stream.credentials._process import parse_output
from s3stream.credentials._sso import parse_role_credentials, parse_token

NOW = datetime(2030, 5, 17, 12, 0, tzinfo=UTC)
SECRET = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYSECRETKEY"
SSO_TOKEN = "aoaAAAAAGSSO-ACCESS-TOKEN-SECRET"


class FakeSts:
    """Answers AssumeRole with credentials whose key id says which role, in order."""

    def __init__(self) -> None:
        self.calls: list[dict[str, str]] = []

    async def fetch(self, method: str, url: str, headers: Any, body: bytes,
                    seconds: float) -> Response:
        form = {k: v[0] for k, v in urllib.parse.parse_qs(body.decode()).items()}
        form["authorization"] = dict(headers).get("Authorization", "")
        self.calls.append(form)
        role = form["RoleArn"].rsplit("/", 1)[1]
        answer = (f"<AssumeRoleResponse><AssumeRoleResult><Credentials>"
                  f"<AccessKeyId>ASIA-{role}</AccessKeyId>"
                  f"<SecretAccessKey>secret-of-{role}</SecretAccessKey>"
                  f"<SessionToken>token-of-{role}</SessionToken>"
                  f"<Expiration>2030-05-17T13:00:00Z</Expiration>"
                  f"</Credentials></AssumeRoleResult></AssumeRoleResponse>")
        return Response(200, {}, answer.encode())


class Blocking:
    def __init__(self) -> None:
        self.calls = 0

    async def __call__(self, fn: Callable[[], Any]) -> Any:
        self.calls += 1
        return await asyncio.to_thread(fn)


def files(tmp_path: Path, credentials: str = "", config: str = "", **extra: str
          ) -> dict[str, str]:
    (tmp_path / "credentials").write_text(credentials)
    (tmp_path / "config").write_text(config)
    return {"HOME": str(tmp_path), "AWS_SHARED_CREDENTIALS_FILE": str(tmp_path / "credentials"),
            "AWS_CONFIG_FILE": str(tmp_path / "config"), "PATH": "/usr/bin:/bin", **extra}


def ctx_for(environ: dict[str, str], sts: FakeSts | None = None,
            blocking: Blocking | None = None) -> ProviderContext:
    return ProviderContext(environ, (sts or FakeSts()).fetch, lambda: NOW,
                           blocking or Blocking())


def role(name: str) -> str:
    return f"arn:aws:iam::123456789012:role/{name}"


# --------------------------------------------------------------------------- profiles


async def test_static_keys_read_off_the_loop_credentials_file_winning(tmp_path: Path) -> None:
    env = files(tmp_path,
                f"[dev]\naws_access_key_id = AKIDCREDS\naws_secret_access_key = {SECRET}\n",
                "[profile dev]\naws_access_key_id = AKIDCONFIG\naws_secret_access_key = x\n"
                "aws_session_token = tok-from-config\nregion = eu-west-1\n",
                AWS_PROFILE="dev")
    blocking, sts = Blocking(), FakeSts()
    got = await ProfileProvider().load(ctx_for(env, sts, blocking))
    assert got == Credentials("AKIDCREDS", SECRET, "tok-from-config")
    assert blocking.calls == 1 and sts.calls == []
    assert SECRET not in repr(got)


async def test_missing_profile_or_one_without_credentials_is_none(tmp_path: Path) -> None:
    env = files(tmp_path, "", "[profile bare]\nregion = eu-west-1\n")
    assert await ProfileProvider("nope").load(ctx_for(env)) is None
    assert await ProfileProvider("bare").load(ctx_for(env)) is None
    # No files at all.
    assert await ProfileProvider().load(ctx_for({"HOME": str(tmp_path / "empty")})) is None


async def test_top_profile_assumes_its_role_but_a_source_profile_gives_its_keys(
        tmp_path: Path) -> None:
    env = files(
        tmp_path,
        f"[base]\naws_access_key_id = AKIDBASE\naws_secret_access_key = {SECRET}\n"
        # base also has a role: as a source profile, its static keys win (botocore).
        "role_arn = arn:aws:iam::123456789012:role/never\nsource_profile = base\n",
        f"[profile app]\nrole_arn = {role('app')}\nsource_profile = base\n"
        "external_id = ext-7\nregion = eu-central-1\n"
        f"[profile top]\nrole_arn = {role('top')}\nsource_profile = app\n",
        AWS_ENDPOINT_URL_STS="http://sts.test")
    sts = FakeSts()
    got = await ProfileProvider("top").load(ctx_for(env, sts))
    assert got is not None
    assert (got.access_key_id, got.session_token) == ("ASIA-top", "token-of-top")
    assert got.expiry == datetime(2030, 5, 17, 13, tzinfo=UTC)
    assert [c["RoleArn"] for c in sts.calls] == [role("app"), role("top")]
    assert "Credential=AKIDBASE/" in sts.calls[0]["authorization"]
    assert sts.calls[0]["ExternalId"] == "ext-7"
    assert "Credential=ASIA-app/" in sts.calls[1]["authorization"]
    # The region is the profile asked for's (top has none: us-east-1).
    assert "/us-east-1/sts/aws4_request" in sts.calls[1]["authorization"]
    # Asked for itself, base assumes its role with its own keys.
    sts = FakeSts()
    got = await ProfileProvider("base").load(ctx_for(env, sts))
    assert got is not None and got.access_key_id == "ASIA-never"


async def test_order_within_a_profile(tmp_path: Path) -> None:
    token = tmp_path / "token"
    token.write_text("oidc-token")
    script = tmp_path / "creds.py"
    script.write_text("import json\nprint(json.dumps({'Version': 1, 'AccessKeyId': 'AKIDPROC', "
                      "'SecretAccessKey': 's'}))\n")
    process = f"credential_process = {shlex.quote(sys.executable)} {shlex.quote(str(script))}\n"
    env = files(
        tmp_path, "",
        # web identity beats SSO, static keys and the process; role_arn is its role.
        f"[profile web]\nweb_identity_token_file = {token}\nrole_arn = {role('web')}\n"
        "aws_access_key_id = AKIDSTATIC\naws_secret_access_key = s\n" + process +
        # static keys beat the process
        "[profile static]\naws_access_key_id = AKIDSTATIC\naws_secret_access_key = s\n"
        + process + "[profile proc]\n" + process)
    sts = FakeSts()
    got = await ProfileProvider("web").load(ctx_for(env, sts))
    assert got is not None and got.access_key_id == "ASIA-web"
    assert sts.calls[0]["Action"] == "AssumeRoleWithWebIdentity"
    assert sts.calls[0]["WebIdentityToken"] == "oidc-token"
    got = await ProfileProvider("static").load(ctx_for(env))
    assert got is not None and got.access_key_id == "AKIDSTATIC"
    got = await ProfileProvider("proc").load(ctx_for(env))
    assert got is not None and got.access_key_id == "AKIDPROC"


@pytest.mark.parametrize(("config", "says"), [
    (f"[profile a]\nrole_arn = {role('a')}\nsource_profile = b\n"
     f"[profile b]\nrole_arn = {role('b')}\nsource_profile = a\n", "loop: a -> b -> a"),
    (f"[profile a]\nrole_arn = {role('a')}\nsource_profile = a\n", "loop: a -> a"),
    (f"[profile a]\nrole_arn = {role('a')}\nsource_profile = ghost\n", "'ghost' is in neither"),
    (f"[profile a]\nrole_arn = {role('a')}\n", "neither source_profile nor credential_source"),
    (f"[profile a]\nrole_arn = {role('a')}\nsource_profile = b\ncredential_source = "
     "Environment\n[profile b]\naws_access_key_id = k\naws_secret_access_key = s\n",
     "both source_profile and credential_source"),
    (f"[profile a]\nrole_arn = {role('a')}\ncredential_source = Laptop\n",
     "'Laptop' is not one of Environment, Ec2InstanceMetadata, EcsContainer"),
    (f"[profile a]\nrole_arn = {role('a')}\ncredential_source = Environment\n",
     "'Environment' gave no credentials"),
    (f"[profile a]\nrole_arn = {role('a')}\nsource_profile = b\n[profile b]\nregion = x\n",
     "source_profile 'b' has no credentials"),
    (f"[profile a]\nrole_arn = {role('a')}\nsource_profile = b\nmfa_serial = arn:mfa\n"
     "[profile b]\naws_access_key_id = k\naws_secret_access_key = s\n", "MFA"),
    ("[profile a]\naws_access_key_id = AKID\n", "has aws_access_key_id but no "
     "aws_secret_access_key"),
    (f"[profile a]\naws_secret_access_key = {SECRET}\n", "has aws_secret_access_key but no "
     "aws_access_key_id"),
    (f"[profile a]\nrole_arn = {role('a')}\nsource_profile = b\nduration_seconds = long\n"
     "[profile b]\naws_access_key_id = k\naws_secret_access_key = s\n",
     "duration_seconds that is not a whole number"),
])
async def test_broken_profiles_raise_naming_the_problem(tmp_path: Path, config: str,
                                                        says: str) -> None:
    sts = FakeSts()
    with pytest.raises(CredentialsError) as info:
        await ProfileProvider("a").load(ctx_for(files(tmp_path, "", config), sts))
    assert says in str(info.value)
    assert info.value.provider.startswith("profile '")  # the profile where it went wrong
    assert SECRET not in str(info.value)
    assert sts.calls == []


async def test_credential_source_metadata_services(tmp_path: Path,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    env = files(tmp_path, "",
                f"[profile a]\nrole_arn = {role('a')}\ncredential_source = Ec2InstanceMetadata\n",
                AWS_EC2_METADATA_DISABLED="true")
    # The instance metadata provider is asked (and, disabled, has nothing).
    with pytest.raises(CredentialsError, match="'Ec2InstanceMetadata' gave no credentials"):
        await ProfileProvider("a").load(ctx_for(env))
    # A provider this build lacks is named, not an ImportError.
    monkeypatch.setitem(_profiles.CREDENTIAL_SOURCES, "Ec2InstanceMetadata",
                        ("._no_such_module", "InstanceMetadataProvider"))
    with pytest.raises(CredentialsError, match=re.escape(
            "needs s3stream.credentials.InstanceMetadataProvider")):
        await ProfileProvider("a").load(ctx_for(env))


async def test_credential_source_container_provider_is_used(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    made: list[object] = []

    class Container:
        name = "fake container"

        def __init__(self) -> None:
            made.append(self)

        async def load(self, ctx: ProviderContext) -> Credentials | None:
            return Credentials("AKIDCONTAINER", SECRET, "container-token")

    module = type(sys)("fake_container")
    module.ContainerProvider = Container  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "s3stream.credentials._fake_container", module)
    monkeypatch.setitem(_profiles.CREDENTIAL_SOURCES, "EcsContainer",
                        ("._fake_container", "ContainerProvider"))
    env = files(tmp_path, "",
                f"[profile a]\nrole_arn = {role('a')}\ncredential_source = EcsContainer\n")
    sts = FakeSts()
    provider = ProfileProvider("a")
    for _ in range(2):
        got = await provider.load(ctx_for(env, sts))
        assert got is not None and got.access_key_id == "ASIA-a"
    assert "Credential=AKIDCONTAINER/" in sts.calls[0]["authorization"]
    assert len(made) == 1  # one provider kept across loads (IMDS keeps its token)


# --------------------------------------------------------------------------- process


def script(tmp_path: Path, body: str) -> str:
    path = tmp_path / "credential helper.py"  # a space: the command line is quoted
    path.write_text("import json, os, sys\n" + body)
    return f"{shlex.quote(sys.executable)} {shlex.quote(str(path))}"


async def test_process_success_with_expiry_and_environment(tmp_path: Path) -> None:
    command = script(tmp_path, (
        "assert sys.argv[1:] == ['--role', 'a b']\n"
        "print(json.dumps({'Version': 1, 'AccessKeyId': 'AKIDPROC', 'SecretAccessKey': "
        f"{SECRET!r}, 'SessionToken': os.environ['HELPER_TOKEN'], "
        "'Expiration': '2030-05-17T13:00:00Z'}))\n"))
    provider = ProcessProvider(command + " --role 'a b'")
    blocking = Blocking()
    got = await provider.load(ctx_for({"HELPER_TOKEN": "tok"}, blocking=blocking))
    assert got == Credentials("AKIDPROC", SECRET, "tok")
    assert got.expiry == datetime(2030, 5, 17, 13, tzinfo=UTC)
    assert blocking.calls == 1
    assert "--role" not in repr(provider) and SECRET not in repr(got)


async def test_process_from_the_profile(tmp_path: Path) -> None:
    command = script(tmp_path, "print(json.dumps({'Version': 1, 'AccessKeyId': 'AKIDP', "
                               "'SecretAccessKey': 's'}))\n")
    env = files(tmp_path, "", f"[profile p]\ncredential_process = {command}\n", AWS_PROFILE="p")
    got = await ProcessProvider().load(ctx_for(env))
    assert got is not None and got.access_key_id == "AKIDP" and got.expiry is None
    assert await ProcessProvider(profile="other").load(ctx_for(env)) is None


async def test_process_failure_shows_stderr_first_line_never_stdout(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG, logger="s3stream")
    command = script(tmp_path, (
        f"print(json.dumps({{'Version': 1, 'AccessKeyId': 'AKID', 'SecretAccessKey': {SECRET!r}}}"
        "))\nprint('\\n  token expired: run helper login\\nsecond line', file=sys.stderr)\n"
        "sys.exit(3)\n"))
    with pytest.raises(CredentialsError) as info:
        await ProcessProvider(command).load(ctx_for({}))
    text = str(info.value)
    assert "exited with status 3: token expired: run helper login" in text
    assert "second line" not in text
    assert SECRET not in text and SECRET not in caplog.text
    assert info.value.provider == "credential_process"


@pytest.mark.parametrize(("output", "says"), [
    (f"not json {SECRET}", "not JSON"),
    ("[1, 2]", "a JSON list, not an object"),
    (json.dumps({"Version": 2, "AccessKeyId": "A", "SecretAccessKey": SECRET}), "Version 2"),
    (json.dumps({"AccessKeyId": "A", "SecretAccessKey": SECRET}), "Version None"),
    (json.dumps({"Version": 1, "AccessKeyId": "A"}), "no SecretAccessKey"),
    (json.dumps({"Version": 1, "AccessKeyId": "A", "SecretAccessKey": SECRET,
                 "Expiration": "next week"}), "Expiration that is not an ISO 8601 time"),
])
def test_process_output_errors_never_quote_it(output: str, says: str) -> None:
    with pytest.raises(CredentialsError, match=says) as info:
        parse_output(output.encode())
    assert SECRET not in str(info.value)


async def test_process_bad_json_from_a_real_command(tmp_path: Path) -> None:
    command = script(tmp_path, f"print('{{\"Version\": 1, {SECRET}')\n")
    with pytest.raises(CredentialsError, match="not JSON") as info:
        await ProcessProvider(command).load(ctx_for({}))
    assert SECRET not in str(info.value)


async def test_process_that_cannot_run_or_hangs(tmp_path: Path) -> None:
    with pytest.raises(CredentialsError, match=r"cannot run .*no-such-helper"):
        await ProcessProvider(str(tmp_path / "no-such-helper") + " --secret-arg").load(
            ctx_for({}))
    with pytest.raises(CredentialsError, match="cannot split"):
        await ProcessProvider("helper 'unterminated").load(ctx_for({}))
    hangs = script(tmp_path, "import time\ntime.sleep(60)\n")
    with pytest.raises(CredentialsError, match=re.escape("did not finish within 0.5 s")):
        await ProcessProvider(hangs, timeout=0.5).load(ctx_for({}))


# --------------------------------------------------------------------------- SSO


class Portal:
    """A local SSO portal: GetRoleCredentials for one token, account and role."""

    def __init__(self, token: str, account: str, role_name: str) -> None:
        self.token, self.account, self.role_name = token, account, role_name
        self.requests: list[tuple[str, dict[str, str]]] = []
        self.status = 200

    async def handle(self, request: web.Request) -> web.Response:
        self.requests.append((request.raw_path, dict(request.query)))
        if self.status != 200:
            return web.json_response({"message": "boom"}, status=self.status)
        if request.headers.get("x-amz-sso_bearer_token") != self.token:
            return web.json_response({"message": "Session token not found or invalid"},
                                     status=401)
        if (request.query.get("account_id"), request.query.get("role_name")) != (
                self.account, self.role_name):
            return web.json_response({"message": "No access"}, status=403)
        expiration = int((NOW + timedelta(hours=1)).timestamp() * 1000)
        return web.json_response({"roleCredentials": {
            "accessKeyId": "ASIASSO", "secretAccessKey": SECRET,
            "sessionToken": "sso-session-token", "expiration": expiration}})


@pytest.fixture
async def portal() -> AsyncIterator[tuple[Portal, str]]:
    portal = Portal(SSO_TOKEN, "111122223333", "Ops+Admin@x")
    app = web.Application()
    app.router.add_get("/federation/credentials", portal.handle)
    server = TestServer(app, host="127.0.0.1")
    await server.start_server()
    yield portal, str(server.make_url("")).rstrip("/")
    await server.close()


@pytest.fixture
async def transport() -> AsyncIterator[Transport]:
    t = Transport()
    yield t
    await t.aclose()


def cache_token(tmp_path: Path, key: str, expires: datetime, token: str = SSO_TOKEN) -> Path:
    cache = tmp_path / ".aws" / "sso" / "cache"
    cache.mkdir(parents=True, exist_ok=True)
    path = cache / f"{hashlib.sha1(key.encode()).hexdigest()}.json"
    path.write_text(json.dumps({"startUrl": "https://example.awsapps.com/start",
                                "region": "eu-west-1", "accessToken": token,
                                "expiresAt": expires.strftime("%Y-%m-%dT%H:%M:%SZ")}))
    return path


SSO_CONFIG = (
    "[profile sso]\nsso_session = corp\nsso_account_id = 111122223333\n"
    "sso_role_name = Ops+Admin@x\n"
    "[sso-session corp]\nsso_start_url = https://example.awsapps.com/start\n"
    "sso_region = eu-west-1\nsso_registration_scopes = sso:account:access\n"
    "[profile legacy]\nsso_start_url = https://legacy.awsapps.com/start\n"
    "sso_region = us-east-2\nsso_account_id = 111122223333\nsso_role_name = Ops+Admin@x\n"
)


def sso_ctx(tmp_path: Path, transport: Transport, endpoint: str, **extra: str
            ) -> ProviderContext:
    env = files(tmp_path, "", SSO_CONFIG, AWS_ENDPOINT_URL_SSO=endpoint, **extra)
    return ProviderContext(env, transport.fetch, lambda: NOW, Blocking())


async def test_sso_session_profile(portal: tuple[Portal, str], transport: Transport,
                                   tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG, logger="s3stream")
    server, endpoint = portal
    cache_token(tmp_path, "corp", NOW + timedelta(hours=8))
    got = await SsoProvider("sso").load(sso_ctx(tmp_path, transport, endpoint))
    assert got == Credentials("ASIASSO", SECRET, "sso-session-token")
    assert got.expiry == NOW + timedelta(hours=1)
    (raw_path, query), = server.requests
    assert query == {"account_id": "111122223333", "role_name": "Ops+Admin@x"}
    assert "role_name=Ops%2BAdmin%40x" in raw_path  # percent-encoded, as signed URLs are
    # Through the profile provider too (SSO ranks before static keys).
    got = await ProfileProvider("sso").load(sso_ctx(tmp_path, transport, endpoint))
    assert got is not None and got.access_key_id == "ASIASSO"
    for secret in (SSO_TOKEN, SECRET, "sso-session-token"):
        assert secret not in caplog.text


async def test_sso_legacy_profile_keys_the_cache_by_start_url(
        portal: tuple[Portal, str], transport: Transport, tmp_path: Path) -> None:
    _server, endpoint = portal
    cache_token(tmp_path, "https://legacy.awsapps.com/start", NOW + timedelta(minutes=5))
    got = await SsoProvider("legacy").load(sso_ctx(tmp_path, transport, endpoint))
    assert got is not None and got.access_key_id == "ASIASSO"


async def test_sso_expired_or_missing_token_says_to_log_in(
        portal: tuple[Portal, str], transport: Transport, tmp_path: Path) -> None:
    server, endpoint = portal
    ctx = sso_ctx(tmp_path, transport, endpoint)
    with pytest.raises(CredentialsError, match=r"no cached SSO token.*aws sso login "
                                               "--sso-session corp"):
        await SsoProvider("sso").load(ctx)
    cache_token(tmp_path, "corp", NOW - timedelta(seconds=1))
    with pytest.raises(CredentialsError, match=r"expired at .*aws sso login") as info:
        await SsoProvider("sso").load(ctx)
    assert SSO_TOKEN not in str(info.value)
    with pytest.raises(CredentialsError, match="aws sso login --profile legacy"):
        await SsoProvider("legacy").load(ctx)
    assert server.requests == []


async def test_sso_refused_token_and_errors(portal: tuple[Portal, str], transport: Transport,
                                            tmp_path: Path) -> None:
    server, endpoint = portal
    ctx = sso_ctx(tmp_path, transport, endpoint)
    cache_token(tmp_path, "corp", NOW + timedelta(hours=1), token="revoked-token")
    with pytest.raises(CredentialsError, match=r"refused the cached token \(HTTP 401\).*aws "
                                               "sso login") as info:
        await SsoProvider("sso").load(ctx)
    assert "revoked-token" not in str(info.value)
    server.status = 500
    with pytest.raises(CredentialsError, match="answered HTTP 500 boom"):
        await SsoProvider("sso").load(ctx)


@pytest.mark.parametrize(("config", "says"), [
    ("[profile s]\nsso_session = nope\nsso_account_id = 1\nsso_role_name = r\n",
     "no [sso-session nope] section"),
    ("[profile s]\nsso_session = c\nsso_account_id = 1\n[sso-session c]\n"
     "sso_start_url = https://x\nsso_region = eu-west-1\n", "missing sso_role_name"),
    ("[profile s]\nsso_start_url = https://x\nsso_account_id = 1\nsso_role_name = r\n",
     "missing sso_region"),
    ("[profile s]\nsso_session = c\nsso_start_url = https://other\nsso_account_id = 1\n"
     "sso_role_name = r\n[sso-session c]\nsso_start_url = https://x\nsso_region = eu-west-1\n",
     "sets sso_start_url to something other than its [sso-session c]"),
])
async def test_sso_incomplete_settings(tmp_path: Path, config: str, says: str) -> None:
    with pytest.raises(CredentialsError, match=re.escape(says)):
        await SsoProvider("s").load(ctx_for(files(tmp_path, "", config)))


async def test_sso_not_configured_is_none(tmp_path: Path) -> None:
    env = files(tmp_path, "", "[profile plain]\nregion = eu-west-1\n")
    assert await SsoProvider("plain").load(ctx_for(env)) is None
    assert await SsoProvider("absent").load(ctx_for(env)) is None


def test_sso_parsers() -> None:
    token = parse_token({"accessToken": SSO_TOKEN, "expiresAt": "2030-01-01T00:00:00UTC"})
    assert token.expires_at == datetime(2030, 1, 1, tzinfo=UTC)
    assert SSO_TOKEN not in repr(token)
    for bad in ({}, {"accessToken": "x"}, {"accessToken": "x", "expiresAt": "soon"}, []):
        with pytest.raises(ValueError):  # noqa: PT011 - each names its field
            parse_token(bad)
    got = parse_role_credentials(json.dumps({"roleCredentials": {
        "accessKeyId": "A", "secretAccessKey": "S", "sessionToken": "T",
        "expiration": 1893456000000}}).encode())
    assert got.expiry == datetime(2030, 1, 1, tzinfo=UTC)
    for body in (b"nope", b"{}", json.dumps({"roleCredentials": {
            "accessKeyId": "A", "secretAccessKey": "S", "sessionToken": "T",
            "expiration": "soon"}}).encode()):
        with pytest.raises(ValueError):  # noqa: PT011
            parse_role_credentials(body)


def test_shared_config_repr_shows_no_value(tmp_path: Path) -> None:
    from s3stream.credentials._files import _profile_files, load_shared_config

    env = files(tmp_path,
                f"[default]\naws_access_key_id = AKID\naws_secret_access_key = {SECRET}\n",
                f"[default]\naws_session_token = {SSO_TOKEN}\n")
    shared = load_shared_config(env)
    assert shared.profile("default") == {"aws_access_key_id": "AKID",
                                         "aws_secret_access_key": SECRET,
                                         "aws_session_token": SSO_TOKEN}
    for shown in (repr(shared), *map(repr, _profile_files(env))):
        assert SECRET not in shown and SSO_TOKEN not in shown
    assert "default" in repr(shared)
