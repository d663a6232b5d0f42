"""The data-parallel entry point: two gloo processes under torchrun, resume, and the runner reading it back."""
import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch

from harness.claim import registry
from harness.claim.config import apply_overrides
from harness.data.text import stdlib_corpus
from harness.distributed import Comm
from harness.errors import ConfigError, UnknownClaimError
from harness.experiments.llm import speedup_arms
from harness.run import ddp, loader
from harness.run.loader import load_claims
from harness.run.runner import RunOptions, run_claims
from harness.run.store import ResultStore

ROOT = Path(__file__).resolve().parents[1]
CLAIM = load_claims()["ire-llm-speedup"]
pytestmark = pytest.mark.skipif(sys.platform == "win32", reason="torchrun with gloo on Linux/macOS")


def tiny(cache) -> dict:
    """The paper tier shrunk to a CPU toy (model, data, sizes); everything else is the paper tier's."""
    return {"base.model": "tiny-1m", "base.data": "stdlib", "base.data_root": "", "base.tokenizer": "bytes",
            "base.max_bytes": "300000",
            "base.seq_len": "16", "base.batch_size": "4", "base.steps": "6", "base.optim.lr_warmup_steps": "1",
            "base.eval_every": "2", "base.val_windows": "4", "base.eval_batch": "4", "base.cache_dir": str(cache)}


def launch(results, overrides: dict, *extra: str) -> subprocess.Popen:
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2",
           "-m", "harness.run.ddp", "--claim", "ire-llm-speedup", "--tier", "paper", "--seed", "0",
           "--device", "cpu", "--results", str(results), *extra]
    cmd += [arg for k, v in overrides.items() for arg in ("--set", f"{k}={v}")]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT)}
    return subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def finish(*procs: subprocess.Popen) -> str:
    """Wait for the launches; returns their output (asserting each exited 0)."""
    outs = []
    for proc in procs:
        out, _ = proc.communicate(timeout=300)
        assert proc.returncode == 0, out[-4000:]
        outs.append(out)
    return "\n".join(outs)


def arm_record(results, overrides: dict, arm: str) -> dict | None:
    """The stored record of one arm, found by content (the key needs the code hash; content is enough)."""
    config = speedup_arms(apply_overrides(CLAIM.tier("paper").config, overrides))[arm]
    from harness.run import provenance
    wanted = json.loads(json.dumps(provenance.config_dict(config)))  # as stored: tuples (betas) become lists
    for path in (Path(results) / "cache").glob("*.json"):
        record = json.loads(path.read_text())
        if record["experiment"] == "llm_pretrain_arm" and record["config"] == wanted:
            return record
    return None


@pytest.fixture(scope="module")
def paper_arm(tmp_path_factory):
    """The paper tier's admire arm for 2 steps, launched once in the background (it runs beside the
    other test's launches)."""
    tmp = tmp_path_factory.mktemp("paper")
    root = tmp / "wikitext-103-raw"
    root.mkdir()
    article = " = Valkyria Chronicles = \n\n Senjō no Valkyria is a tactical role @-@ playing game . \n"
    (root / "wiki.train.raw").write_text(article * 200, encoding="utf-8")
    (root / "wiki.valid.raw").write_text(article.upper() * 20, encoding="utf-8")
    # The paper tier's model (wikitext-60m, seq 150), schedule and launch; bytes instead of GPT-2 BPE
    # (no tiktoken here) and 2 sequences per step instead of 240.
    overrides = {"base.data_root": str(root), "base.tokenizer": "bytes", "base.batch_size": "2",
                 "base.val_windows": "2", "base.cache_dir": str(tmp / "tokens")}
    proc = launch(tmp / "results", overrides, "--arm", "admire_k3", "--max-steps", "2")
    yield lambda: (finish(proc), arm_record(tmp / "results", overrides, "admire_k3"))[1]
    if proc.poll() is None:
        proc.kill()


