"""CIFAR-10 from its original python-pickle batches, and the standard crop + flip augmentation in torch.

The data set is distributed as cifar-10-python.tar.gz, holding cifar-10-batches-py/ with data_batch_1..5
(50,000 training images), test_batch (10,000) and batches.meta. Each batch is a (Python 2) pickle of a dict
with b"data": uint8 (10000, 3072) -- the 1024 red, then green, then blue values of each 32x32 image, row-major
-- and b"labels": a list of ints in 0..9; it loads with pickle.load(f, encoding="bytes").

Batches are unpickled with a restricted unpickler that only accepts numpy arrays and dtypes (a pickle can
run arbitrary code; a batch file asking for anything else is rejected with a DataError).
"""
from __future__ import annotations

import codecs
import logging
import pickle
import tarfile
from functools import lru_cache
from pathlib import Path
from typing import IO

import numpy as np
import torch

from harness.data.digits import Split, sha256_arrays, split_order
from harness.errors import DataError

log = logging.getLogger(__name__)

FOLDER = "cifar-10-batches-py"
ARCHIVE = "cifar-10-python.tar.gz"
TRAIN_BATCHES = tuple(f"data_batch_{i}" for i in range(1, 6))
TEST_BATCH = "test_batch"
IMAGE_SIZE = 3 * 32 * 32

_RECONSTRUCT = np.zeros(1).__reduce__()[0]  # numpy's array-unpickling function, wherever numpy keeps it
_ALLOWED_GLOBALS = {
    ("numpy.core.multiarray", "_reconstruct"): _RECONSTRUCT,  # pickles written by numpy < 2 (the originals)
    ("numpy._core.multiarray", "_reconstruct"): _RECONSTRUCT,  # pickles written by numpy >= 2
    ("numpy", "ndarray"): np.ndarray,
    ("numpy", "dtype"): np.dtype,
    ("_codecs", "encode"): codecs.encode,  # Python 3 writes bytes this way at protocol 2
}


class _BatchUnpickler(pickle.Unpickler):
    def find_class(self, module: str, name: str):
        try:
            return _ALLOWED_GLOBALS[(module, name)]
        except KeyError:
            raise pickle.UnpicklingError(f"unexpected object {module}.{name} in a CIFAR-10 batch") from None


def _parse_batch(f: IO[bytes], where: str) -> tuple[np.ndarray, np.ndarray]:
    """One pickled batch -> (n, 3072) uint8 pixels, (n,) int64 labels, with its format checked."""
    try:
        batch = _BatchUnpickler(f, encoding="bytes").load()
    except (pickle.UnpicklingError, EOFError, ValueError, TypeError, AttributeError, OSError) as e:
        raise DataError(f"{where}: not a CIFAR-10 python batch ({e})") from e
    if not isinstance(batch, dict) or b"data" not in batch or b"labels" not in batch:
        got = sorted(batch) if isinstance(batch, dict) else type(batch).__name__
        raise DataError(f'{where}: expected a dict with keys b"data" and b"labels", got {got}')
    x, y = batch[b"data"], np.asarray(batch[b"labels"])
    if not isinstance(x, np.ndarray) or x.dtype != np.uint8 or x.ndim != 2 or x.shape[1] != IMAGE_SIZE:
        got = f"{x.dtype} {x.shape}" if isinstance(x, np.ndarray) else type(x).__name__
        raise DataError(f'{where}: b"data" must be a uint8 array of shape (n, {IMAGE_SIZE}), got {got}')
    if y.shape != (len(x),) or y.dtype.kind not in "iu" or (len(y) and (y.min() < 0 or y.max() > 9)):
        raise DataError(f'{where}: b"labels" must be {len(x)} ints in 0..9, got {y.dtype} {y.shape}')
    return x, y.astype(np.int64)


def _locate(root: Path) -> Path:
    """The batches folder or the archive that `root` names or contains."""
    if not root.exists():
        raise DataError(f"CIFAR-10 path does not exist: {root}; pass the {FOLDER}/ folder, its parent, "
                        f"or {ARCHIVE} (from https://www.cs.toronto.edu/~kriz/cifar.html)")
    if root.is_file():
        return root
    if any((root / name).exists() for name in (*TRAIN_BATCHES, TEST_BATCH)):
        return root
    for candidate in (root / FOLDER, root / ARCHIVE):
        if candidate.exists():
            return candidate
    raise DataError(f"{root} holds neither CIFAR-10 batches, a {FOLDER}/ folder nor {ARCHIVE}")


