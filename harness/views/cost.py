"""`harness plan --tier T`: what a run would cost on this device, measured before an hour is committed.

Each selected claim runs one seed twice with a small step cap (k1, then k2 steps per training run), in a
throw-away store with the cache off. Two timings separate the fixed cost of a seed (data, model, final
measurements) from the per-step cost: with S_i the `steps` fields of the claim's config (one per training
run), T(k) = fixed + c * sum_i min(S_i, k), so c = (T(k2) - T(k1)) / (sum min(S_i, k2) - sum min(S_i, k1)) and
one full seed costs fixed + c * sum_i S_i. A config without a `steps` field (epochs, timed blocks) gets the
k2 timing as a lower bound, marked as such. Data that would be downloaded is listed, not fetched (unless
asked): such a claim is not timed.

Beside the probe, the plan reads the results store (`--results`): the newest run of the claim at this
tier with the same config and experiment code gives a measured figure (seeds it ran, compute seconds per
seed). A design whose cost the step probe cannot see (an lr*wd ladder whose steps follow from its tau
range, timed blocks, epochs) is then planned from what it cost last time.

Each claim is probed in a child process of its own (harness.views.probe): a probe killed by the OOM
killer or a signal is that claim's "probe failed" row, and the plan goes on. A tier meant for CUDA (gpu,
paper) planned where CUDA is not available is planned on paper (harness.views.device_cost): the probes
count FLOPs and dispatched ops instead of seconds, each extrapolated to one seed by the same two-point fit,
and converted to seconds on a named GPU with a stated model. `--device cpu` times the tier on the CPU.
"""
from __future__ import annotations

import dataclasses
import math
import sys
from dataclasses import dataclass, field

from harness.run.planning import seed_count, step_fields
from harness.run.progress import fmt_duration


@dataclass
class ClaimPlan:
    """One claim's estimate: seconds per seed and in all, how it was obtained, and its pending downloads."""

    claim: str
    seeds: int
    probe_s: tuple[float, ...] = ()
    per_seed_s: float = math.nan
    total_s: float = math.nan
    method: str = ""
    downloads: list[dict] = field(default_factory=list)
    error: str = ""
    last: LastRun | None = None
    flops: dict[str, float] | None = None   # on paper: one seed's FLOPs by dtype (estimated)
    ops: float = math.nan                   # on paper: one seed's dispatched aten ops (estimated)


@dataclass(frozen=True)
class LastRun:
    """What the newest stored run of a claim (same tier, config and experiment code) cost."""

    run_id: str
    seeds: int
    per_seed_s: float

    @property
    def total_s(self) -> float:
        return self.seeds * self.per_seed_s

    def describe(self) -> str:
        return f"{self.seeds} x {fmt_duration(self.per_seed_s)} (run {self.run_id})"


def complete_runs(store, newest: int = 50) -> list[dict]:
    """The store's complete runs among its `newest`, newest first (unreadable ones skipped)."""
    from harness.errors import HarnessError

    runs = []
    for run_id in reversed(store.run_ids()[-newest:]):
        try:
            run = store.load_run(run_id)
        except HarnessError:
            continue
        if run.get("status") == "complete":
            runs.append(run)
    return runs


def last_measured(store, claim, tier: str, config, newest: int = 50, runs: list[dict] | None = None
                  ) -> LastRun | None:
    """The newest complete run among the store's `newest` runs whose entry for `claim` at `tier` has this
    config hash and experiment code hash: its seed count and mean compute seconds per seed. None if none.
    runs: the store's complete runs, newest first (`complete_runs`), when already read for other claims."""
    from harness.run import provenance

    want = (provenance.config_hash(config), provenance.experiment_code_hash(claim.experiment.experiment_name))
    for run in complete_runs(store, newest) if runs is None else runs:
        for entry in run.get("claims") or []:
            if entry.get("id") != claim.id or entry.get("tier") != tier:
                continue
            if (entry.get("config_hash"), entry.get("code_hash")) != want or not entry.get("seeds"):
                continue
            times = [float(s.get("wall_time_s") or 0.0) for s in entry["seeds"]]
            return LastRun(run["run_id"], len(times), sum(times) / len(times))
    return None


def pending_downloads(config) -> list[dict]:
    """The files a run of `config` would download first (see harness.data.download), deduplicated.

    Every (data, data_root) pair anywhere in the config is found: in nested dataclasses and in tuples,
    lists and dicts of them (the arms of an arms config, an LLM config's base)."""
    from harness.data.download import REMOTES, pending_download

    found = {}

    def walk(c) -> None:
        if dataclasses.is_dataclass(c) and not isinstance(c, type):
            names = {f.name for f in dataclasses.fields(c)}
            if {"data", "data_root"} <= names and c.data in REMOTES:
                pending = pending_download(c.data, str(c.data_root))
                if pending:
                    found[pending["file"]] = pending
            for f in dataclasses.fields(c):
                walk(getattr(c, f.name))
        elif isinstance(c, dict):
            if isinstance(c.get("data"), str) and c["data"] in REMOTES and "data_root" in c:
                pending = pending_download(c["data"], str(c["data_root"]))
                if pending:
                    found[pending["file"]] = pending
            for v in c.values():
                walk(v)
        elif isinstance(c, (tuple, list)):
            for v in c:
                walk(v)

    walk(config)
    return list(found.values())


