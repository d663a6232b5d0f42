"""Build a classifier named in a config, sized to a data split, through one registry (CLASSIFIERS)."""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch.nn as nn

from harness.claim.components import Registry
from harness.errors import ConfigError
from harness.models.cnn import PlainCNN, ScaleInvariantCNN, SmallCNN
from harness.models.mlp import PlainMLP, ScaleInvariantMLP


@dataclass(frozen=True)
class ClassifierArgs:
    """What a classifier builder gets: the split's sizes and the config's model settings."""

    in_features: int            # C*H*W of one example (MLPs)
    in_channels: int | None     # C of (N, C, H, W) images (conv nets); None for flat inputs
    num_classes: int
    widths: tuple[int, ...]
    activation: str
    bn_eps: float
    seed: int
    pool: str


@dataclass(frozen=True)
class Classifier:
    """A registered classifier: its builder and whether it takes (N, C, H, W) images."""

    build: Callable[[ClassifierArgs], nn.Module]
    images: bool


CLASSIFIERS: Registry[Classifier] = Registry("model")


def _classifier(name: str, *, images: bool):
    def add(build: Callable[[ClassifierArgs], nn.Module]):
        CLASSIFIERS.add(name, Classifier(build, images))
        return build
    return add


@_classifier("si_mlp", images=False)
def _si_mlp(a: ClassifierArgs) -> nn.Module:
    return ScaleInvariantMLP(a.in_features, a.widths, a.num_classes, activation=a.activation,
                             bn_eps=a.bn_eps, seed=a.seed)


@_classifier("plain_mlp", images=False)
def _plain_mlp(a: ClassifierArgs) -> nn.Module:
    return PlainMLP(a.in_features, a.widths, a.num_classes, activation=a.activation, seed=a.seed)


@_classifier("si_cnn", images=True)
def _si_cnn(a: ClassifierArgs) -> nn.Module:
    return ScaleInvariantCNN(a.in_channels, a.num_classes, widths=a.widths, bn_eps=a.bn_eps, seed=a.seed,
                             activation=a.activation, pool=a.pool)


@_classifier("plain_cnn", images=True)
def _plain_cnn(a: ClassifierArgs) -> nn.Module:
    return PlainCNN(a.in_channels, a.num_classes, widths=a.widths, seed=a.seed, activation=a.activation,
                    pool=a.pool)


@_classifier("small_cnn", images=True)
def _small_cnn(a: ClassifierArgs) -> nn.Module:
    return SmallCNN(a.in_channels, a.num_classes, seed=a.seed)


def takes_images(name: str) -> bool:
    """Whether the classifier `name` wants (N, C, H, W) images rather than flat vectors.

    Raises:
        ConfigError: unknown name (with "did you mean").
    """
    return CLASSIFIERS.get(name).images


def build_classifier(name: str, split, *, widths=(64, 64), activation: str = "relu",
                     bn_eps: float = 0.0, seed: int = 0, pool: str = "max") -> nn.Module:
    """A model for split's inputs and classes.

    Args:
        name: si_mlp (BatchNorm MLP, scale-invariant, fixed last layer), plain_mlp (its non-normalized
            twin), si_cnn (scale-invariant conv net), plain_cnn (the same conv net without normalization),
            small_cnn (ordinary conv net with BatchNorm).
        split: a data Split; its inputs and labels size the model.
        widths, activation, bn_eps, seed: passed on (activation/bn_eps where the model has them).
        pool: "max" or "avg", for si_cnn and plain_cnn.

    Returns:
        The model (float32 parameters; cast it to the run's dtype).

    Raises:
        ConfigError: unknown name (with "did you mean"), or a conv net asked for flat inputs.
    """
    kind = CLASSIFIERS.get(name)
    num_classes = int(max(split.y_train.max(), split.y_test.max())) + 1
    x = split.x_train
    if kind.images and x.dim() != 4:
        raise ConfigError(f"model '{name}' needs image inputs (N, C, H, W)")
    return kind.build(ClassifierArgs(x[0].numel(), x.shape[1] if x.dim() == 4 else None, num_classes,
                                     widths, activation, bn_eps, seed, pool))
