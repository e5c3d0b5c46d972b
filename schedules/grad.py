"""Measurement passes: the full gradient norm, f(theta), and test loss/accuracy (paper-notes §6.2).

``clean`` mode (the default): model in eval mode, no augmentation, exact mean over the measured examples
(sum of per-example losses / n), gradients taken with ``torch.autograd.grad`` so the parameters' ``.grad`` and
the optimizer state are never touched. ``faithful`` mode copies the paper's code: train mode (BatchNorm uses
batch statistics and updates its running stats), augmented data when the task augments, chunks of the
current batch size, each chunk's mean-loss gradient weighted by b/n with the nominal b (so a short last chunk
is over-weighted, as there). Chunks are taken in order rather than shuffled: only BatchNorm's batch
statistics could notice.

The data come as ``chunks(size)``, an iterable of (inputs, targets) batches of ``size`` examples in order
(``schedules.batches``: slices of on-device tensors or a streamed DataLoader), covering ``n`` examples. The
loss is the task's per-example ``Loss`` (cross-entropy when none is given). Every function returns 0-d
tensors on the model's device so the caller syncs once per epoch, not per chunk.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING

import torch
from torch import nn

if TYPE_CHECKING:
    from schedules.tasks.runtime import Loss

GRAD_NORM_MODES = ("clean", "faithful")

Chunks = Callable[[int], Iterable[tuple[torch.Tensor, torch.Tensor]]]


@dataclass(frozen=True)
class FullGradient:
    loss: torch.Tensor  # f(theta), 0-d
    grad_norm: torch.Tensor  # ||grad f(theta)||_2, unsquared, 0-d
    examples: int  # per-example gradients computed (measurement SFO)


def _default_loss(loss: Loss | None) -> Loss:
    if loss is not None:
        return loss
    from schedules.tasks.runtime import cross_entropy

    return cross_entropy()


def tensor_chunks(x: torch.Tensor, y: torch.Tensor) -> Chunks:
    """``chunks`` over two tensors: consecutive slices."""
    n = int(x.shape[0])
    return lambda size: ((x[s : s + size], y[s : s + size]) for s in range(0, n, size))


def full_gradient(
    model: nn.Module,
    x: torch.Tensor,
    y: torch.Tensor,
    *,
    chunk: int,
    mode: str = "clean",
    batch_size: int | None = None,
    loss: Loss | None = None,
) -> FullGradient:
    """Loss and gradient norm of f(theta) = (1/n) sum_i f_i(theta) over the tensors (x, y)."""
    return full_gradient_over(
        model,
        tensor_chunks(x, y),
        n=int(x.shape[0]),
        chunk=chunk,
        mode=mode,
        batch_size=batch_size,
        loss=loss,
    )


def full_gradient_over(
    model: nn.Module,
    chunks: Chunks,
    *,
    n: int,
    chunk: int,
    mode: str = "clean",
    batch_size: int | None = None,
    loss: Loss | None = None,
    augment: Callable[[torch.Tensor], torch.Tensor] | None = None,
) -> FullGradient:
    """Loss and gradient norm of f(theta) = (1/n) sum_i f_i(theta) over the ``n`` examples ``chunks`` yields.

    ``augment`` (applied to each chunk's inputs) is used in ``faithful`` mode only.
    """
    if mode not in GRAD_NORM_MODES:
        raise ValueError(f"grad_norm_mode must be one of {', '.join(GRAD_NORM_MODES)}, got {mode!r}")
    fn = _default_loss(loss)
    params = [p for p in model.parameters() if p.requires_grad]
    was_training = model.training
    faithful = mode == "faithful"
    model.train(faithful)
    step = (batch_size or chunk) if faithful else chunk
    total: list[torch.Tensor] | None = None
    loss_sum = torch.zeros((), device=params[0].device, dtype=torch.float64)
    try:
        for xc, yc in chunks(step):
            if faithful and augment is not None:
                xc = augment(xc)
            out = model(xc)
            if faithful:
                # The paper's code: mean loss of the batch, gradient scaled by the nominal b / n.
                value = fn.mean(out, yc) * (step / n)
                loss_sum += fn.sum(out.detach(), yc) / n
            else:
                value = fn.sum(out, yc)
                loss_sum += value.detach()
            grads = torch.autograd.grad(value, params)
            if total is None:
                total = [g.detach().clone() for g in grads]
            else:
                torch._foreach_add_(total, grads)
    finally:
        model.train(was_training)
    assert total is not None, "full_gradient needs at least one example"
    if not faithful:
        torch._foreach_div_(total, float(n))
        loss_sum = loss_sum / n
    norm = torch.linalg.vector_norm(torch.stack(torch._foreach_norm(total)))
    return FullGradient(loss=loss_sum, grad_norm=norm, examples=n)


def evaluate(
    model: nn.Module,
    x: torch.Tensor,
    y: torch.Tensor,
    *,
    chunk: int,
    loss: Loss | None = None,
    accuracy: Callable[[torch.Tensor, torch.Tensor], torch.Tensor] | None = None,
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """(mean loss, accuracy) in eval mode over the tensors (x, y); accuracy is top-1 when not given."""
    if accuracy is None:
        from schedules.tasks.runtime import top1_accuracy

        accuracy = top1_accuracy
    return evaluate_over(
        model, tensor_chunks(x, y), n=int(x.shape[0]), chunk=chunk, loss=loss, accuracy=accuracy
    )


@torch.no_grad()
def evaluate_over(
    model: nn.Module,
    chunks: Chunks,
    *,
    n: int,
    chunk: int,
    loss: Loss | None = None,
    accuracy: Callable[[torch.Tensor, torch.Tensor], torch.Tensor] | None = None,
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """(mean loss, mean accuracy) in eval mode as 0-d tensors; accuracy None when ``accuracy`` is None.
    ``accuracy(output, target)`` gives per-example values in [0, 1], shape (B,)."""
    fn = _default_loss(loss)
    was_training = model.training
    model.eval()
    device = next(model.parameters()).device
    loss_sum = torch.zeros((), device=device, dtype=torch.float64)
    correct = torch.zeros((), device=device, dtype=torch.float64)
    try:
        for xc, yc in chunks(chunk):
            out = model(xc)
            loss_sum += fn.sum(out, yc)
            if accuracy is not None:
                correct += accuracy(out, yc).sum(dtype=torch.float64)
    finally:
        model.train(was_training)
    n = max(n, 1)
    return loss_sum / n, (correct / n if accuracy is not None else None)
