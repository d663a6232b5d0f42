"""Text sources for language-model pre-training, each tokenized once into a cached folder of token streams
(`harness.data.token_streams`: the `.bin` format, its provenance sidecar and when a folder is reused).

Sources: `stdlib_corpus` (the Python standard library's `.py` files, always present), `local_text_files`,
`wikitext103` (raw WikiText-103 files) and `hf_dataset_text` (MiniPile, OpenWebText from a local Hugging Face
cache). `prepare_text_dataset` picks one by name for the CLI; `PRETRAIN_SOURCES` is what a pre-training
config's `data` names (stdlib, wikitext103, random). Tokenizers: `harness.data.tokenizers`.
"""

import difflib
import hashlib
import json
import os
import sys
import sysconfig
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

import numpy as np

from harness.claim.components import Registry

# WikiText-103's data_root is resolved (and downloaded on first use) in harness.data.download.
from harness.data.download import check_wikitext103
from harness.data.token_streams import PathLike, TextData, build_token_cache, document_tokens
from harness.data.tokenizers import get_tokenizer
from harness.errors import ConfigError, DataError, HarnessError


def _hash_files(files: Sequence[tuple[str, bytes]]) -> str:
    """sha256 over (name, length, content) of each file in order, so names and boundaries count."""
    h = hashlib.sha256()
    for name, data in files:
        h.update(f"{name}\0{len(data)}\0".encode())
        h.update(data)
    return h.hexdigest()


_STDLIB_SKIP = frozenset(
    {"site-packages", "dist-packages", "test", "tests", "idlelib", "lib2to3", "encodings"}
)


def stdlib_corpus(cache_dir: PathLike, max_bytes: int = 8_000_000, val_every: int = 20,
                  tokenizer: str = "bytes") -> TextData:
    """The Python standard library's own `.py` files as a corpus: no download, but version-dependent.

    Files under `sysconfig.get_paths()["stdlib"]` outside site-packages, test/, tests/, idlelib/, lib2to3/ and
    encodings/ (codec tables), in sorted relative-path order, taken whole until `max_bytes` (the file
    crossing the cap is cut). Split by file: files 0, val_every, 2 val_every, ... are validation.
    Provenance records the content hash.

    Args:
        cache_dir: the token cache folder. max_bytes: cap on the corpus size.
        val_every: every val_every-th file is validation. tokenizer: "bytes" (default), "gpt2" or "auto".

    Returns:
        The TextData.

    Raises:
        ValueError: max_bytes <= 0 or val_every < 2. DataError: no standard library, or an empty split.
    """
    if not isinstance(max_bytes, int) or max_bytes <= 0 or not isinstance(val_every, int) or val_every < 2:
        raise ValueError(f"need max_bytes > 0 and val_every >= 2, got {max_bytes!r}, {val_every!r}")
    root = Path(sysconfig.get_paths()["stdlib"])
    if not root.is_dir():
        raise DataError(f"standard library directory {root} not found")
    rels = []
    for folder, dirs, names in os.walk(root):
        dirs[:] = [d for d in dirs if d not in _STDLIB_SKIP]  # prune: never walk site-packages
        rels += [(Path(folder) / n).relative_to(root).as_posix() for n in names if n.endswith(".py")]
    rels.sort()
    files: list[tuple[str, bytes]] = []
    total = 0
    for rel in rels:
        if total >= max_bytes:
            break
        files.append((rel, (root / rel).read_bytes()[: max_bytes - total]))
        total += len(files[-1][1])
    tok, note = get_tokenizer(tokenizer)
    provenance = {
        "source": "stdlib", "content_sha256": _hash_files(files), "n_bytes": total, "max_bytes": max_bytes,
        "split_rule": f"by file in sorted path order: index % {val_every} == 0 -> val, else train",
        "python": sys.version, "stdlib_dir": str(root), "n_files": len(files), "files": [n for n, _ in files],
        "last_file_cut": total >= max_bytes, "tokenizer_note": note,
    }
    return build_token_cache(cache_dir, tok, {
        "train": lambda: document_tokens((d for i, (_, d) in enumerate(files) if i % val_every), tok),
        "val": lambda: document_tokens((d for i, (_, d) in enumerate(files) if i % val_every == 0), tok),
    }, provenance)


