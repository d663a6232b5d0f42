"""Toy losses with a manifold of minima, as nn.Modules so that ordinary optimizers can run on them.

Figure1Toy is the IRE paper's Figure 1 (Wang et al. 2024): L(u, v) = (1 + u²) v² / 2. Its minima are v = 0,
with sharpness (top Hessian eigenvalue) 1 + u² and Hessian trace 1 + u², flattest at u = 0.

RotatedToy is the same picture in 2p dimensions seen through a random rotation, so that the flat
directions are not coordinate axes (a test of anything that must find them, e.g. an IRE mask):
    (a; b) = Q (u; v),   L = (1 + ‖A a‖²) ‖B b‖² / 2,
with Q a random orthogonal 2p x 2p matrix and A, B random p x p matrices with singular values in [1, 2].
The minima are b = 0, a p-dimensional linear subspace; the flat directions there are the rows of Q that
produce a, and Tr ∇²L = (1 + ‖A a‖²) ‖B‖_F² on it.

Everything here is closed form; parameters are ordered θ = (u, v) when flattened.
"""
from __future__ import annotations

import torch
import torch.nn as nn

from harness.models.mlp import check_positive_int, check_seed


class Figure1Toy(nn.Module):
    """L(u, v) = (1 + u²) v² / 2 with scalar parameters u, v (0-dim tensors).

    Args:
        u0, v0: starting point (the paper starts at (1, 0.01)).
        dtype: parameter dtype (float64 by default: the toy is a numerical reference).
    """

    def __init__(self, u0: float = 1.0, v0: float = 0.01, dtype: torch.dtype = torch.float64):
        super().__init__()
        self.u = nn.Parameter(torch.tensor(float(u0), dtype=dtype))
        self.v = nn.Parameter(torch.tensor(float(v0), dtype=dtype))

    def loss(self) -> torch.Tensor:
        """The loss at the current parameters, a 0-dim tensor."""
        return (1 + self.u ** 2) * self.v ** 2 / 2

    def forward(self) -> torch.Tensor:
        return self.loss()

    @torch.no_grad()
    def hessian(self) -> torch.Tensor:
        """Closed-form Hessian in (u, v) order, shape (2, 2): [[v², 2uv], [2uv, 1 + u²]]."""
        u, v = self.u, self.v
        return torch.stack([torch.stack([v ** 2, 2 * u * v]), torch.stack([2 * u * v, 1 + u ** 2])])

    def sharpness(self) -> float:
        """Top Hessian eigenvalue (1 + u² at a minimum)."""
        return torch.linalg.eigvalsh(self.hessian())[-1].item()

    def hessian_trace(self) -> float:
        """Tr ∇²L = v² + 1 + u²."""
        return (self.v ** 2 + 1 + self.u ** 2).item()

    def flat_projection(self) -> torch.Tensor:
        """Projection onto the flat direction of the minima (the u axis), shape (2, 2): diag(1, 0)."""
        return torch.diag(torch.tensor([1.0, 0.0], dtype=self.u.dtype))

    def output(self) -> torch.Tensor:
        """The model output f = √(1 + u²) · v, so that L = f² / 2 (a 0-dim tensor)."""
        return torch.sqrt(1 + self.u ** 2) * self.v

    def sampled_fisher_scores(self, generator: torch.Generator) -> list[torch.Tensor]:
        """IRE's practical flat score h = g̃ ⊙ g̃ on this toy, one tensor per parameter (u, v).

        L = f²/2 is, up to a constant, the Gaussian negative log-likelihood of the label 0 under N(f, 1).
        As the paper's classifier rule draws labels from the model's softmax, a label ŷ ~ N(f, 1) is drawn
        from the model's own predictive distribution, and g̃ = ∇θ (f − ŷ)²/2 = (f − ŷ) ∇θ f. One draw
        scales every coordinate by the same (f − ŷ)², so the ranking is that of the Gauss-Newton
        diagonal (∇θ f)²: (u² v² / (1 + u²), 1 + u²).

        Args:
            generator: draws ŷ (CPU generator); the global RNG is not touched.

        Returns:
            [h_u, h_v], 0-dim float tensors.
        """
        with torch.enable_grad():
            f = self.output()
            y = f.detach() + torch.randn((), generator=generator, dtype=f.dtype)
            gu, gv = torch.autograd.grad((f - y) ** 2 / 2, [self.u, self.v])
        return [gu.detach().square(), gv.detach().square()]


def _random_orthogonal(n: int, generator: torch.Generator) -> torch.Tensor:
    """A Haar-random n x n orthogonal matrix (QR of a Gaussian with the sign fix), float64."""
    q, r = torch.linalg.qr(torch.randn(n, n, generator=generator, dtype=torch.float64))
    return q * torch.sign(torch.diagonal(r))  # (n, n)


def _well_conditioned(n: int, generator: torch.Generator) -> torch.Tensor:
    """U diag(s) V^T with U, V random orthogonal and s uniform in [1, 2]: condition number <= 2."""
    s = 1 + torch.rand(n, generator=generator, dtype=torch.float64)
    return _random_orthogonal(n, generator) @ torch.diag(s) @ _random_orthogonal(n, generator).T


