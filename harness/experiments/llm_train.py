"""One Llama pre-training arm (AdamW or IRE over AdamW), in process or data-parallel under torchrun.

The recipe is the IRE paper's (Wang et al. 2024, arXiv 2405.20763): AdamW β = (0.9, 0.95), weight decay
0.1 on every parameter (the authors' code passes model.parameters() to AdamW), ε = 1e-16, gradient
clipping 1.0, linear warm-up then cosine decay to peak/20 at the arm's own horizon; IRE (over the same
AdamW) is switched on after the warm-up and refreshes its mask every K steps from sampled-label Fisher scores on a fresh training batch that is not used for the update.
Every E steps the validation loss is measured on a fixed set of validation windows spread evenly over the
whole validation split.

Counting: a step is one update on `batch_size` x `seq_len` tokens; a gradient evaluation is one
forward/backward over a batch of that size, so an IRE step with a Fisher refresh costs two.

Data-parallel (a `Comm` with world > 1, see harness.distributed): the global batch is split over
ranks (each rank draws the same global batch and keeps its rows, so the updates match the single-process
run up to reduction order); for the mask, each rank's sampled-label gradient on its shard of the mask batch
is averaged over the ranks and the average is squared (as DDP's all-reduced .grad in the authors' code; the
sampled labels differ from a single process's), and rank 0's mask is broadcast (harness.experiments.llm_mask);
checkpoints (model,
optimizer, step, random streams, curve so far) are written atomically by rank 0 and resumed when present.
"""
from __future__ import annotations

import contextlib
import logging
import math
import time
from dataclasses import dataclass, field, fields, replace
from pathlib import Path

import pandas as pd
import torch

from harness.claim.components import check_choice
from harness.claim.measurement import Measurement, RunContext, stream_seed
from harness.claim.registry import experiment
from harness.data.download import data_dir
from harness.data.text import PRETRAIN_SOURCES
from harness.data.token_streams import TextData
from harness.data.tokenizers import TOKENIZERS, get_tokenizer
from harness.distributed import Checkpointing, Comm, StopTraining, load_checkpoint, save_checkpoint
from harness.errors import ConfigError
from harness.experiments.llm_mask import model_logits, refresh_mask
from harness.models.llama import Llama, count_parameters, preset
from harness.optim import IRE, OptimizerSpec

log = logging.getLogger(__name__)

LAUNCHES = ("inprocess", "torchrun")
# Fields a text source never reads (PRETRAIN_SOURCES): set away from their defaults, they are refused.
UNREAD_BY_SOURCE = {"stdlib": ("data_root",), "random": ("data_root", "tokenizer"),
                    "wikitext103": ("max_bytes",)}
# The paper's AdamW recipe: β (0.9, 0.95), ε 1e-16, decoupled weight decay 0.1, linear warm-up then cosine
# decay to peak/20 at the horizon. Peak lr 1e-3 and a 2-step warm-up are the cpu tier's.
PAPER_ADAMW = OptimizerSpec("adamw", lr=1e-3, betas=(0.9, 0.95), eps=1e-16, weight_decay=0.1, schedule="cosine",
                            lr_warmup_steps=2, final_lr_fraction=0.05)


