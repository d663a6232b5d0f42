"""`harness export RUN --format csv|json`: one run of the store as tables another tool can read.

Three tables, all in long form (one value per row):
- checks:  claim, kind ("check" or "reported"), metric, value, lo, hi, n, method, expectation,
           region_lo, region_hi, verdict (the run's decided numbers);
- scalars: claim, seed, metric, value (every scalar each seed measured; a check's per-seed values are here);
- curves:  claim, seed, curve, row, column, value (every curve table of every seed).

JSON holds the run's metadata and the three tables as lists of records; CSV is one table with a `table`
column naming which of the three a row belongs to (empty cells where a column does not apply). NaN and
infinities are written as "nan", "inf", "-inf" in both formats (docs/report.md gives the schema).
"""
from __future__ import annotations

import csv
import io
import json
import math

from harness.claim.records import ClaimResult, RunSummary, SeedRecord
from harness.errors import ConfigError
from harness.run.store import ResultStore

FORMATS = ("csv", "json")
CHECK_COLUMNS = ("claim", "kind", "metric", "value", "lo", "hi", "n", "method", "expectation", "region_lo",
                 "region_hi", "verdict")
SCALAR_COLUMNS = ("claim", "seed", "metric", "value")
CURVE_COLUMNS = ("claim", "seed", "curve", "row", "column", "value")
CSV_COLUMNS = ("table", *dict.fromkeys(CHECK_COLUMNS + SCALAR_COLUMNS + CURVE_COLUMNS))


def _num(x):
    """A stored number as JSON-safe: finite floats and ints as they are, the rest as strings."""
    if isinstance(x, bool):
        return x
    if isinstance(x, (int, float)):
        return x if math.isfinite(x) else ("nan" if math.isnan(x) else "inf" if x > 0 else "-inf")
    return x


def _flat(d: dict, prefix: str = "") -> list[tuple[str, object]]:
    out = []
    for k, v in d.items():
        if isinstance(v, dict):
            out.extend(_flat(v, f"{prefix}{k}."))
        else:
            out.append((f"{prefix}{k}", v))
    return out


def export_tables(store: ResultStore, run_id: str) -> dict:
    """The run's checks, scalars and curves as lists of dicts (see the module docstring).

    Raises:
        HarnessError: no such run, or a damaged run summary (harness.run.store.ResultStore.load_run).
    """
    run = store.load_run(run_id)
    summary = RunSummary.from_dict(run)
    checks, scalars, curves = [], [], []
    for c in summary.claims:
        checks.extend(_check_rows(c))
        for entry in c.seeds:
            stored = store.load_seed(entry.key) if entry.key else None
            m = SeedRecord.from_dict(stored).measurement if stored else None
            if not m:
                continue
            for name, value in _flat(m.get("scalars", {})):
                scalars.append({"claim": c.id, "seed": entry.seed, "metric": name, "value": _num(value)})
            for curve, table in m.get("curves", {}).items():
                for column, values in table.items():
                    for row, value in enumerate(values if isinstance(values, list) else []):
                        curves.append({"claim": c.id, "seed": entry.seed, "curve": curve, "row": row,
                                       "column": column, "value": _num(value)})
    return {"run_id": summary.run_id, "tier": summary.tier, "status": summary.status,
            "started": summary.started, "finished": summary.finished, "options": summary.options,
            "checks": checks, "scalars": scalars, "curves": curves}


def _check_rows(c: ClaimResult) -> list[dict]:
    rows = []
    for kind, items in (("check", c.checks), ("reported", c.reported)):
        for k in items:
            est = k.estimate or {}
            region = list(k.region) if k.region else [None, None]
            rows.append({"claim": c.id, "kind": kind, "metric": k.metric, "value": _num(est.get("value")),
                         "lo": _num(est.get("lo")), "hi": _num(est.get("hi")), "n": est.get("n"),
                         "method": est.get("method"), "expectation": k.expectation,
                         "region_lo": _num(region[0]), "region_hi": _num(region[1]), "verdict": k.verdict})
    return rows


def export_run(store: ResultStore, run_id: str, fmt: str) -> str:
    """The run as CSV or JSON text.

    Raises:
        ConfigError: fmt is not one of FORMATS. HarnessError: as export_tables.
    """
    if fmt not in FORMATS:
        raise ConfigError(f"--format must be one of {', '.join(FORMATS)}, got '{fmt}'")
    tables = export_tables(store, run_id)
    if fmt == "json":
        return json.dumps(tables, indent=1, sort_keys=False, default=str)
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=CSV_COLUMNS, lineterminator="\n")
    writer.writeheader()
    for table in ("checks", "scalars", "curves"):
        for row in tables[table]:
            writer.writerow({"table": table, **{k: "" if v is None else v for k, v in row.items()}})
    return buf.getvalue()
