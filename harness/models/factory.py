"""Build a classifier named in a config, sized to a data split."""
from __future__ import annotations

from harness.errors import ConfigError

CLASSIFIERS = ("si_mlp", "plain_mlp", "si_cnn", "plain_cnn", "small_cnn")
IMAGE_CLASSIFIERS = ("si_cnn", "plain_cnn", "small_cnn")


def build_classifier(name: str, split, *, widths=(64, 64), activation: str = "relu",
                     bn_eps: float = 0.0, seed: int = 0, pool: str = "max"):
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
        ConfigError: unknown name, or a conv net asked for flat inputs.
    """
    from harness.models.cnn import PlainCNN, ScaleInvariantCNN, SmallCNN
    from harness.models.mlp import PlainMLP, ScaleInvariantMLP

    num_classes = int(max(split.y_train.max(), split.y_test.max())) + 1
    x = split.x_train
    if name == "si_mlp":
        return ScaleInvariantMLP(x[0].numel(), widths, num_classes, activation=activation,
                                 bn_eps=bn_eps, seed=seed)
    if name == "plain_mlp":
        return PlainMLP(x[0].numel(), widths, num_classes, activation=activation, seed=seed)
    if x.dim() != 4 and name in IMAGE_CLASSIFIERS:
        raise ConfigError(f"model '{name}' needs image inputs (N, C, H, W)")
    if name == "si_cnn":
        return ScaleInvariantCNN(x.shape[1], num_classes, widths=widths, bn_eps=bn_eps, seed=seed,
                                 activation=activation, pool=pool)
    if name == "plain_cnn":
        return PlainCNN(x.shape[1], num_classes, widths=widths, seed=seed, activation=activation, pool=pool)
    if name == "small_cnn":
        return SmallCNN(x.shape[1], num_classes, seed=seed)
    raise ConfigError(f"unknown model '{name}'; models are: {', '.join(CLASSIFIERS)}")
