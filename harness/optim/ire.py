"""IRE (Implicit Regularization Enhancement, Wang et al. 2024) as a wrapper over any torch optimizer.

Each step remembers θ, lets the base optimizer step to θ′, and sets θ ← θ′ + κ_t · F(Δ), Δ = θ′ − θ:
F(Δ) = m ⊙ Δ with a flat mask m (`IRE`, the practical algorithm) or F(Δ) = U Uᵀ Δ with an orthonormal
basis U of flat Hessian eigen-directions (`IREProjected`, the ideal one). Everything in Δ is amplified
(momentum, Adam preconditioning, decoupled weight decay); the base optimizer's state is never touched.
The wrapper shares `param_groups` and `state` with the base, so LR schedulers work on it directly.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable
from typing import Any

import torch
from torch import Tensor
from torch.optim import Optimizer

from harness.optim.mask import flat_mask_from_scores, random_flat_mask, sampled_fisher_scores

logger = logging.getLogger(__name__)

MASK_KINDS = ("fisher", "random")


def _check_float(name: str, value: object, low: float, high: float = math.inf) -> None:
    """Raise unless value is a finite number with low <= value < high."""
    if isinstance(value, bool) or not isinstance(value, (float, int)):
        raise TypeError(f"{name} must be a float, got {type(value).__name__}")
    if not (math.isfinite(value) and low <= value < high):
        raise ValueError(f"{name} must be in [{low}, {high}), got {value}")


def _check_int(name: str, value: object, low: int) -> None:
    """Raise unless value is an int >= low."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{name} must be an int, got {type(value).__name__}")
    if value < low:
        raise ValueError(f"{name} must be >= {low}, got {value}")


