"""Hessian of a model's mean loss on a fixed data set, as a matrix-free linear operator.

The operator applies H = ∇²L(w) with L(w) = Σ_b (n_b / n) · loss_fn(model(x_b; w), y_b), the
size-weighted mean of per-batch mean losses. HVPs are reverse-over-reverse (double backward) through
a `torch.func.functional_call`: the loss and its gradient g (with create_graph) are built once per
operator and every HVP is one backward pass of g · v through that retained graph (about 1.5-2
gradients; the earlier forward-over-reverse `jvp(grad)` rebuilt everything per HVP and cost 3-5).
With several batches the graphs are not kept (their memory grows with the data) unless asked:
each product then rebuilds them one batch at a time, once for all columns of an (N, k) block.
"""

from __future__ import annotations

import contextlib
import difflib
import logging
import math
from collections.abc import Callable, Iterator, Mapping, Sequence

import numpy as np
import torch
from scipy.sparse.linalg import LinearOperator
from torch import Tensor, nn
from torch.func import functional_call

logger = logging.getLogger(__name__)

BN_MODES = ("full-batch", "ghost", "eval")
LossFn = Callable[[Tensor, Tensor], Tensor]


def flatten_params(params: Mapping[str, Tensor]) -> Tensor:
    """Concatenate tensors into one flat vector, in the mapping's order.

    Args:
        params: name -> tensor.

    Returns:
        1-D tensor of length Σ numel.

    Raises:
        ValueError: if `params` is empty.
    """
    if not params:
        raise ValueError("flatten_params got an empty mapping; expected at least one tensor")
    return torch.cat([t.reshape(-1) for t in params.values()])


def unflatten_like(flat: Tensor, like: Mapping[str, Tensor]) -> dict[str, Tensor]:
    """Split a flat vector into tensors shaped like `like` (inverse of `flatten_params`).

    Args:
        flat: 1-D tensor of length Σ numel of `like`.
        like: name -> tensor giving names, order and shapes.

    Returns:
        name -> view of `flat` with the shape of `like[name]`.

    Raises:
        ValueError: if `flat` is not 1-D or its length does not match.
    """
    sizes = [t.numel() for t in like.values()]
    if flat.dim() != 1 or flat.numel() != sum(sizes):
        raise ValueError(f"expected a 1-D tensor of length {sum(sizes)}, got shape {tuple(flat.shape)}")
    chunks = torch.split(flat, sizes)
    return {name: c.view_as(t) for (name, t), c in zip(like.items(), chunks)}


def select_param_names(model: nn.Module, params: Sequence[str] | None) -> list[str]:
    """The parameter names an operator acts on: `params` as given, or by default every parameter with
    requires_grad=True.

    Raises:
        TypeError: `params` is not a list of names.
        ValueError: no trainable parameter (by default), a name the model lacks, a duplicate, or no name.
    """
    available = [n for n, p in model.named_parameters() if p.requires_grad]
    if params is None:
        if not available:
            raise ValueError("the model has no parameters with requires_grad=True; pass `params`")
        return available
    if isinstance(params, str) or not all(isinstance(n, str) for n in params):
        raise TypeError(f"params must be a list of parameter names, got {params!r}")
    all_names = [n for n, _ in model.named_parameters()]
    for n in params:
        if n not in all_names:
            hint = difflib.get_close_matches(n, all_names, n=1)
            did_you_mean = f" Did you mean {hint[0]!r}?" if hint else ""
            raise ValueError(f"unknown parameter {n!r}.{did_you_mean} Known: {all_names}")
    if len(set(params)) != len(params) or not params:
        raise ValueError(f"params must be a non-empty list without duplicates, got {params!r}")
    return list(params)


def _check_data(data: Sequence[tuple[Tensor, Tensor]], bn_mode: str) -> list[tuple[Tensor, Tensor]]:
    if bn_mode not in BN_MODES:
        raise ValueError(f"bn_mode must be one of {BN_MODES}, got {bn_mode!r}")
    batches = list(data)
    if not batches:
        raise ValueError("data is empty; expected a list of (x, y) batches")
    for i, batch in enumerate(batches):
        if not (isinstance(batch, (tuple, list)) and len(batch) == 2):
            raise TypeError(f"data[{i}] must be an (x, y) pair of tensors, got {type(batch).__name__}")
        x, y = batch
        if not (isinstance(x, Tensor) and isinstance(y, Tensor)) or x.dim() == 0 or len(x) == 0:
            raise TypeError(f"data[{i}] must hold a non-empty (x, y) pair of tensors")
    if bn_mode == "full-batch" and len(batches) != 1:
        raise ValueError(
            f"bn_mode='full-batch' needs exactly one batch (BatchNorm statistics of the whole data "
            f"set), got {len(batches)}; concatenate them, or use bn_mode='ghost' for per-batch "
            "statistics"
        )
    return batches