def extrapolate(steps: list[int], k1: int, k2: int, v1: float, v2: float) -> tuple[float, bool]:
    """One full seed's value (seconds, FLOPs, ops) from its values v1, v2 at step caps k1 < k2: fixed +
    per step x all steps (module docstring), and whether that is a lower bound (no `steps` field: v2)."""
    if not steps:
        return v2, True
    done1, done2, full = (sum(min(s, k) for s in steps) for k in (k1, k2, 10**18))
    if done2 == done1 or v2 <= v1:
        return max(v1, v2), False
    per_step = (v2 - v1) / (done2 - done1)
    return max(0.0, v1 - per_step * done1) + per_step * full, False


def estimate(steps: list[int], k1: int, k2: int, t1: float, t2: float) -> tuple[float, str]:
    """Seconds for one full seed from timings t1, t2 at caps k1 < k2, and how it was estimated."""
    if not steps:
        return t2, f"lower bound: no `steps` field, the {k2}-step probe's time"
    done1, done2, full = (sum(min(s, k) for s in steps) for k in (k1, k2, 10**18))
    if done2 == done1:  # the probe already ran every step
        return t2, "measured: the probe ran the full config"
    if t2 <= t1:  # the longer probe was not slower: timing noise, or a cap this claim does not obey
        return max(t1, t2), (f"measured: the {k2}-step probe was no slower than the {k1}-step one (noise, or a "
                             "claim the step cap does not shorten), so its time is taken as is")
    per_step = (t2 - t1) / (done2 - done1)
    fixed = max(0.0, t1 - per_step * done1)
    return fixed + per_step * full, (f"{fixed:.2g} s fixed + {per_step * 1e3:.3g} ms/step x {full:,} steps "
                                     f"({len(steps)} training run{'s' if len(steps) > 1 else ''})")


def plan_claims(claims, tier: str, *, device: str | None = None, overrides: dict | None = None,
                probe_steps: tuple[int, int] = (3, 12), seeds: int | None = None,
                download: bool = False, store=None, paper: bool | None = None) -> list[ClaimPlan]:
    """Probe every claim at `tier` on this device; see the module docstring for the estimate.

    Args:
        claims: registered Claim objects. tier: the tier to plan. device: as `harness run --device`.
        overrides: --set pairs. probe_steps: (k1, k2) step caps, k1 < k2. seeds: planned seed count
            (None: each tier's own). download: fetch pending data first, so those claims are timed too.
            store: a ResultStore whose newest matching run gives each claim's measured cost (LastRun).
            paper: count FLOPs and ops and convert them to seconds on device_cost.H100_SXM instead of
            timing (None: when the tier is meant for CUDA and CUDA is not here, device_cost.on_paper).

    Returns:
        One ClaimPlan per claim, in order; a probe that fails (or whose process is killed) has its
        one-line error and no estimate.

    Raises:
        ConfigError: bad probe steps, tier or override (before anything runs).
    """
    from harness.claim.config import apply_overrides
    from harness.errors import ConfigError
    from harness.views.device_cost import on_paper
    from harness.views.probe import probe_in_child

    k1, k2 = probe_steps
    if not 1 <= k1 < k2:
        raise ConfigError(f"probe steps must be 1 <= k1 < k2, got {k1}, {k2}")
    paper = on_paper(tier, device) if paper is None else paper
    prepared = []
    for claim in claims:
        config = apply_overrides(claim.tier(tier).config, dict(overrides or {}))
        prepared.append((claim, config))
    plans = []
    stored = complete_runs(store) if store is not None else []  # read once for every claim
    for claim, config in prepared:
        p = ClaimPlan(claim.id, seed_count(claim, claim.tier(tier), seeds),
                      downloads=pending_downloads(config))
        plans.append(p)
        if store is not None:
            p.last = last_measured(store, claim, tier, config, runs=stored)
        if p.downloads and not download:
            p.method = "not timed: its data is not downloaded yet"
            continue
        what = "counting FLOPs and ops of" if paper else "timing"
        print(f"plan: {claim.id}: {what} one seed at {k1} and {k2} steps (in a child process)",
              file=sys.stderr, flush=True)
        probe = probe_in_child(claim, tier, dict(overrides or {}), (k1, k2), device, count=paper)
        if probe.error:
            p.error = probe.error
            continue
        p.probe_s = probe.times
        steps = step_fields(config)
        if paper:
            _on_paper(p, steps, k1, k2, probe)
        else:
            p.per_seed_s, p.method = estimate(steps, k1, k2, *probe.times)
        p.total_s = p.per_seed_s * p.seeds
    return plans


