"""`harness plan`: per-claim cost estimates from two capped probes, and the downloads a run would make."""
from __future__ import annotations

import dataclasses
import math
import time
from dataclasses import dataclass, field

import pytest

from harness import Check, Claim, Measurement, Tier, Within, experiment, register
from harness.data import download
from harness.views.cli import main
from harness.views.cost import ClaimPlan, estimate, format_plan, pending_downloads, plan_claims, step_fields


@dataclass(frozen=True)
class Inner:
    steps: int = 100


@dataclass(frozen=True)
class PlanConfig:
    steps: int = 200
    arm: Inner = field(default_factory=Inner)
    data: str = "cifar10"
    data_root: str = "data/cifar-10-batches-py"


@dataclass(frozen=True)
class SleepConfig:
    steps: int = 40
    seconds_per_step: float = 0.004


@experiment("test_plan_sleep", SleepConfig)
def sleep_experiment(cfg: SleepConfig, ctx) -> Measurement:
    n = min(cfg.steps, ctx.max_steps or cfg.steps)
    time.sleep(n * cfg.seconds_per_step)
    return Measurement(scalars={"x": 1.0})


CLAIM = register(Claim(
    id="test-plan-sleep", source="Test", statement="x is one", paper_value="1", experiment=sleep_experiment,
    tiers={"smoke": Tier(seeds=3, config=SleepConfig()), "cpu": Tier(2, SleepConfig())},
    checks=(Check("x", Within(target=1.0, rtol=0.1)),),
))


def test_step_fields_walk_nested_configs():
    assert step_fields(PlanConfig()) == [200, 100]
    assert step_fields(SleepConfig()) == [40]


def test_estimate_separates_fixed_and_per_step_cost():
    # fixed 1 s, 0.01 s per step, two runs of 200 and 100 steps; probes at 5 and 20 steps per run
    t = lambda k: 1.0 + 0.01 * (min(200, k) + min(100, k))  # noqa: E731
    per_seed, how = estimate([200, 100], 5, 20, t(5), t(20))
    assert per_seed == pytest.approx(1.0 + 0.01 * 300)
    assert "300 steps" in how and "2 training runs" in how
    assert estimate([], 5, 20, 1.0, 2.0) == (2.0, "lower bound: no `steps` field, the 20-step probe's time")
    assert estimate([10], 5, 20, 1.0, 1.5)[0] == 1.5  # the probe ran it all
    assert estimate([1000], 5, 20, 2.0, 1.9)[1].startswith("measured: the 20-step probe was no slower")


def test_pending_downloads_name_the_file_and_stop_once_it_is_there(tmp_path, monkeypatch):
    monkeypatch.setenv(download.ENV_DIR, str(tmp_path))
    monkeypatch.delenv(download.ENV_URL, raising=False)
    (pending,) = pending_downloads(PlanConfig())
    assert pending["file"] == "cifar-10-python.tar.gz" and pending["bytes"] == download.REMOTES["cifar10"].size
    assert pending["dest"] == str(tmp_path / "cifar-10-python.tar.gz")
    (tmp_path / "cifar-10-python.tar.gz").write_bytes(b"verified before it got this name")
    assert pending_downloads(PlanConfig()) == []
    assert pending_downloads(SleepConfig()) == []


def test_pending_downloads_found_in_arms_tuples_and_dicts(tmp_path, monkeypatch):
    """momentum-edge-of-stability's gpu tier keeps its CIFAR-10 arms in a tuple of (name, config) pairs; an
    LLM config names its data in a dict: both are listed, so the plan does not start the download."""
    monkeypatch.setenv(download.ENV_DIR, str(tmp_path))
    monkeypatch.delenv(download.ENV_URL, raising=False)

    @dataclass(frozen=True)
    class Arms:
        arms: tuple = (("a", PlanConfig()), ("b", SleepConfig()))
        base: dict = field(default_factory=lambda: {"data": "wikitext103", "data_root": "data/wikitext-103-raw"})

    files = sorted(p["file"] for p in pending_downloads(Arms()))
    assert files == sorted([download.REMOTES["cifar10"].filename, download.REMOTES["wikitext103"].filename])


def test_pending_downloads_of_every_shipped_claim_at_the_gpu_tier(tmp_path, monkeypatch):
    from harness.run.loader import load_claims

    monkeypatch.setenv(download.ENV_DIR, str(tmp_path))  # an empty cache: every remote data set is pending
    monkeypatch.delenv(download.ENV_URL, raising=False)
    claims = load_claims()
    pending = {cid: pending_downloads(c.tier("gpu").config) for cid, c in claims.items() if "gpu" in c.tiers}
    assert pending["momentum-edge-of-stability"], "its CIFAR-10 arms must be listed, not fetched"
    assert pending["eos-scale-invariant"]


