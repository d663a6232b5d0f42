"""Terminal progress for `harness run`: claims, seeds, steps and an ETA from the step rate.

On an interactive terminal a status line is redrawn in place under the log lines
("[2/4] eos-scale-invariant · seed 1/3 · step 1200/3000 · 85 steps/s · ETA seed 21 s, claim 1 min 5 s").
In CI logs (stderr not a TTY, or CI=true) nothing is redrawn: only the runner's one line per finished
seed and per finished claim appear, each seed line followed by the claim's elapsed time and ETA. When the
seeds ran earlier in a process pool (`--jobs`), a claim's own elapsed time is only the time to read them back,
so its lines show the sum of its seeds' compute times instead.

The display is a logging.Handler (the runner reports claims and seeds through `logging`) plus a
callable for the runner's step callback ("<label> seed <k>: step <i>/<n>").
"""
from __future__ import annotations

import logging
import os
import re
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TextIO

_STEP = re.compile(r"^(?P<label>.+) seed (?P<seed>\d+): step (?P<step>\d+)/(?P<total>\d+)$")
# The runner's log messages (harness/run/runner.py), matched by their format string.
RUN_START = "run %s: %d claim(s) at tier %s on %s"
CLAIM_START = "[%d/%d] %s (%s tier)"
SEED_DONE = "  seed %d/%d %s in %.1fs%s"
CLAIM_DONE = "[%d/%d] %s: %s"
POOL_START = "running %d seed(s) in %d processes (%d thread(s) each)"
POOL_DONE = "  [%d/%d] %s seed %d done"


def interactive_stream(stream: TextIO) -> bool:
    """Redraw a status line only on a terminal, and never under CI=true."""
    if os.environ.get("CI", "").strip().lower() in ("1", "true", "yes"):
        return False
    return bool(getattr(stream, "isatty", lambda: False)())


def fmt_duration(seconds: float) -> str:
    if seconds != seconds or seconds == float("inf"):
        return "?"
    s = int(round(seconds))
    if s < 60:
        return f"{s} s"
    if s < 3600:
        return f"{s // 60} min {s % 60} s"
    return f"{s // 3600} h {s % 3600 // 60} min"


@dataclass
class _State:
    n_claims: int = 0
    claim_i: int = 0
    claim: str = ""
    claim_start: float = 0.0
    n_seeds: int = 0  # known once the first seed of the claim finishes
    seeds_done: int = 0
    seed_times: list[float] = field(default_factory=list)  # seeds that ran (not reused)
    step_key: tuple = ()
    step_t0: float = 0.0
    step0: int = 0
    step: int = 0
    total: int = 0
    rate: float = 0.0  # steps per second of the current seed
    pool_total: int = 0
    pool_start: float = 0.0


