"""Command line: `harness list | run | status | report | history | compare | perf | gate | show | export |
new-claim`.

Errors become one line and a non-zero exit; a regression (see harness.run.history) exits 1 with one line.
"""
from __future__ import annotations

import argparse
import contextlib
import logging
import sys
from pathlib import Path

from harness.claim.registry import TIERS, all_claims, get_claim
from harness.errors import HarnessError, describe, is_user_interrupt, own_sigint
from harness.run.loader import load_claims
from harness.run.values import PER_GPU, pool_size
from harness.run.values import default_jobs, default_tier  # noqa: F401 (public here too)
from harness.run.values import folder as _folder
from harness.run.values import non_negative_int as _non_negative_int
from harness.run.values import notebook_timeout as _notebook_timeout
from harness.run.values import overrides as _overrides
from harness.run.values import positive_int as _positive_int
from harness.views.cli_inspect import (
    add_global_flags,
    add_inspect_commands,
    check_tier,
    inspect_command,
    stdout_closed,
)

log = logging.getLogger("harness")
EXIT_USAGE, EXIT_FAILED = 2, 1


class _Parser(argparse.ArgumentParser):
    def error(self, message):  # one line, not usage + traceback
        raise HarnessError(f"{self.prog}: {message}")


def build_parser() -> argparse.ArgumentParser:
    p = _Parser(prog="harness", description="Check research claims by running them.")
    p.add_argument("--results", default="results", help="results store folder (default: results/)")
    p.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    p.add_argument("-q", "--quiet", action="store_true", help="only warnings and the final table")
    p.add_argument("--data-dir", default=None, metavar="DIR",
                   help="download cache for CIFAR-10 and WikiText-103 "
                        "(default: $HARNESS_DATA, else ~/.cache/claim-harness/data)")
    sub = p.add_subparsers(dest="command", required=True, parser_class=_Parser)

    ls = sub.add_parser("list", help="list the registered claims and their tiers")
    ls.add_argument("--tier", help="show this tier's scale")

    run = sub.add_parser("run", help="run claims and decide their verdicts")
    run.add_argument("--claim", action="append", default=[], help="claim id (repeatable; default: all)")
    run.add_argument("--tier", default=None, help=f"one of {', '.join(TIERS)} (default: gpu with CUDA, else cpu)")
    run.add_argument("--seeds", default=None, help="number of seeds (default: the tier's own)")
    run.add_argument("--seed-offset", default="0",
                     help="first seed number: run seeds K..K+n-1, fresh and disjoint from the default 0..n-1")
    run.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                     help="override a config field of the claim's tier (type-checked)")
    run.add_argument("--max-steps", default=None, help="cap every training run at this many steps")
    run.add_argument("--device", default=None, help="cpu, cuda, cuda:1 (default: by tier and hardware)")
    run.add_argument("--no-cache", action="store_true", help="recompute seeds even if recorded")
    run.add_argument("--jobs", default=None,
                     help="processes running seeds at once (default: CPU cores, at most 4; on CUDA --per-gpu "
                          "per visible GPU)")
    run.add_argument("--per-gpu", default=None, metavar="K",
                     help=f"on CUDA: seed processes sharing one GPU (default {PER_GPU}); claims timed on wall "
                          "clock run alone after them")
    run.add_argument("--no-report", action="store_true", help="do not render the HTML report")
    run.add_argument("--reports", default="reports", help="report folder (default: reports/)")
    run.add_argument("--strict", action="store_true", help="exit 1 unless every claim holds")
    run.add_argument("--fail-on-regression", action="store_true",
                     help="exit 1 when a claim that held in its previous comparable run no longer holds")
    _report_options(run)
    from harness.run.executors import add_arguments

    add_arguments(run, sub)  # --executor, --detach, --slurm-*; and `harness status RUN`

    rep = sub.add_parser("report", help="render the HTML report of a run")
    rep.add_argument("run_id", nargs="?", default="latest")
    rep.add_argument("--reports", default="reports", help="report folder (default: reports/)")
    _report_options(rep)

    hist = sub.add_parser("history", help="every recorded value and verdict, run by run")
    hist.add_argument("--claim", default=None, help="only this claim")
    hist.add_argument("--tier", default=None, help="only this tier")

    cmp_ = sub.add_parser("compare", help="what changed verdict or moved beyond its CI from RUN_A to RUN_B")
    cmp_.add_argument("run_a")
    cmp_.add_argument("run_b")

    perf = sub.add_parser("perf", help="benchmark ratios of the last saved pytest-benchmark run vs the one before")
    perf.add_argument("--benchmarks", default=".benchmarks", help="pytest-benchmark storage (default: .benchmarks/)")

    gate = sub.add_parser("gate", help="exit 1 with one line when a run regressed or a benchmark ratio got worse")
    gate.add_argument("run_id", nargs="?", default="latest")
    gate.add_argument("--benchmarks", default=".benchmarks",
                      help="pytest-benchmark storage to check too (default: .benchmarks/; skipped if absent)")
    plan = sub.add_parser("plan", help="time a few steps of each claim here and print the estimated cost of a run")
    plan.add_argument("--tier", default=None, help="the tier to plan (default: gpu with CUDA, else cpu)")
    plan.add_argument("--claim", action="append", default=[], help="claim id (repeatable; default: all)")
    plan.add_argument("--seeds", default=None, help="planned seeds per claim (default: the tier's own)")
    plan.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="as for run")
    plan.add_argument("--device", default=None, help="cpu, cuda, cuda:1 (default: by tier and hardware)")
    plan.add_argument("--probe-steps", default="3,12", help="the two step caps timed per claim (default: 3,12)")
    plan.add_argument("--download", action="store_true", help="fetch missing data first, so those claims are timed")
    cfg = sub.add_parser("config", help="every config path of a claim's tier and its value (what --set can change)")
    cfg.add_argument("claim", help="claim id")
    cfg.add_argument("--tier", default="cpu", help="the tier whose config to show (default: cpu)")
    cfg.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="as for run: show the result")
    add_inspect_commands(sub)
    new = sub.add_parser("new-claim", help="write a claim file and its smoke test from a template")
    from harness.views.scaffold import add_arguments

    add_arguments(new)
    for command in sub.choices.values():  # every subcommand can see claims kept outside this repository
        command.add_argument("--claims-path", action="append", default=[], metavar="DIR",
                             help="also load the claims in this folder (repeatable; see docs/writing-claims.md)")
        add_global_flags(command)
    return p