def _on_paper(p: ClaimPlan, steps: list[int], k1: int, k2: int, probe) -> None:
    """Fill `p` from the probe's counts: one seed's FLOPs by dtype and ops, its seconds on the model GPU."""
    from harness.views.device_cost import H100_SXM

    (f1, f2), (o1, o2) = probe.flops, probe.ops
    p.flops = {d: extrapolate(steps, k1, k2, f1.get(d, 0), f2.get(d, 0))[0] for d in sorted({*f1, *f2})}
    p.ops, bound = extrapolate(steps, k1, k2, o1, o2)
    p.per_seed_s = H100_SXM.seconds(p.flops, p.ops)
    flops = sum(p.flops.values())
    shares = ", ".join(f"{d} {f / flops:.0%}" for d, f in p.flops.items() if f) if flops else ""
    limit = "launch-bound" if p.per_seed_s == p.ops * H100_SXM.launch_s else "FLOP-bound"
    shares = f" ({shares})" if shares else ""
    p.method = (f"on paper: {'at least ' if bound else ''}{flops:.3g} FLOP{shares} and {p.ops:,.0f} ops per seed, "
                f"{limit} on {H100_SXM.name}")


def format_plan(plans: list[ClaimPlan], tier: str, device: str, probe_steps: tuple[int, int], *,
                sharing: int | None = None, exclusive: frozenset[str] | None = None) -> str:
    """The table `harness plan` prints: per claim and in all, plus what would be downloaded.

    On CUDA the total also gives the wall time with `sharing` seeds at once (None: `harness run`'s default
    pool, PER_GPU per visible GPU): the compute of the claims that share the device over `sharing`, plus that
    of the `exclusive` claims (None: those whose tier is exclusive), which run alone.
    """
    rows = [f"plan: tier {tier} on {device}; one seed probed at {probe_steps[0]} and {probe_steps[1]} steps "
            "per training run",
            f"{'claim':34s} {'seeds':>5s} {'per seed':>12s} {'all seeds':>12s} {'last run':>12s}  how"]
    for p in plans:
        how = f"probe failed: {p.error}" if p.error else p.method
        if p.downloads:
            how += " · downloads " + ", ".join(f"{d['file']} ({d['bytes'] / 1e6:.1f} MB)" for d in p.downloads)
        if p.last:
            how += f" · measured last: {p.last.describe()}"
        last = fmt_duration(p.last.total_s) if p.last else "-"
        rows.append(f"{p.claim:34s} {p.seeds:5d} {fmt_duration(p.per_seed_s):>12s} "
                    f"{fmt_duration(p.total_s):>12s} {last:>12s}  {how}")
    timed = [p.total_s for p in plans if math.isfinite(p.total_s)]
    untimed = [p.claim for p in plans if not math.isfinite(p.total_s)]
    downloads = {d["file"]: d for p in plans for d in p.downloads}
    total = f"total: {fmt_duration(sum(timed))} estimated for {len(timed)} claim(s)"
    if untimed:
        total += f"; not timed: {', '.join(untimed)}"
    if sharing is None:
        from harness.run.values import PER_GPU, visible_gpus

        sharing = PER_GPU * max(1, visible_gpus(device)) if device.startswith("cuda") else 1
    if exclusive is None:
        from harness.claim.registry import all_claims

        known = all_claims()
        exclusive = frozenset(p.claim for p in plans if p.claim in known and tier in known[p.claim].tiers
                              and known[p.claim].tier(tier).exclusive)
    if sharing > 1 and timed:
        alone = [p for p in plans if math.isfinite(p.total_s) and p.claim in exclusive]
        alone_s = sum(p.total_s for p in alone)
        total += (f"; wall about {fmt_duration((sum(timed) - alone_s) / sharing + alone_s)} with {sharing} seeds "
                  f"sharing {device} (their compute / {sharing}, if they overlap fully: tools/gpu-check's sharing "
                  f"stage measures it), timed alone: {', '.join(p.claim for p in alone) or 'none'}")
    measured = [p.last.total_s for p in plans if p.last]
    if measured:
        total += (f"; the newest matching runs measured {fmt_duration(sum(measured))} of compute for "
                  f"{len(measured)} claim(s) (wall time is about this over --jobs)")
    rows.append(total)
    if any(p.flops is not None for p in plans):
        rows.append(paper_total(plans))
    if downloads:
        size = sum(d["bytes"] for d in downloads.values()) / 1e6
        rows.append(f"would download {size:.1f} MB first: " + "; ".join(
            f"{d['file']} from {d['url']} into {d['dest']}" for d in downloads.values()))
    return "\n".join(rows)


