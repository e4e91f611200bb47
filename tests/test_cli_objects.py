"""The ``s3stream`` command line's downloads and object commands (``cp`` from S3, ``ls``,
``rm``, ``presign``), run as a subprocess against the real local servers, boto3 the oracle."""

from __future__ import annotations

import os
import re
import signal
import stat
import subprocess
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import pytest
from botocore.exceptions import ClientError
from support import read_back
from test_cli_support import (
    COMMAND_TIMEOUT,
    cli_env,
    command,
    ctrl_c_works,
    run,
    run_on_terminal,
)

from s3stream.testing import LocalS3

MiB = 1 << 20
pytestmark = [pytest.mark.real_s3, pytest.mark.every_server]


@pytest.fixture
def env(server: LocalS3, tmp_path: Path) -> dict[str, str]:
    return cli_env(server, tmp_path / "home")


def only_error_line(stderr: str) -> str:
    lines = stderr.splitlines()
    assert len(lines) == 1 and "Traceback" not in stderr, stderr
    assert lines[0].startswith("s3stream: error: "), stderr
    return lines[0]


def fetch(url: str) -> tuple[int, bytes]:
    """GET ``url`` with nothing but what it says: (status, body)."""
    try:
        with urllib.request.urlopen(url, timeout=30) as answer:
            return answer.status, answer.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()


# ------------------------------------------------------------------------ downloads


def test_cp_to_a_pipe(server: LocalS3, env: dict[str, str], bucket: str, boto: Any) -> None:
    data = os.urandom(11 * MiB + 17)
    boto.put_object(Bucket=bucket, Key="down/big.bin", Body=data)
    # Ranged GETs of 5 MiB, three at a time, delivered in order to stdout.
    done = run(server, env, "cp", f"s3://{bucket}/down/big.bin", "-", "--part-size", "5MiB",
               "--concurrency", "3")
    assert done.returncode == 0, done.stderr
    assert done.stdout == data == read_back(boto, bucket, "down/big.bin")
    assert done.stderr == ""
    empty = run(server, env, "cp", f"s3://{bucket}/missing", "-")
    assert empty.returncode == 1 and empty.stdout == b""
    assert "404" in only_error_line(empty.stderr) or "NoSuchKey" in empty.stderr


def test_cp_to_files(server: LocalS3, env: dict[str, str], bucket: str, boto: Any,
                     tmp_path: Path) -> None:
    data = os.urandom(6 * MiB)
    boto.put_object(Bucket=bucket, Key="dir/obj.bin", Body=data)
    target = tmp_path / "out.bin"
    target.write_bytes(b"old")
    done = run(server, env, "cp", f"s3://{bucket}/dir/obj.bin", str(target))
    assert done.returncode == 0, done.stderr
    assert target.read_bytes() == data
    assert done.stdout.decode() == f"download: s3://{bucket}/dir/obj.bin to {target}\n"
    # Into a directory: the key's last part is the name; the mode is a new file's.
    folder = tmp_path / "folder"
    folder.mkdir()
    done = run(server, env, "cp", f"s3://{bucket}/dir/obj.bin", str(folder))
    assert done.returncode == 0, done.stderr
    assert (folder / "obj.bin").read_bytes() == data
    umask = os.umask(0)
    os.umask(umask)
    assert stat.S_IMODE((folder / "obj.bin").stat().st_mode) == 0o666 & ~umask
    # A missing key: exit 1, one line, the target as it was and no temporary file left.
    done = run(server, env, "cp", f"s3://{bucket}/dir/missing", str(target))
    assert done.returncode == 1
    only_error_line(done.stderr)
    assert target.read_bytes() == data
    assert sorted(p.name for p in tmp_path.iterdir()) == ["folder", "out.bin"]
    assert sorted(p.name for p in folder.iterdir()) == ["obj.bin"]


