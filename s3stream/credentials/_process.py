"""``credential_process``: a command that prints credentials as JSON (aws-vault, 1Password,
a company's own tool).

The command line is split with ``shlex`` and run without a shell, off the event loop
(``ctx.run_blocking``), in the context's environment. Its standard output is::

    {"Version": 1, "AccessKeyId": "...", "SecretAccessKey": "...",
     "SessionToken": "...", "Expiration": "2030-01-01T00:00:00Z"}

(``SessionToken`` and ``Expiration`` optional). The output holds secrets, so no message
ever quotes it: a failed command is reported with its exit status and the first line of
its standard error only, and unreadable output by what is wrong with it.
"""

from __future__ import annotations

import json
import logging
import shlex
import subprocess
from collections.abc import Mapping
from dataclasses import dataclass

from ..exceptions import CredentialsError, UsageError
from ._files import load_shared_config, profile_name
from ._model import Credentials, ProviderContext
from ._sts import StsAnswerError, parse_timestamp, scrub

log = logging.getLogger("s3stream.credentials")

_PROVIDER = "credential_process"
#: How long the command may run (it may open a browser or ask for an MFA code).
DEFAULT_TIMEOUT = 300.0


@dataclass(frozen=True, slots=True)
class ProcessResult:
    returncode: int
    stdout: bytes
    stderr: bytes

    def __repr__(self) -> str:  # stdout holds secrets
        return f"ProcessResult(returncode={self.returncode}, stdout=<{len(self.stdout)} bytes>)"


def split_command(command: str) -> list[str]:
    try:
        argv = shlex.split(command)
    except ValueError as exc:
        raise CredentialsError(f"cannot split the command line: {exc}",
                               provider=_PROVIDER) from None
    if not argv:
        raise CredentialsError("the command is empty", provider=_PROVIDER)
    return argv


def run_command(argv: list[str], environ: Mapping[str, str], timeout: float) -> ProcessResult:
    """Run ``argv`` (blocking), no shell, no standard input."""
    done = subprocess.run(argv, stdin=subprocess.DEVNULL, capture_output=True,
                          env=dict(environ), timeout=timeout, check=False)
    return ProcessResult(done.returncode, done.stdout, done.stderr)


def _first_line(stderr: bytes) -> str:
    for line in stderr.decode("utf-8", "replace").splitlines():
        if line.strip():
            return line.strip()[:200]
    return ""


def parse_output(stdout: bytes) -> Credentials:
    """The command's JSON as ``Credentials``; ``CredentialsError`` naming what is wrong
    (never a value)."""
    try:
        doc = json.loads(stdout)
    except (ValueError, UnicodeDecodeError):
        raise CredentialsError("the command's output is not JSON", provider=_PROVIDER) from None
    if not isinstance(doc, dict):
        raise CredentialsError(f"the command's output is a JSON {type(doc).__name__}, not an "
                               "object", provider=_PROVIDER)
    version = doc.get("Version")
    if version != 1 or isinstance(version, bool):
        shown = repr(version) if isinstance(version, int | float | type(None)) else "not 1"
        raise CredentialsError(f"the command's output has Version {shown}; only Version 1 "
                               "is supported", provider=_PROVIDER)
    for name in ("AccessKeyId", "SecretAccessKey"):
        if not isinstance(doc.get(name), str) or not doc[name]:
            raise CredentialsError(f"the command's output has no {name}", provider=_PROVIDER)
    token = doc.get("SessionToken")
    if token is not None and not isinstance(token, str):
        raise CredentialsError("the command's output has a SessionToken that is not a string",
                               provider=_PROVIDER)
    expiration = doc.get("Expiration")
    expiry = None
    if expiration is not None:
        if not isinstance(expiration, str):
            raise CredentialsError("the command's output has an Expiration that is not a "
                                   "string", provider=_PROVIDER)
        try:
            expiry = parse_timestamp(expiration)
        except StsAnswerError:
            raise CredentialsError("the command's output has an Expiration that is not an "
                                   "ISO 8601 time", provider=_PROVIDER) from None
    try:
        return Credentials(doc["AccessKeyId"], doc["SecretAccessKey"], token or None,
                           expiry=expiry)
    except UsageError:
        raise CredentialsError("the command's output holds unusable credentials",
                               provider=_PROVIDER) from None


async def load_process(ctx: ProviderContext, command: str, *, source: str = "",
                       request_timeout: float = DEFAULT_TIMEOUT) -> Credentials:
    """Run ``command`` and read its credentials. ``source`` says who configured it."""
    argv = split_command(command)
    where = f" (from {source})" if source else ""
    # Only the program is named: arguments may carry a token or a password.
    program = argv[0]
    log.debug("credentials: running credential_process %s%s", program, where)
    try:
        result: ProcessResult = await ctx.run_blocking(
            lambda: run_command(argv, ctx.environ, request_timeout))
    except subprocess.TimeoutExpired:
        raise CredentialsError(f"{program}{where} did not finish within {request_timeout:g} s",
                               provider=_PROVIDER) from None
    except OSError as exc:
        raise CredentialsError(f"cannot run {program}{where}: {type(exc).__name__}"
                               f"{': ' + exc.strerror if exc.strerror else ''}",
                               provider=_PROVIDER) from None
    if result.returncode != 0:
        line = scrub(_first_line(result.stderr), argv[1:])
        raise CredentialsError(
            f"{program}{where} exited with status {result.returncode}"
            + (f": {line}" if line else " (nothing on standard error)"), provider=_PROVIDER)
    found = parse_output(result.stdout)
    log.debug("credentials: credential_process gave access key %s, expiring %s",
              found.access_key_id, found.expiry.isoformat() if found.expiry else "never")
    return found


class ProcessProvider:
    """Runs ``command``, or the profile's ``credential_process``; None when neither is set.

    ``profile`` defaults to ``AWS_PROFILE`` (then ``default``).
    """

    name = "credential_process"

    def __init__(self, command: str | None = None, *, profile: str | None = None,
                 timeout: float = DEFAULT_TIMEOUT) -> None:
        if command is not None and not isinstance(command, str):
            raise UsageError(f"command must be a str, not {type(command).__name__}")
        self.command = command
        self.profile = profile
        self.timeout = timeout

    def __repr__(self) -> str:  # the command line may carry a token
        return f"ProcessProvider(profile={self.profile!r})"

    async def load(self, ctx: ProviderContext) -> Credentials | None:
        command, source = self.command, "the command argument"
        if command is None:
            shared = await ctx.run_blocking(lambda: load_shared_config(ctx.environ))
            name = self.profile or profile_name(ctx.environ)
            command = (shared.profile(name) or {}).get("credential_process")
            source = f"profile {name!r}"
            if not command:
                return None
        return await load_process(ctx, command, source=source, request_timeout=self.timeout)
