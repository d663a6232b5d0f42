"""Render one run of the results store as a portable HTML folder: reports/<run-id>/index.html, with
history.html (the run against earlier runs), perf.html (benchmark ratios) and, on request, one
executed analysis notebook per claim under notebooks/.

The page is built from the stored run summary and seed records alone (no claim code is imported),
so an old run still renders after its claim changed. CSS is inlined and plots are inline SVG: the
folder needs no network. Every string from the store is escaped by jinja2's autoescape.
"""
from __future__ import annotations

import logging
import math
import re
import time
from pathlib import Path

import jinja2
from markupsafe import Markup

from harness.atomic import atomic_write_text
from harness.claim.records import CheckResult, ClaimResult, RunSummary, SeedEntry, SeedRecord
from harness.report import check_view as cv
from harness.report import notebooks as nbs
from harness.report.figures import result_figures, to_float
from harness.run.store import ResultStore

log = logging.getLogger(__name__)

TEMPLATES = Path(__file__).resolve().parent / "templates"
SCALE_KEYS = (("trainable_params", "params"), ("n_train", "train examples"), ("steps", "steps"))
CLAIM_DOCS = Path(__file__).resolve().parents[2] / "docs" / "claims"  # in a checkout; absent when installed
BENCH_NOTE = "no benchmark results yet: the performance page fills once `nox -s bench` has run"


def render_report(store: ResultStore, run_id: str, out_root: Path, *, notebooks: bool = False,
                  notebooks_dir: Path | None = None, notebook_timeout_s: float = 120.0,
                  notebook_kernel: str = "python3", benchmarks: Path | None = None) -> Path:
    """Write out_root/<run-id>/index.html (with history.html and perf.html beside it) and return its path.

    Args:
        store: the results store holding the run summary and its seed records.
        run_id: a run id, or "latest".
        out_root: folder that receives one sub-folder per run.
        notebooks: also execute and render one analysis notebook per claim (needs the notebooks extra;
            without it the page says how to install it).
        notebooks_dir: folder of custom `<claim-id>.ipynb` notebooks (default: the template only).
        notebook_timeout_s, notebook_kernel: time limit per notebook cell; Jupyter kernel name.
        benchmarks: pytest-benchmark's storage folder (e.g. .benchmarks) for perf.html; None: none.
    Returns:
        Path of the written index.html.
    Raises:
        HarnessError: no such run in the store.
    """
    from harness.report.history_page import history_view
    from harness.report.perf_page import perf_view

    run = store.load_run(run_id)
    report_dir = Path(out_root) / run["run_id"]
    books, note = {}, ""
    if notebooks and nbs.missing_modules():
        note = f"{nbs.INSTALL_HINT} (missing: {', '.join(nbs.missing_modules())})"
    elif notebooks:
        books = nbs.render_notebooks(store, run, report_dir, notebooks_dir, notebook_timeout_s,
                                     notebook_kernel)
        for book in books.values():
            if book.body is not None:
                _write_notebook_page(report_dir / book.html, run, book)
    summary = RunSummary.from_dict(run)
    claims = [claim_view(c, [_seed_record(store, s.key) for s in c.seeds], summary.options)
              for c in summary.claims]
    for c in claims:
        c["notebook"] = vars(books[c["id"]]) if c["id"] in books else None
    common = {"run": run_view(summary), "rendered": time.strftime("%Y-%m-%d %H:%M:%S"), "base": ""}
    env = _environment()
    perf = perf_view(benchmarks)
    page = {**common, "current": "index", "counts": verdict_counts(claims), "claims": claims,
            "provenance": provenance_view(summary), "notebook_note": note,
            "bench_note": "" if perf.get("runs") else BENCH_NOTE}
    out = report_dir / "index.html"
    for c in claims:
        if c["doc"]:
            _write_claim_doc(report_dir / c["doc"], c["id"], common)
    atomic_write_text(out, env.get_template("index.html.j2").render(page=page))
    atomic_write_text(report_dir / "history.html", env.get_template("history.html.j2").render(
        page={**common, "current": "history", "history": history_view(store, run, report_dir.parent)}))
    atomic_write_text(report_dir / "perf.html", env.get_template("perf.html.j2").render(
        page={**common, "current": "perf", "perf": perf}))
    log.debug("report for run %s: %s", run["run_id"], out)  # the CLI prints the one "report:" line
    return out


def _write_notebook_page(path: Path, run: dict, result: nbs.NotebookResult) -> None:
    """notebooks/<claim>.html: nbconvert's HTML fragment (no scripts) inside the report's page frame."""
    nb = {"claim": result.claim, "anchor": anchor(result.claim), "source": result.source,
          "seconds": result.seconds, "error": result.error,
          "body": Markup(result.body)}  # nbconvert escapes text outputs itself
    page = {"run": run_view(RunSummary.from_dict(run)), "rendered": time.strftime("%Y-%m-%d %H:%M:%S"),
            "base": "../",
            "current": "notebook", "notebook": nb}
    atomic_write_text(path, _environment().get_template("notebook.html.j2").render(page=page))


