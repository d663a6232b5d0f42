"""IRE (Implicit Regularization Enhancement, Wang et al. 2024) as a wrapper over any torch optimizer.

Each step sets θ ← θ′ + κ_t · m ⊙ Δ, Δ = θ′ − θ the base optimizer's step and m a flat mask (the paper's
practical algorithm); the shared wrapping, schedule and state_dict live in `base.py`, the exact-projection
variant in `projected.py`.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

import torch
from torch import Tensor
from torch.optim import Optimizer

from harness.optim.base import FlatAmplifier, check_float, check_int
from harness.optim.mask import flat_mask_from_scores, random_flat_mask, sampled_fisher_scores

logger = logging.getLogger(__name__)

MASK_KINDS = ("fisher", "random")


class IRE(FlatAmplifier):
    """IRE over any torch optimizer with a diagonal flat mask (the paper's practical algorithm).

    Loop::

        if opt.should_refresh_mask():
            opt.refresh_mask(lambda: model(x_mask))  # a batch not used for the update
        opt.zero_grad(); loss_fn(model(x), y).backward(); opt.step()

    Args:
        base_optimizer: a constructed optimizer (SGD, AdamW, SAM, ...); it keeps its own state.
        kappa: amplification κ ≥ 0; flat coordinates move (1 + κ)Δ.
        gamma: flat fraction γ in (0, 1); ⌈γN⌉ of the N coordinates are flat.
        mask_every: refresh period K ≥ 1, counted from warmup_steps.
        warmup_steps: plain base steps before IRE starts.
        ema_beta: β in [0, 1) for h ← βh + (1 − β)g̃², starting from h = 0; 0 uses g̃² alone.
        kappa_decay_with_lr: κ_t = κ · lr_t / lr_max per group (lr_max: the group's initial_lr if a
            scheduler set one, else its lr at construction, raised to any larger lr seen at a step).
        mask: "fisher" (sampled-label Fisher diagonal) or "random" (the control: a uniform mask of
            the same size, redrawn at the same refresh times, with no forward/backward).
        seed: seeds the optimizer's own torch.Generator (label sampling, random masks).

    Raises:
        TypeError: if an argument has the wrong type.
        ValueError: if an argument is out of range or mask is not one of "fisher", "random".
    """

    def __init__(
        self,
        base_optimizer: Optimizer,
        *,
        kappa: float,
        gamma: float,
        mask_every: int = 10,
        warmup_steps: int = 0,
        ema_beta: float = 0.0,
        kappa_decay_with_lr: bool = False,
        mask: str = "fisher",
        seed: int = 0,
    ) -> None:
        super().__init__(base_optimizer, kappa, mask_every, warmup_steps, kappa_decay_with_lr)
        check_float("gamma", gamma, 0.0, 1.0)
        if gamma == 0:
            raise ValueError("gamma is the flat fraction and must be in (0, 1), got 0")
        check_float("ema_beta", ema_beta, 0.0, 1.0)
        if mask not in MASK_KINDS:
            raise ValueError(f"mask must be one of {MASK_KINDS}, got {mask!r}")
        check_int("seed", seed, 0)
        self.gamma = float(gamma)
        self.ema_beta = float(ema_beta)
        self.mask_kind = mask
        self.generator = torch.Generator(device=self._params()[0].device)
        self.generator.manual_seed(seed)
        self.extra_grad_evals = 0  # forward/backward passes spent on masks
        self._mask: list[Tensor] | None = None  # bool, one per param, True = flat
        self._ema: list[Tensor] | None = None  # float32 Fisher scores, one per param

    def refresh_mask(self, logits_fn: Callable[[], Tensor] | None = None) -> None:
        """Recompute the flat mask at the current (unperturbed) parameters.

        "fisher": one forward/backward through `logits_fn`, counted in `extra_grad_evals`; labels are
        drawn from the optimizer's generator; `.grad` fields are not touched. "random": a fresh uniform
        mask; `logits_fn` is not called. Ties at the threshold: see `flat_mask_from_scores`.

        Args:
            logits_fn: forward on a batch not used for the update, returning logits (B, C) or
                (B, T, C). Set the model's mode yourself (dropout would draw from the global RNG).

        Raises:
            ValueError: if mask="fisher" and logits_fn is None, or the scores are not finite.
        """
        params = self._params()
        if self.mask_kind == "random":
            self._mask = random_flat_mask(params, self.gamma, self.generator)
        else:
            if logits_fn is None:
                raise ValueError('mask="fisher" needs logits_fn, a callable returning logits on a mask batch')
            scores = sampled_fisher_scores(logits_fn, params, self.generator)
            self.extra_grad_evals += 1
            if self.ema_beta > 0:
                if self._ema is None:
                    self._ema = [torch.zeros_like(s) for s in scores]
                for h, s in zip(self._ema, scores, strict=True):
                    h.mul_(self.ema_beta).add_(s, alpha=1 - self.ema_beta)
                scores = self._ema
            self._mask = flat_mask_from_scores(scores, self.gamma)
        logger.debug("IRE mask at step %d: flat fraction %.4f", self._num_steps, self.flat_fraction())

    def set_mask(self, mask: list[Tensor]) -> None:
        """Use a given mask until the next refresh.

        Args:
            mask: one bool tensor per parameter (param_groups order), same shapes, True = flat.

        Raises:
            ValueError: if the count, shapes or dtypes do not match the parameters.
        """
        params = self._params()
        if len(mask) != len(params):
            raise ValueError(f"mask needs one tensor per parameter ({len(params)}), got {len(mask)}")
        for i, (m, p) in enumerate(zip(mask, params, strict=True)):
            if m.dtype != torch.bool or m.shape != p.shape:
                got = f"{m.dtype} {tuple(m.shape)}"
                raise ValueError(f"mask[{i}] must be bool of shape {tuple(p.shape)}, got {got}")
        self._mask = [m.detach().to(p.device).clone() for m, p in zip(mask, params, strict=True)]

    @property
    def mask(self) -> list[Tensor] | None:
        """The current flat mask (one bool tensor per parameter), or None before the first refresh."""
        return self._mask

    @property
    def ema_scores(self) -> list[Tensor] | None:
        """The EMA of Fisher scores behind the mask (one float32 tensor per parameter); None if β = 0."""
        return self._ema

    def flat_fraction(self) -> float:
        """Fraction of coordinates the current mask marks flat (0.0 before the first refresh)."""
        if self._mask is None:
            return 0.0
        return sum(int(m.sum()) for m in self._mask) / sum(m.numel() for m in self._mask)

    def _has_flat(self) -> bool:
        return self._mask is not None

    def _amplify(self, params: list[Tensor], deltas: list[Tensor], kappas: list[float]) -> None:
        for p, d, m, kappa in zip(params, deltas, self._mask, kappas, strict=True):
            if kappa != 0:
                p.add_(d.mul_(m), alpha=kappa)  # θ ← θ′ + κ m ⊙ Δ

    def _hyper(self) -> dict[str, Any]:
        return super()._hyper() | {"gamma": self.gamma, "ema_beta": self.ema_beta, "mask": self.mask_kind}

    def _extra_state(self) -> dict[str, Any]:
        return {"mask": self._mask, "ema": self._ema, "generator": self.generator.get_state(),
                "extra_grad_evals": self.extra_grad_evals}

    def _load_extra_state(self, ire: dict[str, Any]) -> None:
        params = self._params()
        loaded = {}
        for key in ("mask", "ema"):
            if ire[key] is not None and [t.shape for t in ire[key]] != [p.shape for p in params]:
                raise ValueError(f"the saved {key} does not match the parameters' shapes")
            saved = ire[key]
            loaded[key] = None if saved is None else [t.to(p.device).clone() for t, p in zip(saved, params)]
        self._mask, self._ema = loaded["mask"], loaded["ema"]
        self.generator.set_state(ire["generator"])
        self.extra_grad_evals = int(ire["extra_grad_evals"])
