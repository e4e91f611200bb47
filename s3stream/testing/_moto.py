"""moto's standalone server (PyPI ``moto[server]``) with IAM authentication switched on.

moto accepts any request by default. With ``INITIAL_NO_AUTH_ACTION_COUNT=N`` in its
environment it serves the first N actions unauthenticated and then checks every request's
SigV4 signature against the access keys of its own IAM, and the caller's IAM policies
against the action. So the server is started with N = 3, and those three free actions create
an IAM user, an access key for it and a policy allowing it every S3 action; from then on a
request signed with anything else is refused with 403.
"""

from __future__ import annotations

import http.client
import json
import re
import urllib.parse
from collections.abc import Sequence
from pathlib import Path

from s3stream.credentials import Credentials

from ._base import HOST, REGION, LocalS3, LocalServer, find_binary, pick_port, scrubbed_env
from ._base import signature_probe as _signature_probe
from ._base import signed_request as _signed_request

_USER = "s3stream-tester"
# The number of IAM actions _provision() performs before authentication starts.
_FREE_ACTIONS = 3
_S3_POLICY = json.dumps(
    {
        "Version": "2012-10-17",
        "Statement": [{"Effect": "Allow", "Action": "s3:*", "Resource": "*"}],
    }
)
# moto reads MOTO_* settings (and AWS_* defaults) from its environment; a developer's shell
# must not change how the test server behaves.
_SCRUBBED_ENV_PREFIXES = ("AWS_", "MOTO_", "TEST_SERVER_MODE", "INITIAL_NO_AUTH_ACTION_COUNT")


def find_moto_server() -> str:
    """Path of ``moto_server``: ``$S3STREAM_MOTO_SERVER``, next to the interpreter, on PATH."""
    return find_binary(
        ["moto_server"], "S3STREAM_MOTO_SERVER", "moto[server]", "moto's 'moto_server' script"
    )


class Moto(LocalServer):
    """Owns one ``moto_server`` process, with SigV4 enforced through moto's IAM.

    The credentials are the ones moto's IAM issued at start (``start().credentials``).
    moto keeps objects in memory, spilling large ones to files in its temporary directory.
    """

    name = "moto"
    label = "moto_server"
    port_taken_markers = ("address already in use", "is in use by another program")

    def __init__(
        self,
        *,
        buckets: Sequence[str] = (),
        moto_server: str | None = None,
        startup_timeout: float = 60.0,
    ) -> None:
        super().__init__(buckets=buckets, startup_timeout=startup_timeout)
        self._moto_server = moto_server

    def _binary(self) -> str:
        return self._moto_server or find_moto_server()

    def _launch(self, binary: str, tmp: Path) -> LocalS3:
        (tmp / "tmp").mkdir()
        port = pick_port()
        env = scrubbed_env(
            _SCRUBBED_ENV_PREFIXES,
            INITIAL_NO_AUTH_ACTION_COUNT=str(_FREE_ACTIONS),
            # Large objects spill from memory into temporary files: keep them in our directory.
            TMPDIR=str(tmp / "tmp"),
            TEMP=str(tmp / "tmp"),
            TMP=str(tmp / "tmp"),
        )
        self._spawn([binary, "--host", HOST, "--port", str(port)], env, tmp)
        # Placeholder credentials: the real ones come from moto's IAM in _become_ready().
        return LocalS3(f"http://{HOST}:{port}", REGION, _BOOTSTRAP, str(tmp), self.name)

    def _become_ready(self, local: LocalS3) -> LocalS3:
        # moto's own API is not an AWS action, so polling it does not use up a free action.
        self._wait_until(lambda: _moto_api_probe(local))
        local = _provision(local)
        self._wait_until(lambda: _signature_probe(local))
        return local


# Signs the free actions; moto does not look at their signatures.
_BOOTSTRAP = Credentials("AKIDMOTOBOOTSTRAP001", "bootstrap-secret")


def _moto_api_probe(local: LocalS3) -> str | None:
    url = urllib.parse.urlsplit(local.endpoint)
    conn = http.client.HTTPConnection(url.hostname or HOST, url.port, timeout=2.0)
    try:
        conn.request("GET", "/moto-api/config")
        response = conn.getresponse()
        response.read()
    finally:
        conn.close()
    return None if response.status < 500 else f"moto-api answered HTTP {response.status}"


def _iam(local: LocalS3, action: str, **params: str) -> str:
    body = urllib.parse.urlencode({"Action": action, "Version": "2010-05-08", **params}).encode()
    # moto picks the service from the signature's credential scope: this one says IAM.
    status, answer = _signed_request(
        local, "POST", "/", body=body, service="iam",
        headers={"content-type": "application/x-www-form-urlencoded; charset=utf-8"},
    )
    text = answer.decode(errors="replace")
    if status != 200:
        raise RuntimeError(f"moto IAM {action} failed: HTTP {status}: {text[:500]}")
    return text


def _provision(local: LocalS3) -> LocalS3:
    """Spend the free actions on a user with an access key allowed to do anything in S3."""
    _iam(local, "CreateUser", UserName=_USER)
    answer = _iam(local, "CreateAccessKey", UserName=_USER)
    _iam(local, "PutUserPolicy", UserName=_USER, PolicyName="s3-all", PolicyDocument=_S3_POLICY)
    key = re.search(r"<AccessKeyId>([^<]+)</AccessKeyId>", answer)
    secret = re.search(r"<SecretAccessKey>([^<]+)</SecretAccessKey>", answer)
    if key is None or secret is None:
        raise RuntimeError(f"moto IAM CreateAccessKey answered without a key: {answer[:500]}")
    return LocalS3(
        local.endpoint, local.region, Credentials(key.group(1), secret.group(1)),
        local.data_dir, local.name,
    )