def local_text_files(paths: PathLike | Sequence[PathLike], cache_dir: PathLike, tokenizer: str = "bytes",
                     val_fraction: float = 0.1) -> TextData:
    """Local text files, or folders whose `*.txt` files (recursive, sorted) are taken, concatenated in order.

    Args:
        paths: a file or folder, or a sequence of them. cache_dir: the token cache folder.
        tokenizer: "bytes" (default), "gpt2" or "auto".
        val_fraction: the share of tokens, taken from the end, for validation.

    Returns:
        The TextData.

    Raises:
        ValueError: val_fraction outside (0, 1). DataError: a path is missing or unreadable, or no text.
    """
    if not 0 < val_fraction < 1:
        raise ValueError(f"val_fraction must be in (0, 1), got {val_fraction!r}")
    items = [Path(paths)] if isinstance(paths, (str, os.PathLike)) else [Path(p) for p in paths]
    files: list[tuple[str, bytes]] = []
    for item in items:
        if not item.exists():
            raise DataError(f"text path {item} does not exist")
        for f in sorted(item.rglob("*.txt")) if item.is_dir() else [item]:
            try:
                files.append((str(f), f.read_bytes()))
            except OSError as e:
                raise DataError(f"cannot read text file {f}: {e}") from e
    if not any(data for _, data in files):
        raise DataError(f"no text in {[str(p) for p in items]} (a folder contributes its *.txt files)")
    tok, note = get_tokenizer(tokenizer)
    tokens = np.concatenate(list(document_tokens((d for _, d in files), tok)))  # (N,)
    n_val = max(1, round(val_fraction * len(tokens)))
    provenance = {"source": "local", "content_sha256": _hash_files(files),
                  "n_bytes": sum(len(d) for _, d in files),
                  "split_rule": f"last {val_fraction:g} of the concatenated tokens -> val",
                  "files": [name for name, _ in files], "tokenizer_note": note}
    splits = {"train": lambda: [tokens[:-n_val]], "val": lambda: [tokens[-n_val:]]}
    return build_token_cache(cache_dir, tok, splits, provenance)


def _read_chunks(path: Path, size: int = 1 << 22) -> Iterator[bytes]:
    """A file in pieces of about `size` bytes, cut after a newline so no line or UTF-8 character splits."""
    with open(path, "rb") as f:
        rest = b""
        while block := rest + f.read(size):
            cut = block.rfind(b"\n") + 1 or len(block)
            yield block[:cut]
            rest = block[cut:]


def wikitext103(root: PathLike, cache_dir: PathLike, tokenizer: str = "auto") -> TextData:
    """WikiText-103 (raw) as extracted from `wikitext-103-raw-v1.zip`: official train and validation splits.

    Args:
        root: the folder with `wiki.train.raw` and `wiki.valid.raw` (`wiki.test.raw` is unused), or the
            folder holding `wikitext-103-raw/`; "" or an absent claim default: the download cache.
        cache_dir: the token cache folder.
        tokenizer: "auto" (GPT-2 BPE if tiktoken works, else bytes, noted in provenance), "gpt2" or "bytes".

    Returns:
        The TextData: one continuous stream per split, no end-of-text tokens.

    Raises:
        DataError: a required file is missing or unreadable.
    """
    root = check_wikitext103(root)
    paths = {"train": root / "wiki.train.raw", "val": root / "wiki.valid.raw"}
    h, n_bytes = hashlib.sha256(), 0
    try:
        for path in paths.values():
            h.update(f"{path.name}\0".encode())
            for block in _read_chunks(path):
                h.update(block)
                n_bytes += len(block)
    except OSError as e:
        raise DataError(f"cannot read WikiText-103 under {root}: {e}") from e
    tok, note = get_tokenizer(tokenizer)
    provenance = {"source": "wikitext103", "content_sha256": h.hexdigest(), "n_bytes": n_bytes,
                  "split_rule": "official: wiki.train.raw -> train, wiki.valid.raw -> val", "root": str(root),
                  "files": [p.name for p in paths.values()], "tokenizer_note": note}
    splits = {s: (lambda p=p: document_tokens(_read_chunks(p), tok, eot=False)) for s, p in paths.items()}
    return build_token_cache(cache_dir, tok, splits, provenance)


