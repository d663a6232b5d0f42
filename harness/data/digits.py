"""scikit-learn's bundled 8x8 digits (1,797 images, no download), the Split container and label helpers.

Split is shared by every vision loader (digits, MNIST-5k, CIFAR-10). Pixel features are scaled to [0, 1]
and, by default, standardized per feature with the TRAINING split's mean and std only.
"""
from __future__ import annotations

import hashlib
import logging
from dataclasses import dataclass, field

import numpy as np
import torch

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Split:
    """A train/test split as tensors.

    x_train: (n_train, D) features or (n_train, C, H, W) images; x_test likewise.
    y_train, y_test: (n,) int64 class labels.
    provenance: JSON-able facts about where the split came from (source, versions, sizes, hashes, seed).
    """

    x_train: torch.Tensor
    y_train: torch.Tensor
    x_test: torch.Tensor
    y_test: torch.Tensor
    provenance: dict = field(default_factory=dict)


def sha256_arrays(*arrays: np.ndarray) -> str:
    """sha256 over the dtypes, shapes and bytes of numpy arrays (C order)."""
    h = hashlib.sha256()
    for a in arrays:
        a = np.ascontiguousarray(a)
        h.update(f"{a.dtype.str}{a.shape}".encode())
        h.update(a.tobytes())
    return h.hexdigest()


def split_sizes(n_total: int, n_train: int, n_test: int | None) -> tuple[int, int]:
    """Check n_train / n_test against the data set size; n_test=None means all the rest.

    Raises:
        ValueError / TypeError: sizes that are not ints, not positive, or that add up to more than n_total.
    """
    for name, n in (("n_train", n_train), ("n_test", n_test)):
        if n is not None and (isinstance(n, bool) or not isinstance(n, int)):
            raise TypeError(f"{name} must be an int, got {type(n).__name__} ({n!r})")
    n_test = n_total - n_train if n_test is None else n_test
    if n_train < 2 or n_test < 0 or n_train + n_test > n_total:
        raise ValueError(f"need 2 <= n_train and 0 <= n_test with n_train + n_test <= {n_total}; "
                         f"got n_train={n_train}, n_test={n_test}")
    return n_train, n_test


def split_order(n_total: int, seed: int | None) -> np.ndarray:
    """The example order: the file's order for seed=None, else a permutation from torch.Generator(seed)."""
    if seed is None:
        return np.arange(n_total)
    if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
        raise TypeError(f"seed must be None or an int >= 0, got {seed!r}")
    return torch.randperm(n_total, generator=torch.Generator().manual_seed(seed)).numpy()


def make_split(x01: np.ndarray, y: np.ndarray, order: np.ndarray, n_train: int, n_test: int,
               standardize: bool, dtype: torch.dtype, image_shape: tuple[int, ...] | None,
               provenance: dict) -> Split:
    """Cut (N, D) features in [0, 1] into train/test in `order`, standardize with train stats, wrap in Split.

    Features whose training std is below 1e-8 (e.g. always-blank border pixels) are only centered.
    """
    x01 = x01.astype(np.float64)
    idx_train, idx_test = order[:n_train], order[n_train:n_train + n_test]
    x_train, x_test = x01[idx_train], x01[idx_test]  # (n_train, D), (n_test, D)
    if standardize:
        mean = x_train.mean(axis=0)  # (D,)
        std = x_train.std(axis=0)  # (D,)
        std = np.where(std < 1e-8, 1.0, std)
        x_train, x_test = (x_train - mean) / std, (x_test - mean) / std
    shape = (-1, *image_shape) if image_shape is not None else (-1, x01.shape[1])

    def tensor(a):
        return torch.from_numpy(np.ascontiguousarray(a)).to(dtype).reshape(shape)

    provenance = {**provenance, "n_train": n_train, "n_test": n_test, "standardize": standardize,
                  "as_images": image_shape is not None, "dtype": str(dtype),
                  "sha256_order": sha256_arrays(order[:n_train + n_test].astype(np.int64))}
    log.debug("split %s: %d train, %d test", provenance.get("source"), n_train, n_test)
    return Split(tensor(x_train), torch.from_numpy(y[idx_train].astype(np.int64)),
                 tensor(x_test), torch.from_numpy(y[idx_test].astype(np.int64)), provenance)


