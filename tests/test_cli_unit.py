"""The command line's pure parts: the parser, sizes, durations, metadata, the progress bar's
line and when it is redrawn, the reading thread. No network, no subprocess."""

from __future__ import annotations

import argparse
import asyncio
import io
import os
import tomllib
from datetime import timedelta
from pathlib import Path

import pytest

from s3stream.cli import _environ, main
from s3stream.cli._args import (
    COMMON_DEFAULTS,
    CommandLineError,
    S3Url,
    build_parser,
    parse_duration,
    parse_metadata,
    parse_size,
    parse_target,
)
from s3stream.cli._pipes import read_chunks
from s3stream.cli._progress import NoProgress, ProgressBar, format_bytes, progress_for, render

MiB = 1 << 20


@pytest.mark.parametrize(("text", "size"), [
    ("8388608", 8 * MiB), ("8MiB", 8 * MiB), ("8MB", 8 * MiB), ("8m", 8 * MiB),
    ("1.5GiB", 3 << 29), ("64KiB", 64 << 10), ("100b", 100), (" 5 MiB ", 5 * MiB),
])
def test_sizes(text: str, size: int) -> None:
    assert parse_size(text) == size


@pytest.mark.parametrize("text", ["", "MiB", "8 XB", "-5MiB", "8MiBs"])
def test_not_sizes(text: str) -> None:
    with pytest.raises(argparse.ArgumentTypeError):
        parse_size(text)


@pytest.mark.parametrize(("text", "seconds"), [
    ("3600", 3600), ("30s", 30), ("30m", 1800), ("12h", 43200), ("1d", 86400),
    ("2w", 14 * 86400), ("1h30m", 5400), ("0s", 0), ("1.5h", 5400),
])
def test_durations(text: str, seconds: float) -> None:
    assert parse_duration(text) == timedelta(seconds=seconds)


@pytest.mark.parametrize("text", ["", "soon", "1y", "h1", "1h 30m", "-1d", "1dd"])
def test_not_durations(text: str) -> None:
    with pytest.raises(argparse.ArgumentTypeError):
        parse_duration(text)


def test_metadata() -> None:
    assert parse_metadata([]) == {}
    assert parse_metadata(["a=1,b=x=y", '{"c": "3, 4"}', "d="]) == {
        "a": "1", "b": "x=y", "c": "3, 4", "d": ""}
    for bad in (["novalue"], ["=v"], ["{not json"], ['{"n": 1}'], ["[1]"]):
        with pytest.raises(CommandLineError):
            parse_metadata(bad)


def test_targets() -> None:
    assert parse_target("s3://b/k/x") == S3Url("b", "k/x")
    assert parse_target("S3://b") == S3Url("b", "")
    assert parse_target("s3://b/") == S3Url("b", "")
    assert parse_target("-") == "-"
    assert parse_target("./s3:/x") == "./s3:/x"
    assert str(S3Url("b", "k")) == "s3://b/k"


def test_common_options_before_or_after_the_command() -> None:
    parser = build_parser("0")
    before = parser.parse_args(["--profile", "p", "--debug", "cp", "-", "s3://b/k"])
    after = parser.parse_args(["cp", "-", "s3://b/k", "--profile", "p", "--debug"])
    nested = parser.parse_args(["uploads", "ls", "s3://b", "--region", "eu-west-1"])
    assert (before.profile, before.debug) == (after.profile, after.debug) == ("p", True)
    assert nested.region == "eu-west-1"
    # Not given: left for main() to fill from COMMON_DEFAULTS (a subcommand's default must
    # not overwrite a value given before the command).
    assert not hasattr(before, "region")
    assert set(COMMON_DEFAULTS) >= {"profile", "region", "endpoint_url", "no_sign_request",
                                    "quiet", "debug"}


def test_profile_sets_aside_the_environments_keys(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "AK")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "SK")
    monkeypatch.setenv("AWS_SESSION_TOKEN", "T")
    monkeypatch.setenv("AWS_REGION", "eu-west-1")
    env = _environ("work")
    assert env["AWS_PROFILE"] == "work"
    assert not {"AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN"} & set(env)
    assert env["AWS_REGION"] == "eu-west-1"
    assert _environ(None)["AWS_ACCESS_KEY_ID"] == "AK"
    assert "AWS_ACCESS_KEY_ID" in os.environ  # a copy was changed, not the process's own