def paper_total(plans: list[ClaimPlan]) -> str:
    """The on-paper line of `harness plan`: the counted claims' estimate against the gpu tier's budget."""
    from harness.views.device_cost import GPU_BUDGET_S, H100_SXM

    counted = [p for p in plans if p.flops is not None]
    total = sum(p.total_s for p in counted)
    missing = [p.claim for p in plans if p.flops is None]
    line = (f"on paper: {fmt_duration(total)} on one {H100_SXM.name} for {len(counted)} claim(s), "
            f"{total / GPU_BUDGET_S:.0%} of the {GPU_BUDGET_S / 60:.0f} min budget, one job at a time")
    if missing:
        line += f" (without {', '.join(missing)})"
    return line + f"; model: {H100_SXM.describe()}"


def plan_command(args) -> int:
    """The CLI's `plan` subcommand (args from harness.views.cli): print the estimate, exit 0."""
    from harness.claim.registry import TIERS, all_claims, get_claim
    from harness.errors import ConfigError
    from harness.run.planning import pick_device
    from harness.run.values import default_tier
    from harness.run.values import overrides as _overrides

    tier = args.tier or default_tier()
    if tier not in TIERS:
        raise ConfigError(f"unknown tier '{tier}'; tiers are: {', '.join(TIERS)}")
    try:
        k1, k2 = (int(v) for v in str(args.probe_steps).split(","))
    except ValueError:
        raise ConfigError(f"--probe-steps expects K1,K2 (e.g. 2,6), got '{args.probe_steps}'") from None
    claims = [get_claim(c) for c in args.claim] if args.claim else list(all_claims().values())
    claims = [c for c in claims if tier in c.tiers] if not args.claim else claims
    device = str(pick_device(tier, args.device))
    from harness.run.store import ResultStore
    from harness.views.device_cost import H100_SXM, on_paper

    if on_paper(tier, args.device):
        device = f"{H100_SXM.name} on paper (no CUDA here: FLOPs and ops counted on {device})"

    plans = plan_claims(claims, tier, device=args.device, overrides=_overrides(args.set), probe_steps=(k1, k2),
                        seeds=_planned_seeds(args.seeds), download=args.download,
                        store=ResultStore(args.results))
    print(format_plan(plans, tier, device, (k1, k2)))
    return 0


def _planned_seeds(text: str | None) -> int | None:
    """--seeds as `run` reads it: a positive integer up to harness.run.planning.MAX_SEEDS, or None."""
    from harness.run.planning import RunOptions
    from harness.run.values import positive_int as _positive_int

    if text is None:
        return None
    return RunOptions(tier="cpu", seeds=_positive_int(text, "--seeds")).seeds  # the same bounds as run


def numeric_settings(device: str | None = None) -> dict:
    """The float settings that change GPU numbers, for a run's provenance (read, never changed here).

    TF32 lets float32 matmuls/convolutions on Ampere+ GPUs round inputs to 10 mantissa bits; autocast and
    bf16 change the compute dtype; the default dtype decides what an unqualified tensor is. A check whose
    numbers depend on float64 (curvature eigenvalues) states its own dtype in its config.

    Args:
        device: the run's device ("cuda", "cuda:0", "cpu"; None: cuda when available).

    Returns:
        A flat dict of plain values: allow_tf32 flags, float32 matmul precision, default dtype, cudnn
        benchmark/deterministic, deterministic algorithms, autocast state at the call, and on CUDA the
        device's compute capability and bf16 support.
    """
    import torch

    out = {
        "cuda_matmul_allow_tf32": bool(torch.backends.cuda.matmul.allow_tf32),
        "cudnn_allow_tf32": bool(torch.backends.cudnn.allow_tf32),
        "float32_matmul_precision": torch.get_float32_matmul_precision(),
        "default_dtype": str(torch.get_default_dtype()),
        "cudnn_benchmark": bool(torch.backends.cudnn.benchmark),
        "cudnn_deterministic": bool(torch.backends.cudnn.deterministic),
        "deterministic_algorithms": bool(torch.are_deterministic_algorithms_enabled()),
        "autocast_enabled_at_start": bool(torch.is_autocast_enabled()),
        "autocast_note": "autocast is off unless a claim's config turns it on (e.g. bf16=True: bf16 autocast "
                         "on CUDA only; CPU runs float32)",
    }
    dev = torch.device(device) if device else torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if dev.type == "cuda" and torch.cuda.is_available():
        out["cuda_capability"] = ".".join(map(str, torch.cuda.get_device_capability(dev)))
        out["cuda_bf16_supported"] = bool(torch.cuda.is_bf16_supported())
    return out