def load_digits_split(n_train: int = 1000, n_test: int | None = None, *, dtype: torch.dtype = torch.float32,
                      seed: int | None = None, standardize: bool = True, as_images: bool = False) -> Split:
    """scikit-learn's 8x8 digits as a train/test Split.

    Args:
        n_train: training examples (the first n_train in the chosen order).
        n_test: test examples after them; None = all the rest (797 with the default n_train).
        dtype: floating dtype of the features.
        seed: None keeps the file's order (classes cycle 0..9, so any prefix is near-balanced);
            an int shuffles with torch.Generator(seed).
        standardize: after scaling pixels (0..16) to [0, 1], standardize each pixel with the training
            split's mean and std.
        as_images: return (N, 1, 8, 8) images instead of (N, 64) features.

    Returns:
        Split with provenance: source, sklearn version, sizes, seed, sha256 of the raw arrays and the order.

    Raises:
        ValueError / TypeError: bad sizes or seed.
    """
    import sklearn
    from sklearn.datasets import load_digits

    bunch = load_digits()
    x_raw = bunch.data.astype(np.uint8)  # (1797, 64), integer pixel values 0..16
    y = bunch.target.astype(np.int64)  # (1797,)
    n_train, n_test = split_sizes(len(y), n_train, n_test)
    provenance = {"source": "sklearn.datasets.load_digits", "sklearn_version": sklearn.__version__,
                  "n_total": int(len(y)), "seed": seed, "sha256_raw": sha256_arrays(x_raw, y)}
    return make_split(x_raw / 16.0, y, split_order(len(y), seed), n_train, n_test, standardize, dtype,
                      (1, 8, 8) if as_images else None, provenance)


def one_hot(y: torch.Tensor, num_classes: int, dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """(n,) integer labels -> (n, num_classes) one-hot targets of `dtype` (e.g. for an MSE loss).

    Raises:
        ValueError: labels outside [0, num_classes).
    """
    if y.dim() != 1 or y.dtype.is_floating_point:
        raise TypeError(f"y must be a 1-d integer tensor, got dtype {y.dtype} shape {tuple(y.shape)}")
    if len(y) and (y.min() < 0 or y.max() >= num_classes):
        raise ValueError(f"labels must lie in [0, {num_classes}), got [{y.min().item()}, {y.max().item()}]")
    return torch.nn.functional.one_hot(y, num_classes).to(dtype)


def with_label_noise(y: torch.Tensor, fraction: float, generator: torch.Generator,
                     num_classes: int = 10) -> torch.Tensor:
    """A copy of y with exactly round(fraction * n) labels changed, each to another class chosen uniformly.

    Args:
        y: (n,) int64 labels in [0, num_classes).
        fraction: share of labels to corrupt, in [0, 1].
        generator: picks which labels and their new classes.
        num_classes: number of classes (>= 2).

    Returns:
        (n,) int64 noisy labels; y itself is not modified.

    Raises:
        ValueError / TypeError: fraction outside [0, 1], num_classes < 2, bad labels.
    """
    if not isinstance(generator, torch.Generator):
        raise TypeError(f"generator must be a torch.Generator, got {type(generator).__name__}")
    if not 0.0 <= fraction <= 1.0:
        raise ValueError(f"fraction must be in [0, 1], got {fraction!r}")
    if num_classes < 2:
        raise ValueError(f"num_classes must be >= 2 to change a label, got {num_classes}")
    one_hot(y, num_classes)  # checks the labels
    n_flip = round(fraction * len(y))
    idx = torch.randperm(len(y), generator=generator)[:n_flip]  # (n_flip,)
    shift = torch.randint(1, num_classes, (n_flip,), generator=generator)  # never 0: the class changes
    idx, shift = idx.to(y.device), shift.to(y.device)
    noisy = y.clone()
    noisy[idx] = (y[idx] + shift) % num_classes
    return noisy
