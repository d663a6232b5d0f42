"""Curvature probes: Hessian operator, top eigenvalues, trace estimators, spherical and preconditioned sharpness."""

from harness.curvature.hvp import HessianOperator, flatten_params, unflatten_like
from harness.curvature.lanczos import (
    EigenNotConvergedError,
    EigenResult,
    top_eigenvalues,
    top_hessian_eigenvalue,
)
from harness.curvature.preconditioned import PreconditionedHessianOperator, adam_preconditioner, is_adam
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
    "PreconditionedHessianOperator",
    "ScaleInvarianceReport",
    "SphericalSharpness",
    "TraceEstimate",
    "adam_preconditioner",
    "check_scale_invariance",
    "effective_lr",
    "flatten_params",
    "hutchinson_trace",
    "hutchpp_trace",
    "is_adam",
    "spherical_sharpness",
    "top_eigenvalues",
    "top_hessian_eigenvalue",
    "unflatten_like",
]