class Progress(logging.Handler):
    """Log lines plus a live status line (interactive) or plain lines with an ETA (CI)."""

    def __init__(self, stream: TextIO | None = None, interactive: bool | None = None,
                 clock: Callable[[], float] = time.monotonic):
        super().__init__()
        self.stream = stream or sys.stderr
        self.interactive = interactive_stream(self.stream) if interactive is None else interactive
        self.clock = clock
        self.state = _State()
        self._shown = ""
        self._last_draw = -1.0
        self.setFormatter(logging.Formatter("%(message)s"))

    # --- the runner's step callback -----------------------------------------------------------
    def __call__(self, text: str) -> None:
        m = _STEP.match(text)
        if not m:
            return
        st, now = self.state, self.clock()
        key = (m["label"], int(m["seed"]))
        step, total = int(m["step"]), int(m["total"])
        if key != st.step_key or step < st.step:
            st.step_key, st.step_t0, st.step0 = key, now, step
        elif now > st.step_t0 and step > st.step0:
            st.rate = (step - st.step0) / (now - st.step_t0)
        st.step, st.total = step, total
        if self.interactive and (now - self._last_draw >= 0.2 or step >= total):
            self._draw(self.status())

    def seed_eta(self) -> float:
        st = self.state
        return (st.total - st.step) / st.rate if st.rate > 0 else float("nan")

    def claim_eta(self) -> float:
        """This seed's remaining steps at the current rate, plus the claim's seeds not yet started,
        each as long as the mean seed that ran so far (or this seed's projected length)."""
        st = self.state
        per_seed = (sum(st.seed_times) / len(st.seed_times) if st.seed_times else
                    st.total / st.rate if st.rate > 0 else float("nan"))
        left = max(0, st.n_seeds - st.seeds_done - 1) if st.n_seeds else 0
        return self.seed_eta() + left * per_seed

    def status(self) -> str:
        st = self.state
        label, seed = st.step_key or (st.claim, 0)
        seeds = f"seed {st.seeds_done + 1}/{st.n_seeds}" if st.n_seeds else f"seed {seed}"
        parts = [f"[{st.claim_i}/{st.n_claims}] {label}" if st.n_claims else label, seeds,
                 f"step {st.step}/{st.total}"]
        if st.rate > 0:
            parts.append(f"{st.rate:.3g} steps/s")
            parts.append(f"ETA seed {fmt_duration(self.seed_eta())}, claim {fmt_duration(self.claim_eta())}")
        return " · ".join(parts)

    # --- log records ----------------------------------------------------------------------------
    def emit(self, record: logging.LogRecord) -> None:
        try:
            line = self.format(record) + self._track(record)
            if self.interactive and self._shown:
                self.stream.write("\r\033[K")
            self.stream.write(line + "\n")
            if self.interactive and self._shown:
                self.stream.write(self._shown)
            self.stream.flush()
        except Exception:  # noqa: BLE001 -- logging's contract: report, never raise
            self.handleError(record)

    def _track(self, record: logging.LogRecord) -> str:
        """Update the state from one of the runner's messages; returns text to append to its line."""
        st, now, args = self.state, self.clock(), record.args if isinstance(record.args, tuple) else ()
        if record.msg == RUN_START and len(args) == 4:
            st.n_claims = args[1]
        elif record.msg == CLAIM_START and len(args) == 4:
            self.state = _State(n_claims=args[1], claim_i=args[0], claim=args[2], claim_start=now,
                                pool_total=st.pool_total)
        elif record.msg == SEED_DONE and len(args) == 5:
            st.seeds_done, st.n_seeds = args[0], args[1]
            if args[2] == "ran":
                st.seed_times.append(float(args[3]))
            st.step_key, st.rate, st.step, st.total = (), 0.0, 0, 0
            if st.pool_total and st.seed_times:  # computed earlier in the pool: elapsed here says nothing
                return f" · claim {fmt_duration(sum(st.seed_times))} of seed compute so far"
            if not self.interactive and st.seeds_done < st.n_seeds and st.seed_times:
                left = (st.n_seeds - st.seeds_done) * sum(st.seed_times) / len(st.seed_times)
                return f" · claim {fmt_duration(now - st.claim_start)} so far, ETA {fmt_duration(left)}"
        elif record.msg == CLAIM_DONE and len(args) == 4:
            self._clear()
            if st.pool_total and st.seed_times:
                return f" ({fmt_duration(sum(st.seed_times))} of seed compute, in the parallel pool)"
            return f" ({fmt_duration(now - st.claim_start)})"
        elif record.msg == POOL_START and len(args) == 3:
            st.pool_total, st.pool_start = args[0], now
        elif record.msg == POOL_DONE and len(args) == 4 and st.pool_total:
            done = args[0]
            eta = (now - st.pool_start) / done * (st.pool_total - done) if done else float("nan")
            if self.interactive:
                self._shown = f"{done}/{st.pool_total} seeds done · ETA {fmt_duration(eta)}"
            return f" · ETA {fmt_duration(eta)}" if done < st.pool_total else ""
        return ""

    def _draw(self, text: str) -> None:
        width = 200
        try:
            width = os.get_terminal_size(self.stream.fileno()).columns - 1
        except (OSError, ValueError, AttributeError):
            pass
        self._shown = text[:width]
        self._last_draw = self.clock()
        self.stream.write("\r\033[K" + self._shown)
        self.stream.flush()

    def _clear(self) -> None:
        if self.interactive and self._shown:
            self.stream.write("\r\033[K")
        self._shown = ""

    def close(self) -> None:
        self._clear()
        self.stream.flush()
        super().close()
