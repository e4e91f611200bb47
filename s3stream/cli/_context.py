"""What every command is given: the parsed arguments, the client, where to print, and what
main() says if the command is stopped (Ctrl-C, SIGTERM)."""

from __future__ import annotations

import argparse
import sys
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, TextIO

from ._progress import Progress, progress_for

if TYPE_CHECKING:
    from s3stream import S3Client

__all__ = ["Context"]


@dataclass
class Context:
    args: argparse.Namespace
    s3: S3Client
    stdout: TextIO = field(default_factory=lambda: sys.stdout)
    stderr: TextIO = field(default_factory=lambda: sys.stderr)
    #: What the command leaves behind if Ctrl-C (or SIGTERM) stops it, for main()'s line
    #: on stderr: set by the command as it goes (an upload aborted, a file left as it was).
    stopped: str | None = None

    def say(self, text: str) -> None:
        """A line of the command's output (stdout), unless ``--quiet``."""
        if not self.args.quiet:
            print(text, file=self.stdout, flush=True)

    def progress(self, label: str, total: int | None) -> Progress:
        """A progress bar on stderr when it is a terminal (and not ``--quiet`` or
        ``--no-progress``); otherwise one that draws nothing."""
        enabled = not (self.args.quiet or self.args.no_progress)
        return progress_for(self.stderr, label, total, enabled=enabled)
