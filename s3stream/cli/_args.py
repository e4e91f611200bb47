"""The command line's grammar: the parser, and the values its options take (S3 URLs, sizes,
durations, metadata). Pure: nothing here touches the network or the event loop.

Options common to every command (credentials, region, endpoint, output) are accepted before
or after the command name, as the AWS CLI accepts them (``s3stream cp a b --profile p``).
"""

from __future__ import annotations

import argparse
import json
import re
from dataclasses import dataclass
from datetime import timedelta

__all__ = ["CHECKSUMS", "COMMON_DEFAULTS", "CommandFailed", "CommandLineError", "S3Url",
           "build_parser", "parse_duration", "parse_metadata", "parse_size", "parse_target"]

#: What ``--checksum`` takes; ``none`` sends no additional checksum.
CHECKSUMS = ("crc32c", "crc32", "sha256", "md5", "none")

_SIZE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([kmgt]?)(?:i?b)?\s*$", re.IGNORECASE)
_SIZE_UNITS = {"": 1, "k": 1 << 10, "m": 1 << 20, "g": 1 << 30, "t": 1 << 40}
_DURATION_PART = re.compile(r"(\d+(?:\.\d+)?)([smhdw])")
_DURATION_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}


class CommandLineError(Exception):
    """The command line asks for something that cannot be done: exit status 2."""


class CommandFailed(Exception):
    """The command could not do what it was asked (a missing file, say): exit status 1."""


@dataclass(frozen=True, slots=True)
class S3Url:
    """``s3://bucket/key``; ``key`` is "" for ``s3://bucket`` and ``s3://bucket/``."""

    bucket: str
    key: str

    def __str__(self) -> str:
        return f"s3://{self.bucket}/{self.key}"


def parse_target(text: str) -> S3Url | str:
    """An ``s3://`` URL as an S3Url; anything else (a path, or ``-``) unchanged."""
    if not text.lower().startswith("s3://"):
        return text
    bucket, _, key = text[len("s3://"):].partition("/")
    return S3Url(bucket, key)


def parse_size(text: str) -> int:
    """Bytes, as the AWS CLI writes them: ``8388608``, ``8MB``, ``8MiB``, ``8M``, ``1.5GB``.
    Every unit is binary (MB = MiB = 2**20), as in the AWS CLI's own configuration."""
    match = _SIZE.match(text)
    if not match:
        raise argparse.ArgumentTypeError(
            f"not a size: {text!r} (examples: 8388608, 8MiB, 16MB, 1GiB)")
    number, unit = match.groups()
    return int(float(number) * _SIZE_UNITS[unit.lower()])


def parse_duration(text: str) -> timedelta:
    """``30s``, ``30m``, ``12h``, ``1d``, ``2w`` or combinations (``1h30m``); a bare
    number is seconds."""
    text = text.strip().lower()
    if re.fullmatch(r"\d+(?:\.\d+)?", text):
        return timedelta(seconds=float(text))
    parts = _DURATION_PART.findall(text)
    if not parts or "".join(n + u for n, u in parts) != text:
        raise argparse.ArgumentTypeError(
            f"not a duration: {text!r} (examples: 3600, 30m, 12h, 1d, 2w, 1h30m)")
    return timedelta(seconds=sum(float(n) * _DURATION_UNITS[u] for n, u in parts))


