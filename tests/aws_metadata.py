"""Local test servers for AWS's metadata protocols, built to AWS's documentation.

``InstanceMetadataServer`` is EC2's instance metadata service (IMDS) with IMDSv2:

* ``PUT /latest/api/token`` needs ``X-aws-ec2-metadata-token-ttl-seconds``, an integer from
  1 to 21600 (else 400); a request with ``X-Forwarded-For`` is refused (403), as IMDS refuses
  proxied token requests; any other method on the token path is 405. The answer is the token,
  with the TTL echoed in the same header.
* Every metadata GET needs ``X-aws-ec2-metadata-token`` with a token that is known and not
  expired (else 401). With ``v1=True`` a GET without a token is answered too (IMDSv1 allowed);
  with ``tokens=False`` the token path answers 404 (IMDSv1 only) and GETs need none.
* ``/latest/meta-data/iam/security-credentials/`` lists the role (404 when there is none);
  ``.../<role>`` is the credentials document: ``Code``, ``LastUpdated``, ``Type``,
  ``AccessKeyId``, ``SecretAccessKey``, ``Token``, ``Expiration``.

Tests drive it: ``set_credentials(creds, expires_in=N)`` rotates the credentials and makes
them expire N seconds ahead; ``expire_tokens()`` ends every token's life at once (as its TTL
passing would); ``fail_credentials`` answers the credentials document with an error status or
a ``Code``; ``requests`` counts every request by method and path, ``unauthorized`` the 401s.

``ContainerCredentialsServer`` is the ECS / EKS Pod Identity endpoint: a GET on ``path``
answers the same kind of document (without ``Code``) when ``Authorization`` matches
``expected_token`` (when one is set), else 401. ``authorizations`` records what it was sent.

Both listen on 127.0.0.1 with a port of the system's choosing, in the test's own event loop.
"""

from __future__ import annotations

import secrets
import time
from collections import Counter
from datetime import UTC, datetime, timedelta
from types import TracebackType

from aiohttp import web

from s3stream import Credentials

TTL_HEADER = "X-aws-ec2-metadata-token-ttl-seconds"
TOKEN_HEADER = "X-aws-ec2-metadata-token"
ROLES = "/latest/meta-data/iam/security-credentials/"


def expiration(seconds_ahead: float) -> str:
    """An ``Expiration`` as AWS writes it: ``2026-12-02T03:04:05Z``."""
    when = datetime.now(UTC) + timedelta(seconds=seconds_ahead)
    return when.strftime("%Y-%m-%dT%H:%M:%SZ")


def document(creds: Credentials, expires_in: float, *, code: str | None = "Success") -> dict:
    doc: dict[str, str] = {}
    if code is not None:
        doc.update(Code=code, LastUpdated=expiration(-60), Type="AWS-HMAC")
    doc.update(AccessKeyId=creds.access_key_id, SecretAccessKey=creds.secret_access_key,
               Expiration=expiration(expires_in))
    if creds.session_token is not None:
        # Always there in AWS's answers; left out for long-term keys (a local S3's).
        doc["Token"] = creds.session_token
    return doc


