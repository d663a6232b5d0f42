"""One way to compose configs (harness.claim.config): paths into groups, in claim files and on the command line."""
from dataclasses import dataclass, field

import pytest

from harness.claim.config import apply_overrides, config_paths, derive, refuse_unread
from harness.errors import ConfigError
from harness.optim import OptimizerSpec


@dataclass(frozen=True)
class Inner:
    steps: int = 10
    optim: OptimizerSpec = OptimizerSpec("sgd", lr=0.1)
    widths: tuple[int, ...] = (4, 4)

    def __post_init__(self):
        if self.steps < 1:
            raise ConfigError(f"steps must be >= 1, got {self.steps}")


@dataclass(frozen=True)
class Outer:
    base: Inner = Inner()
    arms: tuple[str, ...] = ("a", "b")
    note: str | None = None
    label: str = field(default="x")


def test_config_derive_sets_paths_and_dict_groups_and_leaves_the_original():
    cfg = Outer()
    a = derive(cfg, {"base.optim.lr": 0.2, "base.steps": 3}, label="y")
    b = derive(cfg, base={"optim.lr": 0.2, "steps": 3}, label="y")
    assert a == b
    assert (a.base.optim.lr, a.base.steps, a.label) == (0.2, 3, "y")
    assert cfg == Outer()  # unchanged
    c = derive(cfg.base, optim={"lr": 0.3, "momentum": 0.9})
    assert c.optim == OptimizerSpec("sgd", lr=0.3, momentum=0.9)
    whole = derive(cfg, base=Inner(steps=2))  # a dataclass value replaces the group
    assert whole.base.steps == 2


def test_config_apply_overrides_parses_strings_to_each_fields_type():
    cfg = apply_overrides(Outer(), {"base.optim.lr": "0.5", "base.optim.nesterov": "true",
                                    "base.optim.momentum": "0.9", "base.widths": "8,16", "arms": "c",
                                    "note": "none"})
    assert cfg.base.optim == OptimizerSpec("sgd", lr=0.5, momentum=0.9, nesterov=True)
    assert cfg.base.widths == (8, 16) and cfg.arms == ("c",) and cfg.note is None


@pytest.mark.parametrize("changes, message", [
    ({"base.optim.lrr": "1"}, "unknown config key 'lrr' for OptimizerSpec; did you mean lr?"),
    ({"bsae.steps": "1"}, "did you mean base?"),
    ({"base": "1"}, "config key 'base' is a group; set its fields as base.FIELD=VALUE"),
    ({"label.x": "1"}, "config key 'label' of Outer is a value, not a group"),
    ({"base.steps": "two"}, "config key 'steps' expects int, got 'two'"),
    ({"base.steps": "0"}, "steps must be >= 1, got 0"),               # the config's own validation
    ({"base.optim.rho": "0.1"}, "optimizer 'sgd' does not read rho=0.1"),  # the spec's
])
def test_config_bad_override_is_one_line(changes, message):
    with pytest.raises(ConfigError) as e:
        apply_overrides(Outer(), changes)
    assert message in str(e.value) and "\n" not in str(e.value)


def test_config_derive_rejects_unknown_paths_like_the_command_line():
    with pytest.raises(ConfigError, match="did you mean steps"):
        derive(Inner(), stpes=3)
    with pytest.raises(ConfigError, match="is a group"):
        derive(Outer(), base=3)


def test_config_paths_lists_every_settable_leaf_with_its_path():
    paths = dict(config_paths(Outer()))
    assert paths["base.optim.lr"] == 0.1 and paths["base.steps"] == 10 and paths["label"] == "x"
    assert "base" not in paths and "base.optim" not in paths
    for path, value in paths.items():  # each path round-trips through derive
        assert dict(config_paths(derive(Outer(), {path: value}))) == paths


def test_optimizer_spec_as_kind_keeps_what_the_kind_reads_and_resets_the_rest():
    full = OptimizerSpec("sam_ire", lr=0.1, momentum=0.9, weight_decay=5e-4, rho=0.05, kappa=2.0, gamma=0.6,
                         mask_every=5)
    assert full.as_kind("sgd") == OptimizerSpec("sgd", lr=0.1, momentum=0.9, weight_decay=5e-4)
    assert full.as_kind("sam") == OptimizerSpec("sam", lr=0.1, momentum=0.9, weight_decay=5e-4, rho=0.05)
    assert full.as_kind("ire", warmup_steps=7) == OptimizerSpec(
        "ire", lr=0.1, momentum=0.9, weight_decay=5e-4, kappa=2.0, gamma=0.6, mask_every=5, warmup_steps=7)
    assert full.as_kind("sam_ire") == full
    with pytest.raises(ConfigError, match="did you mean"):
        full.as_kind("sgdd")


