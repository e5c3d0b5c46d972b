"""The fused engine: the members of a population trained as one computation (``schedules.loop`` requests).

Members share a task, so they share the architecture; they differ in schedule, momentum, optimizer variant
and seed. What the engine does with them:

- **Storage.** All members' parameters live in one (K, P) tensor, row k = member k's parameters in the
  module's parameter order, with the momentum buffers and the gradients in two more (K, P) tensors. Two
  kinds of leaf tensors alias those rows: *stacked* leaves of shape (K, \\*shape), one per parameter, for
  fused computation, and each member's own ``nn.Module`` whose parameters are views of its row (its
  BatchNorm buffers views of the stacked buffers), for a member computed alone. Their ``.grad`` are preset
  views of the gradient tensor, so every backward lands there in place. The heavy-ball update of every
  member is three operations on (K, P) with per-member vectors (``schedules.optim.stacked_update``).
- **Forward.** Members in one call run one forward and one backward: for a ``nn.Sequential`` of ``Linear``
  and elementwise layers (the MLPs of the built-in tasks, logistic regression) as batched matrix products
  over (K, B, F) (``LinearStack``); for any other model as ``torch.func.functional_call`` under
  ``torch.func.vmap`` over the stacked parameters and buffers (``VmapForward``). Measured on one CPU thread
  (``python bench/population.py --design``: one SGD step of 16 digits MLPs): batched matmuls 6.1x, 2.5x and
  1.0x the speed of 16 separate steps at b = 8, 64 and 512; vmap of the forward 3.7x, 2.2x, 0.86x; vmap over
  ``grad`` 2.7x, 1.9x, 0.88x. So the explicit path is taken where it applies, with the backward of Linear
  and ReLU written out (``LinearStack.train_step``: fewer operations than autograd's graph of the same
  layers). A model vmap cannot batch runs member by member (logged once).
- **Grouping** (``plan_round``, a cost model in FLOPs). Models whose examples never interact
  (``LinearStack``) may pad: a round's stepping members are sorted by batch size and cut into calls, each
  padded to its largest batch with zero-weight examples, wherever one call costs less than two; members not
  stepping this round may join at zero weight when one call over everyone is cheaper. Other models
  (BatchNorm couples a batch's examples) group only members of exactly the same batch size, so batch
  statistics stay each member's own. A call is split where it would exceed ``fuse_flops`` (``FUSE_FLOPS``:
  on a CPU a call far larger than the caches runs slower fused than member by member). A call of one member
  runs its own module, the single trainer's operations.
- **BatchNorm.** Every member keeps its own running statistics (stacked buffers, updated in place through
  vmap or through the member's module).
- **Measurements** (``Gradient``, ``TestPass``) read the same examples for every member (the same data, the
  same gradient-norm subset), so a fused pass feeds one input to all members (``vmap`` with ``in_dims=None``,
  a broadcast matmul); faithful mode with augmentation augments per member, from each member's own stream.
- **Retiring.** A member that ends (budget, target, divergence, ``should_stop``) is dropped from the storage
  before the next request; a diverging member never touches the others' rows (every operation is per row).

Results: a member's batch sizes, LRs, steps, SFO and measurement counts are the single trainer's exactly (the
same loop, ``schedules.loop.trial_loop``); its losses and norms differ by floating-point rounding (batched
kernels sum in another order; about 1e-6 relative per gradient), which stays within the tolerance of
``tests/schedules/test_population.py`` except in runs that amplify rounding, and those amplify the same noise
added to the single trainer as much. A decision taken on a value within rounding of its threshold (the
adaptive family's stage change, ``stop_at_target``) can then go the other way.

Not fused: tasks that stream their data (``DatasetData``): ``FusedEngine`` refuses them;
``schedules.trainer.PlainEngine`` packs them unfused.
"""

from __future__ import annotations

import copy
import logging
import math
import time
import warnings
from collections.abc import Callable, Sequence
from typing import Any

import torch
from torch import nn

from schedules.loop import Gradient, Step
from schedules.optim import heavy_ball_coefficients, stacked_update
from schedules.spec import TrialSpec
from schedules.tasks.runtime import Loss, Task, TensorData
from schedules.trainer import (
    AUGMENT_SEED_OFFSET,
    _generator,
    _Measurements,
    build_member_model,
    grad_norm_subset,
)

logger = logging.getLogger(__name__)

