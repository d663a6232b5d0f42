"""Build a classifier named in a config, sized to a data split."""
from __future__ import annotations

from harness.errors import ConfigError

CLASSIFIERS = ("si_mlp", "plain_mlp", "si_cnn", "small_cnn")


def build_classifier(name: str, split, *, widths=(64, 64), activation: str = "relu",
                     bn_eps: float = 0.0, seed: int = 0):
    """A model for split's inputs and classes.

    si_mlp: BatchNorm MLP, scale-invariant, fixed last layer; plain_mlp: its non-normalized twin;
    si_cnn: scale-invariant conv net; small_cnn: ordinary conv net with BatchNorm.
    """
    from harness.models.cnn import ScaleInvariantCNN, SmallCNN
    from harness.models.mlp import PlainMLP, ScaleInvariantMLP

    num_classes = int(max(split.y_train.max(), split.y_test.max())) + 1
    x = split.x_train
    if name == "si_mlp":
        return ScaleInvariantMLP(x[0].numel(), widths, num_classes, activation=activation,
                                 bn_eps=bn_eps, seed=seed)
    if name == "plain_mlp":
        return PlainMLP(x[0].numel(), widths, num_classes, activation=activation, seed=seed)
    if x.dim() != 4 and name in ("si_cnn", "small_cnn"):
        raise ConfigError(f"model '{name}' needs image inputs (N, C, H, W)")
    if name == "si_cnn":
        return ScaleInvariantCNN(x.shape[1], num_classes, widths=widths, bn_eps=bn_eps, seed=seed)
    if name == "small_cnn":
        return SmallCNN(x.shape[1], num_classes, seed=seed)
    raise ConfigError(f"unknown model '{name}'; models are: {', '.join(CLASSIFIERS)}")