@contextlib.contextmanager
def _train_flags(model: nn.Module, train: bool) -> Iterator[None]:
    """Set every submodule's mode, then restore each flag (submodules may have mixed modes)."""
    saved = [(m, m.training) for m in model.modules()]
    model.train(train)
    try:
        yield
    finally:
        for m, flag in saved:
            m.training = flag


@contextlib.contextmanager
def _fixed_rng(device: torch.device, seed: int) -> Iterator[None]:
    """Fork the RNG and reseed it, so stochastic layers draw the same masks on every call."""
    devices = [device] if device.type == "cuda" else []
    with torch.random.fork_rng(devices=devices):
        torch.random.default_generator.manual_seed(seed)
        if device.type == "cuda":
            with torch.cuda.device(device):
                torch.cuda.manual_seed(seed)
        yield


class HessianOperator:
    """Hessian of the mean loss w.r.t. selected parameters, as a symmetric N x N linear operator.

    Parameters and buffers are copied when the operator is built, so the operator is the Hessian
    at that point; later changes to the model do not affect it, and no call changes the model's
    parameters, buffers, grads, training flags or the global RNG state. BatchNorm running
    statistics are copied afresh inside every call, so their in-place update never escapes.
    Stochastic layers (dropout) in the train modes draw from an RNG reseeded with `seed` on
    every call, so the operator is deterministic.
    """

    def __init__(
        self,
        model: nn.Module,
        loss_fn: LossFn,
        data: Sequence[tuple[Tensor, Tensor]],
        bn_mode: str,
        *,
        params: Sequence[str] | None = None,
        point: Mapping[str, Tensor] | None = None,
        seed: int = 0,
        retain_graph: bool | None = None,
        dtype: torch.dtype | None = None,
    ) -> None:
        """Build the operator.

        Args:
            model: the network; called as `model(x)`.
            loss_fn: `loss_fn(output, y)` -> scalar mean loss over the batch.
            data: list of (x, y) batches; the loss is their size-weighted mean.
            bn_mode: "full-batch" (train mode, one batch only), "ghost" (train mode, each batch
                uses its own BatchNorm statistics) or "eval" (eval mode, running statistics).
            params: names of the parameters to differentiate; default all with requires_grad.
                Other parameters are held fixed.
            point: optional name -> tensor values of `params` at which to evaluate, instead of
                the model's current values (the model itself is never modified).
            seed: seed for stochastic layers in the train modes.
            retain_graph: keep each batch's first-order graph (loss and create_graph gradient)
                for the operator's lifetime, so an HVP is one backward pass. None (default):
                only with a single batch, whose graph memory is that of one training step.
            dtype: a floating dtype to evaluate the Hessian in (e.g. torch.float32 for a cheaper
                solve of a float64 model): the point, the other parameters, the buffers and the
                floating inputs are copied in it. None (default): the parameters' own dtype.

        Raises:
            ValueError: bad bn_mode, empty data, several batches with "full-batch", unknown
                names, mismatched `point`, or a non-scalar / non-finite loss.
            TypeError: malformed data, params, point values or parameter dtypes.
        """
        self.bn_mode = bn_mode
        self._data = _check_data(data, bn_mode)
        self._model = model
        self._loss_fn = loss_fn
        self._seed = seed
        names = select_param_names(model, params)
        named = dict(model.named_parameters())
        src = named if point is None else point
        if point is not None and set(point) != set(names):
            raise ValueError(f"point must have exactly the keys {names}, got {sorted(point)}")
        if point is not None and not all(isinstance(t, Tensor) for t in point.values()):
            raise TypeError("point values must be tensors")
        # name -> snapshot of the differentiated parameters, in `names` order
        self._point = {n: src[n].detach().clone() for n in names}
        for n in names:
            if self._point[n].shape != named[n].shape:
                raise ValueError(
                    f"point[{n!r}] has shape {tuple(self._point[n].shape)}, expected {tuple(named[n].shape)}"
                )
        dtypes = {t.dtype for t in self._point.values()}
        devices = {t.device for t in self._point.values()}
        if len(dtypes) != 1 or not next(iter(dtypes)).is_floating_point:
            raise TypeError(f"differentiated parameters must share one float dtype, got {dtypes}")
        if len(devices) != 1:
            raise TypeError(f"differentiated parameters must share one device, got {devices}")
        self._fixed = {n: p.detach().clone() for n, p in named.items() if n not in self._point}
        self._buffers = {n: b.detach().clone() for n, b in model.named_buffers()}
        if dtype is not None:
            self._cast(dtype)
        sizes = [len(x) for x, _ in self._data]
        self._weights = [s / sum(sizes) for s in sizes]
        self._n = sum(t.numel() for t in self._point.values())
        self.matvec_count = 0
        if retain_graph is None:
            retain_graph = len(self._data) == 1
        # [(leaves, flat gradient with its graph, loss)] per batch, when graphs are retained
        self._graphs: list[tuple[list[Tensor], Tensor, float]] | None = None
        if retain_graph:
            with self._context():
                self._graphs = [self._first_order(x, y) for x, y in self._data]
            self._loss_value = sum(w * g[2] for g, w in zip(self._graphs, self._weights))
        else:
            self._loss_value = self._compute_loss()
        if not math.isfinite(self._loss_value):
            raise ValueError(f"the loss at this point is not finite ({self._loss_value})")

    def _cast(self, dtype: torch.dtype) -> None:
        """Copy the point, fixed parameters, floating buffers and floating inputs in `dtype`."""
        if not (isinstance(dtype, torch.dtype) and dtype.is_floating_point):
            raise TypeError(f"dtype must be a floating torch.dtype (e.g. torch.float32), got {dtype!r}")

        def cast(t: Tensor) -> Tensor:
            return t.to(dtype) if t.is_floating_point() else t

        self._point = {n: t.to(dtype) for n, t in self._point.items()}
        self._fixed = {n: cast(t) for n, t in self._fixed.items()}
        self._buffers = {n: cast(t) for n, t in self._buffers.items()}
        self._data = [(cast(x), y) for x, y in self._data]

    @property
    def shape(self) -> tuple[int, int]:
        """(N, N), N = number of differentiated scalars."""
        return (self._n, self._n)

    @property
    def dtype(self) -> torch.dtype:
        """dtype of the differentiated parameters (and of vectors the operator accepts)."""
        return next(iter(self._point.values())).dtype

    @property
    def device(self) -> torch.device:
        """Device of the differentiated parameters."""
        return next(iter(self._point.values())).device

    @property
    def names(self) -> list[str]:
        """Names of the differentiated parameters, in flattening order."""
        return list(self._point)

    def point(self) -> dict[str, Tensor]:
        """A copy of the parameter values (name -> tensor) at which the Hessian is taken."""
        return {n: t.clone() for n, t in self._point.items()}

    @contextlib.contextmanager
    def _context(self) -> Iterator[None]:
        with _train_flags(self._model, self.bn_mode != "eval"), _fixed_rng(self.device, self._seed):
            yield

    def _batch_loss(self, p: dict[str, Tensor], x: Tensor, y: Tensor) -> Tensor:
        # Buffers are cloned inside the transformed function: torch.func forbids in-place updates
        # (BatchNorm's running statistics) of tensors captured from outside it.
        buffers = {n: b.clone() for n, b in self._buffers.items()}
        out = functional_call(self._model, {**self._fixed, **buffers, **p}, (x,))
        loss = self._loss_fn(out, y)
        if not isinstance(loss, Tensor) or loss.dim() != 0:
            raise ValueError("loss_fn must return a scalar tensor (use reduction='mean')")
        return loss

    def _compute_loss(self) -> float:
        total = 0.0
        with torch.no_grad(), self._context():
            for (x, y), w in zip(self._data, self._weights):
                total += w * self._batch_loss(self._point, x, y).item()
        return total

    def _first_order(self, x: Tensor, y: Tensor, create_graph: bool = True) -> tuple[list[Tensor], Tensor, float]:
        """Leaves, flat gradient (N,) carrying its graph, and loss of one batch (call in _context)."""
        leaves = {n: t.detach().requires_grad_(True) for n, t in self._point.items()}  # share storage
        with torch.enable_grad():
            loss = self._batch_loss(leaves, x, y)
            grads = torch.autograd.grad(loss, list(leaves.values()), create_graph=create_graph,
                                        allow_unused=True, materialize_grads=True)
        return list(leaves.values()), torch.cat([g.reshape(-1) for g in grads]), loss.item()

    @staticmethod
    def _backward(leaves: list[Tensor], g: Tensor, v: Tensor, retain: bool) -> Tensor:
        """Flat (N,) d(g · v)/dw through g's graph; zero where g does not depend on w."""
        if not g.requires_grad:  # the gradient is constant: the loss is at most linear in w
            return torch.zeros_like(v)
        out = torch.autograd.grad(g, leaves, grad_outputs=v, retain_graph=retain,
                                  allow_unused=True, materialize_grads=True)
        return torch.cat([t.reshape(-1) for t in out])

    def loss(self) -> float:
        """Mean loss over the data set at the operator's point."""
        return self._loss_value

    def gradient(self) -> Tensor:
        """Flat gradient (N,) of the mean loss at the operator's point."""
        if self._graphs is not None:
            return sum(w * g.detach() for (_, g, _), w in zip(self._graphs, self._weights))
        g = torch.zeros(self._n, dtype=self.dtype, device=self.device)
        with self._context():
            for (x, y), w in zip(self._data, self._weights):
                g += w * self._first_order(x, y, create_graph=False)[1]
        return g

    def _hvp(self, v: Tensor) -> Tensor:
        hv = torch.zeros_like(v)  # (N,)
        if self._graphs is not None:
            for (leaves, g, _), w in zip(self._graphs, self._weights):
                hv += w * self._backward(leaves, g, v, retain=True)
        else:
            with self._context():
                for (x, y), w in zip(self._data, self._weights):
                    leaves, g, _ = self._first_order(x, y)
                    hv += w * self._backward(leaves, g, v, retain=False)
        self.matvec_count += 1
        return hv

    def __matmul__(self, v: Tensor) -> Tensor:
        """H @ v for v of shape (N,) or (N, k) (column by column; k columns count as k HVPs).

        Raises:
            TypeError: if v is not a tensor of the operator's dtype.
            ValueError: if v has the wrong shape or device.
        """
        if not isinstance(v, Tensor) or v.dtype != self.dtype:
            got = v.dtype if isinstance(v, Tensor) else type(v).__name__
            raise TypeError(f"expected a tensor of dtype {self.dtype}, got {got}; convert it first")
        if v.dim() not in (1, 2) or v.shape[0] != self._n:
            raise ValueError(f"expected shape ({self._n},) or ({self._n}, k), got {tuple(v.shape)}")
        if v.device != self.device:
            raise ValueError(f"expected a tensor on {self.device}, got {v.device}")
        v = v.detach()
        if v.dim() == 1:
            return self._hvp(v)
        if v.shape[1] == 0:
            return torch.empty_like(v)
        if self._graphs is not None:
            return torch.stack([self._hvp(v[:, j].contiguous()) for j in range(v.shape[1])], dim=1)
        # Rebuilding path: each batch's graph is built once for all k columns, not once per column.
        out = torch.zeros_like(v)
        k = v.shape[1]
        with self._context():
            for (x, y), w in zip(self._data, self._weights):
                leaves, g, _ = self._first_order(x, y)
                for j in range(k):
                    out[:, j] += w * self._backward(leaves, g, v[:, j].contiguous(), retain=j < k - 1)
        self.matvec_count += k
        return out

    def to_scipy(self) -> LinearOperator:
        """This operator as a float64 `scipy.sparse.linalg.LinearOperator` (symmetric)."""

        def matmat(X: np.ndarray) -> np.ndarray:
            X_t = torch.from_numpy(np.ascontiguousarray(X, dtype=np.float64))
            out = self @ X_t.to(device=self.device, dtype=self.dtype)
            return out.cpu().to(torch.float64).numpy()

        return LinearOperator(self.shape, matvec=matmat, rmatvec=matmat, matmat=matmat, dtype=np.float64)
