"""Progress display: a live line with ETA on a terminal, one plain line per seed/claim in CI logs."""
from __future__ import annotations

import dataclasses
import io
import logging

import pytest

from harness import Check, Claim, Measurement, Tier, Within, experiment, register
from harness.run.progress import Progress, fmt_duration, interactive_stream
from harness.run.runner import RunOptions, run_claims
from harness.run.store import ResultStore


class FakeClock:
    def __init__(self):
        self.t = 100.0

    def __call__(self) -> float:
        return self.t


class Tty(io.StringIO):
    def isatty(self) -> bool:
        return True


@dataclasses.dataclass(frozen=True)
class ProgConfig:
    steps: int = 40


@experiment("test_progress_tiny", ProgConfig)
def prog_experiment(cfg: ProgConfig, ctx) -> Measurement:
    for step in range(1, cfg.steps + 1):
        ctx.progress(step, cfg.steps)
    return Measurement(scalars={"x": 1.0 + 0.01 * ctx.seed})


CLAIM = register(Claim(id="test-progress-claim", source="Test", statement="x near one", paper_value="1",
                       experiment=prog_experiment,
                       tiers={"smoke": Tier(3, ProgConfig()), "cpu": Tier(3, ProgConfig())},
                       checks=(Check("x", Within(target=1.0, rtol=0.5)),)))


def _attach(display: Progress):
    logger = logging.getLogger("harness.run.runner")
    old_level, old_prop = logger.level, logger.propagate
    logger.setLevel(logging.INFO)
    logger.propagate = False
    logger.addHandler(display)
    return lambda: (logger.removeHandler(display), logger.setLevel(old_level),
                    setattr(logger, "propagate", old_prop))


def test_progress_ci_mode_prints_one_line_per_seed_and_claim(tmp_path):
    out = io.StringIO()
    display = Progress(out, interactive=False)
    detach = _attach(display)
    try:
        run_claims([CLAIM], RunOptions(tier="smoke"), ResultStore(tmp_path / "r"), progress=display)
    finally:
        detach()
    lines = out.getvalue().splitlines()
    assert "\r" not in out.getvalue() and "step" not in out.getvalue()  # no per-step chatter in CI logs
    seeds = [line for line in lines if line.lstrip().startswith("seed ")]
    assert len(seeds) == 3 and "ETA" in seeds[0] and "ETA" not in seeds[-1]
    assert lines[-1].startswith("[1/1] test-progress-claim: holds (")


def test_progress_interactive_line_shows_rate_and_eta():
    out, clock = Tty(), FakeClock()
    display = Progress(out, interactive=True, clock=clock)
    display.handle(logging.makeLogRecord({"msg": "[%d/%d] %s (%s tier)", "args": (2, 4, "eos", "cpu")}))
    display("eos seed 0: step 0/1000")
    clock.t += 10
    display("eos seed 0: step 500/1000")
    assert display.state.rate == pytest.approx(50.0)
    line = out.getvalue().rsplit("\r\x1b[K", 1)[-1]
    assert line == "[2/4] eos · seed 0 · step 500/1000 · 50 steps/s · ETA seed 10 s, claim 10 s"
    # the first seed finishes: later seeds are projected from its duration
    display.handle(logging.makeLogRecord({"msg": "  seed %d/%d %s in %.1fs%s", "args": (1, 3, "ran", 20.0, "")}))
    clock.t += 1
    display("eos seed 1: step 0/1000")
    clock.t += 5
    display("eos seed 1: step 100/1000")
    assert display.claim_eta() == pytest.approx(45.0 + 20.0)  # this seed's rest + one more seed
    assert "seed 2/3" in display.status()


def test_progress_log_lines_clear_and_redraw_the_status_line():
    out, clock = Tty(), FakeClock()
    display = Progress(out, interactive=True, clock=clock)
    display("c seed 0: step 1/10")
    display.handle(logging.makeLogRecord({"msg": "something happened", "args": ()}))
    text = out.getvalue()
    assert "\r\x1b[Ksomething happened\n" in text and text.endswith("step 1/10")


def test_progress_ci_env_disables_the_live_line(monkeypatch):
    monkeypatch.setenv("CI", "true")
    assert not interactive_stream(Tty())
    monkeypatch.delenv("CI")
    assert interactive_stream(Tty()) and not interactive_stream(io.StringIO())
    assert Progress(Tty()).interactive and not Progress(io.StringIO()).interactive


@pytest.mark.parametrize("seconds,text", [(5.4, "5 s"), (65, "1 min 5 s"), (3725, "1 h 2 min"),
                                          (float("nan"), "?")])
def test_progress_fmt_duration(seconds, text):
    assert fmt_duration(seconds) == text


def test_progress_after_a_pool_shows_the_claims_seed_compute_not_zero_seconds():
    out, clock = io.StringIO(), FakeClock()
    display = Progress(out, interactive=False, clock=clock)

    def log(msg, *args):
        display.handle(logging.makeLogRecord({"msg": msg, "args": args}))

    log("running %d seed(s) in %d processes (%d thread(s) each)", 2, 2, 1)
    clock.t += 30
    log("  [%d/%d] %s seed %d done", 1, 2, "c", 0)
    log("  [%d/%d] %s seed %d done", 2, 2, "c", 1)
    log("[%d/%d] %s (%s tier)", 1, 1, "c", "cpu")
    log("  seed %d/%d %s in %.1fs%s", 1, 2, "ran", 20.0, "")  # read back from the pool at once
    log("  seed %d/%d %s in %.1fs%s", 2, 2, "ran", 25.0, "")
    log("[%d/%d] %s: %s", 1, 1, "c", "holds")
    lines = out.getvalue().splitlines()
    assert "claim 20 s of seed compute so far" in lines[-3]
    assert lines[-1] == "[1/1] c: holds (45 s of seed compute, in the parallel pool)"
    assert "(0 s)" not in out.getvalue() and "0 s so far" not in out.getvalue()