class _FlatAmplifier(Optimizer):
    """Shared machinery: wrapping, step counter, warm-up, κ_t, refresh schedule, state_dict.

    Subclasses hold the flat directions and implement `_has_flat`, `_amplify`, `_extra_state`,
    `_load_extra_state` (and extend `_hyper`).
    """

    def __init__(self, base_optimizer: Optimizer, kappa: float, mask_every: int, warmup_steps: int,
                 kappa_decay_with_lr: bool) -> None:
        if not isinstance(base_optimizer, Optimizer):
            name = type(base_optimizer).__name__
            raise TypeError(f"base_optimizer must be a constructed torch.optim.Optimizer, got {name}")
        _check_float("kappa", kappa, 0.0)
        _check_int("mask_every", mask_every, 1)
        _check_int("warmup_steps", warmup_steps, 0)
        super().__init__(base_optimizer.param_groups, defaults={})
        self.base_optimizer = base_optimizer
        self._share_with_base()
        self.kappa = float(kappa)
        self.mask_every = mask_every
        self.warmup_steps = warmup_steps
        self.kappa_decay_with_lr = bool(kappa_decay_with_lr)
        self._num_steps = 0
        # lr_max per group: a scheduler's initial_lr if set, else the lr now; raised at every step to
        # the largest lr seen, so a warm-up ramp before IRE starts is handled.
        self._lr_max = [float(g.get("initial_lr", g["lr"])) for g in self.param_groups]

    def _share_with_base(self) -> None:
        # Same list and dicts as the base: LR schedulers and zero_grad act on both.
        self.param_groups = self.base_optimizer.param_groups
        self.state = self.base_optimizer.state

    def add_param_group(self, param_group: dict[str, Any]) -> None:
        """Refuse new groups once built (the flat directions are sized at construction).

        Raises:
            ValueError: once constructed; add groups to the base optimizer before wrapping it.
        """
        if hasattr(self, "base_optimizer"):
            raise ValueError("add param groups to the base optimizer before wrapping it")
        super().add_param_group(param_group)

    def _params(self) -> list[Tensor]:
        return [p for g in self.param_groups for p in g["params"]]

    @property
    def num_steps(self) -> int:
        """Steps taken so far (warm-up included)."""
        return self._num_steps

    def should_refresh_mask(self) -> bool:
        """Whether the loop should refresh before its next `step`.

        Returns:
            True when num_steps = warmup_steps + j · mask_every (j ≥ 0), or past warm-up with no flat
            directions yet; False during warm-up.
        """
        if self._num_steps < self.warmup_steps:
            return False
        return not self._has_flat() or (self._num_steps - self.warmup_steps) % self.mask_every == 0

    def current_kappas(self) -> list[float]:
        """κ_t the next step will use, per param group.

        Returns:
            κ for every group, or with kappa_decay_with_lr κ · lr_t / lr_max (0 where lr_max is 0).
        """
        if not self.kappa_decay_with_lr:
            return [self.kappa] * len(self.param_groups)
        lrs = [float(g["lr"]) for g in self.param_groups]
        lr_max = [max(m, lr) for m, lr in zip(self._lr_max, lrs, strict=True)]
        return [self.kappa * lr / m if m > 0 else 0.0 for lr, m in zip(lrs, lr_max, strict=True)]

    def step(self, closure: Callable[[], Any] | None = None) -> Any:
        """Base step (closure passed through), then amplification of Δ on the flat directions.

        During warm-up, before the first refresh, or while every κ_t is 0 this is exactly the base step.

        Args:
            closure: passed unchanged to the base optimizer's step.

        Returns:
            Whatever the base optimizer's step returns (the loss when a closure is given).
        """
        kappas = self.current_kappas()
        self._lr_max = [max(m, float(g["lr"])) for m, g in zip(self._lr_max, self.param_groups, strict=True)]
        active = self._num_steps >= self.warmup_steps and self._has_flat() and any(k != 0 for k in kappas)
        self._num_steps += 1
        if not active:
            return self.base_optimizer.step(closure)
        params = self._params()
        deltas = [p.detach().clone() for p in params]  # θ
        loss = self.base_optimizer.step(closure)
        with torch.no_grad():
            for p, d in zip(params, deltas, strict=True):
                torch.sub(p, d, out=d)  # Δ = θ′ − θ
            per_param = [k for g, k in zip(self.param_groups, kappas, strict=True) for _ in g["params"]]
            self._amplify(params, deltas, per_param)
        return loss

    def state_dict(self) -> dict[str, Any]:
        """Base state plus the wrapper's step counter, lr_max, hyperparameters and flat directions.

        Returns:
            {"base": base_optimizer.state_dict(), "ire": {...}}, for torch.save.
        """
        ire = {"num_steps": self._num_steps, "lr_max": list(self._lr_max), "hyper": self._hyper()}
        return {"base": self.base_optimizer.state_dict(), "ire": ire | self._extra_state()}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        """Restore a `state_dict()`; the run then continues bit-identically.

        Args:
            state_dict: from `state_dict()` of a wrapper built with the same hyperparameters.

        Raises:
            ValueError: if the keys, hyperparameters, group count or tensor shapes do not match.
        """
        if set(state_dict) != {"base", "ire"}:
            raise ValueError(f"expected a state_dict with keys 'base' and 'ire', got {sorted(state_dict)}")
        ire = state_dict["ire"]
        if ire["hyper"] != self._hyper():
            saved, mine = ire["hyper"], self._hyper()
            raise ValueError(f"state_dict was saved with {saved}, this optimizer has {mine}; use the same")
        if len(ire["lr_max"]) != len(self.param_groups):
            n_saved, n_mine = len(ire["lr_max"]), len(self.param_groups)
            raise ValueError(f"state_dict has {n_saved} param groups, this optimizer has {n_mine}")
        self._load_extra_state(ire)
        self.base_optimizer.load_state_dict(state_dict["base"])
        self._share_with_base()  # the base built new group dicts
        self._num_steps = int(ire["num_steps"])
        self._lr_max = [float(x) for x in ire["lr_max"]]

    def _hyper(self) -> dict[str, Any]:
        return {"kappa": self.kappa, "mask_every": self.mask_every, "warmup_steps": self.warmup_steps,
                "kappa_decay_with_lr": self.kappa_decay_with_lr}

    def _has_flat(self) -> bool:
        raise NotImplementedError

    def _amplify(self, params: list[Tensor], deltas: list[Tensor], kappas: list[float]) -> None:
        raise NotImplementedError

    def _extra_state(self) -> dict[str, Any]:
        raise NotImplementedError

    def _load_extra_state(self, ire: dict[str, Any]) -> None:
        raise NotImplementedError


class IRE(_FlatAmplifier):
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
        _check_float("gamma", gamma, 0.0, 1.0)
        if gamma == 0:
            raise ValueError("gamma is the flat fraction and must be in (0, 1), got 0")
        _check_float("ema_beta", ema_beta, 0.0, 1.0)
        if mask not in MASK_KINDS:
            raise ValueError(f"mask must be one of {MASK_KINDS}, got {mask!r}")
        _check_int("seed", seed, 0)
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


