"""Does an EoS-family check depend on the float64 solve? A paired comparison, pre-registered here.

For each claim given, each cpu-tier seed runs twice in this one process, interleaved seed by seed:
"today" (the claim's cpu config as it is) and "fast" (every GDConfig in it with dtype float32, the
curvature solved on the model's float32 operator, and the Lanczos value stop), or "curv32" (float64
training, lambda_max solved on a float32 copy with the value stop), as --setting picks. Runs shared between
claims go through an in-memory cache keyed like the runner's (experiment, config hash), so the shared
runs are computed once per setting, as in `harness run`.

The rule, written before the first run (seeds 5000 and up, used by no claim):

- Per check (checks and regime checks), the statistic is the seed mean that the verdict's interval is
  built on. d_i = fast_i - today_i per seed (paired: the same seed, the same init and data).
- X, the tolerance: 0.25 x the band width for Between(lo, hi); 0.25 x |bound| for AtMost / AtLeast;
  the smallest effect of interest for Effect (a shift below it cannot carry an interval across both
  the null and the smallest effect).
- "same" when the 95% Student-t interval of mean(d) lies inside [-X, X] (an equivalence test);
  "differs" when it lies entirely outside [-X, X]; otherwise "undecided".
- A claim adopts the fast setting only if every one of its checks reads "same" (>= 10 seeds); a check
  reading "differs" or "undecided" keeps float64 for what it reads. After the Edge-of-Stability onset
  the dynamics are chaotic (a 1e-9 change of the initial weights moves a seed's tail as much as the
  dtype), so paired differences are as wide as unpaired ones there; both are printed, the paired one
  decides.

Round 2, written before its first run (2026-12-07): round 1 (10 seeds, 5000-5009) read "undecided" for
"fast" on three checks of the shared tanh-BN run (eos-scale-invariant's tail median and excess slope,
eos-intrinsic-time-collapse's clock window) and "same" on every other one. An undecided equivalence test is
an underpowered one, so the four claims of that run (eos-scale-invariant, sharpness-reduction,
normalization-reduces-sharpness, eos-intrinsic-time-collapse) are compared once more, "fast" against
"today" (their cpu config as it is: float64 training, lambda_max on a float32 copy with the value stop), on
30 fresh seeds 5100-5129, with the same X and the same rule; round 1 is not pooled in. This is the last
round: a claim adopts "fast" only if every one of its checks reads "same" here, and a check reading
"undecided" or "differs" keeps that claim's training float64, with no third round.

Usage (frugal: one process, single-threaded, niced):
    OMP_NUM_THREADS=1 nice -n 10 python tools/dtype_compare.py --claim eos-scale-invariant \
        --seeds 10 --seed-offset 5000 --out /tmp/dtype-compare.jsonl
Rows already in --out are kept (a stopped run resumes); --summary-only prints the table from --out.
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import math
import time
from pathlib import Path

import numpy as np
import torch
from scipy import stats

from harness.claim.config import derive
from harness.claim.expect import AtLeast, AtMost, Between, Effect
from harness.claim.measurement import RunContext
from harness.claim.registry import get_claim
from harness.run.loader import load_claims
from harness.experiments.eos import GDConfig
from harness.run.provenance import config_hash

SETTINGS = {
    "today": {},
    "fast": {"dtype": "float32", "curvature_dtype": "model", "lanczos_stop": "value"},
    # Training stays float64 (the probes never touch the iterate, so the trajectory is today's to the last
    # bit); only lambda_max is solved on a float32 copy with the value stop. Added, before it first ran,
    # for claims whose checks read "undecided" or "differs" under "fast".
    "curv32": {"curvature_dtype": "float32", "lanczos_stop": "value"},
}
TOL_FRACTION = 0.25  # X = this x band width (Between) or x |bound| (AtMost / AtLeast); Effect: X = smallest


def with_setting(config, fields: dict):
    """The config with every GDConfig inside it (nested dataclasses, tuples) derived with `fields`."""
    if not fields:
        return config
    if isinstance(config, GDConfig):
        return derive(config, **fields)
    if isinstance(config, tuple):
        return tuple(with_setting(c, fields) for c in config)
    if dataclasses.is_dataclass(config):
        changes = {f.name: with_setting(getattr(config, f.name), fields) for f in dataclasses.fields(config)}
        changed = {k: v for k, v in changes.items() if v is not getattr(config, k)}
        return dataclasses.replace(config, **changed)
    return config


def tolerance(check, tier: str = "cpu") -> float:
    """X of the rule in the module docstring."""
    e = check.expect
    if isinstance(e, Between):
        region = e.region(tier)
        return TOL_FRACTION * (region.hi - region.lo)
    if isinstance(e, (AtMost, AtLeast)):
        region = e.region(tier)
        return TOL_FRACTION * abs(region.hi if isinstance(e, AtMost) else region.lo)
    if isinstance(e, Effect):
        return float(e.smallest if not isinstance(e.smallest, dict) else e.smallest[tier])
    raise TypeError(f"no tolerance rule for {type(e).__name__}")


def run_seed(claim_ids: list[str], seed: int, setting: str, tier: str = "cpu") -> tuple[dict, float]:
    """The checks' values of each claim for one seed in one setting, and the thread CPU seconds."""
    cache = {}

    def cached_run(experiment, config):
        key = (experiment.experiment_name, config_hash(config))
        if key not in cache:
            cache[key] = experiment(config, ctx)
        return cache[key]

    ctx = RunContext(seed=seed, tier=tier, cached_run=cached_run)
    out = {}
    t0 = time.thread_time()
    for cid in claim_ids:
        claim = get_claim(cid)
        cfg = with_setting(claim.tiers[tier].config, SETTINGS[setting])
        m = cached_run(claim.experiment, cfg)
        for check in claim.checks + claim.regime:
            out[f"{cid}:{check.metric}"] = float(m.scalars[check.metric])
    return out, time.thread_time() - t0


