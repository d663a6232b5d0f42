"""Curvature probes: Hessian operator, top eigenvalues, trace estimators, spherical sharpness."""

from harness.curvature.hvp import HessianOperator, flatten_params, unflatten_like
from harness.curvature.lanczos import (
    EigenNotConvergedError,
    EigenResult,
    top_eigenvalues,
    top_hessian_eigenvalue,
)
from harness.curvature.spherical import (
    ScaleInvarianceReport,
    SphericalSharpness,
    check_scale_invariance,
    effective_lr,
    spherical_sharpness,
)
from harness.curvature.trace import TraceEstimate, hutchinson_trace, hutchpp_trace

__all__ = [
    "EigenNotConvergedError",
    "EigenResult",
    "HessianOperator",
    "ScaleInvarianceReport",
    "SphericalSharpness",
    "TraceEstimate",
    "check_scale_invariance",
    "effective_lr",
    "flatten_params",
    "hutchinson_trace",
    "hutchpp_trace",
    "spherical_sharpness",
    "top_eigenvalues",
    "top_hessian_eigenvalue",
    "unflatten_like",
]