def _report_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--no-notebooks", action="store_true", help="do not execute the claims' analysis notebooks")
    p.add_argument("--notebooks-dir", default="claims/notebooks",
                   help="custom <claim-id>.ipynb notebooks (default: claims/notebooks/; else the template)")
    p.add_argument("--notebook-timeout", default="120", help="seconds per notebook cell (default: 120)")
    p.add_argument("--notebook-kernel", default="python3", help="Jupyter kernel name (default: python3)")
    p.add_argument("--benchmarks", default=".benchmarks",
                   help="pytest-benchmark storage for perf.html (default: .benchmarks/)")


def main(argv: list[str] | None = None) -> int:
    """Run one command; returns its exit code: 0, 1 (a verdict or a regression says so), 2 (an error),
    130 (the user's Ctrl-C or SIGTERM). No exception from user code (a claim file, an entry point, an
    experiment), not even SystemExit, chooses the exit code."""
    try:
        args = build_parser().parse_args(argv)  # --help exits 0 here, as argparse does
        args.argv = list(argv if argv is not None else sys.argv[1:])  # kept by a detached run
    except HarnessError as e:
        print(f"harness: error: {e}", file=sys.stderr)
        return EXIT_USAGE
    with own_sigint():
        try:
            _setup_logging(args)
            if args.data_dir:  # through the environment, so seed worker processes use the same cache
                import os

                os.environ["HARNESS_DATA"] = str(Path(args.data_dir).expanduser().resolve())
            return _dispatch(args)
        except HarnessError as e:
            print(f"harness: error: {e}", file=sys.stderr)
            return EXIT_USAGE
        except BrokenPipeError:
            return stdout_closed()
        except BaseException as e:
            if is_user_interrupt(e):
                print("harness: interrupted; finished seeds are saved and will be reused", file=sys.stderr)
                return 130
            if isinstance(e, Exception):
                raise  # a bug of the harness itself: its traceback is what a developer needs
            print(f"harness: error: {describe(e)} (raised by user code outside any seed: a claim file, "
                  f"a claims path or an entry point); the command stopped", file=sys.stderr)
            return EXIT_USAGE


def _setup_logging(args) -> None:
    level = logging.DEBUG if args.verbose else logging.WARNING if args.quiet else logging.INFO
    logging.basicConfig(level=level, format="%(message)s", stream=sys.stderr)


