"""The ``s3stream`` command (also ``python -m s3stream``): a thin layer over ``S3Client``.

::

    s3stream cp SRC DST                  local file, - (stdin/stdout) or s3://bucket/key
    s3stream ls s3://bucket[/prefix]     [--recursive]
    s3stream rm s3://bucket/key          [--recursive]
    s3stream presign s3://bucket/key     [--expires 3600]
    s3stream uploads ls s3://bucket      [--older-than 1d]
    s3stream uploads abort s3://bucket/key --upload-id ID
    s3stream uploads abort s3://bucket[/prefix] --older-than 1d

Credentials, region and endpoint are found as the AWS CLI finds them (environment, shared
files, ``--profile``, ``--region``, ``--endpoint-url``). Exit status: 0 success, 1 failure
(one line on stderr; the traceback too with ``--debug``), 2 usage error, 130 interrupted
(Ctrl-C) and 143 terminated (SIGTERM); an upload in progress is aborted first.

Modules: ``_args`` (the parser and the values of its options), ``_progress`` (the bar),
``_pipes`` (stdin/stdout without blocking the loop), ``_cp``, ``_objects``, ``_uploads``
(the commands), ``_context`` (what a command is given).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import os
import signal
import sys
import traceback
from collections.abc import Awaitable, Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from s3stream import (
    Credentials,
    NoCredentialsError,
    S3StreamError,
    UsageError,
    __version__,
)

from ._args import COMMON_DEFAULTS, CommandFailed, CommandLineError, build_parser
from ._context import Context

if TYPE_CHECKING:
    from s3stream import S3Client

__all__ = ["main"]

#: Exit statuses (130 and 143 are 128 + SIGINT and 128 + SIGTERM, as a shell reports them).
OK, FAILED, USAGE, INTERRUPTED, TERMINATED = 0, 1, 2, 130, 143

#: Variables that --profile sets aside: with an explicit profile the AWS CLI takes
#: credentials from the profile, not from the environment.
_ENV_CREDENTIALS = ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN")


def _environ(profile: str | None) -> dict[str, str]:
    """The environment the client resolves its settings from, with ``--profile`` applied."""
    env = dict(os.environ)
    if profile is not None:
        env["AWS_PROFILE"] = profile
        for name in _ENV_CREDENTIALS:
            env.pop(name, None)
    return env


def _client(args: argparse.Namespace) -> S3Client:
    from s3stream import S3Client

    return S3Client(
        endpoint=args.endpoint_url, region=args.region, environ=_environ(args.profile),
        credentials=Credentials.anonymous() if args.no_sign_request else None)


def _command(args: argparse.Namespace) -> Callable[[Context], Awaitable[int]]:
    # Imported here: `s3stream --help` and `--version` then load no networking at all.
    from . import _cp, _objects, _uploads

    if args.command == "uploads":
        return {"ls": _uploads.uploads_ls, "abort": _uploads.uploads_abort}[args.action]
    commands: dict[str, Callable[[Context], Awaitable[int]]] = {
        "cp": _cp.cp, "ls": _objects.ls, "rm": _objects.rm, "presign": _objects.presign}
    return commands[args.command]


@dataclass
class _State:
    """What main() learns from the running command: its context, and whether SIGTERM
    stopped it."""

    context: Context | None = None
    terminated: bool = False

    def stopped(self, how: str) -> str:
        left = self.context.stopped if self.context is not None else None
        return f"s3stream: {how}" + (f": {left}" if left else "")


async def _run(args: argparse.Namespace, state: _State) -> int:
    task = asyncio.current_task()
    assert task is not None

    def terminate() -> None:
        # SIGTERM (a service manager, `timeout`) stops the command as Ctrl-C does, so that
        # an upload in progress is aborted rather than left open.
        state.terminated = True
        task.cancel()

    with contextlib.suppress(NotImplementedError, RuntimeError):  # no signals on Windows
        asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, terminate)
    command = _command(args)
    async with _client(args) as s3:
        state.context = Context(args, s3)
        return await command(state.context)


@contextlib.contextmanager
def _logging(debug: bool) -> Iterator[None]:
    """Log to stderr while the command runs (and only then: main() may be called more
    than once in a process, as the tests do)."""
    handler = logging.StreamHandler(sys.stderr)
    if debug:
        handler.setFormatter(logging.Formatter("%(asctime)s %(name)s %(levelname)s %(message)s"))
        log, level = logging.getLogger(), logging.DEBUG
    else:
        # The library's warnings (a store that refused checksums, a clock far off) are
        # worth a line; its info and debug messages are for --debug.
        handler.setFormatter(logging.Formatter("s3stream: warning: %(message)s"))
        log, level = logging.getLogger("s3stream"), logging.WARNING
    saved = log.level, log.propagate
    log.addHandler(handler)
    log.setLevel(level)
    log.propagate = debug
    try:
        yield
    finally:
        log.removeHandler(handler)
        log.setLevel(saved[0])
        log.propagate = saved[1]


def _error(message: str) -> None:
    # One line: a message from S3 may span several.
    text = " ".join(message.split())
    print(f"s3stream: error: {text}", file=sys.stderr, flush=True)


def _no_credentials(exc: NoCredentialsError) -> str:
    """The library's message speaks of its API (``credentials=``); this one of the
    command line's options."""
    searched = [place for place in exc.searched if not place.startswith("the credentials arg")]
    looked = f"; looked at: {'; '.join(searched)}" if searched else ""
    return ("no AWS credentials found: set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, "
            "give --profile NAME, or --no-sign-request for a public bucket" + looked)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line ``argv`` (default: ``sys.argv[1:]``); returns the exit status."""
    parser = build_parser(__version__)
    args = parser.parse_args(argv)  # exits with status 2 on a usage error
    for name, default in COMMON_DEFAULTS.items():
        if not hasattr(args, name):
            setattr(args, name, default)
    debug: bool = args.debug
    state = _State()
    try:
        with _logging(debug):
            return asyncio.run(_run(args, state))
    except (KeyboardInterrupt, asyncio.CancelledError) as exc:
        # asyncio.run() cancelled the command at Ctrl-C (or SIGTERM cancelled it) and waited
        # for it to clean up: an upload in progress aborts itself. The command has said
        # what became of its work.
        if debug:
            traceback.print_exc()
        if isinstance(exc, asyncio.CancelledError) and not state.terminated:
            raise  # not ours to explain
        terminated = state.terminated and not isinstance(exc, KeyboardInterrupt)
        print(state.stopped("terminated" if terminated else "interrupted"), file=sys.stderr,
              flush=True)
        return TERMINATED if terminated else INTERRUPTED
    except Exception as exc:
        if debug:
            traceback.print_exc()
        status, message = _failure(exc)
        _error(message)
        return status


def _failure(exc: Exception) -> tuple[int, str]:
    """The exit status and the one line for what ended the command."""
    if isinstance(exc, CommandLineError):
        return USAGE, str(exc)
    if isinstance(exc, NoCredentialsError):
        return FAILED, _no_credentials(exc)
    if isinstance(exc, UsageError):
        # What the library refused before sending anything (a part size out of range, say)
        # was a bad option on this command line.
        return USAGE, str(exc)
    if isinstance(exc, CommandFailed | S3StreamError):
        return FAILED, str(exc)
    if isinstance(exc, BrokenPipeError):
        # Whoever read stdout stopped (`| head`): what is left is dropped quietly, or the
        # interpreter would complain again when it flushes stdout on the way out.
        with contextlib.suppress(OSError, ValueError):
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return FAILED, "the output was closed before all of it was written (broken pipe)"
    if isinstance(exc, OSError) and exc.strerror:
        return FAILED, exc.strerror + (f": {exc.filename}" if exc.filename else "")
    return FAILED, f"unexpected {type(exc).__name__}: {exc}"


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