def hf_dataset_text(name: str, split: str, cache_dir: PathLike, val_split: str | None = "validation",
                    val_every: int = 2000, tokenizer: str = "auto", hf_cache_dir: PathLike | None = None,
                    text_field: str = "text") -> TextData:
    """A Hugging Face dataset (MiniPile, OpenWebText) read offline from the local `datasets` cache.

    Sets HF_DATASETS_OFFLINE=1 and HF_HUB_OFFLINE=1 in the process (unless already set): nothing downloads.
    The content hash is over the datasets fingerprints and row counts, not the text (tens of GB).

    Args:
        name, split: dataset id (e.g. "JeanKaddour/minipile", "Skylion007/openwebtext") and training split.
        cache_dir: the token cache folder.
        val_split: the validation split; None holds out documents with index % val_every == 0 of `split`.
        tokenizer: "auto", "gpt2" or "bytes"; an end-of-text token follows each document under gpt2.
        hf_cache_dir: the `datasets` cache (None: its default). text_field: the text column.

    Returns:
        The TextData.

    Raises:
        HarnessError: `datasets` is not installed. DataError: not in the local cache, or no `text_field`.
    """
    for var in ("HF_DATASETS_OFFLINE", "HF_HUB_OFFLINE"):
        os.environ.setdefault(var, "1")
    try:
        import datasets
    except ImportError as e:
        raise HarnessError("reading Hugging Face datasets needs the datasets package: "
                           "pip install datasets") from e
    names = [split] if val_split is None else [split, val_split]
    try:
        loaded = {s: datasets.load_dataset(name, split=s, cache_dir=hf_cache_dir) for s in names}
    except Exception as e:  # datasets reports "not cached" with many exception types
        raise DataError(f"dataset {name!r} split(s) {names} not in the local Hugging Face cache "
                        f"({hf_cache_dir or 'default'}); download it where there is network first: {e}"
                        ) from e
    if text_field not in loaded[split].column_names:
        raise DataError(f"dataset {name!r} has no column {text_field!r}; "
                        f"columns: {loaded[split].column_names}")
    tok, note = get_tokenizer(tokenizer)

    def docs(s: str, val: bool) -> Iterator[bytes]:
        held_out = val_split is None  # validation documents come out of the training split
        return (row[text_field].encode("utf-8") for i, row in enumerate(loaded[s])
                if not held_out or (i % val_every == 0) == val)

    rule = (f"{split}: document index % {val_every} == 0 -> val, else train" if val_split is None
            else f"official: {split} -> train, {val_split} -> val")
    ids = {s: [ds._fingerprint, ds.num_rows] for s, ds in loaded.items()}
    provenance = {"source": "hf-" + name.rsplit("/", 1)[-1].lower(), "dataset": name, "split_rule": rule,
                  "content_sha256": hashlib.sha256(json.dumps(ids).encode()).hexdigest(),
                  "rows": {s: r for s, (_, r) in ids.items()}, "tokenizer_note": note}
    splits = {"train": lambda: document_tokens(docs(split, False), tok),
              "val": lambda: document_tokens(docs(val_split or split, True), tok)}
    return build_token_cache(cache_dir, tok, splits, provenance)


# name -> (Hugging Face id, validation split or None to hold out documents of "train")
HF_SOURCES = {"minipile": ("JeanKaddour/minipile", "validation"),
              "openwebtext": ("Skylion007/openwebtext", None)}
SOURCES = ("stdlib", "local", "wikitext103", *HF_SOURCES)


def prepare_text_dataset(source: str, out: PathLike, root: PathLike | None = None,
                         tokenizer: str | None = None) -> TextData:
    """Build or reuse the token cache of a named source (the CLI's entry point).

    Args:
        source: one of SOURCES. out: the token cache folder.
        root: the data for "local" (file or folder) and "wikitext103"; the `datasets` cache for the others.
        tokenizer: None for the source's default: "bytes" for stdlib and local, else "auto".

    Returns:
        The TextData.

    Raises:
        ConfigError: unknown source (with suggestions) or no root where one is needed; else as the source.
    """
    if source not in SOURCES:
        close = difflib.get_close_matches(str(source), SOURCES, n=3, cutoff=0.5)
        hint = f" Did you mean {', '.join(map(repr, close))}?" if close else ""
        raise ConfigError(f"unknown text source {source!r}.{hint} Available: {', '.join(SOURCES)}")
    if source in ("local", "wikitext103") and root is None:
        raise ConfigError(f"text source {source!r} needs root=<path to the data>")
    if source == "stdlib":
        return stdlib_corpus(out, tokenizer=tokenizer or "bytes")
    if source == "local":
        return local_text_files(root, out, tokenizer=tokenizer or "bytes")
    if source == "wikitext103":
        return wikitext103(root, out, tokenizer=tokenizer or "auto")
    name, val_split = HF_SOURCES[source]
    return hf_dataset_text(name, "train", out, val_split=val_split, tokenizer=tokenizer or "auto",
                           hf_cache_dir=root)


def _random_source(cache_dir: PathLike, root: str, max_bytes: int, tokenizer: str) -> TextData:
    from harness.data.random_tokens import random_tokens

    return random_tokens(cache_dir, n_tokens=max_bytes)  # uniform GPT-2-vocabulary tokens: no tokenizer


# The data a pre-training config can name (harness.claim.components): name -> loader(cache_dir, root, max_bytes,
# tokenizer) -> TextData. stdlib caps the corpus at max_bytes; random makes max_bytes tokens (timing only).
PRETRAIN_SOURCES: Registry[Callable[[PathLike, str, int, str], TextData]] = Registry("text data source")
PRETRAIN_SOURCES.add("stdlib", lambda cache_dir, root, max_bytes, tokenizer: stdlib_corpus(
    cache_dir, max_bytes=max_bytes, tokenizer=tokenizer))
PRETRAIN_SOURCES.add("wikitext103", lambda cache_dir, root, max_bytes, tokenizer: wikitext103(
    root, cache_dir, tokenizer=tokenizer))
PRETRAIN_SOURCES.add("random", _random_source)