class IREProjected(_FlatAmplifier):
    """Ideal IRE: θ ← θ′ + κ_t P Δ, P = U Uᵀ the projector onto flat Hessian eigen-directions.

    For small models and toy losses (Δ is flattened over all parameters). The flat directions come from
    a callable, e.g. `lambda: flat_projection_from_hessian(H_at_theta(), num_flat=r)` (a basis U) or a
    toy's closed-form projector P, refreshed on the same schedule as IRE's mask (default every step).

    Args:
        base_optimizer: a constructed optimizer; it keeps its own state.
        kappa: amplification κ ≥ 0.
        mask_every: refresh period of the flat directions, counted from warmup_steps.
        warmup_steps: plain base steps before IRE starts.
        kappa_decay_with_lr: κ_t = κ · lr_t / lr_max; needs a single param group (P mixes groups).
        flat_directions: what `refresh_mask`'s callable returns: "basis" (U, N × r, orthonormal
            columns) or "projector" (P, N × N, symmetric and idempotent).

    Raises:
        TypeError: if an argument has the wrong type.
        ValueError: if an argument is out of range, or kappa decay is asked for with several groups.
    """

    def __init__(self, base_optimizer: Optimizer, *, kappa: float, mask_every: int = 1, warmup_steps: int = 0,
                 kappa_decay_with_lr: bool = False, flat_directions: str = "basis") -> None:
        super().__init__(base_optimizer, kappa, mask_every, warmup_steps, kappa_decay_with_lr)
        if kappa_decay_with_lr and len(self.param_groups) > 1:
            raise ValueError("IREProjected with kappa_decay_with_lr needs a single param group")
        if flat_directions not in ("basis", "projector"):
            raise ValueError(f'flat_directions must be "basis" or "projector", got {flat_directions!r}')
        self.flat_directions = flat_directions
        self._basis: Tensor | None = None  # (N, r); a projector is stored through its basis

    def refresh_mask(self, flat_fn: Callable[[], Tensor]) -> None:
        """Recompute the flat directions at the current parameters.

        Args:
            flat_fn: returns U (N, r) or P (N, N) as set by `flat_directions`, N the total parameter
                count, coordinates in param_groups order.

        Raises:
            ValueError: if U is not (N, r) with orthonormal columns, or P not an (N, N) projector.
        """
        M = flat_fn()
        n = sum(p.numel() for p in self._params())
        projector = self.flat_directions == "projector"
        shape_ok = isinstance(M, Tensor) and M.dim() == 2 and M.shape[0] == n
        if not (shape_ok and (M.shape[1] == n or not projector)):
            got = tuple(M.shape) if isinstance(M, Tensor) else type(M).__name__
            want = f"({n}, {n})" if projector else f"({n}, r)"
            raise ValueError(f"the {self.flat_directions} must have shape {want}, got {got}")
        tol = 1e-8 if M.dtype == torch.float64 else 1e-4
        if projector:
            if not (torch.allclose(M, M.T, atol=tol) and torch.allclose(M @ M, M, atol=tol)):
                raise ValueError("P must be an orthogonal projector (P = P.T = P @ P)")
            eigenvalues, eigenvectors = torch.linalg.eigh((M + M.T) / 2)  # eigenvalues are 0 or 1
            M = eigenvectors[:, eigenvalues > 0.5]  # (N, r) basis of the range of P
        if not torch.allclose(M.T @ M, torch.eye(M.shape[1], dtype=M.dtype, device=M.device), atol=tol):
            raise ValueError("U needs orthonormal columns (U.T @ U = I); see flat_projection_from_hessian")
        self._basis = M.detach().clone()

    def flat_fraction(self) -> float:
        """r / N for the current basis (0.0 before the first refresh)."""
        return 0.0 if self._basis is None else self._basis.shape[1] / self._basis.shape[0]

    def _has_flat(self) -> bool:
        return self._basis is not None

    def _amplify(self, params: list[Tensor], deltas: list[Tensor], kappas: list[float]) -> None:
        delta = torch.cat([d.reshape(-1) for d in deltas])  # (N,)
        U = self._basis.to(delta.dtype)  # (N, r)
        projected = (U @ (U.T @ delta)).split([d.numel() for d in deltas])  # P Δ, split per parameter
        for p, pd, kappa in zip(params, projected, kappas, strict=True):
            if kappa != 0:
                p.add_(pd.view_as(p), alpha=kappa)

    def _hyper(self) -> dict[str, Any]:
        return super()._hyper() | {"flat_directions": self.flat_directions}

    def _extra_state(self) -> dict[str, Any]:
        return {"basis": self._basis}

    def _load_extra_state(self, ire: dict[str, Any]) -> None:
        n = sum(p.numel() for p in self._params())
        if ire["basis"] is not None and ire["basis"].shape[0] != n:
            raise ValueError(f"the saved basis has {ire['basis'].shape[0]} rows, the parameters {n}")
        self._basis = None if ire["basis"] is None else ire["basis"].clone()