def test_cp_s3_to_s3_carries_type_and_metadata(server: LocalS3, env: dict[str, str],
                                               bucket: str, boto: Any) -> None:
    data = os.urandom(7 * MiB)
    boto.put_object(Bucket=bucket, Key="src/a.json", Body=data,
                    ContentType="application/json", Metadata={"origin": "here"})
    done = run(server, env, "cp", f"s3://{bucket}/src/a.json", f"s3://{bucket}/dst/",
               "--part-size", "5MiB")
    assert done.returncode == 0, done.stderr
    assert done.stdout.decode() == f"copy: s3://{bucket}/src/a.json to s3://{bucket}/dst/a.json\n"
    assert read_back(boto, bucket, "dst/a.json") == data
    head = boto.head_object(Bucket=bucket, Key="dst/a.json")
    assert head["ContentType"] == "application/json"
    assert {k.lower(): v for k, v in head["Metadata"].items()} == {"origin": "here"}


def test_download_progress_bar_on_a_terminal(server: LocalS3, env: dict[str, str],
                                             bucket: str, boto: Any) -> None:
    data = os.urandom(10 * MiB)
    boto.put_object(Bucket=bucket, Key="bar.bin", Body=data)
    # stdout is a pipe (the data), stderr the terminal (the bar).
    shown = run_on_terminal(command(server, "cp", f"s3://{bucket}/bar.bin", "-",
                                    "--part-size", "5MiB"), env)
    assert shown.returncode == 0, shown.terminal
    assert shown.stdout == data
    final = shown.terminal.removesuffix("\r\n").rsplit("\r", 1)[1]
    assert "10.0 MiB / 10.0 MiB  100%" in final, shown.terminal


def test_interrupt_while_stdout_is_full(server: LocalS3, env: dict[str, str], bucket: str,
                                        boto: Any) -> None:
    boto.put_object(Bucket=bucket, Key="slow.bin", Body=os.urandom(8 * MiB))
    proc = subprocess.Popen(command(server, "cp", f"s3://{bucket}/slow.bin", "-"), env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            preexec_fn=ctrl_c_works)
    assert proc.stdout is not None and proc.stderr is not None
    try:
        # The first bytes have arrived; nobody reads the rest, so the writes block (the pipe
        # holds 64 KiB) and the write thread with them. Ctrl-C must still end the process.
        assert proc.stdout.read(1)
        proc.send_signal(signal.SIGINT)
        returncode = proc.wait(timeout=COMMAND_TIMEOUT)
        stderr = proc.stderr.read().decode()
    finally:
        proc.kill()
        proc.wait()
        proc.stdout.close()
        proc.stderr.close()
    assert returncode == 130, stderr
    assert stderr.splitlines() == [
        f"s3stream: interrupted: the download of s3://{bucket}/slow.bin was stopped"]


# ------------------------------------------------------------------------- listing


