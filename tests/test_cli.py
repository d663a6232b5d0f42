"""The CLI answers bad input with one line and a non-zero exit, never a traceback."""
import subprocess
import sys

import pytest

from harness.views.cli import main


@pytest.mark.parametrize("argv,needle", [
    (["run", "--claim", "eos-scale-invariat"], "did you mean eos-scale-invariant"),
    (["run", "--tier", "huge"], "unknown tier 'huge'"),
    (["run", "--claim", "eos-scale-invariant", "--seeds", "zero"], "positive integer"),
    (["run", "--claim", "eos-scale-invariant", "--seeds", "0"], "positive integer"),
    (["run", "--claim", "eos-scale-invariant-relu", "--set", "stepz=4"], "did you mean steps"),
    (["run", "--claim", "eos-scale-invariant", "--set", "steps"], "KEY=VALUE"),
    (["run", "--claim", "eos-scale-invariant-relu", "--set", "data=cifar10",
      "--set", "data_root=/no/such/dir"], "does not exist"),
    (["run", "--claim", "eos-scale-invariant", "--tier", "paper"], "has no 'paper' tier"),
    (["report", "nonexistent-run"], "no run 'nonexistent-run'"),
    (["frobnicate"], "invalid choice"),
])
def test_cli_bad_input_is_one_line(tmp_path, capsys, argv, needle):
    code = main(["--results", str(tmp_path / "results"), *argv])
    err = capsys.readouterr().err.strip()
    assert code == 2
    assert needle in err
    assert len(err.splitlines()) == 1 and "Traceback" not in err


def test_cli_list_shows_every_claim(capsys):
    assert main(["list"]) == 0
    out = capsys.readouterr().out
    for cid in ("gd-edge-of-stability", "eos-scale-invariant", "sharpness-reduction",
                "normalization-reduces-sharpness"):
        assert cid in out


def test_cli_module_entry_point_exits_nonzero_on_bad_claim(tmp_path):
    proc = subprocess.run([sys.executable, "-m", "harness", "--results", str(tmp_path), "run",
                           "--claim", "nope"], capture_output=True, text=True)
    assert proc.returncode == 2
    assert proc.stderr.startswith("harness: error: unknown claim 'nope'")
    assert "Traceback" not in proc.stderr


def test_cli_config_lists_paths_and_applies_set(capsys):
    assert main(["config", "gd-edge-of-stability", "--tier", "smoke"]) == 0
    before = capsys.readouterr().out
    assert "gd-edge-of-stability (smoke tier)" in before and "  steps = 60" in before
    assert "  optim.lr = 0.2" in before and "  optim.name = 'sgd'" in before
    assert main(["config", "gd-edge-of-stability", "--tier", "smoke", "--set", "steps=7", "--set", "optim.lr=0.3"]) == 0
    after = capsys.readouterr().out
    assert "  steps = 7" in after and "  optim.lr = 0.3" in after


@pytest.mark.parametrize("argv,needle", [
    (["config", "gd-edge-of-stabilty"], "did you mean gd-edge-of-stability"),
    (["config", "gd-edge-of-stability", "--tier", "gpuu"], "unknown tier 'gpuu'"),
    (["config", "gd-edge-of-stability", "--set", "stepz=3"], "did you mean steps"),
])
def test_cli_config_bad_input_is_one_line(capsys, argv, needle):
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert needle in err and len(err.splitlines()) == 1


def _as_text(value):
    return ",".join(str(v) for v in value) if isinstance(value, tuple) else str(value)


def test_cli_every_scalar_config_path_of_every_claim_round_trips_through_set():
    """What `harness config` prints is what `--set` accepts: each scalar path, set to its own value as text,
    gives back the same config (so every field of every tier is reachable from the command line)."""
    from harness.claim.config import apply_overrides, config_paths
    from harness.claim.registry import all_claims

    checked = 0
    for claim in all_claims().values():
        for tier in claim.tiers.values():
            for path, value in config_paths(tier.config):
                flat = isinstance(value, tuple) and value and all(isinstance(v, (int, float, str)) for v in value)
                if isinstance(value, (bool, int, float, str)) or flat:
                    assert apply_overrides(tier.config, {path: _as_text(value)}) == tier.config, (claim.id, path)
                    checked += 1
    assert checked > 500
