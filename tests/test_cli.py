"""The ``s3stream`` command line, run as a subprocess (``python -m s3stream``) against the real
local servers, with boto3 as the oracle: pipes, files, exit codes, Ctrl-C, the progress bar.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from botocore.exceptions import ClientError
from support import list_open_uploads, read_back
from test_cli_support import (
    COMMAND_TIMEOUT,
    cli_env,
    command,
    ctrl_c_works,
    run,
    run_on_terminal,
    wait_for,
)

from s3stream.testing import LocalS3

MiB = 1 << 20
pytestmark = [pytest.mark.real_s3, pytest.mark.every_server]


@pytest.fixture
def env(server: LocalS3, tmp_path: Path) -> dict[str, str]:
    return cli_env(server, tmp_path)


def only_error_line(stderr: str) -> str:
    """The one line a failure prints: no traceback, nothing else."""
    lines = stderr.splitlines()
    assert len(lines) == 1, stderr
    assert "Traceback" not in stderr
    assert lines[0].startswith("s3stream: error: "), stderr
    return lines[0]


# ------------------------------------------------------------------------- uploads


def test_cp_from_a_pipe(server: LocalS3, env: dict[str, str], bucket: str, boto: Any) -> None:
    data = os.urandom(7 * MiB + 3)  # two parts of 5 MiB: a multipart upload of a pipe
    done = run(server, env, "cp", "-", f"s3://{bucket}/from/pipe.bin", "--part-size", "5MiB",
               stdin=data)
    assert done.returncode == 0, done.stderr
    assert read_back(boto, bucket, "from/pipe.bin") == data
    assert done.stdout.decode() == f"upload: - to s3://{bucket}/from/pipe.bin\n"
    assert done.stderr == ""  # stderr is a pipe here: no progress bar
    head = boto.head_object(Bucket=bucket, Key="from/pipe.bin")
    assert head["ContentLength"] == len(data)
    assert head["ETag"].endswith('-2"') or server.name == "rclone"  # rclone: the whole MD5


def test_cp_a_small_pipe_and_an_empty_one(server: LocalS3, env: dict[str, str], bucket: str,
                                          boto: Any) -> None:
    assert run(server, env, "cp", "-", f"s3://{bucket}/small", stdin=b"hello\n").returncode == 0
    assert read_back(boto, bucket, "small") == b"hello\n"
    assert run(server, env, "cp", "-", f"s3://{bucket}/empty", stdin=b"").returncode == 0
    assert read_back(boto, bucket, "empty") == b""


def test_cp_a_file_with_options(server: LocalS3, env: dict[str, str], bucket: str, boto: Any,
                                tmp_path: Path) -> None:
    path = tmp_path / "page.html"
    data = os.urandom(11 * MiB)
    path.write_bytes(data)
    # Common options after the command too, as the AWS CLI accepts them; a key ending in /
    # takes the file's name.
    done = run(server, env, "cp", str(path), f"s3://{bucket}/site/", "--part-size", "5MiB",
               "--concurrency", "2", "--checksum", "sha256", "--metadata", "origin=cli,n=1",
               "--metadata", '{"note": "a, b"}', "--quiet")
    assert done.returncode == 0, done.stderr
    assert done.stdout == b""  # --quiet
    assert read_back(boto, bucket, "site/page.html") == data
    head = boto.head_object(Bucket=bucket, Key="site/page.html")
    assert head["ContentType"] == "text/html"  # guessed from the name, as the AWS CLI does
    metadata = {name.lower(): value for name, value in head["Metadata"].items()}
    assert metadata == {"origin": "cli", "n": "1", "note": "a, b"}
    # An explicit --content-type wins; a small file is one PutObject.
    done = run(server, env, "cp", str(path.with_name("x.txt")), f"s3://{bucket}/x")
    assert done.returncode == 1  # no such file (yet)
    path.with_name("x.txt").write_bytes(b"{}")
    done = run(server, env, "cp", str(path.with_name("x.txt")), f"s3://{bucket}/x",
               "--content-type", "application/json")
    assert done.returncode == 0, done.stderr
    assert boto.head_object(Bucket=bucket, Key="x")["ContentType"] == "application/json"


def test_cp_stdin_redirected_from_a_file_sends_the_rest(
    server: LocalS3, env: dict[str, str], bucket: str, boto: Any, tmp_path: Path
) -> None:
    path = tmp_path / "data.bin"
    data = os.urandom(6 * MiB)
    path.write_bytes(data)
    with path.open("rb") as f:
        # Stdin is a regular file here (its size is known), already read 1000 bytes into.
        f.seek(1000)
        done = run(server, env, "cp", "-", f"s3://{bucket}/rest", "--part-size", "5MiB",
                   stdin=f)
    assert done.returncode == 0, done.stderr
    assert read_back(boto, bucket, "rest") == data[1000:]


@pytest.mark.parametrize(("signal_number", "status", "how"), [
    (signal.SIGINT, 130, "interrupted"), (signal.SIGTERM, 143, "terminated")],
    ids=["ctrl-c", "sigterm"])
def test_interrupt_aborts_the_upload(server: LocalS3, env: dict[str, str], bucket: str,
                                     boto: Any, signal_number: int, status: int,
                                     how: str) -> None:
    proc = subprocess.Popen(
        command(server, "cp", "-", f"s3://{bucket}/interrupted", "--part-size", "5MiB"),
        env=env, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        preexec_fn=ctrl_c_works)
    assert proc.stdin is not None and proc.stderr is not None
    try:
        # More than one part, and the pipe stays open: the upload cannot finish by itself.
        proc.stdin.write(os.urandom(11 * MiB))
        proc.stdin.flush()
        wait_for(lambda: list_open_uploads(server, boto, bucket), "the multipart upload")
        proc.send_signal(signal_number)
        returncode = proc.wait(timeout=COMMAND_TIMEOUT)
        stderr = proc.stderr.read().decode()
    finally:
        proc.kill()
        proc.stdin.close()
        proc.wait()
    assert returncode == status, stderr
    assert stderr.splitlines() == [
        f"s3stream: {how}: the upload to s3://{bucket}/interrupted was aborted, "
        "nothing was stored"], stderr
    assert list_open_uploads(server, boto, bucket) == []
    with pytest.raises(ClientError):
        boto.head_object(Bucket=bucket, Key="interrupted")


def test_memory_stays_bounded_for_a_long_pipe(server: LocalS3, env: dict[str, str],
                                               bucket: str, boto: Any) -> None:
    block = os.urandom(MiB)
    total = 96 * MiB

    def peak_rss(args: list[str], feed: bool) -> int:
        """The peak resident memory of one run, in bytes (from wait4's rusage)."""
        proc = subprocess.Popen(command(server, *args), env=env, stdin=subprocess.PIPE,
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        assert proc.stdin is not None
        if feed:
            for _ in range(total // MiB):
                proc.stdin.write(block)
        proc.stdin.close()
        _, status, usage = os.wait4(proc.pid, 0)
        proc.returncode = os.waitstatus_to_exitcode(status)
        assert proc.returncode == 0
        return usage.ru_maxrss * 1024  # KiB on Linux

    # The same program doing a small upload: imports, client, one request.
    baseline = peak_rss(["cp", "-", f"s3://{bucket}/small"], feed=False)
    streamed = peak_rss(["cp", "-", f"s3://{bucket}/long", "--part-size", "5MiB",
                         "--concurrency", "2"], feed=True)
    assert boto.head_object(Bucket=bucket, Key="long")["ContentLength"] == total
    # Parts in flight and the one being filled are (2 + 1) x 5 MiB; the stream is 96 MiB.
    assert streamed - baseline < 40 * MiB, (baseline, streamed)


# ------------------------------------------------------------------- multipart uploads


def test_uploads_ls_and_abort(server: LocalS3, env: dict[str, str], bucket: str,
                              boto: Any) -> None:
    first = boto.create_multipart_upload(Bucket=bucket, Key="logs/a.log")["UploadId"]
    second = boto.create_multipart_upload(Bucket=bucket, Key="other/b.bin")["UploadId"]
    done = run(server, env, "uploads", "ls", f"s3://{bucket}")
    assert done.returncode == 0, done.stderr
    rows = sorted(line.split("\t") for line in done.stdout.decode().splitlines())
    assert [row[:2] for row in rows] == [["logs/a.log", first], ["other/b.bin", second]]
    initiated = {u["Key"]: u["Initiated"] for u in list_open_uploads(server, boto, bucket)}
    for key, _, when in rows:
        assert when == initiated[key].astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    # A prefix narrows it.
    done = run(server, env, "uploads", "ls", f"s3://{bucket}/logs/")
    assert [line.split("\t")[0] for line in done.stdout.decode().splitlines()] == ["logs/a.log"]
    # Only those started more than a day ago: none, except on moto, which reports every
    # upload as initiated on 2010-11-10 (a fixed date of its own).
    day_ago = datetime.now(UTC) - timedelta(days=1)
    old = sorted(key for key, when in initiated.items() if when < day_ago)
    assert old == ([] if server.name != "moto" else ["logs/a.log", "other/b.bin"])
    done = run(server, env, "uploads", "ls", f"s3://{bucket}", "--older-than", "1d")
    assert done.returncode == 0, done.stderr
    assert sorted(line.split("\t")[0] for line in done.stdout.decode().splitlines()) == old

    done = run(server, env, "uploads", "abort", f"s3://{bucket}/logs/a.log", "--upload-id",
               first)
    assert done.returncode == 0, done.stderr
    assert done.stdout.decode() == f"abort: s3://{bucket}/logs/a.log upload {first}\n"
    assert [u["UploadId"] for u in list_open_uploads(server, boto, bucket)] == [second]
    done = run(server, env, "uploads", "abort", f"s3://{bucket}", "--older-than", "1d")
    assert done.returncode == 0, done.stderr
    expected = len([key for key in old if key != "logs/a.log"])
    assert done.stdout.decode().startswith(
        f"aborted {expected} multipart upload{'' if expected == 1 else 's'} ")
    done = run(server, env, "uploads", "abort", f"s3://{bucket}", "--older-than", "0s")
    assert done.returncode == 0, done.stderr
    assert list_open_uploads(server, boto, bucket) == []


# -------------------------------------------------------------------------- exit codes


@pytest.mark.parametrize("args", [
    [],  # no command
    ["cp", "only-one"],
    ["cp", "a", "b"],  # neither side in S3
    ["cp", "-", "s3://bkt/k", "--concurrency", "0"],
    ["cp", "-", "s3://bkt/k", "--part-size", "lots"],
    ["cp", "-", "s3://bkt/k", "--part-size", "1"],  # refused by the library: below 5 MiB
    ["cp", "-", "s3://bkt/k", "--checksum", "crc64"],
    ["cp", "-", "s3://bkt/k", "--metadata", "no-equals-sign"],
    ["cp", "-", "s3://bkt/"],  # stdin has no name to give the key
    ["cp", "-", "s3:///k"],
    ["uploads", "ls", "not-a-url"],
    ["uploads", "abort", "s3://bkt"],  # neither --upload-id nor --older-than
    ["uploads", "abort", "s3://bkt", "--upload-id", "X"],  # no key
    ["uploads", "ls", "s3://bkt", "--older-than", "soon"],
    ["--no-such-option", "ls", "s3://bkt"],
], ids=lambda a: " ".join(a) or "nothing")
def test_usage_errors_exit_2(server: LocalS3, env: dict[str, str], args: list[str]) -> None:
    done = run(server, env, *args, stdin=b"")
    assert done.returncode == 2, (done.stdout, done.stderr)
    assert "Traceback" not in done.stderr
    assert "error:" in done.stderr.splitlines()[-1]


def test_failures_exit_1_with_one_line(server: LocalS3, env: dict[str, str], bucket: str,
                                       tmp_path: Path) -> None:
    done = run(server, env, "cp", str(tmp_path / "missing"), f"s3://{bucket}/k")
    assert done.returncode == 1
    assert only_error_line(done.stderr) == f"s3stream: error: no such file: {tmp_path}/missing"
    done = run(server, env, "cp", str(tmp_path), f"s3://{bucket}/k")
    assert done.returncode == 1
    assert "is a directory" in only_error_line(done.stderr)
    # A wrong secret: S3 refuses the signature.
    wrong = dict(env, AWS_SECRET_ACCESS_KEY="not-the-secret")
    done = run(server, wrong, "cp", "-", f"s3://{bucket}/k", stdin=b"data")
    assert done.returncode == 1
    line = only_error_line(done.stderr)
    assert "403" in line, line
    # --debug: the traceback as well, and the library's log.
    done = run(server, wrong, "--debug", "cp", "-", f"s3://{bucket}/k", stdin=b"data")
    assert done.returncode == 1
    assert "Traceback" in done.stderr
    assert done.stderr.splitlines()[-1].startswith("s3stream: error: ")


def test_no_credentials_and_no_sign_request(server: LocalS3, env: dict[str, str],
                                            bucket: str) -> None:
    # No keys anywhere, and no instance metadata service to ask.
    bare = {k: v for k, v in env.items() if k not in ("AWS_ACCESS_KEY_ID",
                                                      "AWS_SECRET_ACCESS_KEY")}
    bare["AWS_EC2_METADATA_DISABLED"] = "true"
    done = run(server, bare, "cp", "-", f"s3://{bucket}/k", stdin=b"x")
    assert done.returncode == 1
    assert "no AWS credentials found" in only_error_line(done.stderr)
    # Unsigned: the server (which requires signatures) refuses it, which shows nothing was
    # signed with the keys in the environment.
    done = run(server, env, "cp", "-", f"s3://{bucket}/k", "--no-sign-request", stdin=b"x")
    assert done.returncode == 1
    only_error_line(done.stderr)


def test_profile_takes_credentials_from_the_shared_files(
    server: LocalS3, env: dict[str, str], bucket: str, boto: Any, tmp_path: Path
) -> None:
    credentials = tmp_path / "credentials"
    credentials.write_text(
        "[cli]\n"
        f"aws_access_key_id = {server.credentials.access_key_id}\n"
        f"aws_secret_access_key = {server.credentials.secret_access_key}\n")
    # The environment's keys are wrong: with --profile, the profile's win (as in the AWS CLI).
    profiled = dict(env, AWS_SHARED_CREDENTIALS_FILE=str(credentials),
                    AWS_ACCESS_KEY_ID="AKIDWRONG", AWS_SECRET_ACCESS_KEY="wrong")
    done = run(server, profiled, "--profile", "cli", "cp", "-", f"s3://{bucket}/p", stdin=b"p")
    assert done.returncode == 0, done.stderr
    assert read_back(boto, bucket, "p") == b"p"
    done = run(server, profiled, "cp", "-", f"s3://{bucket}/p", stdin=b"p")
    assert done.returncode == 1  # without it, the environment's (wrong) keys
    done = run(server, profiled, "cp", "-", f"s3://{bucket}/p", "--profile", "nope",
               stdin=b"p")
    assert done.returncode == 1
    only_error_line(done.stderr)


def test_version(server: LocalS3, env: dict[str, str]) -> None:
    done = run(server, env, "--version")
    assert done.returncode == 0
    assert re.fullmatch(r"s3stream \d+\.\d+\.\d+\S*\n", done.stdout.decode())


# ------------------------------------------------------------------------ progress bar


def test_progress_bar_on_a_terminal(server: LocalS3, env: dict[str, str], bucket: str,
                                    boto: Any, tmp_path: Path) -> None:
    path = tmp_path / "big.bin"
    data = os.urandom(12 * MiB)
    path.write_bytes(data)
    shown = run_on_terminal(command(server, "cp", str(path), f"s3://{bucket}/big",
                                    "--part-size", "5MiB"), env, columns=90)
    assert shown.returncode == 0, shown.terminal
    assert read_back(boto, bucket, "big") == data
    terminal = shown.terminal
    # Drawn in place (\r), with the total, the percentage and the rate, and ended with a line
    # of the final numbers.
    # (The terminal shows the line's end "\n" as "\r\n".)
    assert terminal.endswith("\r\n"), terminal
    final = terminal.removesuffix("\r\n").rsplit("\r", 1)[1]
    assert "12.0 MiB / 12.0 MiB" in final and "100%" in final and "/s" in final, terminal
    assert terminal.count("\r") >= 2  # drawn, then redrawn in place
    for line in re.split(r"[\r\n]+", terminal):
        assert len(line.replace("\x1b[K", "")) <= 90, line
    assert shown.stdout.decode() == f"upload: {path} to s3://{bucket}/big\n"


def test_no_progress_bar_on_a_terminal_with_quiet(server: LocalS3, env: dict[str, str],
                                                  bucket: str, tmp_path: Path) -> None:
    path = tmp_path / "f.bin"
    path.write_bytes(os.urandom(MiB))
    for flag in ("--quiet", "--no-progress"):
        shown = run_on_terminal(command(server, "cp", str(path), f"s3://{bucket}/f", flag), env)
        assert shown.returncode == 0, shown.terminal
        assert shown.terminal == ""