def _write_claim_doc(path: Path, claim_id: str, common: dict) -> None:
    """claims/<id>.html: the claim's page from docs/claims/ (its Markdown shown as text), so the report
    folder stays portable."""
    text = (CLAIM_DOCS / f"{claim_id}.md").read_text(encoding="utf-8")
    page = {**common, "base": "../", "current": "claim-doc", "claim": claim_id, "anchor": anchor(claim_id),
            "text": text}
    atomic_write_text(path, _environment().get_template("claim_doc.html.j2").render(page=page))


def _environment() -> jinja2.Environment:
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(TEMPLATES),
        autoescape=jinja2.select_autoescape(["html", "j2"], default_for_string=True),
        undefined=jinja2.StrictUndefined, trim_blocks=True, lstrip_blocks=True)
    env.filters.update(num=fmt_num, seconds=fmt_seconds)
    return env


# --- view models: plain dicts of display strings, so the templates hold no logic ----------------

def _seed_record(store: ResultStore, key: str | None) -> SeedRecord | None:
    record = store.load_seed(key) if key else None
    return None if record is None else SeedRecord.from_dict(record)


def run_view(run: RunSummary) -> dict:
    status = run.status
    if status == "running":
        note = ("This run has not finished: it is still running, or was killed before it could "
                "record its end. Only the claims finished so far are shown.")
    elif status == "interrupted":
        note = "This run was interrupted: only the claims finished before the interruption are shown."
    elif status != "complete":
        note = f"This run's status is '{status}'."
    else:
        note = ""
    return {"id": run.run_id, "tier": run.tier, "device": run.options.get("device", "?"),
            "started": run.started or "—", "finished": run.finished or "—", "status": status,
            "status_note": note,
            "overrides": ", ".join(f"{k}={v}" for k, v in (run.options.get("overrides") or {}).items())}


def verdict_counts(claims: list[dict]) -> list[tuple[str, int]]:
    """(verdict word, number of claims) for every word; out-of-regime is counted apart from errors."""
    return [(v, sum(c["verdict"] == v for c in claims)) for v in cv.VERDICT_WORDS]


def claim_view(c: ClaimResult, records: list[SeedRecord | None], options: dict | None = None) -> dict:
    """Display strings of one claim of a run, with its figures (records: its seeds' records, None
    where missing; options: the run's options, for the `--set` banner)."""
    seeds = [seed_view(s, r) for s, r in zip(c.seeds, records)]
    figs = result_figures(c, records, fig_id=anchor(c.id))
    changes = [ch for ch in c.changes if isinstance(ch, dict)]
    regime = cv.regime_metrics(c)
    config = flatten(c.config)
    return {
        "id": c.id, "anchor": anchor(c.id), "version": "?" if c.version is None else c.version,
        "source": c.source, "statement": c.statement,
        "paper_value": c.paper_value, "tuning": c.tuning, "notes": c.notes,
        "tier": c.tier, "scale": c.scale,
        "scale_numbers": scale_numbers(c.measured_scale), "measured_scale": flatten(c.measured_scale),
        "experiment": c.experiment, "config_hash": c.config_hash,
        "deterministic": bool(c.deterministic), "config": config,
        "verdict": verdict_word(c.verdict),
        "checks": [cv.check_view(k, fmt_num, changes, regime, c.sampling) for k in c.checks],
        "regime_checks": [cv.check_view(k, fmt_num, changes, regime, c.sampling) for k in c.regime
                          if isinstance(k, CheckResult)],
        "reported": [cv.check_view(k, fmt_num) for k in c.reported],
        "regime": regime,
        "overrides": cv.override_view(options or {}, config),
        "seeds": seeds, "n_seeds": len(seeds), "n_cached": sum(s["cached"] for s in seeds),
        "sampling_note": sampling_note(c.sampling),
        "n_errors": sum(bool(s["error"]) for s in seeds), "wall_time_s": c.wall_time_s,
        "changes": [change_view(ch) for ch in changes],
        "doc": f"claims/{c.id}.html" if (CLAIM_DOCS / f"{c.id}.md").is_file() else "",
        "svgs": [Markup(svg) for svg in figs.svgs],  # matplotlib escapes the text it draws
        "figure_notes": figs.notes,
    }


def sampling_note(sampling: dict) -> str:
    """'pilot 3, cap 5, 2 looks at 97.5%' for seeds chosen by power; '' for a fixed count at 95%."""
    if not sampling or not sampling.get("adaptive"):
        return ""
    level = 100 * float(sampling.get("confidence", 0.975))
    looks = sampling.get("looks", 1)
    return (f"pilot {sampling.get('pilot_seeds', '?')}, cap {sampling.get('max_seeds', '?')}; "
            f"{looks} look{'s' if looks != 1 else ''} at {level:g}%")