def parse_metadata(values: list[str]) -> dict[str, str]:
    """``--metadata`` values: each a JSON object (``{"k": "v"}``) or the AWS CLI's shorthand
    ``k=v[,k2=v2]`` (a value holding a comma needs the JSON form)."""
    metadata: dict[str, str] = {}
    for text in values:
        if text.lstrip().startswith("{"):
            try:
                loaded = json.loads(text)
            except json.JSONDecodeError as exc:
                raise CommandLineError(f"--metadata: not valid JSON: {exc}") from None
            if not isinstance(loaded, dict) or not all(
                    isinstance(v, str) for v in loaded.values()):
                raise CommandLineError("--metadata: the JSON must be an object of strings")
            metadata.update(loaded)
            continue
        for item in text.split(","):
            name, equals, value = item.partition("=")
            if not equals or not name.strip():
                raise CommandLineError(
                    f"--metadata: expected KEY=VALUE[,KEY=VALUE] or a JSON object, not {text!r}")
            metadata[name.strip()] = value
    return metadata


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a whole number: {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be 1 or more, not {value}")
    return value


def _common(parser: argparse.ArgumentParser) -> None:
    # SUPPRESS: an option given before the command is not reset by the subcommand's default
    # (argparse would otherwise overwrite it); main() fills in what was not given at all.
    S = argparse.SUPPRESS
    group = parser.add_argument_group("common options")
    group.add_argument("--profile", default=S, metavar="NAME",
                       help="the profile of the shared AWS config/credentials files to use "
                            "(its credentials win over AWS_ACCESS_KEY_ID, as in the AWS CLI)")
    group.add_argument("--region", default=S, help="the region (else AWS_REGION, the profile)")
    group.add_argument("--endpoint-url", default=S, metavar="URL",
                       help="an S3-compatible endpoint, such as http://127.0.0.1:9000")
    group.add_argument("--no-sign-request", action="store_true", default=S,
                       help="send requests unsigned (public buckets)")
    group.add_argument("--quiet", "-q", action="store_true", default=S,
                       help="print nothing but errors (and no progress bar)")
    group.add_argument("--no-progress", action="store_true", default=S,
                       help="no progress bar, even on a terminal")
    group.add_argument("--debug", action="store_true", default=S,
                       help="log requests and show tracebacks")


#: What main() uses for a common option given nowhere on the command line.
COMMON_DEFAULTS = {"profile": None, "region": None, "endpoint_url": None,
                   "no_sign_request": False, "quiet": False, "no_progress": False,
                   "debug": False}


def build_parser(version: str) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="s3stream", description="Stream files and pipes to and from S3.",
        epilog="Exit status: 0 success, 1 failure, 2 usage error, 130 interrupted (Ctrl-C), "
               "143 terminated (SIGTERM); an upload in progress is aborted first.")
    parser.add_argument("--version", action="version", version=f"s3stream {version}")
    _common(parser)
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    def command(name: str, help: str, sub: argparse._SubParsersAction[argparse.ArgumentParser]
                = commands) -> argparse.ArgumentParser:
        p = sub.add_parser(name, help=help, description=help)
        _common(p)
        return p

    cp = command("cp", "copy a file, a pipe (-) or an object to a file, a pipe or an object")
    cp.add_argument("source", metavar="SRC", help="a local file, - (stdin) or s3://bucket/key")
    cp.add_argument("destination", metavar="DST",
                    help="a local file or directory, - (stdout) or s3://bucket/key "
                         "(a key ending in / gets the source's file name)")
    cp.add_argument("--part-size", type=parse_size, metavar="SIZE",
                    help="bytes per part (5MiB..5GiB; default: chosen for the size)")
    cp.add_argument("--concurrency", type=_positive_int, default=4, metavar="N",
                    help="parts in flight at once (default 4)")
    cp.add_argument("--checksum", choices=CHECKSUMS, type=str.lower,
                    help="the additional checksum uploads send and downloads verify "
                         "(default: crc32c with a native CRC32C installed, else crc32; "
                         "none: no checksum)")
    cp.add_argument("--content-type", metavar="TYPE",
                    help="the uploaded object's Content-Type (default: guessed from a "
                         "file's name)")
    cp.add_argument("--metadata", action="append", default=[], metavar="KEY=VALUE",
                    help="user metadata for the uploaded object: KEY=VALUE[,KEY=VALUE] or a "
                         "JSON object; may be repeated")

    ls = command("ls", "list the objects (and, without --recursive, prefixes) under a prefix")
    ls.add_argument("target", metavar="s3://BUCKET[/PREFIX]")
    ls.add_argument("--recursive", "-r", action="store_true",
                    help="every object under the prefix, with its full key")
    ls.add_argument("--human-readable", action="store_true", help="sizes in KiB, MiB, ...")
    ls.add_argument("--summarize", action="store_true",
                    help="end with the number of objects and their total size")

    rm = command("rm", "delete an object (or, with --recursive, every object under a prefix)")
    rm.add_argument("target", metavar="s3://BUCKET/KEY")
    rm.add_argument("--recursive", "-r", action="store_true",
                    help="delete every object under the prefix")

    presign = command("presign", "print a presigned GET URL for an object")
    presign.add_argument("target", metavar="s3://BUCKET/KEY")
    presign.add_argument("--expires", "--expires-in", type=parse_duration, dest="expires",
                         default=timedelta(hours=1), metavar="DURATION",
                         help="how long the URL works: seconds, or 30m, 12h, 7d "
                              "(1 s .. 7 days; default 3600)")

    uploads = command("uploads", "in-progress multipart uploads: list or abort them")
    actions = uploads.add_subparsers(dest="action", metavar="ACTION", required=True)
    uls = command("ls", "list in-progress multipart uploads: key, upload id, initiated",
                  actions)
    uls.add_argument("target", metavar="s3://BUCKET[/PREFIX]")
    uls.add_argument("--older-than", type=parse_duration, metavar="DURATION",
                     help="only those started longer ago than this (30m, 12h, 1d, 2w)")
    abort = command("abort", "abort one multipart upload (--upload-id) or every one started "
                             "longer ago than --older-than", actions)
    abort.add_argument("target", metavar="s3://BUCKET[/KEY-OR-PREFIX]")
    abort.add_argument("--upload-id", metavar="ID", help="the upload to abort (needs a key)")
    abort.add_argument("--older-than", type=parse_duration, metavar="DURATION",
                       help="abort every upload under the prefix started longer ago than "
                            "this (30m, 12h, 1d, 2w)")
    return parser