@dataclass(frozen=True)
class PretrainSetup:
    """One Llama pre-training run: model, data, optimizer (its schedule included) and evaluation.

    `optim` is "adamw" or "adamw_ire" (IRE over AdamW: κ > 0, γ, a fisher|random mask refreshed every K
    steps, switched on after `optim.warmup_steps`, which an arm sets to the LR warm-up); its lr schedule
    runs to the horizon `steps`. A comparison holds one setup as `base` and derives its arms from it.
    """

    model: str = "tiny-1m"           # a harness.models.llama preset; its vocabulary follows the tokenizer
    data: str = "stdlib"             # stdlib | wikitext103 | random (uniform GPT-2-vocabulary tokens: timing only)
    data_root: str = ""              # wikitext103: folder with wiki.train.raw and wiki.valid.raw
    cache_dir: str = ""              # token cache; "": <data folder>/tokens (--data-dir, $HARNESS_DATA)
    max_bytes: int = 2_000_000       # stdlib corpus size cap
    tokenizer: str = "bytes"         # bytes | gpt2
    seq_len: int = 64
    batch_size: int = 8              # sequences per step (global: split over data-parallel ranks)
    steps: int = 200                 # T: the horizon of this run's schedule
    optim: OptimizerSpec = PAPER_ADAMW
    grad_clip: float = 1.0
    eval_every: int = 10             # E
    val_windows: int = 32            # fixed validation windows, spread evenly over the val split
    eval_batch: int = 32
    bf16: bool = True                # bf16 autocast on CUDA; CPU runs float32
    tf32: bool = False               # CUDA: float32 matmuls in TF32 (the authors' LM script: allow_tf32, no autocast)
    launch: str = "inprocess"        # torchrun: arms run only through `python -m harness.run.ddp`
    nproc: int = 1                   # processes the torchrun command in messages asks for

    def __post_init__(self):
        positive = ("max_bytes", "seq_len", "batch_size", "steps", "eval_every", "val_windows", "eval_batch",
                    "nproc")
        bad = [f"{n}={getattr(self, n)!r}" for n in positive if getattr(self, n) < 1]
        warmup = self.optim.lr_warmup_steps
        if bad or warmup >= self.steps:
            raise ConfigError(f"need positive sizes and 0 <= optim.lr_warmup_steps < steps; got {', '.join(bad)} "
                              f"optim.lr_warmup_steps={warmup}, steps={self.steps}")
        PRETRAIN_SOURCES.check(self.data)
        defaults = {f.name: f.default for f in fields(self)}
        for name in UNREAD_BY_SOURCE.get(self.data, ()):
            if getattr(self, name) != defaults[name]:
                raise ConfigError(f"{name} is not read by the {self.data} text source: "
                                  f"leave it at its default {defaults[name]!r}")
        TOKENIZERS.check(self.tokenizer)
        check_choice("launch", self.launch, LAUNCHES)
        check_choice("pre-training optimizer", self.optim.name, ("adamw", "adamw_ire"))
        if self.optim.name == "adamw_ire" and self.optim.kappa <= 0:
            raise ConfigError(f"an adamw_ire run needs kappa > 0, got {self.optim.kappa}")
        if not (0 < self.optim.final_lr_fraction and self.grad_clip > 0):
            raise ConfigError("need 0 < optim.final_lr_fraction <= 1 and grad_clip > 0")
        if self.seq_len > preset(self.model).max_seq_len:  # an unknown preset: ConfigError with suggestions
            raise ConfigError(f"seq_len {self.seq_len} exceeds {self.model}'s max_seq_len "
                              f"{preset(self.model).max_seq_len}")

    def preflight(self) -> None:
        """Fail before any seed runs: missing WikiText-103 files, or a tokenizer that cannot load."""
        if self.data == "wikitext103":
            from harness.data.download import check_wikitext103

            check_wikitext103(self.data_root)  # downloads into the cache on first use; else one-line DataError
        if self.data != "random":  # random tokens need no tokenizer
            get_tokenizer(self.tokenizer)  # HarnessError if gpt2 is asked for without tiktoken


def ire_grad_evals(steps: int, warmup: int, mask_every: int, mask: str | None) -> int:
    """Gradient evaluations after `steps` updates: one per update, plus one per Fisher mask refresh
    (refreshes at warmup, warmup + K, ...; a random mask costs none; mask=None is plain AdamW)."""
    refreshes = math.ceil((steps - warmup) / mask_every) if mask == "fisher" and steps > warmup else 0
    return steps + refreshes


def load_text_data(cfg: PretrainSetup, comm: Comm) -> TextData:
    """The token streams; rank 0 builds the cache first so ranks never tokenize concurrently."""
    def load() -> TextData:
        source = PRETRAIN_SOURCES.get(cfg.data)
        return source(token_cache_dir(cfg), cfg.data_root, cfg.max_bytes, cfg.tokenizer)

    data = load() if comm.rank == 0 else None
    comm.barrier()
    return data if data is not None else load()


