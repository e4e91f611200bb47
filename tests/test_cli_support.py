"""Helpers for the command-line tests (no tests here): running ``s3stream`` as a
subprocess against a real local server, on a pipe or on a pseudo-terminal."""

from __future__ import annotations

import fcntl
import os
import signal
import struct
import subprocess
import sys
import termios
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

import s3stream
from s3stream.testing import LocalS3

#: Where the s3stream under test lives, so the subprocess imports the same one.
SOURCE_ROOT = str(Path(s3stream.__file__).resolve().parents[1])
#: A bound on each command, so that a hang fails the test instead of holding the session.
COMMAND_TIMEOUT = 120


def cli_env(server: LocalS3, home: Path, **extra: str) -> dict[str, str]:
    """The environment of one run: the server's keys as AWS_* variables, shared files that
    do not exist (the user's own must not leak in), nothing else of AWS's."""
    env = {name: value for name, value in os.environ.items() if not name.startswith("AWS_")}
    env.update(
        AWS_ACCESS_KEY_ID=server.credentials.access_key_id,
        AWS_SECRET_ACCESS_KEY=server.credentials.secret_access_key,
        AWS_REGION=server.region,
        AWS_CONFIG_FILE=str(home / "no-config"),
        AWS_SHARED_CREDENTIALS_FILE=str(home / "no-credentials"),
        PYTHONPATH=SOURCE_ROOT + os.pathsep + env.get("PYTHONPATH", ""),
    )
    env.update(extra)
    return env


def command(server: LocalS3, *args: str) -> list[str]:
    return [sys.executable, "-m", "s3stream", "--endpoint-url", server.endpoint, *args]


@dataclass
class Run:
    returncode: int
    stdout: bytes
    stderr: str

    @property
    def stderr_lines(self) -> list[str]:
        return self.stderr.splitlines()


def run(server: LocalS3, env: Mapping[str, str], *args: str, stdin: bytes | IO[bytes] | None
        = None) -> Run:
    """Run ``s3stream --endpoint-url ... ARGS``, stdin from bytes or a file, to the end."""
    kwargs: dict[str, Any] = {"input": stdin} if isinstance(stdin, bytes) else \
        {"stdin": stdin if stdin is not None else subprocess.DEVNULL}
    done = subprocess.run(command(server, *args), env=dict(env), capture_output=True,
                          timeout=COMMAND_TIMEOUT, check=False, **kwargs)
    return Run(done.returncode, done.stdout, done.stderr.decode(errors="replace"))


def wait_for(condition: Callable[[], Any], what: str, *, tries: int = 600,
             pause: float = 0.05) -> Any:
    """Poll ``condition`` until it returns something truthy (at most ``tries`` times)."""
    for _ in range(tries):
        value = condition()
        if value:
            return value
        time.sleep(pause)
    raise AssertionError(f"gave up waiting for {what}")


@dataclass
class TerminalRun:
    returncode: int
    stdout: bytes
    terminal: str


def run_on_terminal(args: Sequence[str], env: Mapping[str, str], *, columns: int = 100,
                    stdin: IO[bytes] | None = None) -> TerminalRun:
    """Run ``args`` with stderr on a pseudo-terminal ``columns`` wide (stdout a pipe) and
    return everything the terminal showed."""
    master, slave = os.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 24, columns, 0, 0))
    shown = bytearray()

    def drain() -> None:
        while True:
            try:
                data = os.read(master, 65536)
            except OSError:  # EIO: every holder of the terminal's other end has closed it
                return
            if not data:
                return
            shown.extend(data)

    try:
        proc = subprocess.Popen(args, env=dict(env), stdin=stdin or subprocess.DEVNULL,
                                stdout=subprocess.PIPE, stderr=slave)
    finally:
        os.close(slave)
    reader = threading.Thread(target=drain, daemon=True)
    reader.start()
    try:
        stdout, _ = proc.communicate(timeout=COMMAND_TIMEOUT)
    except BaseException:
        proc.kill()
        raise
    reader.join(timeout=COMMAND_TIMEOUT)
    os.close(master)
    return TerminalRun(proc.returncode, stdout, shown.decode(errors="replace"))


def ctrl_c_works() -> None:
    """``preexec_fn`` of a command a test interrupts with SIGINT, as a terminal's Ctrl-C.

    A shell without job control starts background commands with SIGINT ignored, and the
    disposition is inherited through exec: Python then installs no KeyboardInterrupt
    handler, and the command rightly ignores Ctrl-C. The test's command is meant to be
    in the foreground of a terminal."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)
