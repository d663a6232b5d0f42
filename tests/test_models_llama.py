"""Tests for harness.models.llama: shapes, causality, tying, parameter counts, init, training, errors."""

import dataclasses
import math

import pytest
import torch

from harness.errors import ConfigError
from harness.models.llama import (
    LLAMA_PRESETS,
    Llama,
    LlamaConfig,
    apply_rotary,
    count_parameters,
    preset,
    preset_table,
    rotary_tables,
)

SMALL = LlamaConfig(vocab_size=64, dim=32, n_layers=2, n_heads=4, max_seq_len=16)
# odd head_dim (30 / 2 = 15, like the paper's 41) and grouped key/value heads
VARIANTS = [
    SMALL,
    LlamaConfig(vocab_size=64, dim=30, n_layers=2, n_heads=2, max_seq_len=16, tie_embeddings=False),
    LlamaConfig(vocab_size=64, dim=32, n_layers=2, n_heads=4, n_kv_heads=2, max_seq_len=16),
]


def closed_form_count(c: LlamaConfig) -> int:
    """Parameters of a standard Llama, counted by hand."""
    head_dim = c.dim // c.n_heads
    kv_heads = c.n_heads if c.n_kv_heads is None else c.n_kv_heads
    # int(8/3 dim) rounded up to a multiple of 64 unless given
    hidden = 64 * -(-(8 * c.dim // 3) // 64) if c.mlp_hidden is None else c.mlp_hidden
    attention = 2 * c.dim * c.dim + 2 * c.dim * (kv_heads * head_dim)  # wq, wo; wk, wv
    mlp = 3 * c.dim * hidden  # w1, w3: dim -> hidden; w2: hidden -> dim
    norms = 2 * c.dim
    embeddings = c.vocab_size * c.dim * (1 if c.tie_embeddings else 2)
    return embeddings + c.n_layers * (attention + mlp + norms) + c.dim  # + final norm


def test_llama_forward_shapes():
    model = Llama(SMALL, generator=torch.Generator().manual_seed(0))
    idx = torch.randint(0, 64, (3, 10))
    logits, loss = model(idx)
    assert logits.shape == (3, 10, 64) and loss is None
    logits, loss = model(idx, idx)
    assert loss.shape == () and loss.dtype == torch.float32 and torch.isfinite(loss)


@pytest.mark.parametrize("config", VARIANTS, ids=["mha", "odd-head-dim-untied", "gqa"])
def test_llama_causality(config):
    model = Llama(config, generator=torch.Generator().manual_seed(1)).double()
    idx = torch.randint(0, config.vocab_size, (2, 12))
    t = 5
    changed = idx.clone()
    changed[:, t + 1 :] = (changed[:, t + 1 :] + 7) % config.vocab_size
    a, _ = model(idx)
    b, _ = model(changed)
    torch.testing.assert_close(a[:, : t + 1], b[:, : t + 1], rtol=0, atol=1e-12)
    assert not torch.allclose(a[:, t + 1 :], b[:, t + 1 :])


def test_rotary_depends_only_on_relative_position():
    cos, sin = rotary_tables(head_dim=8, max_seq_len=32, theta=10000.0)
    q, k = torch.randn(8, dtype=torch.float64), torch.randn(8, dtype=torch.float64)

    def at(x, pos):  # rotate a single vector as if it sat at position pos
        c, s = cos[pos : pos + 1].double(), sin[pos : pos + 1].double()  # (1, 4)
        return apply_rotary(x.view(1, 1, 1, 8), c, s).view(8)

    assert torch.allclose(at(q, 3) @ at(k, 1), at(q, 20) @ at(k, 18), atol=1e-6)
    assert torch.allclose(at(q, 7).norm(), q.norm(), atol=1e-6)


def test_llama_tied_embeddings_share_storage_untied_do_not():
    tied = Llama(SMALL)
    assert tied.lm_head.weight.data_ptr() == tied.tok_emb.weight.data_ptr()
    untied = Llama(dataclasses.replace(SMALL, tie_embeddings=False))
    assert untied.lm_head.weight.data_ptr() != untied.tok_emb.weight.data_ptr()
    assert count_parameters(untied) - count_parameters(tied) == 64 * 32


@pytest.mark.parametrize("config", VARIANTS, ids=["mha", "odd-head-dim-untied", "gqa"])
def test_llama_count_matches_closed_form(config):
    assert count_parameters(Llama(config)) == closed_form_count(config)


def test_llama_presets_counts():
    counts = {name: count for name, _, count in preset_table()}
    assert set(counts) == set(LLAMA_PRESETS)
    for name, config in LLAMA_PRESETS.items():
        assert counts[name] == closed_form_count(config), name
    wikitext = LLAMA_PRESETS["wikitext-60m"]
    # d 410 -> SwiGLU hidden int(8/3 * 410) = 1093, rounded up to 1152; untied GPT-2 vocabulary 50304
    assert wikitext.mlp_dim == 1152
    expected = 2 * 50304 * 410 + 16 * (4 * 410 * 410 + 3 * 410 * 1152 + 2 * 410) + 410
    assert counts["wikitext-60m"] == expected and 65e6 <= expected <= 80e6
    assert 0.9e6 <= counts["tiny-1m"] <= 1.1e6
    assert 25e6 <= counts["small-30m"] <= 35e6
    assert abs(counts["minipile-119m"] - 119e6) < 2e6 and abs(counts["owt-229m"] - 229e6) < 2e6
    tiny = Llama(preset("tiny-1m"))
    assert count_parameters(tiny, exclude_embeddings=True) == counts["tiny-1m"] - 256 * 144


def test_llama_config_defaults_rule_and_override():
    config = LlamaConfig(vocab_size=8, dim=768, n_layers=1, n_heads=12, max_seq_len=4)
    assert config.mlp_dim == 2048 and config.kv_heads == 12
    assert dataclasses.replace(config, dim=128, n_heads=4).mlp_dim == 384  # re-derived, not carried over
    assert dataclasses.replace(config, n_heads=4).kv_heads == 4
    assert dataclasses.replace(config, mlp_hidden=100).mlp_dim == 100


def test_llama_loss_at_init_is_log_vocab():
    config = preset("tiny-1m")
    model = Llama(config, generator=torch.Generator().manual_seed(0))
    g = torch.Generator().manual_seed(1)
    idx = torch.randint(0, 256, (4, 64), generator=g)
    targets = torch.randint(0, 256, (4, 64), generator=g)
    with torch.no_grad():
        _, loss = model(idx, targets)
    assert abs(loss.item() - math.log(256)) < 0.3


def test_llama_init_scales_residual_projections():
    config = LlamaConfig(vocab_size=64, dim=128, n_layers=8, n_heads=4, max_seq_len=8)
    model = Llama(config, generator=torch.Generator().manual_seed(0))
    assert model.blocks[0].attn.wq.weight.std().item() == pytest.approx(0.02, rel=0.05)
    assert model.blocks[0].attn.wo.weight.std().item() == pytest.approx(0.02 / 4, rel=0.05)
    assert model.blocks[0].mlp.w2.weight.std().item() == pytest.approx(0.02 / 4, rel=0.05)
    assert torch.equal(model.norm.weight, torch.ones(128))


def test_llama_adamw_reduces_loss_on_repeated_sequence():
    torch.manual_seed(0)
    model = Llama(SMALL)
    seq = torch.randint(0, 64, (1, 17)).repeat(4, 1)
    x, y = seq[:, :-1], seq[:, 1:]
    opt = torch.optim.AdamW(model.parameters(), lr=1e-2)
    losses = []
    for _ in range(25):
        _, loss = model(x, y)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert losses[-1] < 0.3 * losses[0]


def test_llama_init_is_deterministic():
    a = Llama(SMALL, generator=torch.Generator().manual_seed(3)).state_dict()
    b = Llama(SMALL, generator=torch.Generator().manual_seed(3)).state_dict()
    c = Llama(SMALL, generator=torch.Generator().manual_seed(4)).state_dict()
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert not torch.equal(a["tok_emb.weight"], c["tok_emb.weight"])
    torch.manual_seed(5)
    d = Llama(SMALL).state_dict()
    torch.manual_seed(5)
    e = Llama(SMALL).state_dict()
    assert all(torch.equal(d[k], e[k]) for k in d)


@pytest.mark.parametrize(
    "overrides, error, match",
    [
        ({"dim": 30, "n_heads": 4}, ValueError, "divisible by n_heads"),
        ({"n_layers": 0}, ValueError, "n_layers must be positive"),
        ({"n_kv_heads": 3}, ValueError, "divisible by n_kv_heads"),
        ({"vocab_size": 64.0}, TypeError, "vocab_size must be an int"),
        ({"tie_embeddings": "yes"}, TypeError, "tie_embeddings must be a bool"),
        ({"norm_eps": 0.0}, ValueError, "must be positive"),
    ],
)
def test_llama_config_bad_values_raise(overrides, error, match):
    kwargs = dict(vocab_size=64, dim=32, n_layers=2, n_heads=4, max_seq_len=16) | overrides
    with pytest.raises(error, match=match):
        LlamaConfig(**kwargs)


def test_llama_forward_bad_input_raises():
    model = Llama(SMALL)
    with pytest.raises(ValueError, match="exceeds max_seq_len 16"):
        model(torch.zeros(1, 17, dtype=torch.long))
    with pytest.raises(TypeError, match="int64/int32"):
        model(torch.zeros(1, 4))
    with pytest.raises(ValueError, match="targets shape"):
        model(torch.zeros(1, 4, dtype=torch.long), torch.zeros(1, 3, dtype=torch.long))


def test_llama_unknown_preset_suggests():
    with pytest.raises(ConfigError, match=r"did you mean tiny-1m\?") as info:
        preset("tiny-1M")
    assert "owt-229m" in str(info.value)  # lists what exists
    with pytest.raises(TypeError, match="LlamaConfig"):
        Llama({"dim": 8})
