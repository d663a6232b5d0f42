"""Every input checked before compute (issue 22, item 2): config values, seed numbers, folders, `config`."""
from __future__ import annotations

import pytest

from harness.claim.config import apply_overrides, config_paths
from harness.claim.registry import all_claims
from harness.errors import ConfigError
from harness.run.loader import load_claims
from harness.run.planning import validate_config
from harness.views.cli import main

C = "eos-scale-invariant-relu"  # a claim whose config is a GDConfig itself (no ladder around it)
# Number fields where -1 is a meaningful value: the toys' start coordinates (u0, v0).
SIGNED = {"u0", "v0"}


@pytest.mark.parametrize("argv,needle", [
    (["run", "--claim", C, "--tier", "smoke", "--set", "lanczos_tol=-1"], "GDConfig.lanczos_tol must be > 0, got -1.0"),
    (["run", "--claim", C, "--tier", "smoke", "--set", "bn_eps=-1"], "GDConfig.bn_eps must be >= 0, got -1.0"),
    (["run", "--claim", C, "--tier", "smoke", "--set", "band=2.3,1.8"], "band must be (lo, hi) with 0 < lo < hi"),
    (["run", "--claim", C, "--tier", "smoke", "--seed-offset", str(10**23)],
     f"--seed-offset {10**23} is too large: seed numbers must stay <= 2147483647"),
    (["run", "--claim", C, "--tier", "smoke", "--reports", ""], "--reports must name a folder, got an empty string"),
    (["report", "--reports", ""], "--reports must name a folder, got an empty string"),
    (["plan", "--claim", C, "--tier", "smoke", "--seeds", "abc"], "--seeds expects a positive integer, got 'abc'"),
    (["plan", "--claim", C, "--tier", "smoke", "--seeds", "-3"], "--seeds expects a positive integer, got '-3'"),
    (["plan", "--claim", C, "--tier", "smoke", "--seeds", "99999999"], "--seeds 99999999 is more than 10000"),
    (["config", C, "--set", "widths="], "config key 'widths' must not be empty"),
    (["config", C, "--set", "lanczos_tol=-1"], "GDConfig.lanczos_tol must be > 0"),
])
def test_inputs_refused_with_one_line_before_compute(tmp_path, capsys, monkeypatch, argv, needle):
    monkeypatch.chdir(tmp_path)  # `--reports ''` would have written here
    code = main(["--results", str(tmp_path / "results"), *argv])
    captured = capsys.readouterr()
    err = captured.err.strip()
    assert code == 2 and needle in err, err
    assert len(err.splitlines()) == 1 and "Traceback" not in err
    assert not (tmp_path / "results" / "cache").exists() and not (tmp_path / "index.html").exists()


def test_inputs_every_count_tolerance_and_size_refuses_minus_one():
    """Every number field of every library experiment's config in the registered claims' tiers refuses -1
    when the config is built
    (the config's own __post_init__ or planning's generic checks), except the signed ones."""
    load_claims()
    accepted = set()
    for claim in all_claims().values():
        if not claim.experiment.__module__.startswith("harness."):
            continue  # a test's own throwaway experiment
        for tier in claim.tiers.values():
            for path, value in config_paths(tier.config):
                if isinstance(value, bool) or not isinstance(value, (int, float)) or path.split(".")[-1] in SIGNED:
                    continue
                try:
                    validate_config(apply_overrides(tier.config, {path: "-1"}), tier.config, claim.id)
                except ConfigError:
                    continue
                accepted.add(f"{type(tier.config).__name__}.{path}")
    assert not accepted, f"-1 accepted by {sorted(accepted)}"


@pytest.mark.parametrize("extra,needle", [
    (["--seed", "-1"], "--seed must be in [0, 2147483647], got -1"),
    (["--seed", "0", "--checkpoint-every", "0"], "--checkpoint-every must be >= 1, got 0"),
    (["--seed", "0", "--until-step", "-5"], "--until-step must be >= 1, got -5"),
])
def test_inputs_ddp_launcher_bounds_are_one_line(tmp_path, capsys, extra, needle):
    from harness.run import ddp

    code = ddp.main(["--claim", "ire-llm-speedup", "--results", str(tmp_path / "r"), *extra])
    err = capsys.readouterr().err.strip()
    assert code == 2 and needle in err and len(err.splitlines()) == 1
    assert not (tmp_path / "r").exists()
