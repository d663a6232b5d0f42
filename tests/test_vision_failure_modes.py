"""A diverged run is an `error` and a step-capped run is never `fails`, for ire-generalization,
sam-ire-flat-convergence and ire-toy-figure1 (through the runner, as `--set optim.lr=1e6` (the toy
part's `toy.lr=1e6` for sam-ire-flat-convergence) and `--max-steps 5` would run them)."""
import pytest

from harness.claim.registry import get_claim
from harness.run.loader import load_claims
from harness.run.runner import RunOptions, run_claims
from harness.run.store import ResultStore

CLAIMS = ("ire-generalization", "sam-ire-flat-convergence", "ire-toy-figure1")
LR_PATH = {"ire-generalization": "optim.lr", "sam-ire-flat-convergence": "toy.lr", "ire-toy-figure1": "optim.lr"}


@pytest.mark.parametrize("claim_id", CLAIMS)
def test_diverged_run_is_an_error_not_a_failure(claim_id, tmp_path):
    load_claims()
    options = RunOptions(tier="smoke", overrides={LR_PATH[claim_id]: "1e6"})
    entry = run_claims([get_claim(claim_id)], options, ResultStore(tmp_path))["claims"][0]
    assert entry["verdict"] == "error", entry["checks"]
    assert all("NumericalError" in s["error"] for s in entry["seeds"]), entry["seeds"]


# The cpu tier's own configs, cut to 5 steps (ire-generalization: 2 seeds and a 1-probe trace to stay fast).
CAPPED = {"ire-generalization": (2, {"trace_probes": "1"}), "sam-ire-flat-convergence": (None, {}),
          "ire-toy-figure1": (None, {})}


@pytest.mark.parametrize("claim_id", CLAIMS)
def test_step_capped_run_does_not_fail(claim_id, tmp_path):
    load_claims()
    seeds, overrides = CAPPED[claim_id]
    options = RunOptions(tier="cpu", seeds=seeds, max_steps=5, overrides=overrides)
    entry = run_claims([get_claim(claim_id)], options, ResultStore(tmp_path))["claims"][0]
    assert all(s["error"] is None for s in entry["seeds"]), entry["seeds"]
    verdicts = [c["verdict"] for c in entry["checks"]]
    assert "fails" not in verdicts and "error" not in verdicts, entry["checks"]
    assert entry["verdict"] != "holds"  # 5 steps are not the tier's scale: nothing is decided
