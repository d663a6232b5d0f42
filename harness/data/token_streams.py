"""Token streams for language-model pre-training, the nanoGPT way: uint16 `.bin` files read by memory map.

A tokenized dataset is one folder, `cache_dir/<source>-<content hash[:12]>-<tokenizer>/`, holding `train.bin`,
`val.bin` (little-endian uint16 tokens) and `meta.json` (provenance: source, files, bytes, sha256 of the
content, tokenizer, split rule, token counts, sha256 of the tokens). Files are written atomically
(`harness.atomic`); a folder whose sidecar matches the source's content hash, tokenizer and split rule is
reused without tokenizing. The sources that fill such folders live in `harness.data.text`.
"""

import hashlib
import json
import logging
import os
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from harness.atomic import atomic_path, atomic_write_text
from harness.data.tokenizers import TOKEN_DTYPE, Tokenizer
from harness.errors import DataError

log = logging.getLogger(__name__)

FORMAT_VERSION = 1
PathLike = str | os.PathLike


class TokenStream:
    """A read-only memory-mapped `.bin` file of little-endian uint16 tokens.

    Raises:
        DataError: the file is missing, unreadable, shorter than 2 tokens or has an odd byte count.
    """

    def __init__(self, path: PathLike):
        self.path = Path(path)
        try:
            size = self.path.stat().st_size
        except OSError as e:
            raise DataError(f"token file {self.path} cannot be read: {e}") from e
        if size < 4 or size % 2:
            raise DataError(f"token file {self.path} has {size} bytes; expected uint16 tokens (even, >= 4)")
        self.data = np.memmap(self.path, dtype=TOKEN_DTYPE, mode="r")  # (N,)

    def __len__(self) -> int:
        return len(self.data)

    def _check(self, batch_size: int, seq_len: int) -> None:
        for name, v in (("batch_size", batch_size), ("seq_len", seq_len)):
            if not isinstance(v, int) or isinstance(v, bool) or v <= 0:
                raise ValueError(f"{name} must be a positive int, got {v!r}")
        if len(self) < seq_len + 1:
            raise DataError(
                f"token stream {self.path} has {len(self)} tokens; seq_len={seq_len} needs at least "
                f"{seq_len + 1} (inputs plus the shifted targets). Use a shorter seq_len or more data."
            )

    def _windows(self, starts: np.ndarray, seq_len: int) -> tuple[torch.Tensor, torch.Tensor]:
        rows = self.data[starts[:, None] + np.arange(seq_len + 1)]  # (B, T+1)
        chunk = torch.from_numpy(rows.astype(np.int64))
        return chunk[:, :-1].contiguous(), chunk[:, 1:].contiguous()  # (B, T), (B, T)

    def get_batch(
        self, batch_size: int, seq_len: int, generator: torch.Generator, device: str | torch.device = "cpu"
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """B random windows x = tokens[i : i+T], y = tokens[i+1 : i+T+1] with uniform starts i.

        Args:
            batch_size, seq_len: B and T.
            generator: a CPU torch.Generator, the only source of randomness.
            device: where the batch goes (pinned, non-blocking copy for CUDA).

        Returns:
            x, y: int64 tensors (B, T).

        Raises:
            TypeError: not a torch.Generator. ValueError: non-positive sizes.
            DataError: fewer than T + 1 tokens.
        """
        if not isinstance(generator, torch.Generator):
            raise TypeError(f"generator must be a torch.Generator, got {type(generator).__name__}")
        self._check(batch_size, seq_len)
        starts = torch.randint(len(self) - seq_len, (batch_size,), generator=generator).numpy()  # (B,)
        x, y = self._windows(starts, seq_len)
        if torch.device(device).type == "cuda":
            x, y = x.pin_memory(), y.pin_memory()
        return x.to(device, non_blocking=True), y.to(device, non_blocking=True)

    def sequential_batches(
        self, batch_size: int, seq_len: int, max_windows: int | None = None
    ) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        """Non-overlapping windows from the start, in order (deterministic validation).

        Args:
            batch_size, seq_len: windows per batch (the last batch may be smaller) and T.
            max_windows: stop after this many windows; None covers the whole stream.

        Yields:
            x, y: int64 tensors (b, T), b <= batch_size. Raises as `get_batch`.
        """
        self._check(batch_size, seq_len)
        n = (len(self) - 1) // seq_len
        if max_windows is not None:
            if not isinstance(max_windows, int) or max_windows <= 0:
                raise ValueError(f"max_windows must be a positive int or None, got {max_windows!r}")
            n = min(n, max_windows)
        for first in range(0, n, batch_size):
            yield self._windows(np.arange(first, min(first + batch_size, n)) * seq_len, seq_len)

    def spread_batches(
        self, batch_size: int, seq_len: int, n_windows: int
    ) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        """`n_windows` fixed, non-overlapping windows spread evenly over the whole stream (deterministic
        validation that samples every part of the split, not only its first file).

        Of the (len - 1) // T tiled windows, those at indices floor(i * n_tiled / n), i < n, are taken;
        n >= n_tiled gives every tiled window, as `sequential_batches(..., None)`.

        Args:
            batch_size, seq_len: windows per batch (the last batch may be smaller) and T.
            n_windows: how many windows, a positive int.

        Yields:
            x, y: int64 tensors (b, T), b <= batch_size. Raises as `get_batch`; ValueError: n_windows <= 0.
        """
        self._check(batch_size, seq_len)
        if not isinstance(n_windows, int) or isinstance(n_windows, bool) or n_windows <= 0:
            raise ValueError(f"n_windows must be a positive int, got {n_windows!r}")
        n_tiled = (len(self) - 1) // seq_len
        n = min(n_windows, n_tiled)
        starts = (np.arange(n) * n_tiled // n) * seq_len  # (n,) increasing, >= T apart
        for first in range(0, n, batch_size):
            yield self._windows(starts[first:first + batch_size], seq_len)


@dataclass(frozen=True)
class TextData:
    """Train and validation token streams, their vocabulary size and the provenance sidecar's content."""

    train: TokenStream
    val: TokenStream
    vocab_size: int
    provenance: dict


def document_tokens(docs: Iterable[bytes], tok: Tokenizer, eot: bool = True,
                    batch: int = 64) -> Iterator[np.ndarray]:
    """Tokens of each document, each followed by end-of-text when `eot` and the tokenizer has one."""
    end = [np.array([tok.eot], dtype=TOKEN_DTYPE)] if eot and tok.eot is not None else []
    docs = iter(docs)
    while group := [d for _, d in zip(range(batch), docs)]:
        for ids in tok.encode_batch(group):
            yield from [ids, *end]


def write_token_bin(path: Path, chunks: Iterable[np.ndarray]) -> tuple[int, str]:
    """Stream token chunks into `path` atomically; returns (token count, sha256 of the bytes)."""
    digest, n = hashlib.sha256(), 0
    with atomic_path(path) as tmp, open(tmp, "wb") as f:
        for chunk in chunks:
            data = np.ascontiguousarray(chunk, dtype=TOKEN_DTYPE).tobytes()
            f.write(data)
            digest.update(data)
            n += len(data) // 2
    return n, digest.hexdigest()


def build_token_cache(cache_dir: PathLike, tok: Tokenizer,
                      splits: dict[str, Callable[[], Iterable[np.ndarray]]], provenance: dict) -> TextData:
    """Reuse the cache folder if its sidecar's key matches; else write train.bin, val.bin, then meta.json."""
    key = {"format": FORMAT_VERSION, "tokenizer": tok.name,
           **{k: provenance[k] for k in ("source", "content_sha256", "split_rule")}}
    out = Path(cache_dir) / f"{key['source']}-{key['content_sha256'][:12]}-{tok.name}"
    meta_path = out / "meta.json"
    try:
        meta = json.loads(meta_path.read_text())
        problem = "its key differs" if meta["key"] != key else _tokens_problem(out, meta, splits)
        if problem is None:
            log.info("reusing token cache %s", out)
            train, val = TokenStream(out / "train.bin"), TokenStream(out / "val.bin")
            return TextData(train, val, tok.vocab_size, meta)
        log.warning("token cache %s does not match its record (%s); rebuilding it", out, problem)
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        pass  # no cache yet, or a partial one: (re)built below
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise DataError(f"cannot create cache directory {out}: {e}") from e
    t0 = time.perf_counter()
    meta = {"key": key, **provenance, "tokenizer": tok.name, "vocab_size": tok.vocab_size}
    for split, chunks in splits.items():
        n, sha = write_token_bin(out / f"{split}.bin", chunks())
        if n < 2:
            raise DataError(f"{key['source']}: the {split} split has {n} tokens ({key['split_rule']}); "
                            "add data")
        meta[f"{split}_tokens"], meta[f"{split}_tokens_sha256"] = n, sha
    for split in splits:  # the stamp that lets a reuse skip rehashing an untouched file
        meta[f"{split}_stamp"] = _stamp(out / f"{split}.bin")
    meta["seconds_to_tokenize"], meta["created_unix"] = round(time.perf_counter() - t0, 3), time.time()
    atomic_write_text(meta_path, json.dumps(meta, indent=1))
    log.info("tokenized %s into %s: %d train, %d val tokens", key["source"], out, meta["train_tokens"],
             meta["val_tokens"])
    return TextData(TokenStream(out / "train.bin"), TokenStream(out / "val.bin"), tok.vocab_size, meta)


def _stamp(path: Path) -> list[int]:
    st = path.stat()
    return [st.st_size, st.st_mtime_ns]


def _tokens_problem(out: Path, meta: dict, splits) -> str | None:
    """Why the cached .bin files are not the ones meta.json records (None: they are).

    Each file's size must be its token count; a file whose size and mtime are not those recorded when
    it was written (edited, shuffled, copied over) is rehashed and must match its recorded sha256.
    """
    for split in splits:
        path = out / f"{split}.bin"
        if path.stat().st_size != 2 * meta[f"{split}_tokens"]:
            return f"{split}.bin has {path.stat().st_size} bytes, not 2 x {meta[f'{split}_tokens']} tokens"
        if meta.get(f"{split}_stamp") == _stamp(path):
            continue
        digest = hashlib.sha256()
        with open(path, "rb") as f:
            for block in iter(lambda: f.read(1 << 20), b""):
                digest.update(block)
        if digest.hexdigest() != meta[f"{split}_tokens_sha256"]:
            return f"the sha256 of {split}.bin is not the one recorded when it was written"
    return None