#: Forward FLOPs of one fused call above which a group is split (``FusedEngine``), per device type. On one
#: CPU thread, fused SFO per CPU second of ``python bench/population.py --ks 16 --fuse-flops F`` (shared /
#: mixed plans): 2e7: 223k / 190k, 5e7: 226k / 207k, 1.6e8: 206k / 175k, no limit: 182k / 184k; calls much
#: larger than the caches run slower fused than member by member (the measurement passes most of all). On a
#: GPU a large call is not slower for its size; there the limit only bounds one call's memory (a choice, not
#: a measurement): 4e12 is about 3,600 images of the CIFAR ResNet-18 (1.11e9 forward FLOPs each by torch's
#: flop counter), so 8 members train fused up to b = 450 and measure 3 at a time in chunks of 1,000.
#: Devices not named have no limit.
FUSE_FLOPS = {"cpu": 5e7, "cuda": 4e12}
#: The fixed cost of one fused call (forward, backward, bookkeeping) in forward-FLOP equivalents, per device
#: type. ``python bench/population.py --design``: a batched-matmul step of 16 digits MLPs took 0.50 ms at
#: b = 8 and 1.51 ms at b = 64, i.e. 0.36 ms plus 1.1 us per member-example of 18,944 forward FLOPs: the fixed
#: part is worth about 6e6 FLOPs. A GPU launch is worth far more arithmetic.
OVERHEAD_FLOPS = {"cpu": 6e6, "cuda": 1e10}

# The elementwise layers the explicit batched-matmul path passes activations through unchanged in shape.
_ELEMENTWISE = (nn.ReLU, nn.LeakyReLU, nn.Tanh, nn.Sigmoid, nn.GELU, nn.SiLU, nn.ELU, nn.Identity)

_LAYOUT_WARNING = "grad and param do not obey the gradient layout contract"
_layout_warned = False


def _backward(value: torch.Tensor) -> None:
    """``value.backward()``. The leaves' preset gradients are strided like their (strided) parameters, which
    torch's gradient layout contract flags once per process as a possible slowdown; it is the layout we want
    (the gradients land in the (K, P) tensor in place), so that one warning is silenced."""
    global _layout_warned
    if _layout_warned:
        value.backward()
        return
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=_LAYOUT_WARNING)
        value.backward()
    _layout_warned = True


class FuseRefused(ValueError):
    """The task or model cannot be fused; the message names the task and the reason."""


# --------------------------------------------------------------------------------------------- forwards


class LinearStack:
    """The explicit fused forward of a ``nn.Sequential`` of ``Linear``, elementwise and ``Flatten`` layers
    without buffers: (G, B, F) -> (G, B, out) by ``baddbmm`` per ``Linear``; a shared input (B, F) is
    broadcast against the stacked weights in the first ``Linear``."""

    def __init__(self, plan: list[tuple[str, Any]]) -> None:
        self.plan = plan
        #: every layer has a derivative written out here (``train_step``): Linear, ReLU, Identity, Flatten
        self.by_hand = all(kind != "apply" or isinstance(arg, nn.ReLU | nn.Identity) for kind, arg in plan)

    @classmethod
    def of(cls, model: nn.Module) -> LinearStack | None:
        """The plan for ``model``, or None when it is not such a stack."""
        if not isinstance(model, nn.Sequential) or any(True for _ in model.buffers()):
            return None
        plan: list[tuple[str, Any]] = []
        for name, module in model.named_children():
            if isinstance(module, nn.Linear):
                plan.append(
                    ("linear", (f"{name}.weight", f"{name}.bias" if module.bias is not None else None))
                )
            elif isinstance(module, _ELEMENTWISE):
                plan.append(("apply", module))
            elif isinstance(module, nn.Flatten) and module.start_dim == 1 and module.end_dim == -1:
                plan.append(("flatten", None))
            else:
                return None
        if not any(kind == "linear" for kind, _ in plan):
            return None
        return cls(plan)

    def __call__(
        self, params: dict[str, torch.Tensor], buffers: dict[str, torch.Tensor], x: torch.Tensor, shared: bool
    ) -> torch.Tensor:
        h = x
        for kind, arg in self.plan:
            if kind == "linear":
                weight_name, bias_name = arg
                w = params[weight_name].transpose(1, 2)  # (G, F, O)
                bias = params[bias_name].unsqueeze(1) if bias_name is not None else None
                if shared:
                    h = torch.matmul(h, w)  # (B, F) against (G, F, O): (G, B, O)
                    h = h + bias if bias is not None else h
                    shared = False
                elif bias is not None:
                    h = torch.baddbmm(bias, h, w)
                else:
                    h = torch.bmm(h, w)
            elif kind == "apply":
                h = arg(h)
            else:
                h = h.flatten(1) if shared else h.flatten(2)
        return h

    def train_step(
        self,
        params: dict[str, torch.Tensor],
        x: torch.Tensor,
        y: torch.Tensor,
        loss: Loss,
        weights: torch.Tensor | None,
    ) -> torch.Tensor:
        """One training step's forward and backward for ``by_hand`` stacks, without the autograd graph of the
        layers (its bookkeeping is a large part of a small fused step): the gradient of sum_g loss_g with
        respect to each parameter is written into ``params[name].grad`` (overwritten, not accumulated).
        ``x`` (G, B, F); ``weights`` (G, B) or None for the plain batch mean. The loss's own gradient comes
        from autograd on the output alone, so any ``Loss`` works. Returns the members' losses (G,)."""
        inputs: list[torch.Tensor] = []
        shapes: list[torch.Size] = []
        with torch.no_grad():
            h = x
            for kind, arg in self.plan:
                if kind == "linear":
                    weight_name, bias_name = arg
                    inputs.append(h)
                    w = params[weight_name].transpose(1, 2)
                    if bias_name is not None:
                        h = torch.baddbmm(params[bias_name].unsqueeze(1), h, w)
                    else:
                        h = torch.bmm(h, w)
                elif kind == "apply":
                    if isinstance(arg, nn.ReLU):
                        h = torch.relu(h)
                        inputs.append(h)  # the mask of the backward is where the output is positive
                elif kind == "flatten":
                    shapes.append(h.shape)
                    h = h.flatten(2)
        out = h.requires_grad_()
        g, b = int(x.shape[0]), int(x.shape[1])
        per = loss.per_example(out.flatten(0, 1), y.flatten(0, 1)).view(g, b)
        losses = per.mean(1) if weights is None else (per * weights).sum(1)
        (grad,) = torch.autograd.grad(losses.sum(), out)
        with torch.no_grad():
            for i, (kind, arg) in enumerate(reversed(self.plan)):
                first = i == len(self.plan) - 1
                if kind == "linear":
                    weight_name, bias_name = arg
                    a = inputs.pop()
                    weight = params[weight_name]
                    torch.bmm(grad.transpose(1, 2), a, out=weight.grad)
                    if bias_name is not None:
                        torch.sum(grad, 1, out=params[bias_name].grad)
                    if not first:
                        grad = torch.bmm(grad, weight)
                elif kind == "apply":
                    if isinstance(arg, nn.ReLU):
                        grad = grad * (inputs.pop() > 0)
                elif kind == "flatten":
                    grad = grad.view(shapes.pop())
        return losses.detach()


