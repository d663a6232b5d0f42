"""Automation: `nox -s claims` runs every claim; `nox -s tests` the test suite."""
from __future__ import annotations

import os

import nox

nox.options.sessions = ["tests"]
nox.options.reuse_existing_virtualenvs = True
# This repository's CPU machines carry a local torch 2.13.0 CPU wheel; a GPU user can set
# HARNESS_TORCH (e.g. "torch>=2.3") to keep a CUDA build.
TORCH = os.environ.get("HARNESS_TORCH", "torch==2.13.0")


def _install(session, extras: str = "") -> None:
    session.install(TORCH)
    session.install("-e", f".{extras}")


@nox.session
def claims(session):
    """Run every claim at the tier the hardware allows (gpu with CUDA, else cpu) and write the report."""
    _install(session)
    session.run("python", "-m", "harness", "run", *session.posargs)


@nox.session
def tests(session):
    """Run the test suite (CPU, a few minutes)."""
    _install(session, "[test]")
    session.run("pytest", "-q", "--benchmark-skip", *session.posargs)


@nox.session
def report(session):
    """Render the HTML report of the latest run (or the run id given after --)."""
    _install(session)
    session.run("python", "-m", "harness", "report", *session.posargs)


@nox.session
def bench(session):
    """Benchmarks (pytest-benchmark): HVP vs gradient, lambda_max, optimizer steps, as ratios."""
    _install(session, "[test]")
    session.run("pytest", "benchmarks", "-o", "python_files=bench_*.py", "--benchmark-only", "--benchmark-autosave",
                "--benchmark-columns=min,median,mean,stddev,rounds", *session.posargs)


@nox.session
def lint(session):
    """Static checks with ruff."""
    session.install("ruff>=0.6")
    session.run("ruff", "check", "harness", "claims", "tests", "benchmarks", "noxfile.py")
