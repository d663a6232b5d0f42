"""Tests for harness.data.text and harness.data.token_streams: tokenizers, token streams, the cached sources
and their provenance."""

import importlib.util
import json
import sys
import types

import numpy as np
import pytest
import torch

from harness.data import tokenizers
from harness.data.text import (
    hf_dataset_text,
    local_text_files,
    prepare_text_dataset,
    stdlib_corpus,
    wikitext103,
)
from harness.data.token_streams import TokenStream
from harness.data.tokenizers import ByteTokenizer, get_tokenizer
from harness.errors import ConfigError, DataError, HarnessError

HAVE_TIKTOKEN = importlib.util.find_spec("tiktoken") is not None


class FakeEncoding:
    """Stands in for tiktoken's gpt2 encoding: one token per word, end-of-text 50256."""

    eot_token = 50256

    def encode_ordinary(self, text):
        return [1000 + len(w) for w in text.split()]

    def encode_ordinary_batch(self, texts):
        return [self.encode_ordinary(t) for t in texts]

    def decode(self, ids):
        return " ".join("x" * (i - 1000) for i in ids)


def write_tokens(path, tokens):
    np.asarray(tokens, dtype="<u2").tofile(path)
    return path


def test_byte_tokenizer_round_trip():
    tok = ByteTokenizer()
    text = "def f(x):\n    return 'héllo ✓'\n"
    ids = tok.encode(text)
    assert tok.vocab_size == 256 and max(ids) < 256 and len(ids) == len(text.encode())
    assert tok.decode(ids) == text
    assert tok.encode_batch([text.encode()])[0].tolist() == ids


def test_token_stream_get_batch_shift_dtype_range_deterministic(tmp_path):
    stream = TokenStream(write_tokens(tmp_path / "s.bin", np.arange(1000)))
    assert len(stream) == 1000
    x, y = stream.get_batch(8, 32, torch.Generator().manual_seed(0))
    assert x.shape == y.shape == (8, 32) and x.dtype == y.dtype == torch.int64
    assert torch.equal(y, x + 1)  # the stream is 0, 1, 2, ...: targets are the next token
    assert torch.equal(x[:, 1:] - x[:, :-1], torch.ones(8, 31, dtype=torch.int64))  # contiguous windows
    assert x.min() >= 0 and y.max() <= 999
    x2, _ = stream.get_batch(8, 32, torch.Generator().manual_seed(0))
    x3, _ = stream.get_batch(8, 32, torch.Generator().manual_seed(1))
    assert torch.equal(x, x2) and not torch.equal(x, x3)
    # the last window is reachable: starts cover 0 .. N - T - 1
    starts = stream.get_batch(64, 998, torch.Generator().manual_seed(0))[0][:, 0]
    assert set(starts.tolist()) == {0, 1}


def test_token_stream_sequential_batches_cover_stream_in_order(tmp_path):
    stream = TokenStream(write_tokens(tmp_path / "s.bin", np.arange(101)))
    batches = list(stream.sequential_batches(batch_size=3, seq_len=10))
    assert [x.shape[0] for x, _ in batches] == [3, 3, 3, 1]  # (101 - 1) // 10 = 10 windows
    xs = torch.cat([x for x, _ in batches])
    assert torch.equal(xs[:, 0], torch.arange(0, 100, 10))
    assert torch.equal(torch.cat([y for _, y in batches]), xs + 1)
    assert sum(x.shape[0] for x, _ in stream.sequential_batches(4, 10, max_windows=5)) == 5
    again = torch.cat([x for x, _ in stream.sequential_batches(batch_size=3, seq_len=10)])
    assert torch.equal(xs, again)


def test_token_stream_bad_input_raises(tmp_path):
    stream = TokenStream(write_tokens(tmp_path / "short.bin", np.arange(10)))
    with pytest.raises(DataError, match="has 10 tokens; seq_len=10 needs at least 11"):
        stream.get_batch(2, 10, torch.Generator())
    with pytest.raises(DataError, match="needs at least"):
        next(stream.sequential_batches(2, 10))
    assert stream.get_batch(2, 9, torch.Generator())[0].shape == (2, 9)  # 10 tokens: exactly one window
    with pytest.raises(TypeError, match="torch.Generator"):
        stream.get_batch(2, 4, 0)
    with pytest.raises(ValueError, match="batch_size must be a positive int"):
        stream.get_batch(0, 4, torch.Generator())
    with pytest.raises(DataError, match="cannot be read"):
        TokenStream(tmp_path / "missing.bin")
    (tmp_path / "odd.bin").write_bytes(b"abc")
    with pytest.raises(DataError, match="uint16"):
        TokenStream(tmp_path / "odd.bin")