class VmapForward:
    """``functional_call(base, (params, buffers), x)`` under ``torch.func.vmap`` over dim 0 of the stacked
    parameters and buffers (and of ``x`` unless it is shared). In-place buffer updates (BatchNorm's running
    statistics in train mode) land in the stacked buffers passed in."""

    def __init__(self, base: nn.Module) -> None:
        from torch.func import functional_call, vmap

        self.base = base

        def call(p: dict[str, torch.Tensor], b: dict[str, torch.Tensor], x: torch.Tensor) -> torch.Tensor:
            return functional_call(base, (p, b), (x,))

        self._own = vmap(call, in_dims=(0, 0, 0))
        self._shared = vmap(call, in_dims=(0, 0, None))

    def __call__(
        self, params: dict[str, torch.Tensor], buffers: dict[str, torch.Tensor], x: torch.Tensor, shared: bool
    ) -> torch.Tensor:
        # PyTorch's fused transformer kernel (taken in eval mode when no parameter seems to need a gradient,
        # which batched tensors under vmap seem not to) has no derivative; the measurement pass needs one.
        fastpath = torch.backends.mha.get_fastpath_enabled()
        torch.backends.mha.set_fastpath_enabled(False)
        try:
            return (self._shared if shared else self._own)(params, buffers, x)
        finally:
            torch.backends.mha.set_fastpath_enabled(fastpath)


Forward = Callable[[dict[str, torch.Tensor], dict[str, torch.Tensor], torch.Tensor, bool], torch.Tensor]


def flops_per_example(model: nn.Module, x: torch.Tensor) -> float:
    """Forward FLOPs of ``model`` on one example ``x[:1]`` (eval mode, no grad), as counted by
    ``torch.utils.flop_counter`` (matrix products and convolutions); at least 2 x the parameter count."""
    from torch.utils.flop_counter import FlopCounterMode

    was_training = model.training
    model.eval()
    try:
        with torch.no_grad(), FlopCounterMode(display=False) as counter:
            model(x[:1])
    finally:
        model.train(was_training)
    params = sum(p.numel() for p in model.parameters())
    return float(max(counter.get_total_flops(), 2 * params))