def test_plan_times_a_claim_and_scales_to_its_seeds(tmp_path):
    (p,) = plan_claims([CLAIM], "smoke", device="cpu", probe_steps=(5, 30))
    assert p.error == "" and len(p.probe_s) == 2 and p.seeds == 3
    assert math.isfinite(p.per_seed_s) and p.total_s == pytest.approx(3 * p.per_seed_s)
    assert p.per_seed_s >= p.probe_s[1] * 0.5
    text = format_plan([p, ClaimPlan("needs-data", 2, method="not timed: its data is not downloaded yet",
                                     downloads=[{"file": "f.tar.gz", "bytes": 2e6, "url": "u", "dest": "d"}])],
                       "smoke", "cpu", (5, 30))
    assert "test-plan-sleep" in text and "not timed: needs-data" in text
    assert "would download 2.0 MB first: f.tar.gz from u into d" in text


def test_plan_command_prints_per_claim_estimates(tmp_path, capsys):
    code = main(["--results", str(tmp_path / "r"), "plan", "--tier", "smoke", "--claim", "test-plan-sleep",
                 "--probe-steps", "2,8", "--device", "cpu"])
    out = capsys.readouterr().out
    assert code == 0
    assert "plan: tier smoke on cpu" in out and "test-plan-sleep" in out and "total:" in out


def test_plan_command_rejects_bad_probe_steps(tmp_path, capsys):
    code = main(["--results", str(tmp_path / "r"), "plan", "--tier", "smoke", "--claim", "test-plan-sleep",
                 "--probe-steps", "8"])
    assert code == 2 and "--probe-steps expects K1,K2" in capsys.readouterr().err


def test_numeric_settings_state_tf32_dtype_and_autocast():
    import torch

    from harness.views.cost import numeric_settings

    s = numeric_settings("cpu")
    assert s["cuda_matmul_allow_tf32"] == torch.backends.cuda.matmul.allow_tf32
    assert s["cudnn_allow_tf32"] == torch.backends.cudnn.allow_tf32
    assert s["default_dtype"] == "torch.float32" and s["autocast_enabled_at_start"] is False
    assert s["float32_matmul_precision"] in ("highest", "high", "medium")


def test_plan_reads_the_newest_matching_run_as_the_measured_cost(tmp_path, capsys):
    from harness.run.runner import RunOptions, run_claims
    from harness.run.store import ResultStore
    from harness.views.cost import last_measured

    store = ResultStore(tmp_path / "r")
    assert last_measured(store, CLAIM, "smoke", CLAIM.tier("smoke").config) is None  # nothing stored yet
    summary = run_claims([CLAIM], RunOptions(tier="smoke"), store)
    last = last_measured(store, CLAIM, "smoke", CLAIM.tier("smoke").config)
    seeds = summary["claims"][0]["seeds"]
    assert last is not None and last.run_id == summary["run_id"] and last.seeds == len(seeds)
    assert last.per_seed_s == pytest.approx(sum(s["wall_time_s"] for s in seeds) / len(seeds))
    # another config (a --set override) is another design: its cost is not the stored one
    other = dataclasses.replace(CLAIM.tier("smoke").config, steps=41)
    assert last_measured(store, CLAIM, "smoke", other) is None
    assert last_measured(store, CLAIM, "cpu", CLAIM.tier("smoke").config) is None  # another tier
    code = main(["--results", str(tmp_path / "r"), "plan", "--tier", "smoke", "--claim", "test-plan-sleep",
                 "--probe-steps", "2,8", "--device", "cpu"])
    out = capsys.readouterr().out
    assert code == 0 and f"measured last: {len(seeds)} x" in out and summary["run_id"] in out


# --- probes in a child process, and a gpu tier planned on paper (FLOPs and ops instead of seconds) ---

@dataclass(frozen=True)
class KillConfig:
    steps: int = 10


@experiment("test_plan_killed", KillConfig)
def killed_experiment(cfg: KillConfig, ctx) -> Measurement:
    import multiprocessing
    import os
    import signal

    if multiprocessing.parent_process() is not None:  # only a probe's child, never a test session that runs it
        os.kill(os.getpid(), signal.SIGKILL)  # what the OOM killer does to a probe too big for the machine
    raise RuntimeError("test_plan_killed runs only as a plan probe")


@dataclass(frozen=True)
class HugeConfig:
    steps: int = 10


