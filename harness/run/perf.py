"""Benchmark ratios from pytest-benchmark's saved runs (.benchmarks/<machine>/NNNN_*.json).

Absolute times depend on the machine; ratios of two timings taken in one session on one machine do
much less, so the report and the regression gate read ratios (HVP / gradient, AdmIRE / AdamW).

A ratio is timed interleaved: the benchmark runs numerator and denominator back to back in each round
(alternating which goes first) and times each with the thread's CPU time (`interleaved_ratio`), so a
burst of other load hits both alike and time spent waiting for a core counts in neither; it saves the
per-round ratios in its `extra_info[spec.key]`. The ratio is their median, with a 95% interval from
their spread on the log scale (standard error of a median ~ 1.253 sd / sqrt(rounds)). A saved run
without them (older runs) falls back to the ratio of the two benchmarks' medians, its noise from each
benchmark's interquartile range (sd ~ IQR / 1.349); on a loaded machine that reads several times the
true ratio (3.96 for a ratio of 1.8), so such rows are marked "separate". A ratio got *worse* when
- the new interval lies entirely above the previous one (the same disjoint-interval rule as claim
  values in harness.run.history),
- it rose by more than MIN_RISE (5%, pytest-benchmark's customary --benchmark-compare-fail threshold):
  runs on different days drift by a few percent for reasons the within-run spread cannot see, and
- the ratio of the two minimum times (the floor, least touched by other load) rose by MIN_RISE too:
  on a busy shared machine a burst of other work can shift one benchmark's median between runs, but
  it rarely lifts the floor, while slower code lifts both.
A ratio whose benchmarks ran fewer than MIN_ROUNDS rounds is shown but never gated: an IQR of three
timings says little about the spread.
"""
from __future__ import annotations

import json
import logging
import math
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

log = logging.getLogger(__name__)
Z95 = 1.959964
MIN_RISE = 0.05
MIN_ROUNDS = 5


@dataclass(frozen=True)
class RatioSpec:
    """numerator / denominator, each a benchmark named 'file.py::test_name[params]'."""

    name: str
    numerator: str
    denominator: str
    note: str = ""
    key: str = ""  # the numerator's extra_info entry holding the interleaved per-round ratios


_EOS = "on the eos-scale-invariant cpu tier's net (tanh BN MLP, 1000 digits, float64)"
_CURV = "bench_curvature.py::test_bench_"
_GRAD, _LAMBDA = f"{_CURV}gradient", f"{_CURV}lambda_max"
_LLM = "bench_ire_step.py::test_bench_llm_step_block"
RATIOS = (
    RatioSpec("HVP / gradient", f"{_CURV}hvp", _GRAD,
              f"one Hessian-vector product {_EOS}, in training gradients (goal <= 2.0)", "over_gradient"),
    RatioSpec("λ_max cold / gradient", f"{_LAMBDA}[cold]", _GRAD,
              "operator + Lanczos as the claim runs it (residual 1e-3) from a random start, at 12 points of "
              "the claim's trajectory (goal <= 25)", "over_gradient"),
    RatioSpec("λ_max warm / gradient", f"{_LAMBDA}[warm]", _GRAD,
              "the same, warm-started from the previous measurement's eigenvector", "over_gradient"),
    RatioSpec("λ_max cold, value stop + float32 / gradient", f"{_LAMBDA}[cold-fast]", _GRAD,
              "the opt-in path: Kato-Temple value stop at 1e-3 on a float32 copy of the operator",
              "over_gradient"),
    RatioSpec("λ_max warm, value stop + float32 / gradient", f"{_LAMBDA}[warm-fast]", _GRAD,
              "the same, warm-started", "over_gradient"),
    RatioSpec("EoS seed, float32 + value stop / float64 today", "bench_seed.py::test_bench_eos_seed[fast]",
              "bench_seed.py::test_bench_eos_seed[today]",
              "the shared eos-scale-invariant run (training and λ_max every 25 steps) capped at 200 steps, "
              "through the experiment itself (goal <= 0.35)", "over_today"),
    RatioSpec("EoS seed, the claim's cpu config / float64 today",
              "bench_seed.py::test_bench_eos_seed[claim]", "bench_seed.py::test_bench_eos_seed[today]",
              "the same run as the claim file configures it (v5: float64 training, λ_max on a float32 copy "
              "with the value stop)",
              "over_today"),
    RatioSpec("Hutchinson probe / HVP", f"{_CURV}trace_probe", f"{_CURV}hvp",
              "one trace probe in HVPs (goal <= 1, plus the draw)", "over_hvp"),
    RatioSpec("sharpness measurement / gradient", "bench_sharpness.py::test_bench_sharpness_measurement",
              "bench_sharpness.py::test_bench_sharpness_gradient",
              f"λ_max, spherical sharpness and a Hutchinson trace {_EOS}", "over_gradient"),
    RatioSpec("AdmIRE step / AdamW step", "bench_optim.py::test_bench_admire_step",
              "bench_optim.py::test_bench_adamw_step",
              "IRE over AdamW on an MLP, K = 10, mask refresh amortised", "over_adamw"),
    RatioSpec("AdmIRE / AdamW, tiny Llama", f"{_LLM}[ire]", f"{_LLM}[adamw]",
              "blocks of K = 10 steps on the ire-overhead claim's model (paper: ≈1.12 on one A800)",
              "over_adamw"),
)


