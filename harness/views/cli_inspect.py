"""The commands that read without running (`show`, `export`), the global flags every subcommand also takes
after its name, "did you mean" for tiers, and a quiet end when the reader of our output goes away.

Kept apart from harness.views.cli (which parses and dispatches) so that each file stays one concept.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from harness.claim.registry import TIERS, get_claim
from harness.errors import ConfigError


def default_tier() -> str:
    """harness.run.values.default_tier (the tier a run gets without --tier)."""
    from harness.run.values import default_tier as tier

    return tier()


GLOBAL_FLAGS = ("--results", "--data-dir", "-q", "-v")


def add_global_flags(command: argparse.ArgumentParser) -> None:
    """-q, -v, --results and --data-dir after the subcommand too (`harness run -q`); given there, they
    override the same flag given before it. SUPPRESS: an absent flag leaves the top-level value."""
    have = {o for a in command._actions for o in a.option_strings}
    if "--results" not in have:
        command.add_argument("--results", default=argparse.SUPPRESS, help="results store folder")
    if "--data-dir" not in have:
        command.add_argument("--data-dir", default=argparse.SUPPRESS, metavar="DIR", help="download cache")
    if "-v" not in have:
        command.add_argument("-v", "--verbose", action="store_true", default=argparse.SUPPRESS,
                             help="debug logging")
    if "-q" not in have:
        command.add_argument("-q", "--quiet", action="store_true", default=argparse.SUPPRESS,
                             help="only warnings and the final table")


def add_inspect_commands(sub) -> None:
    """`show` and `export`: read a claim or a stored run, run nothing."""
    show = sub.add_parser("show", help="a claim's statement, checks, bands and their sources, seeds and cost "
                                       "per tier, without running it")
    show.add_argument("claim", help="claim id")
    show.add_argument("--tier", default=None, help="the tier whose bands to show (default: gpu with CUDA, "
                                                   "else cpu; the claim's first tier if it has neither)")
    export = sub.add_parser("export", help="a stored run's checks, per-seed scalars and curves as CSV or JSON")
    export.add_argument("run_id", nargs="?", default="latest", help="run id (default: latest)")
    export.add_argument("--format", default="csv", help="csv or json (default: csv); see docs/report.md")
    export.add_argument("--out", default=None, metavar="FILE", help="write to FILE instead of stdout")


def check_tier(tier: str) -> str:
    """tier if it is one of TIERS, else a one-line ConfigError with a "did you mean"."""
    import difflib

    if tier in TIERS:
        return tier
    close = difflib.get_close_matches(tier, TIERS, n=2, cutoff=0.5)
    hint = f"; did you mean {' or '.join(close)}?" if close else ""
    raise ConfigError(f"unknown tier '{tier}'{hint} Tiers are: {', '.join(TIERS)}")


def inspect_command(args, store) -> int:
    """Run `show` or `export` (args from harness.views.cli.build_parser); returns the exit code.

    Raises:
        HarnessError: unknown claim or tier, no such run, or an unknown --format.
    """
    if args.command == "show":
        from harness.run.loader import load_all
        from harness.views.show import format_claim

        load_all(args.claims_path)
        claim = get_claim(args.claim)
        tier = check_tier(args.tier) if args.tier else default_tier()
        if tier not in claim.tiers and args.tier is None:
            tier = next(iter(claim.tiers))
        print(format_claim(claim, tier, store))
        return 0
    from harness.views.export import export_run

    text = export_run(store, args.run_id, args.format)
    if args.out:
        from harness.atomic import atomic_write_text

        atomic_write_text(Path(args.out), text)
        print(f"export: {args.out}")
    else:
        sys.stdout.write(text if text.endswith("\n") else text + "\n")
    return 0


def stdout_closed() -> int:
    """The reader of our output went away (`harness history | head`): stop quietly, as `cat` does."""
    import os

    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())  # so the interpreter's final flush does not fail again
    except (OSError, ValueError):
        pass
    return 0