def _dispatch(args) -> int:
    from harness.run.loader import load_all
    from harness.run.store import ResultStore

    if args.command == "new-claim":
        from harness.views.scaffold import new_claim

        return new_claim(args)
    store = ResultStore(args.results)
    if args.claims_path:  # commands that read only the store still check the folders load
        load_all(args.claims_path)
    if args.command == "report":
        path = _render(store, args.run_id, args)
        print(f"report: {path}")
        return 0
    if args.command == "status":
        return _status(args, store)
    if args.command in ("history", "compare", "gate", "perf"):
        return _history_command(args, store)
    if args.command in ("show", "export"):
        return inspect_command(args, store)
    load_all(args.claims_path)
    if not all_claims():
        raise HarnessError("the claims package registered no claims: nothing to list or run")
    if args.command == "list":
        return _list(args)
    if args.command == "config":
        return _config(args)
    if args.command == "plan":
        from harness.views.cost import plan_command

        return plan_command(args)
    return _run(args, store)


def _list(args) -> int:
    for claim in all_claims().values():
        tiers = ", ".join(f"{t} ({claim.tiers[t].seeds_label})" for t in TIERS if t in claim.tiers)
        print(f"{claim.id:34s} {claim.source}\n{'':34s} tiers: {tiers}")
        if args.tier and args.tier in claim.tiers:
            print(f"{'':34s} {args.tier}: {claim.tiers[args.tier].scale}")
    return 0


def _config(args) -> int:
    from harness.claim.config import apply_overrides, config_paths
    from harness.run.planning import validate_config

    claim = get_claim(args.claim)
    tier = claim.tier(args.tier)
    config = apply_overrides(tier.config, _overrides(args.set))
    validate_config(config, tier.config, f"{claim.id} ({args.tier} tier)")  # refuses what `run` refuses
    print(f"{claim.id} ({args.tier} tier): {type(config).__name__}; set any line as --set PATH=VALUE")
    for path, value in config_paths(config):
        print(f"  {path} = {value!r}")
    return 0


def _run(args, store) -> int:
    from harness.run.executors import from_args
    from harness.run.runner import RunOptions, run_claims

    tier = check_tier(args.tier if args.tier is not None else default_tier())
    claims = [get_claim(c) for c in args.claim] if args.claim else list(all_claims().values())
    jobs, per_gpu = pool_size(args.jobs, args.per_gpu, tier, args.device)
    options = RunOptions(
        tier=tier, seeds=_positive_int(args.seeds, "--seeds") if args.seeds is not None else None,
        overrides=_overrides(args.set),
        max_steps=_positive_int(args.max_steps, "--max-steps") if args.max_steps is not None else None,
        device=args.device, use_cache=not args.no_cache,
        jobs=jobs, per_gpu=per_gpu,
        seed_offset=_non_negative_int(args.seed_offset, "--seed-offset"), executor=from_args(args))
    if not args.no_report:  # a report folder we cannot write fails now, not after the compute
        from harness.run.store import check_folder_writable

        check_folder_writable(_folder(args.reports, "--reports"), "--reports")
        _notebook_timeout(args)
    if args.detach:
        from harness.run.executors.detach import submit_detached

        print("\n".join(submit_detached(claims, options, store, args.argv)))
        return 0
    with _progress() as progress:
        summary = run_claims(claims, options, store, progress=progress, run_id=getattr(args, "resume_run", None))
    print(format_table(summary))
    if not args.no_report:
        print(f"report: {_render(store, summary['run_id'], args)}")
    if args.fail_on_regression:
        from harness.run.history import diff_against_history, regression_reasons

        reasons = regression_reasons(diff_against_history(store, summary))
        if reasons:
            print(f"harness: regression: {'; '.join(reasons)}", file=sys.stderr)
            return EXIT_FAILED
    if args.strict and any(c["verdict"] != "holds" for c in summary["claims"]):
        return EXIT_FAILED
    return 0


def _status(args, store) -> int:
    """`harness status RUN`: a detached run's jobs per claim; once all have ended, finish it (verdicts, report)."""
    from harness.run.executors.detach import load_detached, status_lines

    lines, ended = status_lines(store, args.run_id, args.wait)
    print("\n".join(lines))
    if not ended and not args.wait:
        return 0
    resumed = build_parser().parse_args(load_detached(store, args.run_id)["argv"])
    resumed.argv, resumed.results, resumed.resume_run = [], args.results, args.run_id
    return _dispatch(resumed)


@contextlib.contextmanager
def _progress():
    """Route log lines through the progress display for the run (live line on a TTY, ETA lines in CI)."""
    from harness.run.progress import Progress

    root = logging.getLogger()
    display = Progress(sys.stderr, interactive=None if root.level <= logging.INFO else False)  # -q: no live line
    saved = root.handlers[:]
    root.handlers = [display]
    try:
        yield display
    finally:
        display.close()
        root.handlers = saved