def interleaved_ratio(numerator: Callable[[], object], denominator: Callable[[], object], rounds: int,
                      warmup: int = 1, clock: Callable[[], float] = time.thread_time,
                      calls: tuple[int, int] = (1, 1)) -> dict:
    """Time two functions back to back for `rounds` rounds, alternating which goes first, each with the
    thread's CPU time (time.thread_time), and return their per-round ratios (per call).

    Args:
        numerator, denominator: functions of no arguments (synchronize CUDA inside them).
        rounds: timed rounds (>= 1), after `warmup` untimed ones.
        clock: the timer; on a GPU pass time.perf_counter (the work is not this thread's CPU time).
        calls: how many times each is called per round, back to back (the ratio is per call): a few
            milliseconds timed once are at the mercy of one cache flush or page fault, so time a short
            function in a block about as long as the other.

    Returns:
        {"median": median ratio, "min": smallest ratio, "rounds": rounds, "ratios": [per round]}; save it
        as a benchmark's extra_info[spec.key] for `harness perf` and the gate.

    Raises:
        ValueError: rounds < 1 or a call count < 1.
    """
    if rounds < 1:
        raise ValueError(f"rounds must be >= 1, got {rounds}")
    if len(calls) != 2 or min(calls) < 1:
        raise ValueError(f"calls must be two counts >= 1, got {calls!r}")
    for _ in range(warmup):
        numerator(), denominator()
    ratios = []
    for r in range(rounds):
        pair = [(0, numerator), (1, denominator)]
        seconds = [0.0, 0.0]
        for i, fn in pair if r % 2 == 0 else pair[::-1]:
            start = clock()
            for _ in range(calls[i]):
                fn()
            seconds[i] = (clock() - start) / calls[i]
        ratios.append(seconds[0] / max(seconds[1], 1e-9))
    return {"median": statistics.median(ratios), "min": min(ratios), "rounds": rounds, "ratios": ratios}


@dataclass(frozen=True)
class Ratio:
    name: str
    value: float
    lo: float
    hi: float
    note: str = ""
    floor: float = math.nan  # ratio of the two minimum times
    rounds: int = 0  # the fewer rounds of the two benchmarks
    interleaved: bool = False  # timed interleaved in one process (thread CPU time)

    def describe(self) -> str:
        floor = f" (floor {self.floor:.3g})" if math.isfinite(self.floor) else ""
        how = "" if self.interleaved else " separate"
        return f"{self.value:.3g} [{self.lo:.3g}, {self.hi:.3g}]{floor}{how}"


@dataclass
class BenchRun:
    """One saved pytest-benchmark run."""

    path: Path
    machine: str  # the storage sub-folder, e.g. Linux-CPython-3.11-64bit
    datetime: str
    commit: str
    cpu: str
    stats: dict[str, dict]  # 'file.py::name' -> pytest-benchmark stats
    extra: dict[str, dict]  # 'file.py::name' -> the benchmark's extra_info

    @property
    def label(self) -> str:
        return f"{self.path.stem.split('_')[0]} · {self.datetime[:19]} · {self.commit[:10]}"


