"""SHB and NSHB, exactly as the paper's ``optim/sgdm.py`` (paper-notes §2.2).

- SHB:  m_t = beta m_{t-1} + g_t;            x_{t+1} = x_t - lr_t m_t
- NSHB: m_t = beta m_{t-1} + (1 - beta) g_t;  x_{t+1} = x_t - lr_t m_t

with m_{-1} = 0, no weight decay and no dampening; plain SGD is momentum 0. SHB equals
``torch.optim.SGD(momentum=beta)``, and SHB(lr, beta) follows the same trajectory as
NSHB(lr / (1 - beta), beta)
for any LR sequence; ``tests/schedules/test_optim.py`` checks both.

The LR is a plain number the training loop assigns before each step (``set_lr``), as nanoGPT does: no
scheduler object, so the LR at step t is a pure function of the schedule.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import torch

OPTIMIZERS = ("shb", "nshb", "sgd")


class SGDM:
    """Heavy-ball momentum; ``normalized=True`` is NSHB. The buffers start at zero (m_{-1} = 0).

    Duck-compatible with the parts of ``torch.optim.Optimizer`` a loop uses (``param_groups``, ``state``,
    ``step``, ``zero_grad``, ``state_dict``) but not a subclass: constructing the first ``torch.optim``
    optimizer imports ``torch._dynamo``, which costs 1-2 s, more than a whole digits-mlp trial.
    ``update()`` is the step itself, with no hook bookkeeping; the trainer calls it directly.
    """

    def __init__(
        self, params: Iterable[Any], *, lr: float = 0.1, momentum: float = 0.9, normalized: bool = False
    ) -> None:
        if not 0.0 <= momentum < 1.0:
            raise ValueError(f"optimizer.momentum must be in [0, 1), got momentum={momentum}")
        if lr < 0.0:
            raise ValueError(f"optimizer lr must be >= 0, got lr={lr}")
        plist = [p for p in params]
        if not plist:
            raise ValueError("optimizer got an empty parameter list")
        self.param_groups: list[dict[str, Any]] = [
            {"params": plist, "lr": lr, "momentum": momentum, "normalized": normalized}
        ]
        # m_{-1} = 0, created up front so the hot path never branches on missing state
        self.state: dict[torch.Tensor, dict[str, torch.Tensor]] = {
            p: {"momentum_buffer": torch.zeros_like(p)} for p in plist
        }

    @torch.no_grad()
    def update(self) -> None:
        for group in self.param_groups:
            params = [p for p in group["params"] if p.grad is not None]
            if not params:
                continue
            grads = [p.grad for p in params]
            lr, beta = float(group["lr"]), float(group["momentum"])
            if beta == 0.0:
                torch._foreach_add_(params, grads, alpha=-lr)
                continue
            bufs = [self.state[p]["momentum_buffer"] for p in params]
            torch._foreach_mul_(bufs, beta)
            # NSHB scales the new gradient by (1 - beta); SHB adds it whole.
            torch._foreach_add_(bufs, grads, alpha=(1.0 - beta) if group["normalized"] else 1.0)
            torch._foreach_add_(params, bufs, alpha=-lr)

    def step(self, closure: Any = None) -> None:
        if closure is not None:
            raise ValueError("SGDM.step takes no closure")
        self.update()

    def zero_grad(self, set_to_none: bool = True) -> None:
        for group in self.param_groups:
            for p in group["params"]:
                if set_to_none:
                    p.grad = None
                elif p.grad is not None:
                    p.grad.zero_()

    def state_dict(self) -> dict[str, Any]:
        """Hyper-parameters and momentum buffers, by parameter position."""
        group = self.param_groups[0]
        return {
            "lr": group["lr"],
            "momentum": group["momentum"],
            "normalized": group["normalized"],
            "momentum_buffers": [self.state[p]["momentum_buffer"].clone() for p in group["params"]],
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        group = self.param_groups[0]
        buffers = state["momentum_buffers"]
        if len(buffers) != len(group["params"]):
            raise ValueError(f"state has {len(buffers)} momentum buffers, the model {len(group['params'])}")
        group.update(lr=state["lr"], momentum=state["momentum"], normalized=state["normalized"])
        for p, buf in zip(group["params"], buffers, strict=True):
            self.state[p]["momentum_buffer"].copy_(buf)


def make_optimizer(name: str, params: Iterable[Any], *, momentum: float, lr: float = 0.0) -> SGDM:
    """``shb``, ``nshb`` or ``sgd`` (momentum forced to 0)."""
    if name == "shb":
        return SGDM(params, lr=lr, momentum=momentum, normalized=False)
    if name == "nshb":
        return SGDM(params, lr=lr, momentum=momentum, normalized=True)
    if name == "sgd":
        return SGDM(params, lr=lr, momentum=0.0)
    raise ValueError(f"optimizer.name must be one of {', '.join(OPTIMIZERS)}, got name={name!r}")


def set_lr(optimizer: SGDM | torch.optim.Optimizer, lr: float) -> None:
    """Assign the step's LR to every param group (the loop's only LR mechanism)."""
    for group in optimizer.param_groups:
        group["lr"] = lr


def heavy_ball_coefficients(name: str, momentum: float) -> tuple[float, float]:
    """(beta, coef) of m_t = beta m_{t-1} + coef g_t for ``shb`` (beta, 1), ``nshb`` (beta, 1 - beta) and
    ``sgd`` (0, 1): the same update as ``make_optimizer(name, ...)``, written as two numbers per trial."""
    if name == "shb":
        return momentum, 1.0
    if name == "nshb":
        return momentum, 1.0 - momentum
    if name == "sgd":
        return 0.0, 1.0
    raise ValueError(f"optimizer.name must be one of {', '.join(OPTIMIZERS)}, got name={name!r}")


@torch.no_grad()
def stacked_update(
    params: torch.Tensor,
    grads: torch.Tensor,
    buffers: torch.Tensor,
    *,
    beta: torch.Tensor,
    coef: torch.Tensor,
    neg_lr: torch.Tensor,
) -> None:
    """The heavy-ball step of K trials at once, in place: rows of ``params``, ``grads`` and ``buffers``
    (shape (K, P)) are the trials, ``beta``, ``coef`` and ``neg_lr`` (shape (K, 1)) their numbers:
    m = beta m + coef g; x = x + neg_lr m (``heavy_ball_coefficients``; SGD: beta 0, so m = g). A row with
    beta 1, coef 0 and neg_lr 0 is left exactly as it is (its gradient must be finite, e.g. zero)."""
    buffers.mul_(beta).addcmul_(grads, coef)
    params.addcmul_(buffers, neg_lr)