@lru_cache(maxsize=1)
def _read_all(location: Path, stamp: tuple) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Every batch by name, from a folder or (streamed, nothing extracted) from a tar archive.

    `stamp` keys the cache so that a rewritten file is read again.
    """
    wanted = (*TRAIN_BATCHES, TEST_BATCH)
    batches = {}
    if location.is_dir():
        for name in wanted:
            path = location / name
            if path.is_file():
                with open(path, "rb") as f:
                    batches[name] = _parse_batch(f, str(path))
    else:
        try:
            with tarfile.open(location, "r:*") as tar:
                for member in tar:  # one pass: a gzip stream cannot seek backwards cheaply
                    name = Path(member.name).name
                    if member.isfile() and name in wanted and name not in batches:
                        batches[name] = _parse_batch(tar.extractfile(member), f"{location}:{member.name}")
        except (tarfile.TarError, OSError, EOFError) as e:
            raise DataError(f"cannot read {location} as a tar archive of CIFAR-10 batches: {e}") from e
    missing = [name for name in wanted if name not in batches]
    if missing:
        raise DataError(f"{location} is missing CIFAR-10 batch(es) {', '.join(missing)}")
    for x, y in batches.values():
        x.flags.writeable = False
        y.flags.writeable = False
    return batches


def _subset_size(name: str, n: int | None, available: int, minimum: int) -> int:
    if n is None:
        return available
    if isinstance(n, bool) or not isinstance(n, int):
        raise TypeError(f"{name} must be an int or None, got {type(n).__name__} ({n!r})")
    if not minimum <= n <= available:
        raise ValueError(f"{name} must be in [{minimum}, {available}], got {n}")
    return n


def _stamp(location: Path) -> tuple:
    """(size, mtime) of the archive or of every batch file: a cache key that changes when they do."""
    paths = [location] if location.is_file() else [location / n for n in (*TRAIN_BATCHES, TEST_BATCH)]
    return tuple((p.stat().st_size, p.stat().st_mtime_ns) if p.exists() else None for p in paths)


def load_cifar10(root: str | Path, n_train: int | None = None, n_test: int | None = None, *,
                 dtype: torch.dtype = torch.float32, seed: int | None = None,
                 normalize: bool = True) -> Split:
    """CIFAR-10 as (N, 3, 32, 32) image tensors.

    Args:
        root: the cifar-10-batches-py/ folder, a folder containing it or cifar-10-python.tar.gz, or the
            .tar.gz itself (read in one streaming pass, nothing written to disk).
        n_train, n_test: subset sizes; None = all (50,000 / 10,000).
        dtype: floating dtype of the images.
        seed: None takes the first images in file order; an int draws the subsets with torch.Generator(seed).
        normalize: scale to [0, 1], then subtract the per-channel mean and divide by the per-channel std,
            both computed over the FULL training set as loaded (all five batches, before any subsetting;
            for the real data about (0.4914, 0.4822, 0.4465) and (0.2470, 0.2435, 0.2616)).
            False: pixels scaled to [0, 1] only.

    Returns:
        Split; provenance holds the location, sizes, seed, the channel mean/std and sha256 of the raw arrays.

    Raises:
        DataError: path missing, a batch missing, unreadable or with the wrong keys/shapes/dtype.
        ValueError / TypeError: bad sizes or seed.
    """
    location = _locate(Path(root).expanduser().resolve())
    batches = _read_all(location, _stamp(location))
    x_train = np.concatenate([batches[name][0] for name in TRAIN_BATCHES])  # (50000, 3072) uint8
    y_train = np.concatenate([batches[name][1] for name in TRAIN_BATCHES])  # (50000,)
    x_test, y_test = batches[TEST_BATCH]  # (10000, 3072), (10000,)

    n_train = _subset_size("n_train", n_train, len(y_train), minimum=1)
    n_test = _subset_size("n_test", n_test, len(y_test), minimum=0)
    idx_train = np.sort(split_order(len(y_train), seed)[:n_train]) if seed is not None else np.arange(n_train)
    idx_test = np.sort(split_order(len(y_test), seed)[:n_test]) if seed is not None else np.arange(n_test)

    # per-channel statistics over all training pixels, accumulated in float64 one batch at a time
    total, total_sq, count = np.zeros(3), np.zeros(3), 0
    for name in TRAIN_BATCHES:
        x = batches[name][0].reshape(-1, 3, 1024).astype(np.float64) / 255.0  # (n, 3, 1024)
        total += x.sum(axis=(0, 2))
        total_sq += np.square(x).sum(axis=(0, 2))
        count += x.shape[0] * x.shape[2]
    mean = total / count  # (3,)
    std = np.sqrt(np.maximum(total_sq / count - mean ** 2, 0.0))  # (3,)

    def images(x: np.ndarray) -> torch.Tensor:
        t = torch.from_numpy(x).reshape(-1, 3, 32, 32).to(dtype) / 255.0  # (n, 3, 32, 32)
        if normalize:
            m = torch.tensor(mean, dtype=dtype).view(1, 3, 1, 1)
            s = torch.tensor(np.where(std > 0, std, 1.0), dtype=dtype).view(1, 3, 1, 1)
            t = (t - m) / s
        return t

    provenance = {"source": "CIFAR-10 python batches", "location": str(location),
                  "format": "folder" if location.is_dir() else "archive",
                  "n_train": n_train, "n_test": n_test,
                  "seed": seed, "normalize": normalize, "dtype": str(dtype),
                  "channel_mean": mean.tolist(), "channel_std": std.tolist(),
                  "sha256_raw": sha256_arrays(x_train, y_train, x_test, y_test),
                  "sha256_order": sha256_arrays(idx_train.astype(np.int64), idx_test.astype(np.int64))}
    log.debug("CIFAR-10 from %s: %d train, %d test", location, n_train, n_test)
    return Split(images(x_train[idx_train]), torch.from_numpy(y_train[idx_train]),
                 images(x_test[idx_test]), torch.from_numpy(y_test[idx_test]), provenance)


def augment_batch(x: torch.Tensor, generator: torch.Generator, padding: int = 4,
                  flip: bool = True) -> torch.Tensor:
    """Random crop after zero padding, then random horizontal flip, independently per image.

    Pads with 0 in whatever space x is in: for normalized images that is the mean colour, whereas the
    usual torchvision pipeline pads raw (black) pixels before normalizing.

    Args:
        x: (B, C, H, W) images.
        generator: the only source of randomness (a CPU generator; x may live on any device).
        padding: zero padding on each side; the crop offset is uniform in [0, 2 * padding] per axis.
        flip: flip each image left-right with probability 1/2.

    Returns:
        (B, C, H, W) augmented copy; x is not modified.

    Raises:
        ValueError / TypeError: x not 4-d, negative padding, generator not a torch.Generator.
    """
    if x.dim() != 4:
        raise ValueError(f"augment_batch expects (B, C, H, W) images, got shape {tuple(x.shape)}")
    if not isinstance(generator, torch.Generator):
        raise TypeError(f"generator must be a torch.Generator, got {type(generator).__name__}")
    if isinstance(padding, bool) or not isinstance(padding, int) or padding < 0:
        raise ValueError(f"padding must be an int >= 0, got {padding!r}")
    B, C, H, W = x.shape
    dy = torch.randint(0, 2 * padding + 1, (B,), generator=generator)  # (B,)
    dx = torch.randint(0, 2 * padding + 1, (B,), generator=generator)  # (B,)
    flips = torch.rand(B, generator=generator) < 0.5 if flip else torch.zeros(B, dtype=torch.bool)
    rows = dy[:, None] + torch.arange(H)  # (B, H) rows of the padded image
    cols = dx[:, None] + torch.arange(W)  # (B, W)
    cols = torch.where(flips[:, None], cols.flip(1), cols)
    rows, cols = rows.to(x.device), cols.to(x.device)
    padded = torch.nn.functional.pad(x, (padding, padding, padding, padding))  # (B, C, H + 2p, W + 2p)
    b = torch.arange(B, device=x.device)[:, None, None]
    out = padded[b, :, rows[:, :, None], cols[:, None, :]]  # (B, H, W, C): advanced indices go first
    return out.permute(0, 3, 1, 2).contiguous()  # (B, C, H, W)