def test_usage_error_exit_status(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_:
        main(["cp"])
    assert exit_.value.code == 2
    assert main(["cp", "a", "b"]) == 2  # refused before a client is made
    assert capsys.readouterr().err.splitlines()[-1].startswith("s3stream: error: one side")


def test_entry_point_is_declared() -> None:
    pyproject = tomllib.loads((Path(__file__).parents[1] / "pyproject.toml").read_text())
    assert pyproject["project"]["scripts"] == {"s3stream": "s3stream.cli:main"}


# ------------------------------------------------------------------------ progress bar


def test_render() -> None:
    line = render("big.bin", 3 * MiB, 12 * MiB, 1.0, 80)
    assert line == "big.bin  3.0 MiB / 12.0 MiB   25%  3.0 MiB/s  ETA 0:03"
    assert render("-", 5 * MiB, None, 2.0, 80) == "-  5.0 MiB  2.5 MiB/s"
    assert render("f", 12 * MiB, 12 * MiB, 90.0, 80, final=True).endswith(
        "100%  136.5 KiB/s  in 1:30")
    assert render("f", 0, 0, 0.0, 80) == "f  0 B / 0 B  0 B/s"
    assert "ETA 1:00:00" in render("f", 1, 3601, 1.0, 80)
    long = render("x" * 200, MiB, 2 * MiB, 1.0, 60)
    assert len(long) <= 60 and long.startswith("...")
    assert len(render("x", MiB, 2 * MiB, 1.0, 10)) <= 10


def test_format_bytes() -> None:
    assert [format_bytes(n) for n in (0, 1023, 1024, 1536, MiB, 5 << 40)] == [
        "0 B", "1023 B", "1.0 KiB", "1.5 KiB", "1.0 MiB", "5.0 TiB"]


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_bar_redraws_at_most_ten_times_a_second() -> None:
    out, clock = io.StringIO(), Clock()
    bar = ProgressBar(out, "k", 100 * MiB, clock=clock, width=lambda: 80)
    for i in range(1, 101):  # 100 updates within 0.5 s
        clock.now += 0.005
        bar.update(i * MiB)
    assert out.getvalue().count("\r") == 5  # the first, then one per 0.1 s
    bar.finish()
    text = out.getvalue()
    assert text.count("\r") == 6 and text.endswith("\n")
    assert "100.0 MiB / 100.0 MiB  100%" in text.rsplit("\r", 1)[1]
    bar.update(1)
    bar.finish()
    assert out.getvalue() == text  # nothing after the end


def test_abandoned_bar_ends_its_line() -> None:
    out = io.StringIO()
    bar = ProgressBar(out, "k", None, clock=Clock(), width=lambda: 80)
    bar.abandon()
    assert out.getvalue() == ""  # never drawn: nothing to end
    bar.update(5)
    bar.abandon()
    assert out.getvalue().endswith("\n") and out.getvalue().count("\n") == 1


class FakeTerminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_bar_only_on_a_terminal() -> None:
    assert isinstance(progress_for(io.StringIO(), "k", 1, enabled=True), NoProgress)
    assert isinstance(progress_for(FakeTerminal(), "k", 1, enabled=False), NoProgress)
    assert isinstance(progress_for(FakeTerminal(), "k", 1, enabled=True), ProgressBar)


# ---------------------------------------------------------------------- reading thread


async def test_read_chunks_gathers_a_pipe_into_chunks() -> None:
    read_fd, write_fd = os.pipe()
    data = os.urandom(3 * MiB + 5)

    async def feed() -> None:
        # Written from a thread in pieces, while the loop keeps running the reader.
        def write() -> None:
            for start in range(0, len(data), 100_000):
                os.write(write_fd, data[start:start + 100_000])
            os.close(write_fd)

        await asyncio.to_thread(write)

    ticks = 0

    async def ticker() -> None:
        nonlocal ticks
        while True:
            ticks += 1
            await asyncio.sleep(0)

    tick = asyncio.create_task(ticker())
    writer = asyncio.create_task(feed())
    counted: list[int] = []
    chunks = [c async for c in read_chunks(read_fd, on_read=counted.append)]
    await writer
    tick.cancel()
    os.close(read_fd)
    assert b"".join(chunks) == data
    assert [len(c) for c in chunks] == [MiB, MiB, MiB, 5]
    assert counted == [len(c) for c in chunks]
    assert ticks > 0  # the loop ran while the reads waited


async def test_read_chunks_waits_without_blocking_the_loop() -> None:
    read_fd, write_fd = os.pipe()
    chunks = read_chunks(read_fd)
    pending = asyncio.ensure_future(anext(chunks))
    # The read is blocked in its thread (nothing written yet), and the loop is free.
    for _ in range(10):
        await asyncio.sleep(0)
    assert not pending.done()
    os.write(write_fd, b"abc")
    os.close(write_fd)
    assert await pending == b"abc"
    with pytest.raises(StopAsyncIteration):
        await anext(chunks)
    os.close(read_fd)


def test_failures_map_to_statuses_and_one_line() -> None:
    from s3stream import NoCredentialsError, NotFoundError, UsageError
    from s3stream.cli import _failure
    from s3stream.cli._args import CommandFailed

    missing = NotFoundError(status=404, code="NoSuchKey", message="The key does not exist.",
                            operation="GetObject", bucket="b", key="k")
    assert _failure(missing) == (1, "GetObject failed: HTTP 404 NoSuchKey: The key does not "
                                    "exist. (s3://b/k)")
    assert _failure(CommandLineError("bad"))[0] == 2
    assert _failure(UsageError("part_size too small"))[0] == 2  # refused before any I/O
    status, text = _failure(NoCredentialsError("x", searched=(
        "the credentials argument (None)", "the environment (not set)")))
    assert status == 1 and "--profile" in text and "argument" not in text
    assert _failure(CommandFailed("no such file: x")) == (1, "no such file: x")
    assert _failure(PermissionError(13, "Permission denied", "/root/x")) == (
        1, "Permission denied: /root/x")
    assert _failure(RuntimeError("boom")) == (1, "unexpected RuntimeError: boom")