def test_ddp_seed_is_stored_for_the_runner_and_resume_matches_uninterrupted(tmp_path, paper_arm):
    cache = tmp_path / "tokens"
    stdlib_corpus(cache, max_bytes=300_000)  # built once here, not by two launches at once
    overrides = tiny(cache)
    full, parts = tmp_path / "full", tmp_path / "parts"
    # one uninterrupted seed (every arm) beside one arm stopped at step 3 (a checkpoint between evaluations)
    uninterrupted_run = launch(full, overrides, "--checkpoint-every", "3")
    finish(launch(parts, overrides, "--arm", "admire_k3", "--checkpoint-every", "3", "--until-step", "3"))
    assert arm_record(parts, overrides, "admire_k3") is None
    assert len(list((parts / "checkpoints").glob("*.pt"))) == 1
    out = finish(launch(parts, overrides, "--arm", "admire_k3", "--checkpoint-every", "3"), uninterrupted_run)
    assert "at step 3" in out and "resumed" in out, "no resume: did harness/ change between launches?"
    assert not list((parts / "checkpoints").glob("*.pt"))  # removed once the arm is stored

    uninterrupted, resumed = arm_record(full, overrides, "admire_k3"), arm_record(parts, overrides, "admire_k3")
    assert uninterrupted["world_size"] == resumed["world_size"] == 2
    a, b = uninterrupted["measurement"], resumed["measurement"]
    for column in ("step", "val_loss", "train_loss", "grad_evals", "tokens"):
        assert a["curves"]["val"][column] == b["curves"]["val"][column], column
    assert a["scalars"]["param_sq_norm"] == b["scalars"]["param_sq_norm"]
    assert a["scalars"]["grad_evals"] == 6 + 1 and a["scalars"]["steps"] == 6  # one Fisher refresh (K = 10)
    assert any("resumed" in note for note in b["notes"]) and not a["notes"]

    # the runner finds the seed, and (seed record removed) composes it from the stored arms alone:
    # in process, a paper-tier arm that is not stored raises, so this also checks the arm keys match
    options = RunOptions(tier="paper", seeds=1, device="cpu", overrides=overrides)
    entry = run_claims([CLAIM], options, ResultStore(full))["claims"][0]
    assert entry["seeds"][0]["cached"] and entry["verdict"] != "error"
    Path(ResultStore(full).seed_path(entry["seeds"][0]["key"])).unlink()
    again = run_claims([CLAIM], options, ResultStore(full))["claims"][0]
    assert not again["seeds"][0]["cached"] and again["verdict"] != "error"
    assert again["checks"][0]["estimate"] == entry["checks"][0]["estimate"]
    with pytest.raises(ConfigError, match="torchrun"):  # a different seed has nothing stored
        run_claims([CLAIM], RunOptions(tier="paper", seeds=2, device="cpu", overrides=overrides),
                   ResultStore(full))


def test_ddp_paper_tier_arm_runs_two_steps(paper_arm):
    record = paper_arm()
    m = record["measurement"]
    assert record["world_size"] == 2 and record["max_steps"] == 2 and record["error"] is None
    assert m["scale"]["model"] == "wikitext-60m" and m["scale"]["seq_len"] == 150 and m["scale"]["horizon"] == 50_000
    assert m["scalars"]["steps"] == 2 and m["scalars"]["diverged"] == 0
    assert all(isinstance(v, float) for v in m["curves"]["val"]["val_loss"])


TOY_CLAIM = textwrap.dedent('''
    from dataclasses import dataclass

    from harness import AtLeast, Check, Claim, Measurement, Tier, experiment, register


    @dataclass(frozen=True)
    class DdpToyConfig:
        offset: float = 1.0


    @experiment("ddp_toy", DdpToyConfig)
    def ddp_toy(cfg, ctx):
        return Measurement(scalars={"x": cfg.offset + 0.01 * ctx.seed})


    CLAIM = register(Claim(id="ddp-toy", source="test", statement="x is at least 0.5", paper_value="1",
                           experiment=ddp_toy,
                           tiers={"smoke": Tier(1, DdpToyConfig()), "cpu": Tier(1, DdpToyConfig())},
                           checks=(Check("x", AtLeast(0.5)),)))
''')


