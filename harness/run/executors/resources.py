"""What one seed asks a SLURM cluster for: per-tier defaults, a small TOML file, then command-line flags.

    [default]                 # every tier
    partition = "gpu"
    account = "my-lab"
    [tier.gpu]                # one tier
    time_min = 720
    [claim.ire-llm-speedup]   # one claim, at every tier
    gpus_per_node = 8

Later layers win field by field: tier defaults (below) < [default] < [tier.T] < [claim.ID] < flags
(--slurm-partition, --slurm-account, --slurm-qos, --slurm-time, --slurm-gpus, --slurm-cpus, --slurm-mem).
An unknown field or section is an error, never ignored.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path

import tomllib

from harness.errors import ConfigError


@dataclass(frozen=True)
class SlurmResources:
    """One seed's SLURM request. None: leave it to the cluster's defaults."""

    partition: str | None = None
    account: str | None = None
    qos: str | None = None
    time_min: int = 60            # wall-clock limit of one job, minutes
    cpus_per_task: int = 1
    mem_gb: float = 4.0
    gpus_per_node: int = 0
    nodes: int = 1
    tasks_per_node: int = 1       # > 1: a data-parallel arm's ranks

    def __post_init__(self):
        for name in ("time_min", "cpus_per_task", "nodes", "tasks_per_node"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ConfigError(f"SLURM resource {name} must be a positive integer, got {value!r}")
        if not isinstance(self.gpus_per_node, int) or self.gpus_per_node < 0:
            raise ConfigError(f"SLURM resource gpus_per_node must be a non-negative integer, "
                              f"got {self.gpus_per_node!r}")
        if not isinstance(self.mem_gb, (int, float)) or isinstance(self.mem_gb, bool) or self.mem_gb <= 0:
            raise ConfigError(f"SLURM resource mem_gb must be a positive number, got {self.mem_gb!r}")
        for name in ("partition", "account", "qos"):
            value = getattr(self, name)
            if value is not None and (not isinstance(value, str) or not value.strip()):
                raise ConfigError(f"SLURM resource {name} must be a non-empty name, got {value!r}")

    def submitit_parameters(self) -> dict:
        """The request as submitit.AutoExecutor.update_parameters arguments."""
        params = {"timeout_min": self.time_min, "cpus_per_task": self.cpus_per_task, "mem_gb": self.mem_gb,
                  "nodes": self.nodes, "tasks_per_node": self.tasks_per_node}
        if self.gpus_per_node:
            params["gpus_per_node"] = self.gpus_per_node
        for name in ("partition", "account", "qos"):
            if getattr(self, name) is not None:
                params[f"slurm_{name}"] = getattr(self, name)
        return params


# Our choice, from the tiers' own scale notes: a cpu/smoke seed runs on one thread (provenance.SEED_THREADS)
# in well under an hour; a gpu seed needs one GPU for hours; a paper seed is sized for 8 GPUs. A seed job
# runs one task, a data-parallel seed one task per rank (data_parallel_request).
TIER_DEFAULTS: dict[str, SlurmResources] = {
    "smoke": SlurmResources(time_min=15, cpus_per_task=1, mem_gb=2.0),
    "cpu": SlurmResources(time_min=120, cpus_per_task=1, mem_gb=4.0),
    "gpu": SlurmResources(time_min=12 * 60, cpus_per_task=8, mem_gb=32.0, gpus_per_node=1),
    "paper": SlurmResources(time_min=72 * 60, cpus_per_task=8, mem_gb=64.0, gpus_per_node=8),
}
FIELDS = tuple(f.name for f in dataclasses.fields(SlurmResources))


def read_config(path: str | Path | None) -> dict:
    """The TOML file's sections, checked: {'default': {...}, 'tier': {T: {...}}, 'claim': {ID: {...}}}.

    Raises:
        ConfigError: unreadable, not TOML, an unknown section or field.
    """
    if path is None:
        return {}
    try:
        data = tomllib.loads(Path(path).read_text())
    except OSError as e:
        raise ConfigError(f"--slurm-config {path}: {e.strerror or e}") from None
    except tomllib.TOMLDecodeError as e:
        raise ConfigError(f"--slurm-config {path} is not TOML: {e}") from None
    unknown = set(data) - {"default", "tier", "claim"}
    if unknown:
        raise ConfigError(f"--slurm-config {path}: unknown section(s) {sorted(unknown)}; "
                          "sections are [default], [tier.NAME], [claim.ID]")
    for where, fields in [("default", data.get("default", {}))] + \
            [(f"{kind}.{name}", f) for kind in ("tier", "claim") for name, f in data.get(kind, {}).items()]:
        bad = set(fields) - set(FIELDS)
        if bad:
            raise ConfigError(f"--slurm-config {path} [{where}]: unknown field(s) {sorted(bad)}; "
                              f"fields are {', '.join(FIELDS)}")
    return data


def resources_for(tier: str, claim_id: str, config: dict, flags: dict) -> SlurmResources:
    """One claim's request at one tier: defaults, then the file's sections, then flags (None: not given)."""
    base = TIER_DEFAULTS.get(tier, SlurmResources())
    layers = [config.get("default", {}), config.get("tier", {}).get(tier, {}),
              config.get("claim", {}).get(claim_id, {}), {k: v for k, v in flags.items() if v is not None}]
    fields = dataclasses.asdict(base)
    for layer in layers:
        fields.update(layer)
    return SlurmResources(**fields)


def data_parallel_ranks(config) -> int:
    """The ranks a config declares its arms train on (launch "torchrun", nproc; a comparison's: its
    base's), 0 when it runs in process."""
    base = getattr(config, "base", config)
    return int(getattr(base, "nproc", 1)) if getattr(base, "launch", None) == "torchrun" else 0


def data_parallel_request(res: SlurmResources, ranks: int, where: str) -> SlurmResources:
    """A data-parallel seed's request: `ranks` tasks spread evenly over `res.nodes` nodes, one rank per task.

    Raises:
        ConfigError: the ranks do not divide evenly over the nodes.
    """
    if ranks % res.nodes:
        raise ConfigError(f"{where}: {ranks} data-parallel ranks do not divide over {res.nodes} SLURM nodes")
    return dataclasses.replace(res, tasks_per_node=ranks // res.nodes)
