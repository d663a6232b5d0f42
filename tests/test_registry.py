from dataclasses import dataclass

import pytest

from harness import AtLeast, Check, Claim, Measurement, Tier, experiment, register
from harness.claim.config import apply_overrides
from harness.claim.registry import get_claim
from harness.errors import ConfigError, UnknownClaimError
from harness.run.loader import load_claims


@dataclass(frozen=True)
class ToyConfig:
    steps: int = 10
    lr: float = 0.1
    name: str = "a"
    flag: bool = False
    widths: tuple[int, ...] = (4, 4)


@dataclass(frozen=True)
class Nested:
    base: ToyConfig = ToyConfig()
    arms: int = 2


@experiment("test_registry_toy", ToyConfig)
def toy(cfg, ctx):
    return Measurement(scalars={"x": 1.0})


def _claim(**kw):
    args = dict(id="test-registry-claim", source="s", statement="st", paper_value="p", experiment=toy,
                tiers={"smoke": Tier(1, ToyConfig()), "cpu": Tier(2, ToyConfig())},
                checks=(Check("x", AtLeast(0.0)),))
    args.update(kw)
    return Claim(**args)


def test_register_rejects_bad_claims():
    with pytest.raises(ValueError, match="lower-case"):
        register(_claim(id="Bad_Id"))
    with pytest.raises(ValueError, match="needs tiers"):
        register(_claim(tiers={"smoke": Tier(1, ToyConfig())}))
    with pytest.raises(ValueError, match="unknown tiers"):
        register(_claim(tiers={"smoke": Tier(1, ToyConfig()), "cpu": Tier(1, ToyConfig()),
                               "huge": Tier(1, ToyConfig())}))
    with pytest.raises(TypeError, match="config must be ToyConfig"):
        register(_claim(tiers={"smoke": Tier(1, Nested()), "cpu": Tier(1, ToyConfig())}))
    with pytest.raises(ValueError, match="no checks"):
        register(_claim(checks=()))
    with pytest.raises(ValueError, match="no tolerance for tiers"):
        register(_claim(checks=(Check("x", AtLeast({"cpu": 1.0})),)))
    with pytest.raises(ConfigError, match="positive integer"):
        Tier(0, ToyConfig())


def test_register_rejects_duplicate_id():
    register(_claim(id="test-registry-dup", module="m1"))
    with pytest.raises(ValueError, match="registered twice"):
        register(_claim(id="test-registry-dup", module="m2"))


def test_unknown_claim_suggests_close_ids():
    load_claims()
    with pytest.raises(UnknownClaimError, match="did you mean eos-scale-invariant"):
        get_claim("eos-scale-invariat")


def test_all_project_claims_load_with_required_tiers():
    claims = load_claims()
    for cid in ("gd-edge-of-stability", "eos-scale-invariant", "sharpness-reduction",
                "normalization-reduces-sharpness"):
        assert {"smoke", "cpu"} <= set(claims[cid].tiers)


def test_overrides_are_type_checked():
    cfg = apply_overrides(ToyConfig(), {"steps": "5", "lr": "0.5", "flag": "true", "widths": "8,8,8"})
    assert (cfg.steps, cfg.lr, cfg.flag, cfg.widths) == (5, 0.5, True, (8, 8, 8))
    with pytest.raises(ConfigError, match="did you mean steps"):
        apply_overrides(ToyConfig(), {"stepz": "5"})
    with pytest.raises(ConfigError, match="expects int"):
        apply_overrides(ToyConfig(), {"steps": "five"})
    with pytest.raises(ConfigError, match="expects bool"):
        apply_overrides(ToyConfig(), {"flag": "maybe"})


def test_overrides_reach_nested_configs():
    cfg = apply_overrides(Nested(), {"base.lr": "0.3", "arms": "3"})
    assert cfg.base.lr == 0.3 and cfg.arms == 3
    with pytest.raises(ConfigError, match="is a group"):
        apply_overrides(Nested(), {"base": "1"})
