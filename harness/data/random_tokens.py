"""Uniform random token streams: data for measurements that do not depend on the text.

A step-time or memory measurement (ire-overhead) costs the same on random tokens as on real text of the same
shape, so its gpu tier needs no download. The vocabulary is GPT-2's (50,257, the paper's), so the embedding and
output layers are the paper's size.
"""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from harness.data.token_streams import TextData, TokenStream, write_token_bin

GPT2_VOCAB = 50257


def random_tokens(cache_dir: str | os.PathLike, n_tokens: int = 2_000_000, vocab_size: int = GPT2_VOCAB,
                  seed: int = 0) -> TextData:
    """Train and validation streams of i.i.d. uniform tokens, cached under `cache_dir`.

    Args:
        cache_dir: the token cache folder.
        n_tokens: training tokens (validation gets n_tokens // 20, at least 4,096).
        vocab_size: tokens are drawn from [0, vocab_size); at most 65,536 (uint16 streams).
        seed: the draw's seed (each split has its own stream, so the files do not depend on each other).

    Returns:
        The TextData, with provenance naming the source, seed and each file's sha256.

    Raises:
        ValueError: n_tokens < 2 or vocab_size outside [2, 65536].
    """
    if not isinstance(n_tokens, int) or n_tokens < 2 or not 2 <= vocab_size <= 65536:
        raise ValueError(f"need n_tokens >= 2 and 2 <= vocab_size <= 65536, got {n_tokens!r}, {vocab_size!r}")
    folder = Path(cache_dir) / f"random-v{vocab_size}-n{n_tokens}-s{seed}"
    folder.mkdir(parents=True, exist_ok=True)
    provenance = {"source": "random", "vocab_size": vocab_size, "seed": seed, "n_tokens": n_tokens}
    streams = {}
    for i, (split, n) in enumerate((("train", n_tokens), ("val", max(n_tokens // 20, 4096)))):
        path = folder / f"{split}.bin"
        if not path.exists():
            rng = np.random.default_rng([seed, i])
            write_token_bin(path, [rng.integers(0, vocab_size, size=n, dtype=np.uint16)])
        streams[split] = TokenStream(path)
        provenance[f"{split}_tokens"] = len(streams[split])
    return TextData(streams["train"], streams["val"], vocab_size, provenance)
