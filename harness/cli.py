"""Command line: `harness list | run | report`. Errors become one line and a non-zero exit."""
from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

import torch

from harness.errors import ConfigError, HarnessError
from harness.registry import TIERS, all_claims, get_claim, load_claims

log = logging.getLogger("harness")
EXIT_USAGE, EXIT_FAILED = 2, 1


class _Parser(argparse.ArgumentParser):
    def error(self, message):  # one line, not usage + traceback
        raise HarnessError(f"{self.prog}: {message}")


def default_tier() -> str:
    return "gpu" if torch.cuda.is_available() else "cpu"


def default_jobs(tier: str, device: str | None) -> int:
    """One process per core on CPU (small models gain nothing from a second thread); 1 on CUDA."""
    import os

    on_cuda = (device or "").startswith("cuda") or (device is None and tier in ("gpu", "paper")
                                                      and torch.cuda.is_available())
    return 1 if on_cuda else max(1, min(os.cpu_count() or 1, 4))


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise ConfigError(f"expected a positive integer, got '{text}'") from None
    if value < 1:
        raise ConfigError(f"expected a positive integer, got '{text}'")
    return value


def _overrides(pairs: list[str]) -> dict[str, str]:
    out = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise ConfigError(f"--set expects KEY=VALUE, got '{pair}'")
        out[key.strip()] = value.strip()
    return out


def build_parser() -> argparse.ArgumentParser:
    p = _Parser(prog="harness", description="Check research claims by running them.")
    p.add_argument("--results", default="results", help="results store folder (default: results/)")
    p.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    p.add_argument("-q", "--quiet", action="store_true", help="only warnings and the final table")
    sub = p.add_subparsers(dest="command", required=True, parser_class=_Parser)

    ls = sub.add_parser("list", help="list the registered claims and their tiers")
    ls.add_argument("--tier", help="show this tier's scale")

    run = sub.add_parser("run", help="run claims and decide their verdicts")
    run.add_argument("--claim", action="append", default=[], help="claim id (repeatable; default: all)")
    run.add_argument("--tier", default=None, help=f"one of {', '.join(TIERS)} (default: gpu with CUDA, else cpu)")
    run.add_argument("--seeds", default=None, help="number of seeds (default: the tier's own)")
    run.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                     help="override a config field of the claim's tier (type-checked)")
    run.add_argument("--max-steps", default=None, help="cap every training run at this many steps")
    run.add_argument("--device", default=None, help="cpu, cuda, cuda:1 (default: by tier and hardware)")
    run.add_argument("--no-cache", action="store_true", help="recompute seeds even if recorded")
    run.add_argument("--jobs", default=None,
                     help="processes running seeds at once (default: CPU cores on cpu/smoke tiers, 1 on CUDA)")
    run.add_argument("--no-report", action="store_true", help="do not render the HTML report")
    run.add_argument("--reports", default="reports", help="report folder (default: reports/)")
    run.add_argument("--strict", action="store_true", help="exit 1 unless every claim holds")

    rep = sub.add_parser("report", help="render the HTML report of a run")
    rep.add_argument("run_id", nargs="?", default="latest")
    rep.add_argument("--reports", default="reports", help="report folder (default: reports/)")
    return p


def main(argv: list[str] | None = None) -> int:
    try:
        args = build_parser().parse_args(argv)
        _setup_logging(args)
        return _dispatch(args)
    except HarnessError as e:
        print(f"harness: error: {e}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        print("harness: interrupted; finished seeds are saved and will be reused", file=sys.stderr)
        return 130


def _setup_logging(args) -> None:
    level = logging.DEBUG if args.verbose else logging.WARNING if args.quiet else logging.INFO
    logging.basicConfig(level=level, format="%(message)s", stream=sys.stderr)


def _dispatch(args) -> int:
    from harness.store import ResultStore

    store = ResultStore(args.results)
    if args.command == "report":
        path = _render(store, args.run_id, args.reports)
        print(f"report: {path}")
        return 0
    load_claims()
    if args.command == "list":
        return _list(args)
    return _run(args, store)


def _list(args) -> int:
    for claim in all_claims().values():
        tiers = ", ".join(f"{t}({claim.tiers[t].seeds} seeds)" for t in TIERS if t in claim.tiers)
        print(f"{claim.id:34s} {claim.source}\n{'':34s} tiers: {tiers}")
        if args.tier and args.tier in claim.tiers:
            print(f"{'':34s} {args.tier}: {claim.tiers[args.tier].scale}")
    return 0


def _run(args, store) -> int:
    from harness.runner import RunOptions, run_claims

    tier = args.tier or default_tier()
    if tier not in TIERS:
        raise ConfigError(f"unknown tier '{tier}'; tiers are: {', '.join(TIERS)}")
    claims = [get_claim(c) for c in args.claim] if args.claim else list(all_claims().values())
    options = RunOptions(
        tier=tier, seeds=_positive_int(args.seeds) if args.seeds is not None else None,
        overrides=_overrides(args.set),
        max_steps=_positive_int(args.max_steps) if args.max_steps is not None else None,
        device=args.device, use_cache=not args.no_cache,
        jobs=_positive_int(args.jobs) if args.jobs is not None else default_jobs(tier, args.device))
    summary = run_claims(claims, options, store, progress=_progress_printer())
    print(format_table(summary))
    if not args.no_report:
        print(f"report: {_render(store, summary['run_id'], args.reports)}")
    if args.strict and any(c["verdict"] != "holds" for c in summary["claims"]):
        return EXIT_FAILED
    return 0


def _progress_printer():
    """Live step progress on an interactive terminal; nothing in CI logs."""
    if not sys.stderr.isatty():
        return None

    def show(text: str) -> None:
        sys.stderr.write(f"\r\033[K{text}")
        sys.stderr.flush()

    return show


def _render(store, run_id: str, reports: str) -> Path:
    from harness.report import render_report

    return render_report(store, run_id, Path(reports))


def format_table(summary: dict) -> str:
    """The verdict table printed at the end of a run: tier and scale beside every verdict."""
    rows = [f"run {summary['run_id']} · tier {summary['tier']} · {summary['options']['device']}"]
    for c in summary["claims"]:
        rows.append(f"{c['verdict'].upper():13s} {c['id']}  [{c['tier']} tier: {c['scale']}]")
        for chk in c["checks"]:
            rows.append(f"{'':15s}{chk['metric']}: {format_estimate(chk.get('estimate'))}"
                        f"  accepted {chk.get('expectation', '')} → {chk['verdict']}"
                        + (f" ({chk['reason']})" if chk.get("reason") else ""))
        for rep in c["reported"]:
            rows.append(f"{'':15s}({rep['metric']}: {format_estimate(rep.get('estimate'))})")
        rows.append(f"{'':15s}{len(c['seeds'])} seeds, {c['wall_time_s']:.1f}s compute; paper: {c['paper_value']}")
    return "\n".join(rows)


def format_estimate(est: dict | None) -> str:
    if not est:
        return "n/a"
    lo, hi = est["lo"], est["hi"]
    if lo == hi:
        return f"{est['value']:.4g} (exact)"
    return f"{est['value']:.4g} [{lo:.4g}, {hi:.4g}]"
