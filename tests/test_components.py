"""The one component registry: did-you-mean misses, strict registration, configs checked when built."""
import pytest

from harness.claim.components import Registry, check_choice
from harness.claim.config import apply_overrides
from harness.data.datasets import DATASETS
from harness.errors import ConfigError
from harness.experiments.eos import GDConfig
from harness.experiments.eos_reduction import ArmsConfig
from harness.experiments.generalization import VISION_MODELS, VisionArm, VisionConfig
from harness.losses import LOSSES
from harness.models.factory import CLASSIFIERS
from harness.optim import OPTIMIZERS


def test_registry_get_returns_what_was_registered():
    reg = Registry("widget")

    @reg.register("round")
    def round_widget():
        return "round"

    reg.add("square", "a square")
    assert reg.get("round") is round_widget and reg.get("square") == "a square"
    assert reg.names() == ["round", "square"] and "round" in reg and "oval" not in reg


def test_registry_miss_suggests_the_closest_and_lists_all_on_one_line():
    reg = Registry("widget")
    for name in ("round", "square"):
        reg.add(name, name)
    with pytest.raises(ConfigError, match=r"^unknown widget 'rund'; did you mean round\? \(widgets: round, square\)$"):
        reg.get("rund")
    with pytest.raises(ConfigError, match=r"^unknown widget 'zzz' \(widgets: round, square\)$"):
        reg.check("zzz")
    with pytest.raises(ConfigError, match=r"unknown widget 3"):
        reg.get(3)


def test_registry_rejects_a_duplicate_and_a_bad_name():
    reg = Registry("widget")
    reg.add("round", 1)
    with pytest.raises(ValueError, match="widget 'round' is registered twice"):
        reg.add("round", 2)
    with pytest.raises(TypeError, match="non-empty string"):
        reg.add("", 3)
    assert reg.get("round") == 1


def test_check_choice_suggests_from_a_fixed_set():
    check_choice("pool", "max", ("max", "avg"))
    with pytest.raises(ConfigError, match=r"unknown pool 'mx'; did you mean max\?"):
        check_choice("pool", "mx", ("max", "avg"))


@pytest.mark.parametrize("registry,miss,hint", [
    (CLASSIFIERS, "si_mpl", "si_mlp"),
    (DATASETS, "digit", "digits"),
    (LOSSES, "cee", "ce"),
    (OPTIMIZERS, "sgdd", "sgd"),
    (VISION_MODELS, "resnet2", "resnet20"),
])
def test_component_registries_suggest_the_closest(registry, miss, hint):
    with pytest.raises(ConfigError, match=rf"did you mean {hint}\b"):
        registry.get(miss)


@pytest.mark.parametrize("make,hint", [
    (lambda: GDConfig(model="si_mpl"), "unknown model 'si_mpl'; did you mean si_mlp"),
    (lambda: GDConfig(data="mnist"), "unknown data set 'mnist'; did you mean mnist5k"),
    (lambda: GDConfig(loss="mes"), "unknown loss 'mes'; did you mean mse"),
    (lambda: apply_overrides(GDConfig(), {"optim.name": "sam_ir"}), "unknown optimizer 'sam_ir'; did you mean"),
    (lambda: GDConfig(activation="tahn"), "unknown activation 'tahn'; did you mean tanh"),
    (lambda: GDConfig(pool="avgg"), "unknown pool 'avgg'; did you mean avg"),
    (lambda: apply_overrides(GDConfig(), {"optim.rho": "0.05"}), "optimizer 'sgd' does not read rho"),
    (lambda: ArmsConfig(plain_model="plain_mpl"), "did you mean plain_mlp"),
    (lambda: VisionConfig(model="resnet2"), "unknown vision model 'resnet2'; did you mean resnet20"),
    (lambda: VisionConfig(data="cifar"), "did you mean cifar10"),
    (lambda: VisionArm(arm="sgd_iree"), "unknown arm 'sgd_iree'; did you mean sgd_ire"),
])
def test_configs_reject_a_misspelled_name_when_built(make, hint):
    with pytest.raises(ConfigError, match=hint):
        make()


def test_a_set_override_fails_at_once_with_one_line():
    with pytest.raises(ConfigError) as e:
        apply_overrides(GDConfig(), {"model": "si_mpl"})
    assert "did you mean si_mlp" in str(e.value) and "\n" not in str(e.value)
    with pytest.raises(ConfigError, match="did you mean si_mlp"):
        apply_overrides(ArmsConfig(), {"base.model": "si_mpl"})