@experiment("test_plan_huge", HugeConfig)
def huge_experiment(cfg: HugeConfig, ctx) -> Measurement:
    from pathlib import Path

    import torch

    available = next(int(line.split()[1]) for line in Path("/proc/meminfo").read_text().splitlines()
                     if line.startswith("MemAvailable:")) * 1024
    torch.empty(available, dtype=torch.uint8)  # never touched: only the probe's limit refuses it
    return Measurement(scalars={"x": 1.0})


@dataclass(frozen=True)
class MatmulConfig:
    steps: int = 50
    m: int = 8
    k: int = 16
    n: int = 4


@experiment("test_plan_matmul", MatmulConfig)
def matmul_experiment(cfg: MatmulConfig, ctx) -> Measurement:
    import torch

    a, b = torch.ones(cfg.m, cfg.k, dtype=torch.float64), torch.ones(cfg.k, cfg.n, dtype=torch.float64)
    for _ in range(min(cfg.steps, ctx.max_steps or cfg.steps)):
        torch.mm(a, b)  # 2 m k n float64 FLOPs and one op per step
    fixed = torch.mm(torch.ones(cfg.n, cfg.k), torch.ones(cfg.k, cfg.m))  # 2 n k m float32 FLOPs, once
    return Measurement(scalars={"x": float(fixed[0, 0] / cfg.k)})


def _claim(cid: str, exp, config) -> Claim:
    return register(Claim(id=cid, source="Test", statement="x is one", paper_value="1", experiment=exp,
                          tiers={"smoke": Tier(seeds=1, config=config), "cpu": Tier(seeds=1, config=config),
                                 "gpu": Tier(seeds=2, config=config)},
                          checks=(Check("x", Within(target=1.0, rtol=0.1)),)))


KILLED = _claim("test-plan-killed", killed_experiment, KillConfig())
HUGE = _claim("test-plan-huge", huge_experiment, HugeConfig())
MATMUL = _claim("test-plan-matmul", matmul_experiment, MatmulConfig())


def test_count_work_flops_of_a_linear_are_2mnk_by_dtype():
    import torch

    from harness.views.device_cost import count_work

    m, k, n = 8, 16, 4
    for dtype, bucket in ((torch.float64, "float64"), (torch.float32, "float32"), (torch.bfloat16, "16-bit")):
        lin, x = torch.nn.Linear(k, n, bias=False).to(dtype), torch.randn(m, k, dtype=dtype)
        with count_work() as work:
            lin(x)
        assert work.flops == 2 * m * n * k and work.flops_by_dtype == {bucket: 2 * m * n * k}
        assert work.ops == 1  # one mm; the weight's transpose is a view
    x = torch.randn(m, k, dtype=torch.float64, requires_grad=True)
    lin = torch.nn.Linear(k, n, bias=False).double()
    with count_work() as work:
        lin(x).sum().backward()
    assert work.flops == 3 * 2 * m * n * k  # forward, and the gradients of x and of the weight


def test_device_model_seconds_take_the_larger_of_arithmetic_and_launches():
    from harness.views.device_cost import H100_SXM

    u, peak, launch = H100_SXM.utilization, H100_SXM.peak_flops, H100_SXM.launch_s
    big = {"float64": 1e15, "16-bit": 1e15}
    expected = 1e15 / (u * peak["float64"]) + 1e15 / (u * peak["16-bit"])
    assert H100_SXM.seconds(big, 10) == pytest.approx(expected)
    assert H100_SXM.seconds({"float32": 1e6}, 1e6) == pytest.approx(1e6 * launch)  # tiny kernels: launches
    assert H100_SXM.seconds({"int64": 1e15}, 0) == H100_SXM.seconds({"float32": 1e15}, 0)
    assert "datasheet" in H100_SXM.describe() and "our choice" in H100_SXM.sources


def test_on_paper_only_for_a_cuda_tier_without_cuda():
    import torch

    from harness.views.device_cost import on_paper

    assert on_paper("gpu", None) == on_paper("paper", None) == (not torch.cuda.is_available())
    assert not on_paper("cpu", None) and not on_paper("gpu", "cpu") and not on_paper("smoke", None)


def test_death_reason_names_the_signal_and_the_oom_killer():
    from harness.views.probe import death_reason

    assert death_reason(-9) == "killed by signal 9 (SIGKILL) (out of memory?)"
    assert death_reason(-15) == "killed by signal 15 (SIGTERM)"
    assert death_reason(3) == "the probe's process exited with code 3 without an answer"