def interval(d: np.ndarray, level: float = 0.95) -> tuple[float, float, float]:
    """(mean, lo, hi): Student-t interval of the mean of d (nan-free)."""
    n = len(d)
    mean = float(d.mean())
    half = float(stats.t.ppf(0.5 + level / 2, n - 1) * d.std(ddof=1) / math.sqrt(n)) if n > 1 else math.inf
    return mean, mean - half, mean + half


def summarize(rows: list[dict], claim_ids: list[str]) -> None:
    by_seed = {}
    for r in rows:
        by_seed.setdefault(r["seed"], {})[r["setting"]] = r
    for new in [s for s in SETTINGS if s != "today"]:
        pairs = [v for v in by_seed.values() if "today" in v and new in v]
        if pairs:
            _summarize_pairs(pairs, new, claim_ids)


def _summarize_pairs(pairs: list[dict], new: str, claim_ids: list[str]) -> None:
    print(f"\n{new} - today: {len(pairs)} paired seeds: {sorted(v['today']['seed'] for v in pairs)}")
    cpu = {s: sum(v[s]["cpu_s"] for v in pairs) for s in ("today", new)}
    print(f"thread CPU s, all claims given: today {cpu['today']:.0f}, {new} {cpu[new]:.0f}, "
          f"ratio {cpu[new] / cpu['today']:.3f}")
    head = f"{'check':58s} {'today mean (SD)':>18s} {new + ' mean (SD)':>18s} {'paired d [95% CI]':>30s} " \
           f"{'unpaired [95% CI]':>24s} {'X':>8s}  rule"
    print(head)
    for cid in claim_ids:
        claim = get_claim(cid)
        for check in claim.checks + claim.regime:
            key = f"{cid}:{check.metric}"
            a = np.array([v["today"]["values"][key] for v in pairs])
            b = np.array([v[new]["values"][key] for v in pairs])
            ok = np.isfinite(a) & np.isfinite(b)
            a, b = a[ok], b[ok]
            x = tolerance(check)
            if len(a) < 2:
                print(f"{key:58s} fewer than 2 finite pairs")
                continue
            d, lo, hi = interval(b - a)
            welch = stats.ttest_ind(b, a, equal_var=False).confidence_interval(0.95)
            rule = "same" if -x <= lo and hi <= x else ("differs" if lo > x or hi < -x else "undecided")
            print(f"{key:58s} {a.mean():9.4g} ({a.std(ddof=1):6.2g}) {b.mean():9.4g} ({b.std(ddof=1):6.2g}) "
                  f"{d:9.3g} [{lo:9.3g}, {hi:9.3g}] [{welch.low:9.3g}, {welch.high:9.3g}] {x:8.3g}  "
                  f"{rule} (n={len(a)})")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--claim", action="append", required=True)
    p.add_argument("--seeds", type=int, default=10)
    p.add_argument("--seed-offset", type=int, default=5000)
    p.add_argument("--out", type=Path, required=True, help="JSON lines, one per seed and setting")
    p.add_argument("--summary-only", action="store_true")
    p.add_argument("--setting", action="append", choices=list(SETTINGS),
                   help="settings to run (repeatable; default today and fast)")
    p.add_argument("--tier", default="cpu", help="smoke: a plumbing check of this script, not evidence")
    args = p.parse_args()
    torch.set_num_threads(1)
    load_claims()
    rows = [json.loads(line) for line in args.out.read_text().splitlines()] if args.out.exists() else []
    rows = [r for r in rows if r["claims"] == args.claim and r.get("tier", "cpu") == args.tier]
    if not args.summary_only:
        done = {(r["seed"], r["setting"]) for r in rows}
        for seed in range(args.seed_offset, args.seed_offset + args.seeds):
            for setting in args.setting or ["today", "fast"]:
                if (seed, setting) in done:
                    continue
                values, cpu_s = run_seed(args.claim, seed, setting, args.tier)
                row = {"claims": args.claim, "tier": args.tier, "seed": seed, "setting": setting,
                       "cpu_s": cpu_s, "values": values}
                rows.append(row)
                with args.out.open("a") as f:
                    f.write(json.dumps(row) + "\n")
                print(f"seed {seed} {setting}: {cpu_s:.1f} CPU s", flush=True)
    summarize(rows, args.claim)


if __name__ == "__main__":
    main()
