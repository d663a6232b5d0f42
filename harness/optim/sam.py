"""SAM (Foret et al. 2021) over any torch optimizer, and SAM-IRE (Wang et al. 2024, Section 5).

SAM step: g = ∇L(θ), ε = ρ g / ‖g‖ (one norm over all parameters), g′ = ∇L(θ + ε), then the base
optimizer steps from θ with g′. SAM-IRE is IRE wrapped around SAM: the mask is computed at the
unperturbed θ (refresh_mask runs outside step) and SAM's realised displacement is amplified.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from torch import Tensor
from torch.optim import Optimizer

from harness.optim.ire import IRE


class SAM(Optimizer):
    """Sharpness-aware minimisation around a base optimizer, with the standard `step(closure)` interface.

    `step(closure)` always calls the closure itself, twice: first at θ (this is the gradient g that
    defines ε; `.grad` values present before the call are discarded), then at θ + ε. Before each call
    the gradients are set to None, so a closure that also zeroes them is fine. θ is restored exactly
    (copied back, not subtracted) before the base step. `grad_evals` counts closure calls.

    Args:
        base_optimizer: a constructed optimizer over the same parameters; it keeps its own state.
        rho: perturbation radius ρ > 0.

    Raises:
        TypeError: if base_optimizer is not an Optimizer or rho is not a number.
        ValueError: if rho <= 0.
    """

    def __init__(self, base_optimizer: Optimizer, rho: float) -> None:
        if not isinstance(base_optimizer, Optimizer):
            name = type(base_optimizer).__name__
            raise TypeError(f"base_optimizer must be a constructed torch.optim.Optimizer, got {name}")
        if isinstance(rho, bool) or not isinstance(rho, (float, int)):
            raise TypeError(f"rho must be a float, got {type(rho).__name__}")
        if not rho > 0:
            raise ValueError(f"rho must be > 0 (the SAM perturbation radius), got {rho}")
        super().__init__(base_optimizer.param_groups, defaults={})
        self.base_optimizer = base_optimizer
        self._share_with_base()
        self.rho = float(rho)
        self.grad_evals = 0

    def _share_with_base(self) -> None:
        self.param_groups = self.base_optimizer.param_groups
        self.state = self.base_optimizer.state

    def _evaluate(self, closure: Callable[[], Any]) -> Any:
        self.zero_grad(set_to_none=True)
        with torch.enable_grad():
            loss = closure()
        self.grad_evals += 1
        return loss

    def step(self, closure: Callable[[], Any] | None = None) -> Any:
        """One SAM step.

        Args:
            closure: zeroes grads (optional), computes the loss, calls backward, returns the loss.

        Returns:
            The loss at the unperturbed θ (the first closure call).

        Raises:
            ValueError: if closure is None.
        """
        if closure is None:
            raise ValueError("SAM.step needs a closure that computes the loss and calls backward()")
        loss = self._evaluate(closure)
        params = [p for g in self.param_groups for p in g["params"] if p.grad is not None]
        with torch.no_grad():
            theta = [p.detach().clone() for p in params]
            norm = self._grad_norm(params)
            if norm > 0:
                for p in params:
                    p.add_(p.grad, alpha=self.rho / norm)  # θ + ε, ε = ρ g / ‖g‖
        self._evaluate(closure)  # g′ = ∇L(θ + ε) in .grad
        with torch.no_grad():
            for p, t in zip(params, theta, strict=True):
                p.copy_(t)
        self.base_optimizer.step()
        return loss

    @staticmethod
    def _grad_norm(params: list[Tensor]) -> float:
        if not params:
            return 0.0
        device = params[0].grad.device
        dtype = torch.promote_types(params[0].grad.dtype, torch.float32)  # bf16 grads: norm in fp32
        norms = [torch.linalg.vector_norm(p.grad.detach(), dtype=dtype).to(device) for p in params]
        return float(torch.linalg.vector_norm(torch.stack(norms)))  # ‖g‖ over all parameters

    def state_dict(self) -> dict[str, Any]:
        """Base state plus `grad_evals`.

        Returns:
            {"base": base_optimizer.state_dict(), "sam": {"rho": ..., "grad_evals": ...}}.
        """
        sam = {"rho": self.rho, "grad_evals": self.grad_evals}
        return {"base": self.base_optimizer.state_dict(), "sam": sam}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        """Restore a `state_dict()`.

        Args:
            state_dict: as returned by `SAM.state_dict()` with the same rho.

        Raises:
            ValueError: if the keys or rho do not match.
        """
        if set(state_dict) != {"base", "sam"}:
            raise ValueError(f"expected a state_dict with keys 'base' and 'sam', got {sorted(state_dict)}")
        if state_dict["sam"]["rho"] != self.rho:
            saved = state_dict["sam"]["rho"]
            raise ValueError(f"state_dict was saved with rho={saved}, this SAM has rho={self.rho}")
        self.base_optimizer.load_state_dict(state_dict["base"])
        self._share_with_base()
        self.grad_evals = int(state_dict["sam"]["grad_evals"])


class SAMIRE(IRE):
    """SAM-IRE: IRE wrapped around SAM(base_optimizer, rho); κ of order 1/ρ in the paper's theory.

    The mask is refreshed at the unperturbed point (call `refresh_mask` outside `step`, as with IRE);
    `step(closure)` needs SAM's closure. `grad_evals` = SAM's closure calls + mask passes.

    Args:
        base_optimizer: a constructed optimizer; SAM is built around it.
        rho: SAM radius ρ > 0.
        kappa, gamma, mask_every, warmup_steps, ema_beta, kappa_decay_with_lr, mask, seed: as in `IRE`.

    Raises:
        TypeError: if an argument has the wrong type.
        ValueError: if an argument is out of range.
    """

    def __init__(
        self,
        base_optimizer: Optimizer,
        *,
        rho: float,
        kappa: float,
        gamma: float,
        mask_every: int = 10,
        warmup_steps: int = 0,
        ema_beta: float = 0.0,
        kappa_decay_with_lr: bool = False,
        mask: str = "fisher",
        seed: int = 0,
    ) -> None:
        sam = SAM(base_optimizer, rho)
        super().__init__(sam, kappa=kappa, gamma=gamma, mask_every=mask_every, warmup_steps=warmup_steps,
                         ema_beta=ema_beta, kappa_decay_with_lr=kappa_decay_with_lr, mask=mask, seed=seed)

    @property
    def grad_evals(self) -> int:
        """Gradient evaluations so far: 2 per SAM step plus one per Fisher mask refresh."""
        return self.base_optimizer.grad_evals + self.extra_grad_evals
