"""harness.run.perf reads ratios timed interleaved (thread CPU time) when a benchmark saved them, and never gates
an interleaved ratio against a separately timed one."""

import json
import math
import time

import pytest

from harness.run.perf import RATIOS, interleaved_ratio, load_bench_runs, perf_regressions, ratios


def _spin(seconds: float) -> None:
    end = time.thread_time() + seconds
    while time.thread_time() < end:
        pass


def test_interleaved_ratio_measures_cpu_time_ratio():
    out = interleaved_ratio(lambda: _spin(0.02), lambda: _spin(0.01), rounds=6)
    assert out["rounds"] == 6 and len(out["ratios"]) == 6
    assert out["median"] == pytest.approx(2.0, rel=0.15)
    assert out["min"] <= out["median"]


def test_interleaved_ratio_calls_gives_a_per_call_ratio():
    # the short function timed in a block of 4 calls: still a per-call ratio (0.02 s against 0.005 s each)
    out = interleaved_ratio(lambda: _spin(0.02), lambda: _spin(0.005), rounds=4, calls=(1, 4))
    assert out["median"] == pytest.approx(4.0, rel=0.2)
    with pytest.raises(ValueError, match="calls"):
        interleaved_ratio(lambda: None, lambda: None, rounds=1, calls=(1, 0))


def test_interleaved_ratio_ignores_time_spent_off_cpu():
    # sleeping is wall time, not thread CPU time: a waiting thread does not inflate the numerator
    out = interleaved_ratio(lambda: (_spin(0.01), time.sleep(0.05)), lambda: _spin(0.01), rounds=4)
    assert out["median"] == pytest.approx(1.0, rel=0.3)
    with pytest.raises(ValueError, match="rounds"):
        interleaved_ratio(lambda: None, lambda: None, rounds=0)


def _save(root, n: int, medians: tuple[float, float], per_round: list[float] | None) -> None:
    spec = RATIOS[0]
    folder = root / "Linux-CPython-3.11-64bit"
    folder.mkdir(parents=True, exist_ok=True)

    def bench(name, median, extra):
        return {"name": name.split("::")[1], "fullname": f"benchmarks/{name}", "extra_info": extra,
                "stats": {"median": median, "iqr": 0.001, "rounds": 20, "mean": median, "min": median * 0.9}}

    extra = {spec.key: {"ratios": per_round}} if per_round else {}
    payload = {"datetime": f"2026-01-0{n}T00:00:00", "commit_info": {"id": f"c{n}"},
               "machine_info": {"cpu": {"brand_raw": "test cpu"}},
               "benchmarks": [bench(spec.numerator, medians[0], extra),
                              bench(spec.denominator, medians[1], {})]}
    (folder / f"000{n}_c{n}_2026.json").write_text(json.dumps(payload))


def test_perf_prefers_interleaved_ratios_and_gates_like_with_like(tmp_path):
    root = tmp_path / ".benchmarks"
    # separately timed medians read 4.0 (a loaded machine); the interleaved rounds say 1.8
    _save(root, 1, (0.4, 0.1), [1.7, 1.8, 1.9, 1.8, 1.8, 1.75])
    (r,) = ratios(load_bench_runs(root)[-1])
    assert r.interleaved and r.value == pytest.approx(1.8) and r.lo < 1.8 < r.hi and r.rounds == 6
    assert "separate" not in r.describe()
    _save(root, 2, (0.4, 0.1), None)  # an old-style run: the medians, marked, and not gated against run 1
    (old_style,) = ratios(load_bench_runs(root)[-1])
    assert not old_style.interleaved and old_style.value == pytest.approx(4.0)
    assert "separate" in old_style.describe()
    assert perf_regressions(root) == []
    _save(root, 3, (0.4, 0.1), [1.8] * 3 + [1.75, 1.85, 1.8])
    _save(root, 4, (0.4, 0.1), [2.5, 2.6, 2.55, 2.5, 2.6, 2.45])  # slower code: the interleaved ratio rose
    (reason,) = perf_regressions(root)
    assert reason.startswith("benchmark ratio HVP / gradient rose from 1.8")
    assert math.isfinite(ratios(load_bench_runs(root)[-1])[0].floor)