def check_view(k: CheckResult) -> dict:
    """Display strings of one check (see harness.report.check_view)."""
    return cv.check_view(k, fmt_num)


def seeds_needed_text(k: CheckResult) -> str:
    """'needs ≈ N seeds to decide' beside an inconclusive check whose entry carries `seeds_needed`."""
    return cv.seeds_needed_text(k, fmt_num)


def change_view(c: dict) -> dict:
    """One entry of a claim's change log: date, what, why, whether results were seen before it."""
    seen = c.get("results_seen")
    return {"date": str(c.get("date", "?")), "what": str(c.get("what", "")), "why": str(c.get("why", "")),
            "results_seen": "yes" if seen is True else "no" if seen is False else "unknown"}


def seed_view(s: SeedEntry, record: SeedRecord | None) -> dict:
    notes = list(s.notes)
    if record is None:
        notes.append("seed record missing from the cache: its curves are not shown")
    return {"seed": "?" if s.seed is None else s.seed, "wall_time_s": s.wall_time_s, "cached": bool(s.cached),
            "error": s.error or "", "notes": notes, "key": s.key or ""}


def provenance_view(run: RunSummary) -> dict:
    env, opts = run.environment, run.options
    git = env.get("git", {})
    dirty = {True: " (uncommitted changes)", False: "", None: " (dirty state unknown)"}.get(git.get("dirty"), "")
    device = ", ".join(f"{k}={fmt_num(env[k])}" for k in ("device", "name", "threads", "cuda") if k in env)
    return {"commit": f"{git.get('commit', 'unknown')}{dirty}", "code_hash": env.get("code_hash", "unknown"),
            "platform": env.get("platform", "unknown"), "device": device or "unknown",
            "versions": flatten(env.get("versions", {})),
            "options": [("seeds", "tier default" if opts.get("seeds") is None else fmt_num(opts["seeds"])),
                        ("overrides", ", ".join(f"{k}={v}" for k, v in opts.get("overrides", {}).items())
                         or "none"),
                        ("max_steps", "none" if opts.get("max_steps") is None else fmt_num(opts["max_steps"])),
                        ("device", str(opts.get("device", "?"))),
                        ("use_cache", fmt_num(opts.get("use_cache", True)))]}


# --- formatting ----------------------------------------------------------------------------------

def verdict_word(v) -> str:
    return cv.verdict_word(v)


def anchor(claim_id: str) -> str:
    return "claim-" + re.sub(r"[^a-z0-9-]+", "-", str(claim_id).lower())


def fmt_num(x) -> str:
    """Numbers for people: thousands separators for ints, 4 significant digits for floats."""
    if isinstance(x, bool):
        return "yes" if x else "no"
    if isinstance(x, int):
        return f"{x:,}"
    if isinstance(x, float) or (isinstance(x, str) and x in ("nan", "inf", "-inf")):
        v = to_float(x)
        if math.isnan(v):
            return "NaN"
        if math.isinf(v):
            return "∞" if v > 0 else "-∞"
        return f"{v:.4g}"
    if x is None:
        return "—"
    if isinstance(x, (list, tuple)):
        return ", ".join(fmt_num(v) for v in x)
    return str(x)


def fmt_seconds(s) -> str:
    v = to_float(s)
    if not math.isfinite(v):
        return "—"
    if v < 60:
        return f"{v:.1f} s"
    if v < 3600:
        return f"{int(v // 60)} min {int(v % 60)} s"
    return f"{int(v // 3600)} h {int(v % 3600 // 60)} min"


def format_estimate(est: dict | None) -> str:
    """'2.05 [1.98, 2.12]'; 'no interval (1 seed)' when a bound is infinite; 'n/a' without an estimate."""
    return cv.format_estimate(est, fmt_num)


def scale_numbers(scale: dict) -> str:
    """The key sizes of a measured scale, e.g. '4,810 params · 1,000 train examples · 3,000 steps'.

    Nested groups (one per arm) give their own sizes, prefixed by the group name.
    """
    parts = [f"{fmt_num(scale[k])} {name}" for k, name in SCALE_KEYS if k in scale]
    for group, sub in scale.items():
        if isinstance(sub, dict) and "trainable_params" in sub:  # one arm of a multi-arm experiment
            inner = [f"{fmt_num(sub[k])} {name}" for k, name in SCALE_KEYS if k in sub]
            if inner:
                parts.append(f"{group}: {', '.join(inner)}")
    return " · ".join(parts)


def flatten(d: dict, prefix: str = "") -> list[tuple[str, str]]:
    """Nested dicts as (dotted key, display value) pairs in stored order."""
    out = []
    for k, v in d.items():
        if isinstance(v, dict):
            out.extend(flatten(v, f"{prefix}{k}."))
        else:
            out.append((f"{prefix}{k}", fmt_num(v)))
    return out
