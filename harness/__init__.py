"""harness: checks research claims by running them.

Claims (in the top-level `claims` package) use only these public names.
"""
from harness.config import derive
from harness.errors import ConfigError, DataError, HarnessError, UnknownClaimError
from harness.expect import Above, AtLeast, AtMost, Below, Between, Effect, Region, Within
from harness.measurement import Measurement, RunContext
from harness.registry import Change, Check, Claim, Plot, Tier, experiment, register

__all__ = [
    "Above", "AtLeast", "AtMost", "Below", "Between", "Change", "Check", "Claim", "ConfigError", "DataError",
    "Effect", "HarnessError",
    "Measurement", "Plot", "Region", "RunContext", "Tier", "UnknownClaimError", "Within",
    "derive", "experiment", "register",
]