def token_cache_dir(cfg: PretrainSetup) -> Path:
    """Where the token streams are cached: `cfg.cache_dir`, else `tokens/` in the data folder
    (harness.data.download.data_dir: --data-dir, $HARNESS_DATA, else the per-user cache), never the working
    directory."""
    return Path(cfg.cache_dir).expanduser() if cfg.cache_dir else data_dir() / "tokens"


def build_model(cfg: PretrainSetup, vocab_size: int, generator: torch.Generator,
                device: torch.device) -> Llama:
    """The preset with its vocabulary set to the tokenizer's, padded to a multiple of 64 (50257 -> 50304)."""
    config = replace(preset(cfg.model), vocab_size=64 * math.ceil(vocab_size / 64))
    return Llama(config, generator=generator).to(device)


def build_optimizer(spec: OptimizerSpec, model: torch.nn.Module, seed: int) -> torch.optim.Optimizer:
    """`spec` over all trainable params in one group (norm gains decayed too, as upstream)."""
    return spec.build([p for p in model.parameters() if p.requires_grad], seed=seed)


def autocast_for(cfg: PretrainSetup, device: torch.device):
    if device.type == "cuda" and cfg.bf16:
        return torch.autocast("cuda", dtype=torch.bfloat16)
    return contextlib.nullcontext()


@contextlib.contextmanager
def matmul_precision(cfg: PretrainSetup, device: torch.device):
    """While the block runs on CUDA, float32 matmuls (and cuDNN) use TF32 iff `cfg.tf32`; restored after.
    The authors' LM training script turns allow_tf32 on and never enters its bf16 autocast context."""
    if device.type != "cuda":
        yield
        return
    saved = torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32
    torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = cfg.tf32
    try:
        yield
    finally:
        torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = saved


def precision_name(cfg: PretrainSetup, device: torch.device) -> str:
    """The arithmetic a run used, for its scale: bf16 autocast, float32 with TF32 matmuls, or float32."""
    if device.type == "cuda" and cfg.bf16:
        return "bf16 autocast" + (" (TF32 outside it)" if cfg.tf32 else "")
    return "float32, TF32 matmuls" if device.type == "cuda" and cfg.tf32 else "float32"


def train_step(model, opt, x, y, grad_clip: float, autocast) -> torch.Tensor:
    """One update on (x, y); returns the detached training loss (no host sync)."""
    opt.zero_grad(set_to_none=True)
    with autocast:
        _, loss = model(x, y)
    loss.backward()
    torch.nn.utils.clip_grad_norm_(model.parameters(), grad_clip)
    opt.step()
    return loss.detach()


@torch.no_grad()
def evaluate(model: Llama, windows: list[tuple[torch.Tensor, torch.Tensor]], comm: Comm, autocast,
             device: torch.device) -> float:
    """Mean next-token cross-entropy over the fixed validation windows (rank r takes batches r, r+W, ...)."""
    total = torch.zeros(2, dtype=torch.float64, device=device)  # (loss sum, tokens)
    for i in range(comm.rank, len(windows), comm.world):
        x, y = (t.to(device) for t in windows[i])
        with autocast:
            _, loss = model(x, y)
        total[0] += loss.double() * y.numel()
        total[1] += y.numel()
    comm.mean_([total])  # the ratio is unchanged by the 1/world factor
    return (total[0] / total[1]).item()


@dataclass
class _Progress:
    """Everything the loop carries between steps (and checkpoints)."""

    step: int = 0
    grad_evals: int = 0
    refreshes: int = 0
    train_time: float = 0.0
    since_eval: int = 0  # updates since the last evaluation (their training loss is in loss_sum)
    rows: list[dict] = field(default_factory=list)
    diverged_at: int | None = None


def run_arm(cfg: PretrainSetup, ctx: RunContext, comm: Comm | None = None,
            checkpointing: Checkpointing | None = None) -> Measurement:
    """Train one arm and record its validation curve, tokens, gradient evaluations and wall-clock.

    Args:
        cfg: the arm. ctx: seed (init, data, mask streams), device, step cap, progress.
        comm: the data-parallel group (None: this process alone).
        checkpointing: save/resume (None: no checkpoints).

    Returns:
        A Measurement with scalars final_val_loss, best_val_loss, steps, tokens, grad_evals,
        mask_refreshes, train_time_s, diverged, and the curve "val" (one row per evaluation).
        A non-finite loss stops the arm and is recorded (diverged = 1, losses inf), never raised.
    """
    with matmul_precision(cfg, ctx.device):
        return _train_arm(cfg, ctx, comm, checkpointing)


