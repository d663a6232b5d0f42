"""Every benchmark a `harness perf` ratio reads exists under that name in benchmarks/ (a renamed or
re-parametrized benchmark would silently drop its row from the report and the gate). Read from the
source (ast), so the check costs no imports of the benchmark modules."""

import ast
import itertools
from pathlib import Path

from harness.run.perf import RATIOS

BENCH = Path(__file__).resolve().parents[1] / "benchmarks"


def _benchmark_ids(path: Path) -> set[str]:
    """'file.py::test[a-b]' ids for test functions whose parametrize lists are literal."""
    ids = set()
    for fn in ast.parse(path.read_text()).body:
        if not (isinstance(fn, ast.FunctionDef) and fn.name.startswith("test_")):
            continue
        axes = []
        for dec in fn.decorator_list:  # bottom decorator first in the id, as pytest orders them
            if isinstance(dec, ast.Call) and getattr(dec.func, "attr", "") == "parametrize":
                axes.insert(0, [str(v) for v in ast.literal_eval(dec.args[1])])
        combos = ["-".join(c) for c in itertools.product(*axes)] if axes else []
        ids |= {f"{path.name}::{fn.name}[{c}]" for c in combos} or {f"{path.name}::{fn.name}"}
    return ids


def test_every_ratio_names_an_existing_benchmark():
    existing = set().union(*(_benchmark_ids(p) for p in BENCH.glob("bench_*.py")))
    named = {name for spec in RATIOS for name in (spec.numerator, spec.denominator)}
    assert named and named <= existing, sorted(named - existing)
