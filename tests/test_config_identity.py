"""A seed's key hashes what its config sets: fields away from their defaults, not where the data lives.

So adding a defaulted field to a config (or to the OptimizerSpec) keeps every stored seed, and moving the
data (data_root, cache_dir: run options) keeps the key; changing any setting still changes it.
"""
import dataclasses
from dataclasses import dataclass

import pytest

from harness.claim.config import apply_overrides, config_paths, derive
from harness.errors import ConfigError
from harness.optim import OptimizerSpec
from harness.run import provenance
from harness.run.loader import load_claims
from harness.run.store import ResultStore


@dataclass(frozen=True)
class Net:
    width: int = 8
    optim: OptimizerSpec = OptimizerSpec("sgd", lr=0.1)


@dataclass(frozen=True)
class Run:
    net: Net = Net()
    steps: int = 100
    data_root: str = ""


@dataclass(frozen=True)
class NetWithDepth:  # Net after a release adds a defaulted field
    width: int = 8
    optim: OptimizerSpec = OptimizerSpec("sgd", lr=0.1)
    depth: int = 2


@dataclass(frozen=True)
class RunWithNewFields:
    net: NetWithDepth = NetWithDepth()
    steps: int = 100
    data_root: str = ""
    eval_every: int = 10


def test_config_identity_adding_a_defaulted_field_keeps_the_hash():
    old, new = Run(steps=50, net=Net(width=4)), RunWithNewFields(steps=50, net=NetWithDepth(width=4))
    assert provenance.config_hash(old) == provenance.config_hash(new)
    assert provenance.config_identity(new) == {"steps": 50,
                                               "net": {"width": 4, "optim": {"name": "sgd", "lr": 0.1}}}
    assert provenance.config_hash(derive(new, {"net.depth": 3})) != provenance.config_hash(old)
    assert provenance.config_hash(derive(new, eval_every=5)) != provenance.config_hash(old)


def test_config_identity_a_value_equal_to_its_default_is_the_default():
    assert provenance.config_hash(Run(steps=100)) == provenance.config_hash(Run())
    assert provenance.config_hash(Run(steps=101)) != provenance.config_hash(Run())


# (the stdlib text source refuses a data_root it never reads; CIFAR-10 at the gpu tier reads one)
@pytest.mark.parametrize("claim_id, tier, path", [("catapult-phase", "cpu", "data_root"),
                                                  ("gd-edge-of-stability", "cpu", "data_root"),
                                                  ("ire-llm-early-loss", "cpu", "base.cache_dir"),
                                                  ("ire-generalization", "gpu", "data_root")])
def test_config_identity_changing_where_data_lives_keeps_the_seed_key(tmp_path, claim_id, tier, path):
    claim = load_claims()[claim_id]
    config, name = claim.tier(tier).config, claim.experiment.experiment_name
    moved = derive(config, {path: str(tmp_path / "elsewhere")})
    store = ResultStore(tmp_path / "store")
    key = store.experiment_key(name, config, 0, "cpu", None)
    assert store.experiment_key(name, moved, 0, "cpu", None) == key
    assert provenance.config_dict(moved) != provenance.config_dict(config)  # the record still says where


def other_values(value):
    if isinstance(value, bool):
        return [not value]
    if isinstance(value, int):
        return [value + 1, value * 2]
    if isinstance(value, float):
        return [value * 2 or 0.5, value / 2, value + 0.1]
    return []


def test_config_identity_every_setting_of_every_claim_changes_the_hash():
    changed = 0
    for cid, claim in sorted(load_claims().items()):
        for tier_name, tier in claim.tiers.items():
            before = provenance.config_hash(tier.config)
            for path, value in config_paths(tier.config):
                for other in (v for v in other_values(value) if v != value):
                    try:
                        moved = apply_overrides(tier.config, {path: str(other)})
                    except ConfigError:
                        continue
                    assert provenance.config_hash(moved) != before, (cid, tier_name, path)
                    changed += 1
                    break
    assert changed > 100


def test_config_identity_skips_only_location_fields():
    names = {f.name for cls in (Run,) for f in dataclasses.fields(cls)}
    assert provenance.LOCATION_FIELDS & names == {"data_root"}
    assert "data_root" not in provenance.config_identity(Run(data_root="/data"))
