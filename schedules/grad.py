"""Measurement passes: the full gradient norm, f(theta), and test loss/accuracy (paper-notes §6.2).

``clean`` mode (the default): model in eval mode, no augmentation, exact mean over the whole training set
(sum of per-example losses / n), gradients taken with ``torch.autograd.grad`` so the parameters' ``.grad`` and
the optimizer state are never touched. ``faithful`` mode copies the paper's code: train mode (BatchNorm uses
batch statistics and updates its running stats), chunks of the current batch size, each chunk's mean-loss
gradient weighted by b/n with the nominal b (so a short last chunk is over-weighted, as there). Chunks are
taken
in order rather than shuffled: only BatchNorm's batch statistics could notice.

Every function returns 0-d tensors on the model's device so the caller syncs once per epoch, not per chunk.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

GRAD_NORM_MODES = ("clean", "faithful")


@dataclass(frozen=True)
class FullGradient:
    loss: torch.Tensor  # f(theta), 0-d
    grad_norm: torch.Tensor  # ||grad f(theta)||_2, unsquared, 0-d
    examples: int  # per-example gradients computed (measurement SFO)


def full_gradient(
    model: nn.Module,
    x: torch.Tensor,
    y: torch.Tensor,
    *,
    chunk: int,
    mode: str = "clean",
    batch_size: int | None = None,
) -> FullGradient:
    """Loss and gradient norm of f(theta) = (1/n) sum_i f_i(theta) over (x, y)."""
    if mode not in GRAD_NORM_MODES:
        raise ValueError(f"grad_norm_mode must be one of {', '.join(GRAD_NORM_MODES)}, got {mode!r}")
    n = int(x.shape[0])
    params = [p for p in model.parameters() if p.requires_grad]
    was_training = model.training
    faithful = mode == "faithful"
    model.train(faithful)
    step = (batch_size or chunk) if faithful else chunk
    total: list[torch.Tensor] | None = None
    loss_sum = torch.zeros((), device=x.device, dtype=torch.float64)
    try:
        for start in range(0, n, step):
            xc, yc = x[start : start + step], y[start : start + step]
            out = model(xc)
            if faithful:
                # The paper's code: mean loss of the batch, gradient scaled by the nominal b / n.
                loss = F.cross_entropy(out, yc) * (step / n)
                loss_sum += F.cross_entropy(out.detach(), yc, reduction="sum") / n
            else:
                loss = F.cross_entropy(out, yc, reduction="sum")
                loss_sum += loss.detach()
            grads = torch.autograd.grad(loss, params)
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


@torch.no_grad()
def evaluate(
    model: nn.Module, x: torch.Tensor, y: torch.Tensor, *, chunk: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """(mean loss, accuracy) in eval mode, as 0-d tensors."""
    was_training = model.training
    model.eval()
    loss_sum = torch.zeros((), device=x.device, dtype=torch.float64)
    correct = torch.zeros((), device=x.device, dtype=torch.long)
    try:
        for start in range(0, int(x.shape[0]), chunk):
            xc, yc = x[start : start + chunk], y[start : start + chunk]
            out = model(xc)
            loss_sum += F.cross_entropy(out, yc, reduction="sum")
            correct += (out.argmax(dim=1) == yc).sum()
    finally:
        model.train(was_training)
    n = max(int(x.shape[0]), 1)
    return loss_sum / n, correct.double() / n
