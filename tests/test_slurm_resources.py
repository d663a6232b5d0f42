"""SLURM requests per tier and claim (no cluster needed): layering, checks, and the options that need slurm."""
import pytest

from harness.errors import ConfigError
from harness.run.executors.resources import (
    TIER_DEFAULTS,
    SlurmResources,
    data_parallel_ranks,
    data_parallel_request,
    read_config,
    resources_for,
)
from harness.run.executors.slurm import sbatch_args
from harness.views import cli

CONFIG = """
[default]
partition = "cpu"
account = "lab"
[tier.gpu]
time_min = 30
[claim.ire-llm-speedup]
gpus_per_node = 4
"""


def test_resources_later_layers_win_field_by_field(tmp_path):
    path = tmp_path / "slurm.toml"
    path.write_text(CONFIG)
    config = read_config(path)
    gpu = resources_for("gpu", "ire-llm-speedup", config, {"account": None, "qos": "high"})
    assert (gpu.partition, gpu.account, gpu.qos, gpu.time_min, gpu.gpus_per_node) == ("cpu", "lab", "high", 30, 4)
    assert gpu.mem_gb == TIER_DEFAULTS["gpu"].mem_gb  # untouched fields keep the tier's default
    other = resources_for("gpu", "eos-scale-invariant", config, {"time_min": 5})
    assert other.gpus_per_node == TIER_DEFAULTS["gpu"].gpus_per_node and other.time_min == 5


def test_resources_unknown_field_or_section_is_an_error(tmp_path):
    path = tmp_path / "slurm.toml"
    path.write_text("[tier.cpu]\ngpu = 1\n")
    with pytest.raises(ConfigError, match=r"\[tier.cpu\]: unknown field\(s\) \['gpu'\]"):
        read_config(path)
    path.write_text("[tiers.cpu]\ntime_min = 1\n")
    with pytest.raises(ConfigError, match="unknown section"):
        read_config(path)


def test_resources_bad_values_are_refused():
    with pytest.raises(ConfigError, match="time_min must be a positive integer"):
        SlurmResources(time_min=0)
    with pytest.raises(ConfigError, match="partition must be a non-empty name"):
        SlurmResources(partition=" ")


def test_resources_sbatch_args_carry_every_field():
    args = sbatch_args(SlurmResources(partition="p", account="a", qos="q", time_min=7, gpus_per_node=2, mem_gb=1.5))
    assert args[args.index("-p") + 1] == "p" and args[args.index("-A") + 1] == "a" and "-q" in args
    assert "--gpus-per-node=2" in args and "--mem=1536M" in args and args[args.index("-t") + 1] == "7"


@pytest.mark.parametrize("flag", [["--detach"], ["--slurm-partition", "p"], ["--slurm-time", "5"],
                                  ["--slurm-checkpoint-every", "10"]])
def test_resources_slurm_options_need_the_slurm_executor(flag, tmp_path, capsys):
    code = cli.main(["--results", str(tmp_path), "run", "--claim", "ire-toy-figure1", "--tier", "smoke", *flag])
    assert code == 2 and "need(s) --executor slurm" in capsys.readouterr().err


def test_resources_unknown_executor_is_one_line(tmp_path, capsys):
    code = cli.main(["--results", str(tmp_path), "run", "--tier", "smoke", "--executor", "ray"])
    assert code == 2 and "unknown --executor 'ray'; executors are: local, slurm" in capsys.readouterr().err


def test_resources_data_parallel_seed_asks_a_task_per_rank_over_its_nodes():
    from harness.claim.config import apply_overrides
    from harness.run.loader import load_claims

    claim = load_claims()["ire-llm-speedup"]
    paper, smoke = claim.tier("paper").config, claim.tier("smoke").config
    assert data_parallel_ranks(paper) == paper.base.nproc == 8 and data_parallel_ranks(smoke) == 0
    assert data_parallel_ranks(apply_overrides(paper, {"base.nproc": "2"})) == 2
    two_nodes = data_parallel_request(SlurmResources(nodes=2, gpus_per_node=4), 8, "x")
    assert (two_nodes.nodes, two_nodes.tasks_per_node, two_nodes.gpus_per_node) == (2, 4, 4)
    with pytest.raises(ConfigError, match="3 data-parallel ranks do not divide over 2 SLURM nodes"):
        data_parallel_request(SlurmResources(nodes=2), 3, "x")
