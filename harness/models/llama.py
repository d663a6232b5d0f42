"""A small, standard Llama decoder in the plain style of nanoGPT.

Pre-norm blocks: x + Attn(RMSNorm(x)), then x + SwiGLU(RMSNorm(x)); rotary position embeddings; no
biases; causal attention through `F.scaled_dot_product_attention(is_causal=True)`; final RMSNorm and an LM
head that is tied to the token embedding or not. Named presets cover a CPU smoke model, a one-GPU model and
the IRE paper's three sizes.

Note on the IRE paper's sizes (Wang et al. 2024). The authors' code (wmz9/IRE-algorithm-framework,
NLP/LLM/model_Llama.py) is not a standard Llama: rotary matrices over the whole width, applied to V too,
`nn.MultiheadAttention` with biases after the rotation, a d→d "SwiGLU" MLP, an RMSNorm of shape (T, d) that
normalises each sequence over all positions jointly (so later tokens reach earlier positions through
the norm), and an MLP head. Counting that model gives ~72M for "60M" and ~120M for "119M". The presets
here keep the paper's width, depth, heads, context and vocabulary in a standard Llama, so their parameter
counts differ from the paper's names (see `preset_table`).
"""

import math
from dataclasses import dataclass

import torch
import torch.nn as nn
import torch.nn.functional as F

from harness.claim.components import Registry