def test_stdlib_corpus_builds_with_hash_and_reuses_cache(tmp_path):
    data = stdlib_corpus(tmp_path, max_bytes=200_000)
    p = data.provenance
    assert data.vocab_size == 256 and p["tokenizer"] == "bytes" and p["n_bytes"] == 200_000
    assert len(data.train) + len(data.val) == 200_000  # one token per byte
    assert len(p["content_sha256"]) == 64 and p["files"] == sorted(p["files"])
    folders = {part for f in p["files"] for part in f.split("/")[:-1]}
    assert not folders & {"test", "tests", "site-packages", "encodings"}
    x, y = data.val.get_batch(4, 128, torch.Generator().manual_seed(0))
    assert torch.equal(x[:, 1:], y[:, :-1]) and x.max() < 256
    sidecar = json.loads((data.train.path.parent / "meta.json").read_text())
    assert sidecar["content_sha256"] == p["content_sha256"] and sidecar["train_tokens"] == len(data.train)
    assert not list(tmp_path.rglob("*.tmp"))  # temp files were moved into place

    mtimes = {f.name: f.stat().st_mtime_ns for f in data.train.path.parent.iterdir()}
    again = stdlib_corpus(tmp_path, max_bytes=200_000)
    # nothing was rewritten
    assert {f.name: f.stat().st_mtime_ns for f in again.train.path.parent.iterdir()} == mtimes
    assert again.provenance == p and np.array_equal(again.train.data, data.train.data)

    other = stdlib_corpus(tmp_path, max_bytes=100_000)
    assert other.provenance["content_sha256"] != p["content_sha256"]
    assert np.array_equal(other.train.data[:1000], data.train.data[:1000])  # same files, same order


def test_stdlib_corpus_rebuilds_a_damaged_cache(tmp_path):
    data = stdlib_corpus(tmp_path, max_bytes=50_000)
    n = len(data.train)
    with open(data.train.path, "r+b") as f:
        f.truncate(100)
    assert len(stdlib_corpus(tmp_path, max_bytes=50_000).train) == n
    with pytest.raises(ValueError, match="max_bytes"):
        stdlib_corpus(tmp_path, max_bytes=0)


def test_local_text_files_from_folder_and_files(tmp_path):
    folder = tmp_path / "texts"
    (folder / "sub").mkdir(parents=True)
    (folder / "a.txt").write_text("alpha " * 200)
    (folder / "sub" / "b.txt").write_text("beta " * 200)
    (folder / "skip.md").write_text("not a txt file")
    data = local_text_files(folder, tmp_path / "cache")
    whole = ("alpha " * 200 + "beta " * 200).encode()
    assert len(data.train) + len(data.val) == len(whole) and len(data.val) == round(0.1 * len(whole))
    tok = ByteTokenizer()
    assert tok.decode(np.concatenate([data.train.data, data.val.data]).tolist()) == whole.decode()
    assert [f.rsplit("/", 1)[-1] for f in data.provenance["files"]] == ["a.txt", "b.txt"]
    single = prepare_text_dataset("local", tmp_path / "cache", root=folder / "a.txt")
    assert len(single.train) + len(single.val) == 1200
    with pytest.raises(DataError, match="does not exist"):
        local_text_files([tmp_path / "nope.txt"], tmp_path / "cache")


def write_fake_wikitext(folder):
    folder.mkdir(parents=True)
    article = " = Valkyria Chronicles = \n\n Senjō no Valkyria is a tactical role @-@ playing game . \n"
    (folder / "wiki.train.raw").write_text(article * 40, encoding="utf-8")
    (folder / "wiki.valid.raw").write_text(article.upper() * 8, encoding="utf-8")
    (folder / "wiki.test.raw").write_text(article * 4, encoding="utf-8")
    return article


