"""Exit codes that cannot lie, transient failures never cached (issue 22, items 1 and 2).

Anything user code raises (SystemExit, a KeyboardInterrupt of its own, any BaseException) is that
claim's or seed's error; an error of the environment (OSError, MemoryError) is reported and not stored.
"""
from __future__ import annotations

import errno
import signal
import sys
from dataclasses import dataclass

import pytest
from test_house_loader import _dist, isolated, write  # noqa: F401 (isolated: a fixture)

from harness import Between, Check, Claim, Measurement, Tier, experiment, register
from harness.errors import Interrupted, is_environment_error, is_user_interrupt, on_signal
from harness.run.runner import RunOptions, run_claims
from harness.run.store import ResultStore
from harness.views.cli import main

FAULTS: dict[str, int] = {}  # failure kind -> how many more calls raise it


class Custom(BaseException):
    """A BaseException subclass user code might define."""


@dataclass(frozen=True)
class ExitConfig:
    failure: str = ""


@experiment("test_exits_toy", ExitConfig, outputs=("m",), curves={})
def exits_toy(cfg: ExitConfig, ctx) -> Measurement:
    if FAULTS.get(cfg.failure, 0) > 0:
        FAULTS[cfg.failure] -= 1
        raise {"exit0": SystemExit(0), "kbd": KeyboardInterrupt(), "custom": Custom("mine"),
               "disk": OSError(errno.ENOSPC, "No space left on device"), "memory": MemoryError()}[cfg.failure]
    return Measurement(scalars={"m": 2.0 + 0.01 * ctx.seed})


def exit_claim(cid: str, failure: str) -> Claim:
    cfg = ExitConfig(failure)
    return register(Claim(id=cid, source="test", statement="m near 2", paper_value="2", experiment=exits_toy,
                          tiers={"smoke": Tier(2, cfg), "cpu": Tier(2, cfg)},
                          checks=(Check("m", Between((1.9, 2.1))),)))


@pytest.fixture
def harness_signals():
    """The SIGINT handler `harness` installs (harness.views.cli.main); restored afterwards."""
    before = signal.signal(signal.SIGINT, on_signal)
    yield
    signal.signal(signal.SIGINT, before)


@pytest.mark.parametrize("failure,needle", [("exit0", "SystemExit: user code called sys.exit(0)"),
                                            ("kbd", "KeyboardInterrupt"), ("custom", "Custom: mine")])
def test_exits_user_code_base_exception_is_the_seeds_error(tmp_path, harness_signals, failure, needle):
    """A SystemExit(0) (or a KeyboardInterrupt the experiment raises, or any BaseException) is the seed's error."""
    FAULTS[failure] = 1
    claim = exit_claim(f"test-exits-{failure}", failure)
    summary = run_claims([claim], RunOptions(tier="smoke"), ResultStore(tmp_path / "r"))
    (entry,) = summary["claims"]
    assert summary["status"] == "complete" and entry["verdict"] == "error"
    assert needle in entry["seeds"][0]["error"] and entry["seeds"][1]["error"] is None


def test_exits_run_strict_exits_1_when_an_experiment_calls_sys_exit_0(tmp_path, capsys):
    FAULTS["exit0"] = 1
    exit_claim("test-exits-strict", "exit0")
    code = main(["--results", str(tmp_path / "r"), "run", "--claim", "test-exits-strict", "--tier", "smoke",
                 "--jobs", "1", "--no-report", "--strict"])
    assert code == 1
    assert "ERROR" in capsys.readouterr().out


def test_exits_claim_file_calling_sys_exit_0_fails_gate_and_run(tmp_path, isolated, capsys):
    folder = write(tmp_path / "mine", {"exits_quit.py": "import sys\nsys.exit(0)\n"})
    for argv in (["gate", "--claims-path", str(folder)],
                 ["run", "--claims-path", str(folder), "--tier", "smoke", "--strict", "--no-report"],
                 ["list", "--claims-path", str(folder)]):
        code = main(["--results", str(tmp_path / "r"), *argv])
        err = capsys.readouterr().err.strip()
        assert code == 2, argv
        assert len(err.splitlines()) == 1 and "exits_quit.py" in err
        assert "SystemExit: user code called sys.exit(0)" in err


def test_exits_entry_point_raising_keyboard_interrupt_is_an_error_not_an_interrupt(tmp_path, isolated, capsys):
    write(tmp_path, {"exits_ep_kbd.py": "raise KeyboardInterrupt('from the module')\n"})
    _dist(tmp_path, "exits_ep_kbd")
    sys.path.insert(0, str(tmp_path))
    code = main(["--results", str(tmp_path / "r"), "list"])
    err = capsys.readouterr().err.strip()
    assert code == 2 and "KeyboardInterrupt: from the module" in err and "exits_ep_kbd" in err
    assert len(err.splitlines()) == 1


def test_exits_only_the_harness_signal_is_the_users_interrupt():
    assert is_user_interrupt(Interrupted("signal 2"))
    assert not is_user_interrupt(SystemExit(0)) and not is_user_interrupt(Custom())


@pytest.mark.parametrize("failure", ["disk", "memory"])
def test_exits_environment_error_is_reported_not_stored(tmp_path, failure):
    """A full disk or MemoryError in a seed is this run's error; the next run computes the seed again."""
    FAULTS[failure] = 1
    claim = exit_claim(f"test-exits-env-{failure}", failure)
    store = ResultStore(tmp_path / "r")
    first = run_claims([claim], RunOptions(tier="smoke"), store)["claims"][0]
    assert first["verdict"] == "error" and "not stored" in first["seeds"][0]["error"]
    assert store.load_seed(first["seeds"][0]["key"]) is None  # nothing stale to reuse
    second = run_claims([claim], RunOptions(tier="smoke"), store)["claims"][0]
    assert second["verdict"] == "holds"
    assert [s["cached"] for s in second["seeds"]] == [False, True]  # seed 0 recomputed, seed 1 reused


def test_exits_which_errors_are_environment_errors():
    from harness.errors import DataError, NumericalError

    assert is_environment_error(OSError(errno.ENOSPC, "full")) and is_environment_error(MemoryError())
    assert is_environment_error(RuntimeError("CUDA out of memory. Tried to allocate 2 GiB"))
    assert not is_environment_error(NumericalError("nan")) and not is_environment_error(DataError("no file"))
    assert not is_environment_error(ValueError("a bug"))