# Optimizer hyper-parameters an experiment config keeps outside its `optim` spec, and why.
OUTSIDE_OPTIM = {
    ("SamToyConfig", "lr"): "the toy builds one optimizer per swept radius (rho from rhos, kappa = 1/rho)",
    ("SamToyConfig", "mask_every"): "as lr: the practical SAM-IRE arm's K, beside the swept radii",
    ("RotatedToyConfig", "gamma"): "the mask size (the true flat fraction p / 2p); the lr is set from lr_sharpness / "
                                   "lambda_max(theta0) per run, so no fixed spec holds it",
    ("SpeedupConfig", "gamma"): "the AdmIRE arms' flat fraction, beside the swept kappas",
    ("SpeedupConfig", "mask_every"): "the AdmIRE arms' K, beside the swept kappas",
    ("OverheadConfig", "kappa"): "the timed AdmIRE arm's settings; base.optim is the AdamW arm",
    ("OverheadConfig", "gamma"): "as kappa",
    ("OverheadConfig", "mask_every"): "as kappa",
}
HYPER_PARAMETERS = {"lr", "momentum", "nesterov", "weight_decay", "betas", "beta1", "beta2", "eps", "rho", "kappa",
                    "gamma", "mask", "mask_every", "optimizer"}


def _config_types() -> list[type]:
    import dataclasses

    from harness.claim.registry import all_experiments
    from harness.run.loader import load_claims

    load_claims()
    # the library's experiments (tests register throwaway ones with configs of their own)
    library = [fn for fn in all_experiments().values() if fn.__module__.startswith("harness.")]
    seen, todo = [], [fn.config_type for fn in library]
    while todo:
        cls = todo.pop()
        if cls in seen or cls is OptimizerSpec:
            continue
        seen.append(cls)
        for f in dataclasses.fields(cls):
            if dataclasses.is_dataclass(f.default) and not isinstance(f.default, type):
                todo.append(type(f.default))
    return seen


def test_every_experiment_config_composes_one_way():
    """No config inherits from another; an OptimizerSpec field is called `optim`; optimizer hyper-parameters
    live in it (the listed exceptions say why); no field carries a part's prefix (net_, toy_, rotated_)."""
    import dataclasses

    types = _config_types()
    names = {c.__name__ for c in types}
    assert {"GDConfig", "VisionConfig", "VisionArm", "SamFlatConfig", "SamNetConfig", "PretrainSetup",
            "SpeedupConfig", "OverheadConfig", "ToyConfig"} <= names
    used = set()
    for cls in types:
        assert not [b for b in cls.__mro__[1:] if dataclasses.is_dataclass(b)], f"{cls.__name__} inherits a config"
        groups = [f.name for f in dataclasses.fields(cls) if dataclasses.is_dataclass(f.default)]
        for f in dataclasses.fields(cls):
            if isinstance(f.default, OptimizerSpec):
                assert f.name == "optim", f"{cls.__name__}.{f.name}: an optimizer spec is called optim"
            if f.name in HYPER_PARAMETERS:
                assert (cls.__name__, f.name) in OUTSIDE_OPTIM, f"{cls.__name__}.{f.name} belongs in optim"
                used.add((cls.__name__, f.name))
            prefixes = ("net_", "toy_", "rotated_", *(g + "_" for g in groups))
            assert not f.name.startswith(prefixes), f"{cls.__name__}.{f.name}: a part's field goes in its group"
    assert used == set(OUTSIDE_OPTIM), f"stale exceptions: {set(OUTSIDE_OPTIM) - used}"


@dataclass(frozen=True)
class PartReader:
    base: Inner = Inner(steps=7)
    blocks: int = 2

    def __post_init__(self):
        refuse_unread(self, {"base.steps": "the block loop", "base.optim.schedule": "the block loop"})


def test_refuse_unread_keeps_each_declared_path_at_the_default_of_its_field():
    assert derive(PartReader(), blocks=3).blocks == 3  # paths not declared stay settable
    assert derive(PartReader(), {"base.steps": 7}).base.steps == 7  # the field's default Inner(steps=7)
    refused = r"^base[.]steps is not read by the block loop: leave it at its default 7$"
    with pytest.raises(ConfigError, match=refused):
        apply_overrides(PartReader(), {"base.steps": "10"})
    with pytest.raises(ConfigError, match=r"^base[.]optim[.]schedule is not read by the block loop"):
        apply_overrides(PartReader(), {"base.optim.schedule": "cosine"})