def _bench_key(bench: dict) -> str:
    file = str(bench.get("fullname", "")).split("::")[0].rsplit("/", 1)[-1]
    return f"{file}::{bench.get('name', '?')}"


def bench_file_problem(data: object) -> str | None:
    """Why a parsed pytest-benchmark file cannot be read (None: it is sound): every field this module
    reads has its type (numbers where numbers belong), so a damaged file is skipped, never a crash."""
    if not isinstance(data, dict):
        return f"not an object but {type(data).__name__}"
    for name in ("commit_info", "machine_info"):
        if not isinstance(data.get(name, {}), dict):
            return f"'{name}' is not an object"
    if not isinstance(data.get("machine_info", {}).get("cpu", {}), dict):
        return "'machine_info.cpu' is not an object"
    benches = data.get("benchmarks", [])
    if not isinstance(benches, list) or not all(isinstance(b, dict) for b in benches):
        return "'benchmarks' is not a list of objects"
    for b in benches:
        stats = b.get("stats")
        if not isinstance(stats, dict):
            return f"benchmark {b.get('name')!r} has no 'stats' object"
        for field in ("median", "iqr", "min", "rounds"):
            value = stats.get(field, 0)
            if isinstance(value, bool) or not isinstance(value, (int, float)):
                return f"benchmark {b.get('name')!r}: stats.{field} is not a number"
    return None


def load_bench_runs(root: str | Path = ".benchmarks") -> list[BenchRun]:
    """Every readable saved run under root, oldest first (unreadable or damaged files are logged and skipped)."""
    runs = []
    for path in sorted(Path(root).glob("*/*.json")):
        try:
            data = json.loads(path.read_text())
        except (OSError, ValueError, RecursionError) as e:
            log.warning("benchmarks: skipping unreadable %s: %s", path, e)
            continue
        problem = bench_file_problem(data)
        if problem:
            log.warning("benchmarks: skipping damaged %s: %s", path, problem)
            continue
        stats = {_bench_key(b): b["stats"] for b in data.get("benchmarks", [])}
        extra = {_bench_key(b): dict(b["extra_info"]) if isinstance(b.get("extra_info"), dict) else {}
                 for b in data.get("benchmarks", [])}
        commit = data.get("commit_info", {})
        runs.append(BenchRun(path, path.parent.name, str(data.get("datetime", "")),
                             str(commit.get("id") or "unknown") + ("+dirty" if commit.get("dirty") else ""),
                             str(data.get("machine_info", {}).get("cpu", {}).get("brand_raw", "?")), stats,
                             extra))
    return sorted(runs, key=lambda r: (r.datetime, r.path.name))


def _median_and_log_se(stats: dict) -> tuple[float, float]:
    median, n = float(stats["median"]), max(1, int(stats.get("rounds", 1)))
    sd = float(stats.get("iqr", 0.0)) / 1.349
    return median, (1.253 * sd / math.sqrt(n)) / median if median > 0 else math.inf


def _interleaved(spec: RatioSpec, saved: dict) -> Ratio | None:
    ratios = [float(r) for r in saved.get("ratios", []) if float(r) > 0]
    if not ratios:
        return None
    logs = [math.log(r) for r in ratios]
    sd = statistics.stdev(logs) if len(logs) > 1 else math.inf
    med, half = statistics.median(ratios), Z95 * 1.253 * sd / math.sqrt(len(logs))
    return Ratio(spec.name, med, med * math.exp(-half), med * math.exp(half), spec.note, min(ratios),
                 len(ratios), interleaved=True)


def ratio(run: BenchRun, spec: RatioSpec) -> Ratio | None:
    """The ratio of one saved run (interleaved where the numerator saved it, else from the two medians),
    or None when it lacks one of the two benchmarks."""
    saved = run.extra.get(spec.numerator, {}).get(spec.key) if spec.key else None
    if isinstance(saved, dict) and (found := _interleaved(spec, saved)) is not None:
        return found
    a, b = run.stats.get(spec.numerator), run.stats.get(spec.denominator)
    if a is None or b is None:
        return None
    (ma, sa), (mb, sb) = _median_and_log_se(a), _median_and_log_se(b)
    if not (ma > 0 and mb > 0):
        return None
    r, half = ma / mb, Z95 * math.sqrt(sa**2 + sb**2)
    floor = float(a.get("min", math.nan)) / float(b.get("min", math.nan) or math.nan)
    rounds = min(int(a.get("rounds", 0)), int(b.get("rounds", 0)))
    return Ratio(spec.name, r, r * math.exp(-half), r * math.exp(half), spec.note, floor, rounds)