def test_plan_probe_killed_by_a_signal_is_its_row_and_the_plan_goes_on():
    killed, timed = plan_claims([KILLED, CLAIM], "smoke", device="cpu", probe_steps=(2, 8))
    assert killed.error == "killed by signal 9 (SIGKILL) (out of memory?)" and math.isnan(killed.total_s)
    assert timed.error == "" and math.isfinite(timed.total_s)
    text = format_plan([killed, timed], "smoke", "cpu", (2, 8))
    assert "probe failed: killed by signal 9 (SIGKILL) (out of memory?)" in text
    assert "not timed: test-plan-killed" in text


@pytest.mark.skipif(not __import__("sys").platform.startswith("linux"), reason="the memory cap is Linux's")
def test_plan_probe_bigger_than_free_memory_fails_alone_with_an_allocation_error():
    (p,) = plan_claims([HUGE], "smoke", device="cpu", probe_steps=(2, 8))
    assert p.error.startswith("out of memory on this machine (") and "of the memory available when it started" in p.error


def test_plan_on_paper_counts_one_seeds_flops_and_ops_by_the_two_point_fit():
    from harness.views.device_cost import H100_SXM

    cfg = MatmulConfig()
    (p,) = plan_claims([MATMUL], "gpu", device="cpu", probe_steps=(3, 12), paper=True)
    assert p.error == "" and p.seeds == 2
    assert p.flops == {"float64": cfg.steps * 2 * cfg.m * cfg.k * cfg.n, "float32": 2 * cfg.n * cfg.k * cfg.m}
    assert p.per_seed_s == H100_SXM.seconds(p.flops, p.ops) and p.total_s == 2 * p.per_seed_s
    # one mm per step: the fit's ops per seed exceed the fixed ops (those of a 0-step seed) by the steps
    (zero,) = plan_claims([MATMUL], "gpu", device="cpu", probe_steps=(3, 12), paper=True,
                          overrides={"steps": "0"})
    assert p.ops - zero.ops == cfg.steps
    assert p.method.startswith("on paper: ") and "launch-bound on NVIDIA H100 SXM" in p.method
    text = format_plan([p], "gpu", "H100", (3, 12))
    assert "on paper: " in text and "of the 45 min budget" in text and "datasheet" in text


@pytest.mark.skipif(__import__("torch").cuda.is_available(), reason="plans the gpu tier where CUDA is absent")
def test_plan_command_plans_a_gpu_tier_on_paper_without_cuda(tmp_path, capsys):
    code = main(["--results", str(tmp_path / "r"), "plan", "--tier", "gpu", "--claim", "test-plan-matmul",
                 "--probe-steps", "2,8"])
    out = capsys.readouterr().out
    assert code == 0 and "plan: tier gpu on NVIDIA H100 SXM on paper (no CUDA here" in out
    assert "on paper: " in out and "FLOP" in out and "ops per seed" in out


def _remote_data_named(config) -> set[str]:
    """Every remote data set named anywhere in a config, found through dataclasses.asdict (its own walk)."""
    found = set()

    def walk(v) -> None:
        if isinstance(v, dict):
            if v.get("data") in download.REMOTES and "data_root" in v:
                found.add(v["data"])
            for x in v.values():
                walk(x)
        elif isinstance(v, (list, tuple)):
            for x in v:
                walk(x)

    walk(dataclasses.asdict(config))
    return found


def test_plan_lists_every_shipped_claims_data_and_probes_none_of_them(tmp_path, monkeypatch):
    """`harness plan --tier gpu` on a machine without the data: each claim that names CIFAR-10 or
    WikiText-103 anywhere in its config (arms, bases) is listed with its download and not probed."""
    from harness.run.loader import load_claims
    from harness.views import probe

    monkeypatch.setenv(download.ENV_DIR, str(tmp_path))
    monkeypatch.delenv(download.ENV_URL, raising=False)
    probed = []
    monkeypatch.setattr(probe, "probe_in_child", lambda claim, *a, **k: probed.append(claim.id) or
                        probe.ProbeResult(error="not probed in this test"))
    shipped = {cid: c for cid, c in load_claims().items() if c.module.startswith("claims.") and "gpu" in c.tiers}
    plans = {p.claim: p for p in plan_claims(list(shipped.values()), "gpu", paper=True)}
    for cid, claim in shipped.items():
        names = _remote_data_named(claim.tier("gpu").config)
        files = {download.REMOTES[n].filename for n in names}
        assert {d["file"] for d in plans[cid].downloads} == files, cid
        assert (cid in probed) == (not names), cid
    assert {"momentum-edge-of-stability", "ire-llm-speedup"} <= {c for c, p in plans.items() if p.downloads}