def plan_round(
    sizes: tuple[int, ...], *, flops: float, overhead: float, limit: float, pad: bool, alone: bool
) -> list[tuple[list[int], int]]:
    """How one round's steps are computed: a list of (rows, width) calls, each row's batch padded to
    ``width``. ``sizes[r]`` is row r's batch size this round (0: it does not step).

    Cost model, in forward FLOPs: a call costs ``overhead`` (the fixed work of a fused forward, backward and
    bookkeeping) plus ``flops`` x rows x width, and may not exceed ``limit`` unless it is one row; a call over
    a subset of rows costs a quarter ``overhead`` more (gathering and scattering their rows). Without
    ``pad`` (a model whose examples may interact, e.g. through BatchNorm) only rows of equal size share a
    call, split as evenly as ``limit`` requires. With ``pad`` the stepping rows, sorted by size, are cut into
    consecutive calls by dynamic programming, and one call over every row (non-stepping rows included, at
    zero weight) is taken when it is cheaper. ``alone``: every stepping row is its own call."""
    stepping = sorted((size, row) for row, size in enumerate(sizes) if size > 0)
    if alone:
        return [([row], size) for size, row in stepping]
    if not pad:
        by_size: dict[int, list[int]] = {}
        for size, row in stepping:
            by_size.setdefault(size, []).append(row)
        out = []
        for size, rows in by_size.items():
            most = max(1, int(limit // (size * flops))) if size * flops > 0 else len(rows)
            parts = -(-len(rows) // most)
            share, extra = divmod(len(rows), parts)
            start = 0
            for i in range(parts):
                end = start + share + (1 if i < extra else 0)
                out.append((sorted(rows[start:end]), size))
                start = end
        return out
    m = len(stepping)

    def cost(i: int, j: int) -> float:  # one call over stepping[i:j], width = the largest size
        work = flops * (j - i) * stepping[j - 1][0]
        if j - i > 1 and work > limit:
            return math.inf
        return overhead * (1.0 if j - i == len(sizes) else 1.25) + work

    best = [0.0] + [math.inf] * m
    cut = [0] * (m + 1)
    for j in range(1, m + 1):
        for i in range(j):
            c = best[i] + cost(i, j)
            if c < best[j]:
                best[j], cut[j] = c, i
    calls: list[tuple[list[int], int]] = []
    j = m
    while j > 0:
        i = cut[j]
        calls.append((sorted(row for _, row in stepping[i:j]), stepping[j - 1][0]))
        j = i
    calls.reverse()
    if m < len(sizes) and m:
        width = stepping[-1][0]
        everyone = overhead + flops * len(sizes) * width
        if everyone < best[m] and flops * len(sizes) * width <= limit:
            return [(list(range(len(sizes))), width)]
    return calls


# --------------------------------------------------------------------------------------------- the engine


class FusedEngine:
    """Serves the requests of K ``trial_loop`` s (member i: ``specs[i]``) on one device (module docstring).

    ``forward``: ``"auto"`` (the batched-matmul path where the model allows, else vmap), ``"vmap"`` or
    ``"member"`` (every member alone through its own module: no fusion, the storage and update still shared).
    ``fuse_flops``: the split limit (None: ``FUSE_FLOPS`` for the device type; no limit for other devices).

    Raises ``FuseRefused`` for a task that streams its data, or a model whose parameters are not all float
    tensors that require grad and are not shared between layers."""

    def __init__(
        self,
        task: Task,
        specs: Sequence[TrialSpec],
        *,
        forward: str = "auto",
        fuse_flops: float | None = None,
    ) -> None:
        if not isinstance(task.train, TensorData) or not isinstance(task.test, TensorData):
            raise FuseRefused(
                f"task {task.name!r} streams its data (stream: true); the fused population trainer needs the "
                "training and test sets as tensors on the device: use stream: false, or engine 'plain' to "
                "pack the trials without fusing them"
            )
        if forward not in ("auto", "vmap", "member"):
            raise ValueError(f"forward must be one of auto, vmap, member, got {forward!r}")
        self.task = task
        self.device = task.device
        self.specs = list(specs)
        self.x, self.y = task.train.x, task.train.y
        n = task.n_train

        models = [build_member_model(task, spec.seed) for spec in self.specs]
        template = models[0]
        self._check_parameters(template)
        self.names = [name for name, _ in template.named_parameters()]
        self.shapes = [tuple(p.shape) for _, p in template.named_parameters()]
        sizes = [p.numel() for _, p in template.named_parameters()]
        offsets = [sum(sizes[:i]) for i in range(len(sizes) + 1)]
        #: (name, shape, start, end) of each parameter in a row of the (K, P) storage
        self.slots = list(zip(self.names, self.shapes, offsets[:-1], offsets[1:], strict=True))
        dtype = next(template.parameters()).dtype
        self.flops = flops_per_example(template, self.x)
        limit = fuse_flops if fuse_flops is not None else FUSE_FLOPS.get(self.device.type)
        self.fuse_flops = math.inf if limit is None else float(limit)

        # storage: one row per member
        self.flat = torch.stack([nn.utils.parameters_to_vector(m.parameters()).detach() for m in models])
        self.grad = torch.zeros_like(self.flat)
        self.momentum = torch.zeros_like(self.flat)
        self.buffer_names = [name for name, _ in template.named_buffers()]
        self.buffers = {
            name: torch.stack([dict(m.named_buffers())[name] for m in models]) for name in self.buffer_names
        }
        self.loss_sums = torch.zeros(len(models), device=self.device, dtype=dtype)
        self.perms = torch.zeros(len(models), n, device=self.device, dtype=torch.long)
        #: each member's own module (parameters: views of its row), dropped when the member retires
        self.models = dict(enumerate(models))
        self.rows = list(range(len(models)))  # member id of each row
        self.row_of = {m: r for r, m in enumerate(self.rows)}
        self._perm_of: list[torch.Tensor | None] = [None] * len(models)
        self._retired: set[int] = set()
        coefficients = [heavy_ball_coefficients(s.optimizer.name, s.optimizer.momentum) for s in self.specs]
        self.beta = [b for b, _ in coefficients]  # by member id
        self.coef = [c for _, c in coefficients]
        self._index_cache: dict[tuple[int, ...], torch.Tensor] = {}
        self._plans: dict[tuple[int, ...], list[tuple[list[int], int]]] = {}
        self._aranges: dict[int, torch.Tensor] = {}
        self._weight_cache: dict[tuple[tuple[int, ...], int], torch.Tensor] = {}
        self.overhead_flops = OVERHEAD_FLOPS.get(self.device.type, OVERHEAD_FLOPS["cuda"])
        self._hyper: dict[tuple[int, ...], tuple[torch.Tensor, torch.Tensor]] = {}
        self._lr_cache: tuple[tuple[float, ...], torch.Tensor] | None = None

        # per member: its augmentation stream and its measurement passes (used for a member measured alone)
        self.augment_gens = [
            _generator(self.device, s.seed + AUGMENT_SEED_OFFSET) if task.augment is not None else None
            for s in self.specs
        ]
        from schedules.batches import InMemoryReader

        self.train_reader = InMemoryReader(task.train)
        self.test_reader = InMemoryReader(task.test)
        self.measures = {
            i: _Measurements(task, m, self.train_reader, self.test_reader, s.grad_norm_mode, s.seed)
            for i, (m, s) in enumerate(zip(models, self.specs, strict=True))
        }
        self.subset = grad_norm_subset(task)
        self.measured = n if self.subset is None else int(self.subset.shape[0])
        self.seconds = [0.0] * len(models)

        self.base = copy.deepcopy(template).to("meta")
        self.forward_kind = self._choose_forward(forward, template)
        self._forward: Forward | None = None
        if self.forward_kind == "linear":
            self._forward = LinearStack.of(template)
        elif self.forward_kind == "vmap":
            self._forward = VmapForward(self.base)
        self._bind()

    # ----------------------------------------------------------------------------------------- set-up

    def _check_parameters(self, model: nn.Module) -> None:
        named = list(model.named_parameters(remove_duplicate=False))
        if len(named) != len(list(model.named_parameters())):
            raise FuseRefused(
                f"the model of task {self.task.name!r} shares parameters between layers; the fused "
                "population trainer cannot stack it (use engine 'plain')"
            )
        for name, p in named:
            if not p.requires_grad or not p.is_floating_point():
                raise FuseRefused(
                    f"parameter {name} of task {self.task.name!r} is frozen or not a float tensor; the fused "
                    "population trainer updates every parameter (use engine 'plain')"
                )

    def _choose_forward(self, forward: str, template: nn.Module) -> str:
        if forward == "member":
            return "member"
        if forward == "auto" and LinearStack.of(template) is not None:
            return "linear"
        try:
            self._probe(VmapForward(self.base))
        except Exception as exc:  # a model vmap cannot batch: every member runs alone, still correct
            logger.warning(
                "task %s: torch.func.vmap cannot batch its model (%s: %s); the population's members run one "
                "after another",
                self.task.name,
                type(exc).__name__,
                str(exc).splitlines()[0] if str(exc) else "",
            )
            return "member"
        return "vmap"

    def _probe(self, forward: Forward) -> None:
        rows = min(2, len(self.models))
        params = {
            name: self.flat[:rows, a:b].reshape(rows, *shape).clone().requires_grad_()
            for name, shape, a, b in self.slots
        }
        buffers = {name: t[:rows].clone() for name, t in self.buffers.items()}
        x = self.x[:2].unsqueeze(0).expand(rows, *self.x[:2].shape)
        out = forward(params, buffers, x, False)
        out.float().sum().backward()

    def _bind(self) -> None:
        """(Re)create the leaves over the current storage: the stacked leaves and each member's module."""
        k = self.flat.shape[0]
        self.stacked: dict[str, torch.Tensor] = {}
        for name, shape, a, b in self.slots:
            leaf = self.flat[:, a:b].view(k, *shape).detach().requires_grad_()
            leaf.grad = self.grad[:, a:b].view(k, *shape)
            self.stacked[name] = leaf
        for row, member in enumerate(self.rows):
            model = self.models[member]
            for name, shape, a, b in self.slots:
                owner, _, leaf_name = name.rpartition(".")
                p = nn.Parameter(self.flat[row, a:b].view(shape))
                p.grad = self.grad[row, a:b].view(shape)
                model.get_submodule(owner)._parameters[leaf_name] = p
            for name in self.buffer_names:
                owner, _, leaf_name = name.rpartition(".")
                model.get_submodule(owner)._buffers[leaf_name] = self.buffers[name][row]
        self._index_cache.clear()
        self._plans.clear()
        self._weight_cache.clear()
        self._hyper.clear()
        self._lr_cache = None

    def _compact(self) -> None:
        """Drop retired members' rows (called before serving, so a row is never dropped mid-round)."""
        keep = [r for r, m in enumerate(self.rows) if m not in self._retired]
        index = torch.tensor(keep, device=self.device, dtype=torch.long)
        self.flat = self.flat.index_select(0, index)
        self.grad = torch.zeros_like(self.flat)
        self.momentum = self.momentum.index_select(0, index)
        self.buffers = {name: t.index_select(0, index) for name, t in self.buffers.items()}
        self.loss_sums = self.loss_sums.index_select(0, index)
        self.perms = self.perms.index_select(0, index)
        self._perm_of = [self._perm_of[r] for r in keep]
        self.rows = [self.rows[r] for r in keep]
        self.row_of = {m: r for r, m in enumerate(self.rows)}
        for member in self._retired:  # their modules hold views of the old storage: let it go
            del self.models[member], self.measures[member]
        self._retired.clear()
        if self.rows:
            self._bind()

    def retire(self, member: int) -> None:
        self._retired.add(member)

    def close(self) -> None:
        return None

    def measure_seconds(self, member: int) -> float:
        return self.seconds[member]

    # ----------------------------------------------------------------------------------------- helpers

    def _index(self, rows: Sequence[int]) -> torch.Tensor:
        key = tuple(rows)
        found = self._index_cache.get(key)
        if found is None:
            found = torch.tensor(key, device=self.device, dtype=torch.long)
            self._index_cache[key] = found
        return found

    def _column(self, values: Sequence[float]) -> torch.Tensor:
        """(len(values), 1) on the device without waiting for it (a pinned copy on CUDA)."""
        t = torch.tensor(values, dtype=self.flat.dtype).unsqueeze(1)
        if self.device.type == "cuda":
            return t.pin_memory().to(self.device, non_blocking=True)
        return t

    def _split(self, rows: list[int], batch: int) -> list[list[int]]:
        """``rows`` (same batch size) in consecutive groups of at most ``fuse_flops`` forward FLOPs each, as
        equal in size as possible; all of them alone when the forward is ``member``."""
        if self.forward_kind == "member":
            return [[r] for r in rows]
        per_member = batch * self.flops
        most = len(rows) if per_member <= 0 else max(1, int(self.fuse_flops // per_member))
        parts = -(-len(rows) // most)
        size, extra = divmod(len(rows), parts)
        out, start = [], 0
        for i in range(parts):
            end = start + size + (1 if i < extra else 0)
            out.append(rows[start:end])
            start = end
        return out

    def _leaves(self, data: torch.Tensor, grad: torch.Tensor) -> dict[str, torch.Tensor]:
        """Leaf tensors (G, \\*shape) aliasing the rows of ``data`` (G, P), their ``.grad`` preset to the same
        views of ``grad``: a backward accumulates into ``grad`` in place, with no per-parameter gradient
        tensors to allocate and gather."""
        g = data.shape[0]
        out = {}
        for name, shape, a, b in self.slots:
            leaf = data[:, a:b].view(g, *shape).detach().requires_grad_()
            leaf.grad = grad[:, a:b].view(g, *shape)
            out[name] = leaf
        return out

    def _gather(
        self, rows: list[int]
    ) -> tuple[dict[str, torch.Tensor], dict[str, torch.Tensor], torch.Tensor | None]:
        """Parameters and buffers of ``rows`` for a fused step: the stacked leaves themselves when ``rows``
        are all rows in order (gradients land in ``self.grad``), else leaves over a gathered copy whose
        gradient (returned) the caller scatters back, with gathered buffers to write back."""
        if rows == list(range(len(self.rows))):
            return self.stacked, self.buffers, None
        index = self._index(rows)
        data = self.flat.index_select(0, index)
        grad = torch.zeros_like(data)
        buffers = {name: t.index_select(0, index) for name, t in self.buffers.items()}
        return self._leaves(data, grad), buffers, grad

    def _write_back(self, rows: list[int], buffers: dict[str, torch.Tensor]) -> None:
        index = self._index(rows)
        for name, t in buffers.items():
            self.buffers[name].index_copy_(0, index, t)

    # ----------------------------------------------------------------------------------------- steps

    def step(self, requests: list[tuple[int, Step]]) -> None:
        if self._retired:
            self._compact()
        rows = len(self.rows)
        sizes = [0] * rows
        step_of: list[Step | None] = [None] * rows
        for member, request in requests:
            row = self.row_of[member]
            sizes[row], step_of[row] = request.size, request
        self.grad.zero_()
        for group, width in self._plan(tuple(sizes)):
            self._step_rows(group, [step_of[r] for r in group], width)
        self._update(
            [r for r in range(rows) if step_of[r] is not None], [s.lr if s else 0.0 for s in step_of]
        )

    def _plan(self, sizes: tuple[int, ...]) -> list[tuple[list[int], int]]:
        """The round's fused calls: (rows, width) with every row's batch padded to ``width`` (rows whose size
        is 0 do not step: all zero weights). Memoised: a batch-size pattern repeats for a whole epoch."""
        found = self._plans.get(sizes)
        if found is None:
            found = plan_round(
                sizes,
                flops=self.flops,
                overhead=self.overhead_flops,
                limit=self.fuse_flops,
                pad=self.forward_kind == "linear",
                alone=self.forward_kind == "member",
            )
            self._plans[sizes] = found
        return found

    def _fetch(
        self, rows: list[int], steps: list[Step | None], width: int
    ) -> tuple[torch.Tensor, torch.Tensor, list[int]]:
        """The members' batches stacked to (G, width, ...), inputs and targets, and each row's real size.
        Positions past a row's size (padding, or a row that does not step) hold valid examples that get zero
        weight; augmentation touches only a row's real examples, so its stream moves as when it is alone."""
        for row, s in zip(rows, steps, strict=True):
            if s is not None and self._perm_of[row] is not s.order:
                self.perms[row].copy_(s.order)
                self._perm_of[row] = s.order
        sizes = [0 if s is None else s.size for s in steps]
        everyone = rows == list(range(len(self.rows)))
        perms = self.perms if everyone else self.perms.index_select(0, self._index(rows))
        first = steps[0]
        if first is not None and all(s is not None and s.pos == first.pos and s.size == width for s in steps):
            idx = perms[:, first.pos : first.pos + width]
        else:
            starts = torch.tensor([0 if s is None else s.pos for s in steps], dtype=torch.long).unsqueeze(1)
            offsets = (starts.to(self.device) + self._arange(width)).clamp_(max=self.x.shape[0] - 1)
            idx = perms.gather(1, offsets)
        x, y = self.x[idx], self.y[idx]
        augment = self.task.augment
        if augment is not None:
            x = x.clone()
            for j, (row, size) in enumerate(zip(rows, sizes, strict=True)):
                gen = self.augment_gens[self.rows[row]]
                if size and gen is not None:
                    x[j, :size] = augment(x[j, :size], gen)
        return x, y, sizes

    def _arange(self, width: int) -> torch.Tensor:
        found = self._aranges.get(width)
        if found is None:
            found = torch.arange(width, device=self.device)
            self._aranges[width] = found
        return found

    def _weights(self, sizes: list[int], width: int) -> torch.Tensor:
        """(G, width): 1/b for a row's b real examples, 0 for its padding and for a row that does not step."""
        key = (tuple(sizes), width)
        found = self._weight_cache.get(key)
        if found is None:
            w = torch.zeros(len(sizes), width, dtype=self.flat.dtype)
            for j, size in enumerate(sizes):
                if size:
                    w[j, :size] = 1.0 / size
            found = w.to(self.device)
            self._weight_cache[key] = found
        return found

    def _step_rows(self, rows: list[int], steps: list[Step | None], width: int) -> None:
        x, y, sizes = self._fetch(rows, steps, width)
        loss = self.task.loss
        if len(rows) == 1:  # alone: the member's own module, as the single-trial trainer steps
            row = rows[0]
            value = loss.mean(self.models[self.rows[row]](x[0]), y[0])
            _backward(value)
            self.loss_sums[row] += value.detach()
            return
        assert self._forward is not None
        params, buffers, grad = self._gather(rows)
        weights = None if all(size == width for size in sizes) else self._weights(sizes, width)
        if isinstance(self._forward, LinearStack) and self._forward.by_hand:
            losses = self._forward.train_step(params, x, y, loss, weights)
        else:
            out = self._forward(params, buffers, x, False)
            per = loss.per_example(out.flatten(0, 1), y.flatten(0, 1)).view(len(rows), width)
            losses = per.mean(1) if weights is None else (per * weights).sum(1)
            _backward(losses.sum())
        if grad is not None:
            index = self._index(rows)
            self.grad.index_copy_(0, index, grad)
            self._write_back(rows, buffers)
        if len(rows) == len(self.rows):
            self.loss_sums += losses.detach()
        else:
            self.loss_sums.index_add_(0, self._index(rows), losses.detach())

    def _update(self, stepping: list[int], lrs: list[float]) -> None:
        """One heavy-ball update of the rows that stepped; the others are left exactly as they are."""
        moving = tuple(stepping)
        hyper = self._hyper.get(moving)
        if hyper is None:
            step = set(moving)
            hyper = (
                self._column([self.beta[m] if r in step else 1.0 for r, m in enumerate(self.rows)]),
                self._column([self.coef[m] if r in step else 0.0 for r, m in enumerate(self.rows)]),
            )
            self._hyper[moving] = hyper
        beta, coef = hyper
        key = tuple(lrs)
        if self._lr_cache is None or self._lr_cache[0] != key:
            self._lr_cache = (key, self._column([-lr for lr in lrs]))
        stacked_update(self.flat, self.grad, self.momentum, beta=beta, coef=coef, neg_lr=self._lr_cache[1])

    # ----------------------------------------------------------------------------------------- measurements

    def train_loss(self, members: list[int]) -> list[float]:
        if self._retired:
            self._compact()
        rows = [self.row_of[m] for m in members]
        index = self._index(rows)
        values = self.loss_sums.index_select(0, index).tolist()
        self.loss_sums.index_fill_(0, index, 0.0)
        return [float(v) for v in values]

    def gradient(self, requests: list[tuple[int, Gradient]]) -> list[tuple[float, float]]:
        if self._retired:
            self._compact()
        results: dict[int, tuple[float, float]] = {}
        groups: dict[tuple[str, int], list[int]] = {}
        for member, request in requests:
            mode = self.specs[member].grad_norm_mode
            chunk = request.batch_size if mode == "faithful" else self.task.measure_chunk
            groups.setdefault((mode, chunk), []).append(self.row_of[member])
        for (mode, chunk), rows in groups.items():
            rows.sort()
            for part in self._split(rows, min(chunk, self.measured)):
                started = time.perf_counter()
                if len(part) == 1:
                    member = self.rows[part[0]]
                    measure = self.measures[member]
                    before = measure.seconds
                    results[member] = measure.grad(chunk)
                    self.seconds[member] += measure.seconds - before
                    continue
                values = self._fused_gradient(part, mode, chunk)
                spent = time.perf_counter() - started
                for row, value in zip(part, values, strict=True):
                    results[self.rows[row]] = value
                    self.seconds[self.rows[row]] += spent
        return [results[member] for member, _ in requests]

    def _fused_gradient(self, rows: list[int], mode: str, chunk: int) -> list[tuple[float, float]]:
        """f and ||grad f|| of each member in ``rows`` over the measured examples (``schedules.grad``'s
        definitions: clean = exact mean in eval mode; faithful = train mode, chunks of b, each chunk's
        mean-loss gradient weighted by b / n)."""
        assert self._forward is not None
        faithful = mode == "faithful"
        n = self.measured
        g = len(rows)
        index = self._index(rows)
        total = torch.zeros(g, self.flat.shape[1], device=self.device, dtype=self.flat.dtype)
        params = self._leaves(self.flat.index_select(0, index), total)
        buffers = {name: t.index_select(0, index) for name, t in self.buffers.items()}
        augments = [self.measures[self.rows[r]].augment for r in rows] if faithful else []
        loss_sum = torch.zeros(g, device=self.device, dtype=torch.float64)
        self.base.train(faithful)
        try:
            for xc, yc in self.train_reader.chunks(chunk, self.subset):
                shared = True
                if faithful and augments and augments[0] is not None:
                    xc = torch.stack([a(xc) for a in augments])  # type: ignore[misc]
                    shared = False
                out = self._forward(params, buffers, xc, shared)
                targets = yc.unsqueeze(0).expand(g, *yc.shape).flatten(0, 1)
                per = self.task.loss.per_example(out.flatten(0, 1), targets).view(g, -1)
                if faithful:
                    value = per.mean(1) * (chunk / n)
                    loss_sum += per.detach().sum(1).double() / n
                else:
                    value = per.sum(1)
                    loss_sum += value.detach().double()
                _backward(value.sum())  # accumulates into ``total`` (``_leaves``)
        finally:
            self.base.train(True)
        if buffers:
            self._write_back(rows, buffers)
        if not faithful:
            total /= float(n)
            loss_sum /= n
        norms = torch.linalg.vector_norm(total, dim=1)
        pairs = torch.stack([loss_sum, norms.double()], dim=1).tolist()
        return [(float(f), float(norm)) for f, norm in pairs]

    def test(self, members: list[int]) -> list[tuple[float, float | None]]:
        if self._retired:
            self._compact()
        rows = sorted(self.row_of[m] for m in members)
        results: dict[int, tuple[float, float | None]] = {}
        for part in self._split(rows, min(self.task.measure_chunk, self.task.n_test)):
            started = time.perf_counter()
            if len(part) == 1:
                member = self.rows[part[0]]
                measure = self.measures[member]
                before = measure.seconds
                results[member] = measure.test()
                self.seconds[member] += measure.seconds - before
                continue
            values = self._fused_test(part)
            spent = time.perf_counter() - started
            for row, value in zip(part, values, strict=True):
                results[self.rows[row]] = value
                self.seconds[self.rows[row]] += spent
        return [results[m] for m in members]

    @torch.no_grad()
    def _fused_test(self, rows: list[int]) -> list[tuple[float, float | None]]:
        assert self._forward is not None
        g = len(rows)
        index = self._index(rows)
        params = {name: t.detach().index_select(0, index) for name, t in self.stacked.items()}
        buffers = {name: t.index_select(0, index) for name, t in self.buffers.items()}
        loss_sum = torch.zeros(g, device=self.device, dtype=torch.float64)
        correct = torch.zeros(g, device=self.device, dtype=torch.float64)
        accuracy = self.task.accuracy
        self.base.eval()
        try:
            for xc, yc in self.test_reader.chunks(self.task.measure_chunk):
                out = self._forward(params, buffers, xc, True).flatten(0, 1)
                targets = yc.unsqueeze(0).expand(g, *yc.shape).flatten(0, 1)
                loss_sum += self.task.loss.per_example(out, targets).view(g, -1).sum(1, dtype=torch.float64)
                if accuracy is not None:
                    correct += accuracy(out, targets).view(g, -1).sum(1, dtype=torch.float64)
        finally:
            self.base.train(True)
        count = max(self.task.n_test, 1)
        losses = (loss_sum / count).tolist()
        if accuracy is None:
            return [(float(v), None) for v in losses]
        accs = (correct / count).tolist()
        return [(float(v), float(a)) for v, a in zip(losses, accs, strict=True)]