def ratios(run: BenchRun) -> list[Ratio]:
    return [r for spec in RATIOS if (r := ratio(run, spec)) is not None]


def latest_pair(runs: list[BenchRun]) -> tuple[BenchRun | None, BenchRun | None]:
    """The newest run and the newest earlier run on the same machine folder (None where missing)."""
    if not runs:
        return None, None
    new = runs[-1]
    same = [r for r in runs[:-1] if r.machine == new.machine]
    return new, (same[-1] if same else None)


def worse(old: Ratio, new: Ratio) -> bool:
    """The three conditions of the module docstring (every ratio is a cost: lower is better); a ratio
    timed interleaved is never compared with one from separately timed medians."""
    if old.interleaved != new.interleaved:
        return False
    floor_rose = not (new.floor <= old.floor * (1 + MIN_RISE))  # unknown floors (NaN) do not veto
    return new.lo > old.hi and new.value > old.value * (1 + MIN_RISE) and floor_rose


def perf_regressions(root: str | Path = ".benchmarks") -> list[str]:
    """One reason per ratio that got worse beyond its noise between the last two saved runs."""
    new, old = latest_pair(load_bench_runs(root))
    if new is None or old is None:
        return []
    before = {r.name: r for r in ratios(old)}
    # a separately timed pair is not compared with an interleaved one (different noise, different bias)
    return [f"benchmark ratio {r.name} rose from {before[r.name].describe()} to {r.describe()}"
            for r in ratios(new) if r.name in before and r.rounds >= MIN_ROUNDS
            and before[r.name].rounds >= MIN_ROUNDS and before[r.name].interleaved == r.interleaved
            and worse(before[r.name], r)]


def format_ratios(root: str | Path = ".benchmarks") -> str:
    """The ratios of the newest saved run beside the previous run's, for the terminal."""
    new, old = latest_pair(load_bench_runs(root))
    if new is None:
        return f"no saved benchmark runs under {root}: run `nox -s bench`"
    before = {r.name: r for r in ratios(old)} if old else {}
    lines = [f"benchmark ratios, run {new.label} ({new.machine}, {new.cpu})"
             + (f" vs {old.label}" if old else "")]
    for r in ratios(new):
        prev = before.get(r.name)
        gated = (prev is not None and min(prev.rounds, r.rounds) >= MIN_ROUNDS
                 and prev.interleaved == r.interleaved)
        tag = "" if prev is None or not worse(prev, r) else \
            "  WORSE" if gated else "  higher (not gated: few rounds or timed differently)"
        lines.append(f"  {r.name:44s} {r.describe():38s}" + (f" was {prev.describe()}{tag}" if prev else ""))
        solver = _solver_counts(new, r.name)
        if solver:
            lines.append(f"  {'':44s} {solver}")
    return "\n".join(lines)


def _solver_counts(run: BenchRun, name: str) -> str:
    """'HVPs median m (oracle o, x m/o), max error e' for a λ_max row that saved them, else ''."""
    spec = next((s for s in RATIOS if s.name == name), None)
    info = run.extra.get(spec.numerator, {}) if spec else {}
    if "hvps_median" not in info:
        return ""
    overlap = info.get("start_overlap_median_after_onset")
    start = f", start overlap median {overlap:.2f} after the onset" if overlap is not None else ""
    return (f"HVPs median {info['hvps_median']:g} (oracle {info.get('oracle_hvps_median', math.nan):g}, "
            f"x{info.get('hvps_over_oracle_median', math.nan):.2f} per point), max error "
            f"{info.get('max_rel_error', math.nan):.1e}, max residual {info.get('max_rel_residual', math.nan):.1e}"
            f"{start}")