def _train_arm(cfg: PretrainSetup, ctx: RunContext, comm: Comm | None,
               checkpointing: Checkpointing | None) -> Measurement:
    comm = comm or Comm()
    device = ctx.device
    if cfg.batch_size % comm.world:
        raise ConfigError(f"batch_size {cfg.batch_size} must be divisible by the {comm.world} ranks")
    data = load_text_data(cfg, comm)
    model = build_model(cfg, data.vocab_size, ctx.generator("init"), device)
    ddp = model if comm.world == 1 else torch.nn.parallel.DistributedDataParallel(
        model, device_ids=[device.index] if device.type == "cuda" else None)
    opt = build_optimizer(cfg.optim, model, seed=stream_seed(ctx.seed, "ire") % (1 << 62))
    gen_data, gen_mask = ctx.generator("data"), ctx.generator("mask-data")
    windows = list(data.val.spread_batches(cfg.eval_batch, cfg.seq_len, cfg.val_windows))
    autocast = autocast_for(cfg, device)
    steps = ctx.steps(cfg.steps)
    rows_per_rank = cfg.batch_size // comm.world
    mine = slice(comm.rank * rows_per_rank, (comm.rank + 1) * rows_per_rank)

    def batch(gen):  # every rank draws the same global batch and keeps its rows: (b, T), (b, T)
        x, y = data.train.get_batch(cfg.batch_size, cfg.seq_len, gen, device)
        return x[mine], y[mine]

    state, loss_sum = _Progress(), torch.zeros((), dtype=torch.float64, device=device)
    resumed = checkpointing is not None and checkpointing.path.is_file()
    if resumed:
        loss_sum = _load_checkpoint(checkpointing.path, model, opt, gen_data, gen_mask, state, device)
        log.info("resumed %s at step %d", checkpointing.path.name, state.step)
    else:
        state.rows.append(_row(0, evaluate(model, windows, comm, autocast, device), math.nan, cfg, state))
    tic = time.perf_counter()
    while state.step < steps and state.diverged_at is None:
        for group in opt.param_groups:
            group["lr"] = cfg.optim.lr_at(state.step, cfg.steps)
        if isinstance(opt, IRE) and opt.should_refresh_mask():
            x_mask, _ = batch(gen_mask)  # a fresh training batch, never used for an update
            refresh_mask(opt, lambda x_mask=x_mask: model_logits(model, x_mask, autocast), comm)
            state.refreshes += 1
            state.grad_evals += opt.mask_kind == "fisher"  # a random mask needs no forward/backward
        x, y = batch(gen_data)
        loss_sum += train_step(ddp, opt, x, y, cfg.grad_clip, autocast)
        state.step += 1
        state.grad_evals += 1
        state.since_eval += 1
        if state.step % cfg.eval_every == 0 or state.step == steps:
            state.train_time += _elapsed(tic, device)
            train_loss = loss_sum.item() / state.since_eval
            val_loss = evaluate(model, windows, comm, autocast, device)
            if not (math.isfinite(train_loss) and math.isfinite(val_loss)):
                state.diverged_at, val_loss = state.step, math.inf
            state.rows.append(_row(state.step, val_loss, train_loss, cfg, state))
            loss_sum.zero_()
            state.since_eval = 0
            ctx.progress(state.step, steps)
            tic = time.perf_counter()
        if checkpointing is not None and (state.step % checkpointing.every == 0
                                          or state.step == checkpointing.until_step):
            state.train_time += _elapsed(tic, device)
            _save_checkpoint(checkpointing.path, model, opt, gen_data, gen_mask, state, loss_sum, comm)
            if state.step == checkpointing.until_step:
                raise StopTraining(f"stopped at step {state.step}; the checkpoint is {checkpointing.path}")
            tic = time.perf_counter()
    return _arm_measurement(cfg, model, data, state, comm, device, resumed)