def _llama_mlp_hidden(dim: int) -> int:
    """Llama's SwiGLU width: int(8/3 * dim) rounded up to a multiple of 64."""
    return 64 * math.ceil((8 * dim // 3) / 64)


@dataclass(frozen=True)
class LlamaConfig:
    """Sizes of a Llama decoder.

    `n_kv_heads=None` means `n_heads`, `mlp_hidden=None` the Llama rule (int(8/3 dim) rounded up to a multiple
    of 64). The fields keep None, so `dataclasses.replace(config, dim=...)` re-derives them; read the resolved
    values from `kv_heads` and `mlp_dim`.

    Raises:
        TypeError: a size that is not an int, or `tie_embeddings` that is not a bool.
        ValueError: a non-positive size, `dim` not divisible by `n_heads`, or `n_heads` not divisible by
            `n_kv_heads`.
    """

    vocab_size: int
    dim: int
    n_layers: int
    n_heads: int
    max_seq_len: int
    n_kv_heads: int | None = None
    mlp_hidden: int | None = None
    tie_embeddings: bool = True
    norm_eps: float = 1e-5
    rope_theta: float = 10000.0

    def __post_init__(self) -> None:
        for name in ("vocab_size", "dim", "n_layers", "n_heads", "max_seq_len", "n_kv_heads", "mlp_hidden"):
            value = getattr(self, name)
            if value is None and name in ("n_kv_heads", "mlp_hidden"):
                continue
            if not isinstance(value, int) or isinstance(value, bool):
                raise TypeError(f"LlamaConfig.{name} must be an int, got {type(value).__name__} {value!r}")
            if value <= 0:
                raise ValueError(f"LlamaConfig.{name} must be positive, got {value}")
        if not isinstance(self.tie_embeddings, bool):
            raise TypeError(f"LlamaConfig.tie_embeddings must be a bool, got {self.tie_embeddings!r}")
        if self.dim % self.n_heads != 0:
            raise ValueError(
                f"LlamaConfig.dim ({self.dim}) must be divisible by n_heads ({self.n_heads}); "
                f"try dim={self.n_heads * max(1, round(self.dim / self.n_heads))}"
            )
        if self.n_heads % self.kv_heads != 0:
            raise ValueError(
                f"LlamaConfig.n_heads ({self.n_heads}) must be divisible by n_kv_heads ({self.n_kv_heads})"
            )
        if not self.norm_eps > 0 or not self.rope_theta > 0:
            raise ValueError(
                f"norm_eps and rope_theta must be positive, got {self.norm_eps}, {self.rope_theta}"
            )

    @property
    def head_dim(self) -> int:
        return self.dim // self.n_heads

    @property
    def kv_heads(self) -> int:
        return self.n_heads if self.n_kv_heads is None else self.n_kv_heads

    @property
    def mlp_dim(self) -> int:
        return _llama_mlp_hidden(self.dim) if self.mlp_hidden is None else self.mlp_hidden


class RMSNorm(nn.Module):
    """x / rms(x) * weight over the last dimension, computed in float32."""

    def __init__(self, dim: int, eps: float):
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        xf = x.float()
        xf = xf * torch.rsqrt(xf.pow(2).mean(-1, keepdim=True) + self.eps)
        return xf.type_as(x) * self.weight


def rotary_tables(head_dim: int, max_seq_len: int, theta: float) -> tuple[torch.Tensor, torch.Tensor]:
    """cos and sin tables, each (max_seq_len, head_dim // 2), for the rotated pairs of a head.

    An odd head_dim (the paper's 410 / 10 = 41) leaves its last channel unrotated.
    """
    freqs = 1.0 / theta ** (torch.arange(0, head_dim // 2, dtype=torch.float64) * 2 / head_dim)  # (hd/2,)
    angles = torch.outer(torch.arange(max_seq_len, dtype=torch.float64), freqs)  # (T_max, hd/2)
    return angles.cos().float(), angles.sin().float()


def apply_rotary(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    """Rotate channel pairs (0,1), (2,3), ... of x (B, H, T, hd) by position; cos, sin are (T, r/2)."""
    r = 2 * cos.shape[-1]
    x1, x2 = x[..., 0:r:2].float(), x[..., 1:r:2].float()  # (B, H, T, r/2)
    rotated = torch.stack((x1 * cos - x2 * sin, x1 * sin + x2 * cos), dim=-1).flatten(-2)  # (B, H, T, r)
    return torch.cat((rotated.type_as(x), x[..., r:]), dim=-1)


class Attention(nn.Module):
    """Multi-head causal self-attention with rotary embeddings and optional grouped key/value heads."""

    def __init__(self, config: LlamaConfig):
        super().__init__()
        self.n_heads, self.n_kv_heads, self.head_dim = config.n_heads, config.kv_heads, config.head_dim
        self.wq = nn.Linear(config.dim, config.n_heads * self.head_dim, bias=False)
        self.wk = nn.Linear(config.dim, self.n_kv_heads * self.head_dim, bias=False)
        self.wv = nn.Linear(config.dim, self.n_kv_heads * self.head_dim, bias=False)
        self.wo = nn.Linear(config.n_heads * self.head_dim, config.dim, bias=False)

    def forward(self, x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
        B, T, _ = x.shape
        q = self.wq(x).view(B, T, self.n_heads, self.head_dim).transpose(1, 2)  # (B, H, T, hd)
        k = self.wk(x).view(B, T, self.n_kv_heads, self.head_dim).transpose(1, 2)  # (B, Hkv, T, hd)
        v = self.wv(x).view(B, T, self.n_kv_heads, self.head_dim).transpose(1, 2)  # (B, Hkv, T, hd)
        q, k = apply_rotary(q, cos, sin), apply_rotary(k, cos, sin)
        if self.n_kv_heads != self.n_heads:
            repeat = self.n_heads // self.n_kv_heads
            k, v = k.repeat_interleave(repeat, dim=1), v.repeat_interleave(repeat, dim=1)  # (B, H, T, hd)
        y = F.scaled_dot_product_attention(q, k, v, is_causal=True)  # (B, H, T, hd)
        return self.wo(y.transpose(1, 2).reshape(B, T, self.n_heads * self.head_dim))  # (B, T, dim)


class SwiGLU(nn.Module):
    """w2(silu(w1 x) * w3 x)."""

    def __init__(self, dim: int, hidden: int):
        super().__init__()
        self.w1 = nn.Linear(dim, hidden, bias=False)
        self.w3 = nn.Linear(dim, hidden, bias=False)
        self.w2 = nn.Linear(hidden, dim, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.w2(F.silu(self.w1(x)) * self.w3(x))


class Block(nn.Module):
    def __init__(self, config: LlamaConfig):
        super().__init__()
        self.attn_norm = RMSNorm(config.dim, config.norm_eps)
        self.attn = Attention(config)
        self.mlp_norm = RMSNorm(config.dim, config.norm_eps)
        self.mlp = SwiGLU(config.dim, config.mlp_dim)

    def forward(self, x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
        x = x + self.attn(self.attn_norm(x), cos, sin)
        return x + self.mlp(self.mlp_norm(x))


class Llama(nn.Module):
    """Llama decoder language model.

    Args:
        config: the sizes.
        generator: optional CPU generator for the initialisation; without it the global RNG is used, so
            `torch.manual_seed(s)` before construction also gives a reproducible init.
    """

    def __init__(self, config: LlamaConfig, generator: torch.Generator | None = None):
        super().__init__()
        if not isinstance(config, LlamaConfig):
            raise TypeError(f"config must be a LlamaConfig, got {type(config).__name__}")
        self.config = config
        self.tok_emb = nn.Embedding(config.vocab_size, config.dim)
        self.blocks = nn.ModuleList(Block(config) for _ in range(config.n_layers))
        self.norm = RMSNorm(config.dim, config.norm_eps)
        self.lm_head = nn.Linear(config.dim, config.vocab_size, bias=False)
        if config.tie_embeddings:
            self.lm_head.weight = self.tok_emb.weight
        cos, sin = rotary_tables(config.head_dim, config.max_seq_len, config.rope_theta)
        self.register_buffer("rope_cos", cos, persistent=False)  # (T_max, hd/2)
        self.register_buffer("rope_sin", sin, persistent=False)
        self._init_weights(generator)

    @torch.no_grad()
    def _init_weights(self, generator: torch.Generator | None) -> None:
        # GPT-2 / nanoGPT: N(0, 0.02) everywhere, the two projections that write into the residual stream
        # scaled by 1/sqrt(2 * n_layers) so the residual variance does not grow with depth. Norms start at 1.
        residual_std = 0.02 / math.sqrt(2 * self.config.n_layers)
        for name, p in self.named_parameters():  # shared (tied) weights are visited once
            if p.ndim < 2:
                continue
            std = residual_std if name.endswith(("wo.weight", "w2.weight")) else 0.02
            nn.init.normal_(p, mean=0.0, std=std, generator=generator)

    def forward(
        self, idx: torch.Tensor, targets: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Logits for every position and, given targets, the mean cross-entropy.

        Args:
            idx: token ids, LongTensor (B, T) with T <= max_seq_len.
            targets: next-token ids (B, T), or None; -1 marks positions to ignore.

        Returns:
            logits (B, T, vocab_size) and the loss (scalar float32) or None.

        Raises:
            TypeError: idx or targets is not an integer tensor.
            ValueError: idx is not 2-D, T exceeds max_seq_len, or targets' shape differs from idx's.
        """
        if idx.dtype not in (torch.int64, torch.int32):
            raise TypeError(f"idx must be an int64/int32 tensor of token ids, got {idx.dtype}")
        if idx.ndim != 2:
            raise ValueError(f"idx must have shape (batch, seq_len), got {tuple(idx.shape)}")
        B, T = idx.shape
        if T > self.config.max_seq_len:
            raise ValueError(f"sequence length {T} exceeds max_seq_len {self.config.max_seq_len}")
        cos, sin = self.rope_cos[:T], self.rope_sin[:T]  # (T, hd/2)
        x = self.tok_emb(idx)  # (B, T, dim)
        for block in self.blocks:
            x = block(x, cos, sin)
        logits = self.lm_head(self.norm(x))  # (B, T, V)
        if targets is None:
            return logits, None
        if targets.shape != idx.shape:
            raise ValueError(
                f"targets shape {tuple(targets.shape)} differs from idx shape {tuple(idx.shape)}"
            )
        if targets.dtype not in (torch.int64, torch.int32):
            raise TypeError(f"targets must be an integer tensor, got {targets.dtype}")
        loss = F.cross_entropy(logits.float().view(B * T, -1), targets.reshape(B * T).long(), ignore_index=-1)
        return logits, loss


def count_parameters(model: nn.Module, exclude_embeddings: bool = False) -> int:
    """Number of distinct parameters (a tied weight counts once).

    Args:
        model: any module.
        exclude_embeddings: leave out every `nn.Embedding` table and, for a Llama with untied embeddings,
            its LM head (the other vocab x dim table).

    Returns:
        The parameter count.
    """
    skip: set[int] = set()
    if exclude_embeddings:
        skip = {id(m.weight) for m in model.modules() if isinstance(m, nn.Embedding)}
        if isinstance(model, Llama):
            skip.add(id(model.lm_head.weight))
    return sum(p.numel() for p in model.parameters() if id(p) not in skip)


GPT2_VOCAB = 50304  # GPT-2's 50257 BPE tokens padded to a multiple of 64, as in nanoGPT and the paper

LLAMA_PRESETS: dict[str, LlamaConfig] = {
    # ~1.03M parameters, byte vocabulary: CPU smoke tests and the CPU tier.
    "tiny-1m": LlamaConfig(vocab_size=256, dim=144, n_layers=4, n_heads=4, max_seq_len=128),
    # ~29.9M, GPT-2 vocabulary (19.3M of it the tied embedding): one-GPU tier.
    "small-30m": LlamaConfig(vocab_size=GPT2_VOCAB, dim=384, n_layers=6, n_heads=6, max_seq_len=256),
    # IRE paper, WikiText-103 "60M": d 410, 16 layers, 10 heads (head_dim 41), seq 150, untied like theirs.
    "wikitext-60m": LlamaConfig(
        vocab_size=GPT2_VOCAB, dim=410, n_layers=16, n_heads=10, max_seq_len=150, tie_embeddings=False
    ),
    # IRE paper, MiniPile "119M": d 768, 6 layers, 12 heads, seq 512, untied like theirs.
    "minipile-119m": LlamaConfig(
        vocab_size=GPT2_VOCAB, dim=768, n_layers=6, n_heads=12, max_seq_len=512, tie_embeddings=False
    ),
    # IRE paper, OpenWebText 229M: hidden 768, 16 layers, 12 heads, MLP 3072, context 1024, untied.
    "owt-229m": LlamaConfig(
        vocab_size=GPT2_VOCAB, dim=768, n_layers=16, n_heads=12, max_seq_len=1024, mlp_hidden=3072,
        tie_embeddings=False,
    ),
}

PAPER_NAMES: dict[str, str] = {
    "tiny-1m": "- (harness CPU model)",
    "small-30m": "- (harness one-GPU model)",
    "wikitext-60m": "60M, WikiText-103 (authors' model counts ~72M)",
    "minipile-119m": "119M, MiniPile (authors' model counts ~120M)",
    "owt-229m": "229M, OpenWebText",
}


# The presets as a component registry (harness.claim.components): what a config's `model` names.
LLAMA_MODELS: Registry[LlamaConfig] = Registry("Llama preset")
for _name, _config in LLAMA_PRESETS.items():
    LLAMA_MODELS.add(_name, _config)


def preset(name: str) -> LlamaConfig:
    """The named preset config.

    Raises:
        ConfigError: unknown name; the message suggests close matches and lists all presets.
    """
    return LLAMA_MODELS.get(name)


def preset_table() -> list[tuple[str, str, int]]:
    """(preset, paper name, counted parameters) for every preset; models are built on the meta device.

    Returns:
        One row per preset, in definition order.
    """
    rows = []
    for name, config in LLAMA_PRESETS.items():
        with torch.device("meta"):
            model = Llama(config)
        rows.append((name, PAPER_NAMES[name], count_parameters(model)))
    return rows
