"""A found schedule in your own PyTorch loop: the LR scheduler, batch sampler and optimizer of the trainer.

Torch-only (no service, no workers). Given a ``ScheduleClock`` (``schedules.clock``) for the schedule and its
horizon, a plain loop sees exactly what ``schedules.trainer.train`` does, step by step:

- ``ScheduleLR(optimizer, clock)``: a ``torch.optim.lr_scheduler.LRScheduler`` whose ``last_epoch`` counts
  optimizer steps (the global step t); after ``scheduler.step()`` every param group's LR is the LR of the next
  step, a pure function of epoch and step as in the trainer (no chained state; resuming needs only t);
- ``ScheduleBatchSampler(clock, seed=...)``: the ``batch_sampler`` of a ``DataLoader``; each iteration is one
  epoch, a permutation drawn from a ``torch.Generator`` seeded once with the trial's seed (the trainer's
  generator, so the same indices in the same order on the same device), cut into the batch plan's sizes with
  the last partial batch kept;
- ``make_torch_optimizer(name, params, momentum=...)``: SHB, NSHB or SGD as ``torch.optim.SGD`` with the
  paper's m_{-1} = 0 (paper-notes §2.2), so an ``LRScheduler`` can drive it.

The ``adaptive`` batch family moves with the full gradient norm, which only the loop can measure. It is
supported through an explicit call: when ``scheduler.grad_norm_due()`` is true (right after
``scheduler.step()``), measure ||grad f|| over the whole training set and pass it to
``scheduler.report_grad_norm(norm)``; the sampler's next batch and the LR then follow the new stage. Use
``num_workers=0`` for it: a DataLoader with workers draws batches ahead, and the clock refuses a stage change
for a batch already drawn.

Example (a schedule found for 20 epochs of 1,347 examples)::

    clock = ScheduleClock(Schedule.from_json(found["schedule"]), Horizon(epochs=20, n_train=1347))
    optimizer = make_torch_optimizer("nshb", model.parameters(), momentum=0.9)
    scheduler = ScheduleLR(optimizer, clock)
    loader = DataLoader(train_set, batch_sampler=ScheduleBatchSampler(clock, seed=0))
    for epoch in range(clock.horizon.epochs):
        for x, y in loader:
            loss = F.cross_entropy(model(x), y)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            scheduler.step()
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import Any

import torch
from torch.optim.lr_scheduler import LRScheduler
from torch.utils.data import Sampler

from schedules.clock import ScheduleClock

OPTIMIZERS = ("shb", "nshb", "sgd")


def make_torch_optimizer(
    name: str, params: Iterable[Any], *, momentum: float, lr: float = 0.0
) -> torch.optim.SGD:
    """SHB, NSHB or plain SGD (paper-notes §2.2) as ``torch.optim.SGD``.

    - SHB:  m_t = beta m_{t-1} + g_t, i.e. ``SGD(momentum=beta, dampening=0)``;
    - NSHB: m_t = beta m_{t-1} + (1 - beta) g_t, i.e. ``dampening=beta``;
    - SGD: momentum 0 (``momentum`` is ignored).

    The momentum buffers are created as zeros up front (m_{-1} = 0): ``torch.optim.SGD`` would otherwise
    start a buffer at g_0, which for NSHB is not (1 - beta) g_0. Raises ValueError for an unknown name or a
    momentum outside [0, 1).
    """
    if name not in OPTIMIZERS:
        raise ValueError(f"optimizer name must be one of {', '.join(OPTIMIZERS)}, got name={name!r}")
    beta = 0.0 if name == "sgd" else float(momentum)
    if not 0.0 <= beta < 1.0:
        raise ValueError(f"momentum must be in [0, 1), got momentum={momentum}")
    optimizer = torch.optim.SGD(params, lr=lr, momentum=beta, dampening=beta if name == "nshb" else 0.0)
    if beta > 0.0:
        for group in optimizer.param_groups:
            for p in group["params"]:
                optimizer.state[p]["momentum_buffer"] = torch.zeros_like(
                    p, memory_format=torch.preserve_format
                )
    return optimizer


class ScheduleLR(LRScheduler):
    """Sets every param group's LR to ``clock.lr(t)`` for the next global step t (``last_epoch`` counts
    ``scheduler.step()`` calls, one per optimizer step, as for any per-step torch scheduler). Call
    ``scheduler.step()`` after ``optimizer.step()``."""

    def __init__(self, optimizer: torch.optim.Optimizer, clock: ScheduleClock, last_epoch: int = -1) -> None:
        self.clock = clock
        super().__init__(optimizer, last_epoch)

    def get_lr(self) -> list[float | torch.Tensor]:
        lr = self.clock.lr(max(self.last_epoch, 0))
        return [lr for _ in self.optimizer.param_groups]

    def grad_norm_due(self) -> bool:
        """True when the adaptive family wants the full gradient norm now (after ``last_epoch`` steps)."""
        return self.clock.grad_norm_due(self.last_epoch)

    def report_grad_norm(self, grad_norm: float | torch.Tensor) -> bool:
        """Report ||grad f|| over the whole training set (unsquared) after ``scheduler.step()``; when the
        adaptive stage moves, the next step's LR is set again and the sampler's next batch has the new size.
        Returns True when the stage moved. Errors: see ``ScheduleClock.report_grad_norm``."""
        moved = self.clock.report_grad_norm(self.last_epoch, float(grad_norm))
        if moved:
            lr = self.clock.lr(self.last_epoch)
            for group in self.optimizer.param_groups:
                group["lr"] = lr
            self._last_lr = [group["lr"] for group in self.optimizer.param_groups]
        return moved

    def state_dict(self) -> dict[str, Any]:
        """The step count and the adaptive stage changes (the LR itself is a function of them)."""
        return {
            "last_epoch": self.last_epoch,
            "_step_count": self._step_count,
            "_last_lr": list(self._last_lr),
            "clock": self.clock.state_dict(),
        }

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        self.clock.load_state_dict(state_dict.get("clock", {}))
        self.last_epoch = int(state_dict["last_epoch"])
        self._step_count = int(state_dict.get("_step_count", self.last_epoch + 1))
        lr = self.clock.lr(max(self.last_epoch, 0))
        for group in self.optimizer.param_groups:
            group["lr"] = lr
        self._last_lr = [group["lr"] for group in self.optimizer.param_groups]


class ScheduleBatchSampler(Sampler[list[int]]):
    """Index batches that follow the batch plan through the trainer's seeded permutations.

    Each ``iter(sampler)`` (each pass of ``for x, y in loader``) is the next epoch: one
    ``torch.randperm(n_train, generator=...)`` from a generator seeded once with ``seed`` on ``device`` (the
    trainer draws on the device it trains on: pass ``device="cuda"`` to match a trial run on a GPU), cut into
    batches of the clock's sizes, last partial batch kept. Raises RuntimeError for an epoch past the horizon.
    """

    def __init__(self, clock: ScheduleClock, *, seed: int = 0, device: str | torch.device = "cpu") -> None:
        self.clock = clock
        self.seed = int(seed)
        self.device = torch.device(device)
        self._generator = torch.Generator(device=self.device)
        self._generator.manual_seed(self.seed)
        self._next_epoch = 0
        self._current: int | None = None  # the epoch being iterated, if any

    @property
    def epoch(self) -> int:
        """The epoch being iterated, or the next one."""
        return self._current if self._current is not None else self._next_epoch

    def __len__(self) -> int:
        epoch = min(self.epoch, self.clock.horizon.epochs - 1)
        return self.clock.epoch_steps(epoch)

    def __iter__(self) -> Iterator[list[int]]:
        epoch = self._next_epoch
        if epoch >= self.clock.horizon.epochs:
            raise RuntimeError(
                f"the schedule covers {self.clock.horizon.epochs} epochs (its horizon); "
                f"epoch {epoch} is past it"
            )
        n = self.clock.horizon.n_train
        perm = torch.randperm(n, generator=self._generator, device=self.device).tolist()
        self._next_epoch += 1
        return self._batches(epoch, perm)

    def _batches(self, epoch: int, perm: list[int]) -> Iterator[list[int]]:
        self._current = epoch
        try:
            step = self.clock.epoch_start(epoch)
            while True:
                p = self.clock.position(step)
                if p.epoch != epoch or p.batch_size == 0:
                    return
                self.clock.mark_drawn(step)
                yield perm[p.offset : p.offset + p.batch_size]
                step += 1
        finally:
            self._current = None

    def state_dict(self) -> dict[str, Any]:
        return {"next_epoch": self._next_epoch, "generator": self._generator.get_state()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self._next_epoch = int(state["next_epoch"])
        self._generator.set_state(state["generator"])


__all__ = ["OPTIMIZERS", "ScheduleBatchSampler", "ScheduleClock", "ScheduleLR", "make_torch_optimizer"]
