"""Metric, table and column names are checked at registration against what the experiment declares
it returns (issue 10, item 6)."""
from __future__ import annotations

from dataclasses import dataclass

import pytest

from harness import Between, Check, Claim, Measurement, Plot, Tier, experiment, register
from harness.claim.outputs import claim_name_problems


@dataclass(frozen=True)
class OutConfig:
    x: float = 1.0


@experiment("test_robust_declared", OutConfig, outputs=("final_loss", "final_val_loss.*", "two_over_lr"),
            curves={"trajectory": ("step", "loss", "sharpness_*")})
def declared(cfg, ctx):
    return Measurement(scalars={"final_loss": 1.0})


@experiment("test_robust_undeclared", OutConfig)
def undeclared(cfg, ctx):
    return Measurement(scalars={"anything": 1.0})


def _claim(cid, exp=declared, metric="final_loss", reported=(), plots=()):
    return Claim(id=cid, source="t", statement="s", paper_value="p", experiment=exp,
                 tiers={"smoke": Tier(1, OutConfig()), "cpu": Tier(1, OutConfig())},
                 checks=(Check(metric, Between((0.0, 2.0))),), reported=reported, plots=plots)


def test_robust_outputs_typo_in_a_check_is_rejected_with_did_you_mean():
    with pytest.raises(ValueError, match=r"check metric 'final_los' .*did you mean final_loss"):
        register(_claim("test-robust-typo-check", metric="final_los"))


@pytest.mark.parametrize("kwargs,needle", [
    ({"reported": (("final_val_los", "x"),)}, "reported metric 'final_val_los'"),
    ({"plots": (Plot("trajectroy", "step", ("loss",), "t"),)}, "curve table 'trajectroy'"),
    ({"plots": (Plot("trajectory", "stp", ("loss",), "t"),)}, "column of table 'trajectory'"),
    ({"plots": (Plot("trajectory", "step", ("los",), "t"),)}, "'los' is not among"),
    ({"plots": (Plot("trajectory", "step", ("loss",), "t", hlines=(("two_over_l", "2/lr"),)),)},
     "reference line 'two_over_l'"),
])
def test_robust_outputs_reported_rows_and_plot_columns_are_checked(kwargs, needle):
    with pytest.raises(ValueError, match=needle):
        register(_claim("test-robust-typo-other", **kwargs))


def test_robust_outputs_patterns_cover_families_of_names_and_undeclared_experiments_still_load():
    ok = register(_claim("test-robust-patterns", metric="final_val_loss.ire",
                         plots=(Plot("trajectory", "step", ("loss", "sharpness_top"), "t",
                                     hlines=(("two_over_lr", "2/lr"), (2.0, "two"))),)))
    assert claim_name_problems(ok) == []
    loose = register(_claim("test-robust-undeclared", exp=undeclared, metric="whatever"))
    assert claim_name_problems(loose) == []


def test_robust_outputs_declarations_must_be_names():
    with pytest.raises(TypeError, match="outputs must be a tuple"):
        experiment("test_robust_bad_decl", OutConfig, outputs="final_loss")
    with pytest.raises(TypeError, match="curves must map"):
        experiment("test_robust_bad_decl2", OutConfig, curves={"t": "step"})


def test_robust_outputs_every_registered_claim_names_only_declared_outputs():
    """Runs nothing: every claim's experiment declares its outputs, and every name a claim uses is
    among them (an experiment added without declarations fails here, not in a run)."""
    from harness.run.loader import load_claims

    claims = load_claims()
    undeclared = sorted({c.experiment.experiment_name for c in claims.values()
                         if c.module.startswith("claims") and c.experiment.outputs is None})
    assert undeclared == [], f"experiments without outputs= declarations: {undeclared}"
    problems = {c.id: claim_name_problems(c) for c in claims.values() if claim_name_problems(c)}
    assert problems == {}
