"""The machinery IRE's two variants share (Implicit Regularization Enhancement, Wang et al. 2024).

Each step remembers θ, lets the base optimizer step to θ′, and sets θ ← θ′ + κ_t · F(Δ), Δ = θ′ − θ:
F(Δ) = m ⊙ Δ with a flat mask m (`IRE`, the practical algorithm, in `ire.py`) or F(Δ) = U Uᵀ Δ with an
orthonormal basis U of flat Hessian eigen-directions (`IREProjected`, the ideal one, in `projected.py`).
Everything in Δ is amplified (momentum, Adam preconditioning, decoupled weight decay); the base optimizer's
state is never touched. The wrapper shares `param_groups` and `state` with the base, so LR schedulers work
on it directly.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import torch
from torch import Tensor
from torch.optim import Optimizer


def check_float(name: str, value: object, low: float, high: float = math.inf) -> None:
    """Raise unless value is a finite number with low <= value < high."""
    if isinstance(value, bool) or not isinstance(value, (float, int)):
        raise TypeError(f"{name} must be a float, got {type(value).__name__}")
    if not (math.isfinite(value) and low <= value < high):
        raise ValueError(f"{name} must be in [{low}, {high}), got {value}")


def check_int(name: str, value: object, low: int) -> None:
    """Raise unless value is an int >= low."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{name} must be an int, got {type(value).__name__}")
    if value < low:
        raise ValueError(f"{name} must be >= {low}, got {value}")


class FlatAmplifier(Optimizer):
    """Shared machinery: wrapping, step counter, warm-up, κ_t, refresh schedule, state_dict.

    Subclasses hold the flat directions and implement `_has_flat`, `_amplify`, `_extra_state`,
    `_load_extra_state` (and extend `_hyper`).
    """

    def __init__(self, base_optimizer: Optimizer, kappa: float, mask_every: int, warmup_steps: int,
                 kappa_decay_with_lr: bool) -> None:
        if not isinstance(base_optimizer, Optimizer):
            name = type(base_optimizer).__name__
            raise TypeError(f"base_optimizer must be a constructed torch.optim.Optimizer, got {name}")
        check_float("kappa", kappa, 0.0)
        check_int("mask_every", mask_every, 1)
        check_int("warmup_steps", warmup_steps, 0)
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

    def load_warmup_state(self, base_state: dict[str, Any], steps: int, peak_lrs: list[float]) -> None:
        """Take over the first `steps` warm-up steps from a base optimizer that took them alone.

        A warm-up step is exactly the base step, so a run can share its warm-up with a plain base run and
        fork at the switch: afterwards this wrapper is in the state `steps` calls of `step` would have
        left (the base's state, the step counter, lr_max), and continues bit-identically.

        Args:
            base_state: `state_dict()` of an optimizer of this wrapper's base kind over the same
                parameters (loaded as is: pass a copy if the source keeps stepping).
            steps: warm-up steps taken, 0 <= steps <= warmup_steps.
            peak_lrs: per param group, the largest lr the base stepped with (lr_max is raised to it).

        Raises:
            ValueError: if this wrapper has already stepped, steps lies outside the warm-up, or
                peak_lrs does not have one value per param group.
        """
        if self._num_steps != 0 or self._has_flat():
            raise ValueError("load_warmup_state needs a wrapper that has not stepped yet")
        check_int("steps", steps, 0)
        if steps > self.warmup_steps:
            raise ValueError(f"steps must be <= warmup_steps ({self.warmup_steps}), got {steps}: "
                             "past the warm-up the wrapper would have acted")
        if len(peak_lrs) != len(self.param_groups):
            raise ValueError(f"peak_lrs needs one lr per param group ({len(self.param_groups)}), got {len(peak_lrs)}")
        self.base_optimizer.load_state_dict(base_state)
        self._share_with_base()  # the base built new group dicts
        self._num_steps = steps
        self._lr_max = [max(m, float(lr)) for m, lr in zip(self._lr_max, peak_lrs, strict=True)]

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