class _Server:
    def __init__(self) -> None:
        self.app = web.Application()
        self.requests: Counter[tuple[str, str]] = Counter()
        self._runner: web.AppRunner | None = None
        self.url = ""

    async def __aenter__(self) -> _Server:
        self._runner = web.AppRunner(self.app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        self.url = f"http://127.0.0.1:{port}"
        return self

    async def __aexit__(self, t: type[BaseException] | None, e: BaseException | None,
                        tb: TracebackType | None) -> None:
        assert self._runner is not None
        await self._runner.cleanup()

    @property
    def total(self) -> int:
        return sum(self.requests.values())


class InstanceMetadataServer(_Server):
    def __init__(self, creds: Credentials, *, role: str | None = "s3stream-test-role",
                 expires_in: float = 3600, v1: bool = False, tokens: bool = True) -> None:
        super().__init__()
        self.role = role
        self.v1 = v1
        self.tokens = tokens
        #: token -> the monotonic time it expires at
        self._tokens: dict[str, float] = {}
        self.unauthorized = 0
        #: (status, Code) for the credentials document; None: answered normally.
        self.fail_credentials: tuple[int, str] | None = None
        #: TTLs that token requests asked for.
        self.ttls: list[int] = []
        self.set_credentials(creds, expires_in=expires_in)
        self.app.router.add_route("*", "/latest/api/token", self._token)
        self.app.router.add_get(ROLES, self._roles)
        self.app.router.add_get(ROLES + "{role}", self._role)

    def set_credentials(self, creds: Credentials, *, expires_in: float) -> None:
        """Rotate: from now on, ``creds``, expiring ``expires_in`` seconds ahead."""
        self.creds = creds
        self.expires_in = expires_in

    def expire_tokens(self) -> None:
        """Every token issued so far is past its TTL from now on."""
        for token in self._tokens:
            self._tokens[token] = 0.0

    @property
    def issued(self) -> set[str]:
        return set(self._tokens)

    async def _token(self, request: web.Request) -> web.Response:
        self.requests[(request.method, request.path)] += 1
        if not self.tokens:
            return web.Response(status=404, text="Not Found")
        if request.method != "PUT":
            return web.Response(status=405, text="Method Not Allowed")
        if "X-Forwarded-For" in request.headers:
            return web.Response(status=403, text="Forbidden")
        raw = request.headers.get(TTL_HEADER, "")
        try:
            ttl = int(raw)
        except ValueError:
            return web.Response(status=400, text="Missing or Invalid Parameters")
        if not 1 <= ttl <= 21600:
            return web.Response(status=400, text="Missing or Invalid Parameters")
        self.ttls.append(ttl)
        token = "AQAEA" + secrets.token_urlsafe(40)
        self._tokens[token] = time.monotonic() + ttl
        return web.Response(text=token, headers={TTL_HEADER: str(ttl)})

    def _authorized(self, request: web.Request) -> bool:
        token = request.headers.get(TOKEN_HEADER)
        if token is None:
            return self.v1 or not self.tokens
        return time.monotonic() < self._tokens.get(token, 0.0)

    async def _roles(self, request: web.Request) -> web.Response:
        self.requests[(request.method, request.path)] += 1
        if not self._authorized(request):
            self.unauthorized += 1
            return web.Response(status=401, text="Unauthorized")
        if self.role is None:
            return web.Response(status=404, text="Not Found")
        return web.Response(text=self.role)

    async def _role(self, request: web.Request) -> web.Response:
        self.requests[(request.method, request.path)] += 1
        if not self._authorized(request):
            self.unauthorized += 1
            return web.Response(status=401, text="Unauthorized")
        if request.match_info["role"] != self.role:
            return web.Response(status=404, text="Not Found")
        if self.fail_credentials is not None:
            status, code = self.fail_credentials
            doc = document(self.creds, self.expires_in, code=code)
            return web.json_response(doc, status=status)
        return web.json_response(document(self.creds, self.expires_in))


class ContainerCredentialsServer(_Server):
    def __init__(self, creds: Credentials, *, path: str = "/v2/credentials/task-1234",
                 expected_token: str | None = None, expires_in: float = 3600) -> None:
        super().__init__()
        self.path = path
        self.expected_token = expected_token
        self.authorizations: list[str | None] = []
        #: The next ``fail_times`` requests are answered ``fail_status``.
        self.fail_status = 500
        self.fail_times = 0
        self.set_credentials(creds, expires_in=expires_in)
        self.app.router.add_get(path, self._credentials)

    def set_credentials(self, creds: Credentials, *, expires_in: float) -> None:
        self.creds = creds
        self.expires_in = expires_in

    async def _credentials(self, request: web.Request) -> web.Response:
        self.requests[(request.method, request.path)] += 1
        got = request.headers.get("Authorization")
        self.authorizations.append(got)
        if self.expected_token is not None and got != self.expected_token:
            return web.json_response({"code": "AccessDenied", "message": "bad token"},
                                     status=401)
        if self.fail_times > 0:
            self.fail_times -= 1
            return web.json_response({"code": "InternalError", "message": "failed"},
                                     status=self.fail_status)
        return web.json_response(document(self.creds, self.expires_in, code=None))