@pytest.fixture
def isolated(monkeypatch, tmp_path):
    """A registry, loader, sys.path and module table that loading claims from tmp_path leaves as found."""
    load_claims()
    monkeypatch.setattr(registry, "_CLAIMS", dict(registry._CLAIMS))
    monkeypatch.setattr(registry, "_EXPERIMENTS", dict(registry._EXPERIMENTS))
    monkeypatch.setattr(loader, "_SOURCES", list(loader._SOURCES))
    monkeypatch.setattr(sys, "path", list(sys.path))
    yield
    for name, module in list(sys.modules.items()):
        path = getattr(module, "__file__", None)
        if path is not None and Path(path).resolve().is_relative_to(tmp_path.resolve()):
            del sys.modules[name]


def test_ddp_claims_path_is_repeatable():
    base = ["--claim", "c", "--seed", "0"]
    args = ddp.build_parser().parse_args([*base, "--claims-path", "a", "--claims-path", "b"])
    assert args.claims_path == ["a", "b"]
    assert ddp.build_parser().parse_args(base).claims_path == []


def test_ddp_claims_path_claim_is_stored_with_the_runners_key_and_record(tmp_path, isolated):
    folder = tmp_path / "my_claims"
    folder.mkdir()
    (folder / "ddp_toy_claim.py").write_text(TOY_CLAIM)
    results = tmp_path / "results"
    argv = ["--claim", "ddp-toy", "--tier", "smoke", "--seed", "0", "--results", str(results),
            "--claims-path", str(folder)]
    with pytest.raises(UnknownClaimError):  # without the folder the claim does not exist
        ddp.run_seed(ddp.build_parser().parse_args(argv[:-2]), Comm(), torch.device("cpu"))
    # one rank in process: the launcher's own code path, without a process group
    assert ddp.run_seed(ddp.build_parser().parse_args(argv), Comm(), torch.device("cpu")) == 0
    claim = registry.get_claim("ddp-toy")
    entry = run_claims([claim], RunOptions(tier="smoke", device="cpu"), ResultStore(results))["claims"][0]
    assert entry["seeds"][0]["cached"] and entry["verdict"] != "error"  # the runner's key found it
    launched = ResultStore(results).load_seed(entry["seeds"][0]["key"])
    fresh = run_claims([claim], RunOptions(tier="smoke", device="cpu"), ResultStore(tmp_path / "runner"))
    computed = ResultStore(tmp_path / "runner").load_seed(fresh["claims"][0]["seeds"][0]["key"])
    assert set(launched) == set(computed) | {"world_size"} and launched["world_size"] == 1
    assert launched["run"] is None and launched["measurement"] == computed["measurement"]


def test_ddp_launch_refuses_an_arm_another_process_is_computing(tmp_path):
    """Two launches of one seed on one store: the second stops with one line instead of training the same arm
    beside the first (its other ranks would otherwise wait in a collective until the group times out)."""
    from harness.errors import HarnessError
    from harness.experiments.llm_train import llm_pretrain_arm
    from harness.run.seeds import Session, seed_key

    cache, results = tmp_path / "tokens", tmp_path / "results"
    stdlib_corpus(cache, max_bytes=300_000)
    overrides = tiny(cache)
    argv = ["--claim", "ire-llm-speedup", "--tier", "paper", "--seed", "0", "--device", "cpu", "--results",
            str(results), "--arm", "admire_k3", *[a for k, v in overrides.items() for a in ("--set", f"{k}={v}")]]
    arm = speedup_arms(apply_overrides(CLAIM.tier("paper").config, overrides))["admire_k3"]
    session = Session(RunOptions(tier="paper", overrides=overrides, device="cpu"), torch.device("cpu"),
                      ResultStore(results), run_id=None)
    key = seed_key(llm_pretrain_arm, arm, 0, session)
    held = ResultStore(results).lock_seed(key)  # as a live launch computing this arm holds it
    try:
        with pytest.raises(HarnessError, match="llm_pretrain_arm seed 0 is being computed by another process"):
            ddp.run_seed(ddp.build_parser().parse_args(argv), Comm(), torch.device("cpu"))
    finally:
        held.release()
    assert ResultStore(results).load_seed(key) is None
    assert ddp.run_seed(ddp.build_parser().parse_args(argv), Comm(), torch.device("cpu")) == 0
    assert ResultStore(results).load_seed(key)["error"] is None  # once free, the same command trains it
