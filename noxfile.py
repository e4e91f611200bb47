"""Developer tasks: ``nox -s tests``, ``lint``, ``typecheck``, ``demo``, ``bench``."""

from __future__ import annotations

import nox

nox.options.sessions = ["tests", "lint", "typecheck"]
nox.options.reuse_existing_virtualenvs = True


@nox.session
def tests(session: nox.Session) -> None:
    """The whole test suite (starts a local SeaweedFS itself)."""
    session.install("-e", ".[test]")
    session.run("python", "-m", "pytest", *session.posargs)


@nox.session
def lint(session: nox.Session) -> None:
    session.install("ruff>=0.5")
    session.run("ruff", "check", "s3stream", "tests", "examples", "benchmarks", "noxfile.py")


@nox.session
def typecheck(session: nox.Session) -> None:
    session.install("-e", ".[test]", "mypy>=1.10")
    session.run("mypy", "--strict", "s3stream")


@nox.session
def demo(session: nox.Session) -> None:
    """Stream 1 GiB into a local S3, read it back, print throughput and peak memory."""
    session.install("-e", ".[test]")
    session.run("python", "examples/demo.py", *session.posargs)


@nox.session
def bench(session: nox.Session) -> None:
    """s3stream vs its peers over http and https: upload and download throughput, CPU,
    memory, loop stalls, small chunks, SeaweedFS, the service under load, and the
    performance targets checked (~13 min on 2 cores).

    Options after ``--``, e.g. ``nox -s bench -- --quick``, ``nox -s bench -- --transports
    https``, ``nox -s bench -- --skip download,load``.
    """
    session.install("-e", ".[bench]")
    session.run("python", "benchmarks/run.py", *session.posargs)


@nox.session
def load(session: nox.Session) -> None:
    """The example service under N concurrent 256 MiB POSTs, with and without a budget."""
    session.install("-e", ".[bench]")
    session.run("python", "benchmarks/load.py", *session.posargs)
