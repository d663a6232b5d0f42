"""sam-ire-flat-convergence's practical arm and failure modes: the toy's sampled-Fisher scores against
the closed form, the Fisher-mask arm against the exact one, a diverged toy run is an error and a capped
count gives a slope with no finite interval."""
import math

import pandas as pd
import pytest
import torch

from harness.claim.config import derive
from harness.claim.measurement import RunContext
from harness.errors import NumericalError
from harness.experiments.sam_flat import (
    ObliqueToy,
    SamFlatConfig,
    SamToyConfig,
    matched_loss_rows,
    sam_flat_convergence,
    toy_steps_to_flat,
)
from harness.models.toys import Figure1Toy


@pytest.mark.parametrize("u, v", [(1.0, 0.01), (0.3, -0.2), (-2.0, 0.5)])
def test_toy_sampled_fisher_scores_match_closed_form(u, v):
    toy = Figure1Toy(u, v)
    g = torch.Generator().manual_seed(0)
    y = torch.sqrt(torch.tensor(1 + u * u, dtype=torch.float64)) * v + torch.randn(
        (), generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    f = math.sqrt(1 + u * u) * v
    r2 = (f - float(y)) ** 2  # the drawn residual, shared by both coordinates
    h_u, h_v = toy.sampled_fisher_scores(g)
    assert float(h_u) == pytest.approx(r2 * (u * v) ** 2 / (1 + u * u), rel=1e-10)
    assert float(h_v) == pytest.approx(r2 * (1 + u * u), rel=1e-10)
    assert toy.u.grad is None and toy.v.grad is None  # scoring leaves .grad alone


@pytest.mark.parametrize("rho", [0.05, 0.02])
def test_fisher_mask_arm_finds_the_flat_axis_and_matches_exact_counts(rho):
    cfg = SamToyConfig()
    exact, share_exact = toy_steps_to_flat(rho, cfg, "samire", cap=10_000)
    for seed in (0, 1):
        steps, share = toy_steps_to_flat(rho, cfg, "samire_fisher", cap=10_000,
                                         generator=torch.Generator().manual_seed(seed))
        assert share == 1.0 and steps == exact  # the mask is the u axis at every refresh, for any draw
    assert share_exact == 1.0
    sam, _ = toy_steps_to_flat(rho, cfg, "sam", cap=100_000)
    assert sam > 5 * steps  # the comparison above is not between two equally slow runs


def test_fisher_mask_arm_needs_a_generator_and_arm_names_are_checked():
    with pytest.raises(ValueError, match="generator"):
        toy_steps_to_flat(0.05, SamToyConfig(), "samire_fisher", cap=10)
    with pytest.raises(ValueError, match="arm must be one of"):
        toy_steps_to_flat(0.05, SamToyConfig(), "ire", cap=10)


def test_kappa_zero_samire_is_sam():
    cfg = SamToyConfig()
    assert toy_steps_to_flat(0.05, cfg, "samire", cap=10_000, kappa=0.0)[0] == toy_steps_to_flat(
        0.05, cfg, "sam", cap=10_000)[0]


@pytest.mark.parametrize("arm", ["sam", "samire", "samire_fisher", "samire_fisher_oblique"])
def test_diverged_toy_run_raises_instead_of_counting_as_not_reached(arm):
    cfg = SamToyConfig(lr=1e6)
    with pytest.raises(NumericalError, match="diverged"):
        toy_steps_to_flat(0.05, cfg, arm, cap=1000, generator=torch.Generator().manual_seed(0))


SMALL = derive(SamFlatConfig(), toy={"rhos": (0.05, 0.04, 0.03)},
               net={"grad_evals": 20, "n_train": 64, "mask_batch": 32, "measure_every": 4, "trace_probes": 2})


def test_capped_counts_give_slopes_no_finite_interval():
    m = sam_flat_convergence(SMALL, RunContext(seed=0, tier="smoke", max_steps=5))
    for name in ("sam", "samire", "samire_fisher", "samire_fisher_oblique"):  # every count hit the cap: the slopes are not decided
        assert m.standard_errors[f"{name}_slope"] == math.inf
    assert any("lower bound" in n for n in m.notes)
    full = sam_flat_convergence(SMALL, RunContext(seed=0, tier="smoke"))
    assert all(math.isfinite(full.standard_errors[f"{n}_slope"])
               for n in ("sam", "samire", "samire_fisher", "samire_fisher_oblique"))
    assert full.scalars["null_steps_ratio_kappa0_at_smallest_rho"] == 1.0
    assert full.scalars["steps_ratio_fisher_at_smallest_rho"] > 1.0


def test_oblique_toy_mask_is_not_the_flat_projection_and_ranks_like_gauss_newton():
    """On the valley turned by phi the one-label score ranks a (nearest the valley) flatter than b, but the
    mask (a flat) is the axis e_a, not the valley's direction (cos phi, sin phi)."""
    toy = ObliqueToy(1.0, 0.01, 4.0)
    with torch.no_grad():
        u, v = (float(t) for t in toy.uv())
    assert u == pytest.approx(1.0) and v == pytest.approx(0.01)
    h_a, h_b = toy.sampled_fisher_scores(torch.Generator().manual_seed(0))
    phi = math.radians(4.0)
    # grad f = sqrt(1+u^2) * (-sin, cos) + (u v / sqrt(1+u^2)) * (cos, sin): the ratio is seed-free
    gf = [math.sqrt(1 + u * u) * -math.sin(phi) + u * v / math.sqrt(1 + u * u) * math.cos(phi),
          math.sqrt(1 + u * u) * math.cos(phi) + u * v / math.sqrt(1 + u * u) * math.sin(phi)]
    assert float(h_a) / float(h_b) == pytest.approx(gf[0] ** 2 / gf[1] ** 2, rel=1e-9)
    assert float(h_a) < float(h_b)
    steps, share = toy_steps_to_flat(0.05, SamToyConfig(), "samire_fisher_oblique", cap=10_000,
                                     generator=torch.Generator().manual_seed(1))
    assert share == 1.0 and steps < toy_steps_to_flat(0.05, SamToyConfig(), "sam", cap=100_000)[0]


def test_oblique_arm_diverges_when_its_mask_leak_exceeds_stability():
    """kappa * sin^2(phi) is the share of the amplification that lands on the sharp direction: at 30 degrees
    and kappa = 100 the leak (25) is far past GD's stability, and the run is an error, not a count."""
    cfg = SamToyConfig(oblique_deg=30.0)
    with pytest.raises(NumericalError, match="diverged"):
        toy_steps_to_flat(0.01, cfg, "samire_fisher_oblique", cap=10_000, generator=torch.Generator().manual_seed(0))


def test_matched_loss_rows_read_both_arms_at_the_same_loss():
    sam = pd.DataFrame({"loss": [2.0, 1.0, 0.5, 0.3], "trace": [10.0, 8.0, 6.0, 5.0],
                        "conv_sq_norm": [1.0, 2.0, 3.0, 4.0], "grad_evals": [0, 50, 100, 150]})
    ire = pd.DataFrame({"loss": [2.0, 0.9, 0.6, 0.4], "trace": [10.0, 4.0, 3.0, 2.0],
                        "conv_sq_norm": [1.0, 1.0, 1.0, 1.0], "grad_evals": [0, 75, 150, 225]})
    rows = matched_loss_rows(sam, ire)
    assert rows["net_matched_loss"] == 0.4  # the larger final loss
    assert rows["net_norm_trace_at_matched_loss_sam"] == 5.0 * 4.0  # first row with loss <= 0.4
    assert rows["net_norm_trace_at_matched_loss_samire"] == 2.0 * 1.0
    assert rows["net_norm_trace_ratio_at_matched_loss"] == pytest.approx(0.1)
    assert rows["net_grad_evals_at_matched_loss_samire"] == 225
