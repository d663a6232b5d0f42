"""No setting that silently does nothing: a schedule field on a loop that never reads it is refused.

The schedule fields of an OptimizerSpec (harness.optim.CONSTANT_LR) are read only through
`OptimizerSpec.lr_at`. "Reads" is static here: the experiment's module or an experiments module it
imports calls `lr_at` (an experiment that imports such a loop but runs its own at a fixed lr is not told
apart).
A claim whose experiment never calls it must refuse them at config time (the `--set` a user types), so
`--set optim.schedule=cosine` on a constant-lr loop is one line, not a run that changes nothing.
"""
import ast
import dataclasses
import importlib
import inspect

import pytest

from harness.config import apply_overrides
from harness.errors import ConfigError
from harness.loader import load_claims
from harness.optim import CONSTANT_LR, OptimizerSpec


def spec_paths(config, prefix: str = ""):
    """Config paths ("optim", "base.optim") of every OptimizerSpec a (nested) dataclass config holds."""
    for f in dataclasses.fields(config):
        value = getattr(config, f.name)
        if isinstance(value, OptimizerSpec):
            yield prefix + f.name
        elif dataclasses.is_dataclass(value):
            yield from spec_paths(value, f"{prefix}{f.name}.")


def reads_schedule(module_name: str) -> bool:
    """True when the experiment's module, or an experiments module it imports, calls `lr_at`."""
    seen, todo = set(), [module_name]
    while todo:
        name = todo.pop()
        if name in seen:
            continue
        seen.add(name)
        tree = ast.parse(inspect.getsource(importlib.import_module(name)))
        for node in ast.walk(tree):
            if isinstance(node, ast.Attribute) and node.attr == "lr_at":
                return True
            if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("harness.experiments."):
                todo.append(node.module)
    return False


def other_value(field: str, current):
    """A value of a schedule field that differs from `current` and that the spec itself accepts."""
    if field == "schedule":
        return "constant" if current == "cosine" else "cosine"
    if field == "lr_warmup_steps":
        return current + 1
    return 0.25 if current == 0.5 else 0.5


def test_config_reads_every_schedule_setting_is_read_or_refused():
    silent, checked = [], 0
    for cid, claim in sorted(load_claims().items()):
        reads = reads_schedule(claim.experiment.__module__)
        for tier_name, tier in claim.tiers.items():
            for path in spec_paths(tier.config):
                spec = tier.config
                for part in path.split("."):
                    spec = getattr(spec, part)
                for field in CONSTANT_LR:
                    key, checked = f"{path}.{field}", checked + 1
                    try:
                        apply_overrides(tier.config, {key: str(other_value(field, getattr(spec, field)))})
                    except ConfigError as e:
                        assert "\n" not in str(e) and field in str(e)  # one line that names the field
                        continue
                    if not reads:
                        silent.append((cid, tier_name, key))
    assert checked > 0
    assert not silent, ("schedule settings accepted by a loop that never reads them (claim, tier, path): "
                        f"{silent}")


@pytest.mark.parametrize("key, value", [("optim.schedule", "cosine"), ("optim.lr_warmup_steps", "10"),
                                        ("optim.final_lr_fraction", "0.1")])
def test_config_reads_full_batch_gd_refuses_a_schedule(key, value):
    config = load_claims()["gd-edge-of-stability"].tier("cpu").config
    with pytest.raises(ConfigError, match=rf"^{key.replace('.', '[.]')} is set by the full-batch loop"):
        apply_overrides(config, {key: value})
