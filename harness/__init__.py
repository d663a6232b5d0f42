"""harness: checks research claims by running them.

Claims (in the top-level `claims` package) use only these public names.
"""
from harness.claim.config import derive
from harness.claim.expect import Above, AtLeast, AtMost, Below, Between, Effect, Region, Within
from harness.claim.measurement import Measurement, RunContext
from harness.claim.registry import Change, Check, Claim, Plot, Tier, experiment, register
from harness.errors import ConfigError, DataError, HarnessError, UnknownClaimError

__all__ = [
    "Above", "AtLeast", "AtMost", "Below", "Between", "Change", "Check", "Claim", "ConfigError", "DataError",
    "Effect", "HarnessError",
    "Measurement", "Plot", "Region", "RunContext", "Tier", "UnknownClaimError", "Within",
    "derive", "experiment", "register",
]