def _elapsed(tic: float, device: torch.device) -> float:
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    return time.perf_counter() - tic


def _row(step: int, val_loss: float, train_loss: float, cfg: PretrainSetup, state: _Progress) -> dict:
    return {"step": step, "val_loss": val_loss, "train_loss": train_loss,
            "lr": cfg.optim.lr_at(max(step - 1, 0), cfg.steps),
            "tokens": step * cfg.batch_size * cfg.seq_len, "grad_evals": state.grad_evals,
            "train_time_s": state.train_time}


def _arm_measurement(cfg, model, data, state: _Progress, comm, device, resumed) -> Measurement:
    table = pd.DataFrame(state.rows)
    finite = table["val_loss"][table["step"] > 0]
    with torch.no_grad():
        checksum = sum(float(p.double().square().sum()) for p in model.parameters())
    scalars = {
        "final_val_loss": float(table["val_loss"].iloc[-1]),
        "best_val_loss": float(finite.min()) if len(finite) else math.inf,
        "steps": float(state.step), "tokens": float(state.step * cfg.batch_size * cfg.seq_len),
        "grad_evals": float(state.grad_evals), "mask_refreshes": float(state.refreshes),
        "train_time_s": state.train_time, "diverged": float(state.diverged_at is not None),
        "param_sq_norm": checksum,
    }
    notes = [f"diverged at step {state.diverged_at}"] if state.diverged_at is not None else []
    if resumed:
        notes.append("resumed from a checkpoint (train_time_s counts every segment)")
    scale = {"model": cfg.model, "params": count_parameters(model), "vocab": model.config.vocab_size,
             "seq_len": cfg.seq_len, "batch_size": cfg.batch_size,
             "tokens_per_step": cfg.batch_size * cfg.seq_len, "steps": state.step, "horizon": cfg.steps,
             "world_size": comm.world, "device": str(device),
             "precision": precision_name(cfg, device),
             "val_tokens": min(cfg.val_windows, (len(data.val) - 1) // cfg.seq_len) * cfg.seq_len,
             "data": {k: data.provenance.get(k) for k in ("source", "content_sha256", "n_bytes", "tokenizer",
                                                         "train_tokens", "val_tokens", "split_rule")}}
    return Measurement(scalars=scalars, curves={"val": table}, scale=scale, notes=notes)


def _save_checkpoint(path: Path, model, opt, gen_data, gen_mask, state: _Progress, loss_sum, comm) -> None:
    progress = {k: getattr(state, k) for k in ("step", "grad_evals", "refreshes", "train_time", "since_eval", "rows")}
    save_checkpoint(path, lambda: {"model": model.state_dict(), "opt": opt.state_dict(),
                                   "gen_data": gen_data.get_state(), "gen_mask": gen_mask.get_state(),
                                   "loss_sum": loss_sum.cpu(), "progress": progress}, comm)


def _load_checkpoint(path: Path, model, opt, gen_data, gen_mask, state: _Progress, device) -> torch.Tensor:
    saved = load_checkpoint(path, device)
    model.load_state_dict(saved["model"])
    opt.load_state_dict(saved["opt"])
    gen_data.set_state(saved["gen_data"].cpu())
    gen_mask.set_state(saved["gen_mask"].cpu())
    for key, value in saved["progress"].items():
        setattr(state, key, list(value) if key == "rows" else value)
    return saved["loss_sum"].to(device)


@experiment("llm_pretrain_arm", PretrainSetup)
def llm_pretrain_arm(cfg: PretrainSetup, ctx: RunContext) -> Measurement:
    """One arm in this process. A torchrun-launched config refuses, naming the command that runs it."""
    if cfg.launch == "torchrun":
        raise ConfigError(
            f"this tier trains every arm data-parallel and seed {ctx.seed} has no stored result for it; run "
            f"`torchrun --standalone --nproc_per_node={cfg.nproc} -m harness.run.ddp --claim CLAIM "
            f"--tier {ctx.tier} --seed {ctx.seed}` (with the same --set/--max-steps/--results options) for "
            "each seed, then rerun this command to compose the verdict")
    return run_arm(cfg, ctx)