def test_wikitext103_loader_on_fake_files(tmp_path):
    article = write_fake_wikitext(tmp_path / "wikitext-103-raw")
    data = wikitext103(tmp_path, tmp_path / "cache")  # the parent folder of wikitext-103-raw/ also works
    p = data.provenance
    assert p["source"] == "wikitext103" and p["files"] == ["wiki.train.raw", "wiki.valid.raw"]
    if get_tokenizer("auto")[0].name == "gpt2":  # tiktoken and GPT-2's BPE table are available
        assert p["tokenizer"] == "gpt2" and data.vocab_size == 50257
        assert get_tokenizer("gpt2")[0].decode(data.train.data.tolist()) == article * 40
    else:
        assert p["tokenizer"] == "bytes" and "tiktoken" in p["tokenizer_note"] and data.vocab_size == 256
        assert bytes(data.train.data.astype(np.uint8)) == (article * 40).encode()
        assert len(data.val) == len((article.upper() * 8).encode())
    again = wikitext103(tmp_path / "wikitext-103-raw", tmp_path / "cache", tokenizer="auto")
    assert again.provenance["created_unix"] == p["created_unix"]  # reused, not re-tokenized


def test_wikitext103_missing_files_raise(tmp_path):
    with pytest.raises(DataError, match="wiki.train.raw"):
        wikitext103(tmp_path / "nowhere", tmp_path / "cache")
    write_fake_wikitext(tmp_path / "w")
    (tmp_path / "w" / "wiki.valid.raw").unlink()
    with pytest.raises(DataError, match="wiki.valid.raw"):
        wikitext103(tmp_path / "w", tmp_path / "cache")


def test_gpt2_path_puts_end_of_text_between_documents(tmp_path, monkeypatch):
    fake_tiktoken = types.SimpleNamespace(get_encoding=lambda name: FakeEncoding())
    monkeypatch.setitem(sys.modules, "tiktoken", fake_tiktoken)
    monkeypatch.setattr(tokenizers, "_gpt2_ranks_offline", lambda: None)  # use get_encoding, not bundled files
    folder = tmp_path / "docs"
    folder.mkdir()
    (folder / "a.txt").write_text("one three " * 30)
    (folder / "b.txt").write_text("fives " * 30)
    data = local_text_files(folder, tmp_path / "cache", tokenizer="gpt2", val_fraction=0.2)
    tokens = np.concatenate([data.train.data, data.val.data]).tolist()
    assert tokens == [1003, 1005] * 30 + [50256] + [1005] * 30 + [50256]
    assert data.vocab_size == 50257 and data.provenance["tokenizer"] == "gpt2"
    assert data.train.path.parent.name.endswith("-gpt2")


def test_gpt2_tokenizer_real_ids():
    try:
        tok = get_tokenizer("gpt2")[0]
    except HarnessError as e:
        pytest.skip(f"GPT-2 BPE not available here: {e}")
    assert tok.encode("Hello world") == [15496, 995] and tok.encode(" the") == [262] and tok.eot == 50256
    assert tok.decode(tok.encode("héllo ✓\n\n  x")) == "héllo ✓\n\n  x"


def test_tokenizer_choice_errors():
    with pytest.raises(ConfigError, match="unknown tokenizer"):
        get_tokenizer("bpe")
    if not HAVE_TIKTOKEN:
        with pytest.raises(HarnessError, match="pip install tiktoken"):
            get_tokenizer("gpt2")
        assert get_tokenizer("auto")[0].name == "bytes"


def test_hf_dataset_text_without_datasets_says_how_to_install(tmp_path, monkeypatch):
    if importlib.util.find_spec("datasets") is not None:
        pytest.skip("datasets is installed; the missing-package message cannot be checked")
    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")  # restored afterwards
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(HarnessError, match="pip install datasets"):
        hf_dataset_text("JeanKaddour/minipile", "train", tmp_path)


def test_prepare_text_dataset_bad_source_raises(tmp_path):
    with pytest.raises(ConfigError, match="Did you mean 'wikitext103'"):
        prepare_text_dataset("wikitext-103", tmp_path)
    with pytest.raises(ConfigError, match="needs root"):
        prepare_text_dataset("wikitext103", tmp_path)


def test_llm_token_cache_goes_under_the_data_folder_not_the_working_directory(tmp_path, monkeypatch):
    from harness.distributed import Comm
    from harness.experiments.llm_train import PretrainSetup, load_text_data, token_cache_dir

    monkeypatch.setenv("HARNESS_DATA", str(tmp_path / "data"))
    (tmp_path / "work").mkdir()
    monkeypatch.chdir(tmp_path / "work")
    cfg = PretrainSetup(max_bytes=50_000)
    assert token_cache_dir(cfg) == tmp_path / "data" / "tokens"
    data = load_text_data(cfg, Comm())
    assert data.train.path.is_relative_to(tmp_path / "data" / "tokens")
    assert not any((tmp_path / "work").iterdir())  # nothing written where the run was started
    assert token_cache_dir(PretrainSetup(cache_dir=str(tmp_path / "mine"))) == tmp_path / "mine"