def _history_command(args, store) -> int:
    from harness.run import history
    if args.command == "history":
        if args.claim is not None:
            _known_claim(args.claim, store)
        if args.tier is not None:
            check_tier(args.tier)
        print(history.format_history(history.load_history(store, claim=args.claim, tier=args.tier)))
        return 0
    if args.command == "compare":
        old, new = store.load_run(args.run_a), store.load_run(args.run_b)
        print(history.format_diff(history.compare_runs(old, new), against=f"run {old['run_id']}"))
        return 0
    from harness.run.perf import format_ratios, perf_regressions

    if args.command == "perf":
        print(format_ratios(args.benchmarks))
        return 0
    run = store.load_run(args.run_id)
    history.check_gateable(run)
    diff = history.diff_against_history(store, run)
    reasons = history.regression_reasons(diff) + perf_regressions(args.benchmarks)
    print(history.format_diff(diff))
    if reasons:
        print(f"harness: regression: {'; '.join(reasons)}", file=sys.stderr)
        return EXIT_FAILED
    print(f"gate: no regression in run {run['run_id']} ({run.get('tier')} tier) or in the benchmark ratios")
    return 0


def _known_claim(claim_id: str, store) -> None:
    """A claim id `history` can answer for: registered, or recorded in some run of the store."""
    import difflib

    from harness.run import history
    load_claims()
    known = set(all_claims()) | set(history.load_history(store)["claim"].dropna())
    if claim_id not in known:
        close = difflib.get_close_matches(claim_id, sorted(known), n=3)
        hint = f"; did you mean {', '.join(close)}?" if close else ""
        raise HarnessError(f"unknown claim '{claim_id}'{hint}")


def _render(store, run_id: str, args) -> Path:
    from harness.report import render_report

    timeout = _notebook_timeout(args)
    from harness.run.store import check_folder_writable

    reports = _folder(args.reports, "--reports")
    check_folder_writable(reports / store.load_run(run_id)["run_id"], "--reports")  # reports/<run-id> too
    try:
        return render_report(store, run_id, reports, notebooks=not args.no_notebooks,
                             notebooks_dir=Path(args.notebooks_dir), notebook_timeout_s=timeout,
                             notebook_kernel=args.notebook_kernel, benchmarks=Path(args.benchmarks))
    except HarnessError:
        raise
    except OSError as e:  # a full or read-only report disk: one line naming the path
        raise HarnessError(f"cannot write the report under {reports}: "
                           f"{e.strerror or e}{f' ({e.filename})' if e.filename else ''}") from None


def format_table(summary: dict) -> str:
    """The verdict table printed at the end of a run: tier and scale beside every verdict."""
    rows = [f"run {summary['run_id']} · tier {summary['tier']} · {summary['options']['device']}"]
    for c in summary["claims"]:
        rows.append(f"{c['verdict'].upper():13s} {c['id']}  [{c['tier']} tier: {c['scale']}]")
        for chk in c.get("regime") or []:
            rows.append(f"{'':15s}regime {chk['metric']}: {format_estimate(chk.get('estimate'))}"
                        f"  premise {chk.get('expectation', '')} → {chk['verdict']}"
                        + _undecided(chk, c.get("sampling") or {}))
        for chk in c["checks"]:
            rows.append(f"{'':15s}{chk['metric']}: {format_estimate(chk.get('estimate'))}"
                        f"  accepted {chk.get('expectation', '')} → {chk['verdict']}"
                        + (f" ({chk['reason']})" if chk.get("reason") else "")
                        + _undecided(chk, c.get("sampling") or {}))
        for rep in c["reported"]:
            rows.append(f"{'':15s}({rep['metric']}: {format_estimate(rep.get('estimate'))})")
        rows.append(f"{'':15s}{len(c['seeds'])} seeds, {c['wall_time_s']:.1f}s compute; paper: {c['paper_value']}")
    return "\n".join(rows)


def _undecided(chk: dict, sampling: dict) -> str:
    """'; needs ≈ N seeds to decide[, over this tier's cap of C: why]' for an inconclusive check."""
    from harness.claim.sequential import undecided_note

    note = undecided_note(chk.get("verdict"), chk.get("seeds_needed"), sampling.get("max_seeds"),
                          sampling.get("cap_reason", ""))
    return f"; {note}" if note else ""


def format_estimate(est: dict | None) -> str:
    if not est:
        return "n/a"
    lo, hi = est["lo"], est["hi"]
    if lo == hi:
        return f"{est['value']:.4g} (exact)"
    return f"{est['value']:.4g} [{lo:.4g}, {hi:.4g}]"