def test_ls(server: LocalS3, env: dict[str, str], bucket: str, boto: Any) -> None:
    for key, size in (("a.txt", 3), ("dir/b.txt", 10), ("dir/sub/c.txt", 1500)):
        boto.put_object(Bucket=bucket, Key=key, Body=b"x" * size)
    line = re.compile(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d +(\d+) (.*)$")

    def listing(*args: str) -> list[str]:
        done = run(server, env, "ls", *args)
        assert done.returncode == 0, done.stderr
        return done.stdout.decode().splitlines()

    # In key order, prefixes among the objects (`aws s3 ls` prints each page's prefixes
    # first; the listing here is streamed, not gathered by page).
    top = listing(f"s3://{bucket}")
    assert line.match(top[0]).groups() == ("3", "a.txt")  # type: ignore[union-attr]
    assert top[1:] == [" " * 27 + "PRE dir/"]
    inner = listing(f"s3://{bucket}/dir/")
    assert line.match(inner[0]).groups() == ("10", "b.txt")  # type: ignore[union-attr]
    assert inner[1:] == [" " * 27 + "PRE sub/"]
    # The size column is 10 wide, as in `aws s3 ls`.
    assert inner[0][19:31] == "         10 "
    every = listing(f"s3://{bucket}", "--recursive", "--summarize")
    assert [line.match(t).groups() for t in every[:3]] == [  # type: ignore[union-attr]
        ("3", "a.txt"), ("10", "dir/b.txt"), ("1500", "dir/sub/c.txt")]
    assert every[3:] == ["", "Total Objects: 3", "   Total Size: 1513 Bytes"]
    human = listing(f"s3://{bucket}/dir/sub/", "--human-readable")
    assert human[0].endswith(" 1.5 KiB c.txt")
    assert listing(f"s3://{bucket}/nothing-here") == []


def test_ls_without_a_bucket_is_a_usage_error(server: LocalS3, env: dict[str, str]) -> None:
    for target in ("s3://", "/local/path"):
        done = run(server, env, "ls", target)
        assert done.returncode == 2, done.stderr
        only_error_line(done.stderr)


def test_rm(server: LocalS3, env: dict[str, str], bucket: str, boto: Any) -> None:
    for key in ("one", "tree/a", "tree/b/c", "treehouse"):
        boto.put_object(Bucket=bucket, Key=key, Body=b"x")
    done = run(server, env, "rm", f"s3://{bucket}/one")
    assert done.returncode == 0, done.stderr
    assert done.stdout.decode() == f"delete: s3://{bucket}/one\n"
    with pytest.raises(ClientError):
        boto.head_object(Bucket=bucket, Key="one")
    # As in S3, a key that is not there is deleted all the same.
    assert run(server, env, "rm", f"s3://{bucket}/one").returncode == 0
    done = run(server, env, "rm", f"s3://{bucket}/tree/", "--recursive")
    assert done.returncode == 0, done.stderr
    assert sorted(done.stdout.decode().splitlines()) == [
        f"delete: s3://{bucket}/tree/a", f"delete: s3://{bucket}/tree/b/c"]
    remaining = [o["Key"] for o in boto.list_objects_v2(Bucket=bucket).get("Contents", [])]
    assert remaining == ["treehouse"]
    assert run(server, env, "rm", f"s3://{bucket}").returncode == 2  # no key, no --recursive


def test_presign(server: LocalS3, env: dict[str, str], bucket: str, boto: Any) -> None:
    boto.put_object(Bucket=bucket, Key="shared/file.txt", Body=b"presigned body")
    done = run(server, env, "presign", f"s3://{bucket}/shared/file.txt", "--expires", "600")
    assert done.returncode == 0, done.stderr
    url = done.stdout.decode().strip()
    assert "X-Amz-Expires=600" in url
    if server.name == "moto":
        # moto_server with IAM authentication on answers 500 to every request without an
        # Authorization header (its IAM check reads that header), boto3's own presigned
        # URLs included: no presigned URL works there.
        oracle = boto.generate_presigned_url(
            "get_object", Params={"Bucket": bucket, "Key": "shared/file.txt"}, ExpiresIn=600)
        assert fetch(url)[0] == fetch(oracle)[0] == 500
    else:
        assert fetch(url) == (200, b"presigned body")  # no credentials: the URL's own
    done = run(server, env, "presign", f"s3://{bucket}/shared/file.txt", "--expires-in", "2h")
    assert done.returncode == 0 and "X-Amz-Expires=7200" in done.stdout.decode()
    for expires in ("8d", "0"):  # S3 allows 1 s to 7 days
        done = run(server, env, "presign", f"s3://{bucket}/k", "--expires", expires)
        assert done.returncode == 2, (expires, done.stderr)
        only_error_line(done.stderr)


def test_stdout_closed_early(server: LocalS3, env: dict[str, str], bucket: str,
                             boto: Any) -> None:
    boto.put_object(Bucket=bucket, Key="cut.bin", Body=os.urandom(8 * MiB))
    proc = subprocess.Popen(command(server, "cp", f"s3://{bucket}/cut.bin", "-"), env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    assert proc.stdout is not None and proc.stderr is not None
    try:
        assert proc.stdout.read(1)
        proc.stdout.close()  # as `| head -c 1` does
        returncode = proc.wait(timeout=COMMAND_TIMEOUT)
        stderr = proc.stderr.read().decode()
    finally:
        proc.kill()
        proc.wait()
        proc.stderr.close()
    assert returncode == 1
    assert only_error_line(stderr) == (
        "s3stream: error: the output was closed before all of it was written (broken pipe)")