class RotatedToy(nn.Module):
    """L(u, v) = (1 + ‖A a‖²) ‖B b‖² / 2 with (a; b) = Q (u; v); u, v are parameters of shape (p,).

    Args:
        p: dimension of each block (2p parameters in all).
        seed: draws Q, A, B (a local generator; the global RNG is not touched).
        u0, v0: the starting point in the rotated coordinates: a = u0 · 1/√p, b = v0 · 1/√p, so that
            ‖a‖ = |u0| and ‖b‖ = |v0| (p = 1 with A = B = Q = 1 would be Figure1Toy).
        dtype: parameter dtype.

    Buffers Q (2p, 2p), A (p, p), B (p, p) hold the fixed matrices.

    Raises:
        ValueError / TypeError: p not a positive int, bad seed.
    """

    def __init__(self, p: int = 4, seed: int = 0, u0: float = 1.0, v0: float = 0.01,
                 dtype: torch.dtype = torch.float64):
        super().__init__()
        self.p = check_positive_int(p, "p")
        generator = check_seed(seed)
        Q = _random_orthogonal(2 * p, generator)  # (2p, 2p)
        A = _well_conditioned(p, generator)  # (p, p)
        B = _well_conditioned(p, generator)  # (p, p)
        ab = torch.cat([torch.full((p,), float(u0)), torch.full((p,), float(v0))]).double() / p ** 0.5
        theta = Q.T @ ab  # (2p,)
        self.register_buffer("Q", Q.to(dtype))
        self.register_buffer("A", A.to(dtype))
        self.register_buffer("B", B.to(dtype))
        self.u = nn.Parameter(theta[:p].to(dtype))
        self.v = nn.Parameter(theta[p:].to(dtype))

    def rotated(self) -> tuple[torch.Tensor, torch.Tensor]:
        """The coordinates the loss sees: a (p,), b (p,)."""
        ab = self.Q @ torch.cat([self.u, self.v])  # (2p,)
        return ab[:self.p], ab[self.p:]

    def loss(self) -> torch.Tensor:
        """The loss at the current parameters, a 0-dim tensor."""
        a, b = self.rotated()
        return (1 + (self.A @ a).square().sum()) * (self.B @ b).square().sum() / 2

    def forward(self) -> torch.Tensor:
        return self.loss()

    @torch.no_grad()
    def hessian(self) -> torch.Tensor:
        """Closed-form Hessian with respect to θ = (u, v), shape (2p, 2p).

        With M = AᵀA, N = BᵀB and L = (1 + aᵀMa)(bᵀNb)/2, in (a, b) coordinates
            ∂²L/∂a² = (bᵀNb) M,  ∂²L/∂a∂b = 2 (Ma)(Nb)ᵀ,  ∂²L/∂b² = (1 + aᵀMa) N,
        and ∇²_θ L = Qᵀ ∇²_(a,b) L Q.
        """
        a, b = self.rotated()
        M, N = self.A.T @ self.A, self.B.T @ self.B  # (p, p) each
        Ma, Nb = M @ a, N @ b  # (p,)
        cross = 2 * torch.outer(Ma, Nb)  # (p, p)
        H = torch.cat([torch.cat([(b @ Nb) * M, cross], dim=1),
                       torch.cat([cross.T, (1 + a @ Ma) * N], dim=1)])  # (2p, 2p)
        return self.Q.T @ H @ self.Q

    def sharpness(self) -> float:
        """Top Hessian eigenvalue."""
        return torch.linalg.eigvalsh(self.hessian())[-1].item()

    @torch.no_grad()
    def hessian_trace(self) -> float:
        """Tr ∇²L = ‖A‖_F² ‖B b‖² + (1 + ‖A a‖²) ‖B‖_F²; at a minimum (b = 0) the second term alone."""
        a, b = self.rotated()
        A2, B2 = self.A.square().sum(), self.B.square().sum()
        return (A2 * (self.B @ b).square().sum() + (1 + (self.A @ a).square().sum()) * B2).item()

    def flat_projection(self) -> torch.Tensor:
        """Orthogonal projection onto the flat directions, shape (2p, 2p), in θ = (u, v) coordinates.

        The minima form the linear subspace b = 0, so its tangent space, and hence this projection, is the
        same at every point: P = Q_aᵀ Q_a with Q_a the first p rows of Q. At a minimum ∇²L · P = 0.
        """
        Qa = self.Q[:self.p]  # (p, 2p)
        return Qa.T @ Qa


def toy_trace(model: nn.Module) -> float:
    """Closed-form trace of the Hessian of a toy loss at its current parameters.

    Args:
        model: a Figure1Toy or RotatedToy.

    Returns:
        Tr ∇²L as a float.

    Raises:
        TypeError: model is not one of the toys.
    """
    if not isinstance(model, (Figure1Toy, RotatedToy)):
        raise TypeError(f"toy_trace expects a Figure1Toy or RotatedToy, got {type(model).__name__}")
    return model.hessian_trace()
