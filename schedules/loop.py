"""The training loop of a trial, written once, and the driver that runs one or many of them (docs/design.md).

``trial_loop`` is the straight-line walk of one trial through epochs and batches (paper-notes §6.2): the
seeded permutation per epoch, the batch plan and the LR of every step from the run's ``ScheduleClock``, the
``max_sfo`` cut, the adaptive checks, the measurement passes, the records, the stopping rules. Where the walk
touches the model it yields a request and receives the result, so the loop never knows how (or with which
other trials) the work is done:

- ``Step(order, pos, size, lr)``: fetch examples ``order[pos : pos + size]`` (augmented when the task
  augments) and take one optimizer step at LR ``lr`` on their batch-mean loss; result None;
- ``Gradient(batch_size)``: a measurement pass, f(theta) and the full gradient norm (``batch_size``: faithful
  mode's chunk); result (f, norm);
- ``TrainLoss()``: the sum of the batch losses of the steps since the last ``TrainLoss`` (then restarted at
  0); result a float;
- ``TestPass()``: test loss and accuracy; result (loss, accuracy or None).

An *engine* serves requests: ``schedules.trainer.PlainEngine`` (each trial its own module and optimizer, one
request at a time: the single-trial trainer, bit for bit as before) or ``schedules.fused.FusedEngine`` (the
members of a population in stacked parameters, their steps and measurements fused). ``run(loops, engine)``
drives any number of loops in rounds: each round serves every loop's pending request, the steps in one
engine call and the measurements in one call per kind, so every loop moves on at its own pace (a loop never
waits for another's epoch to end). A loop's results do not depend on the rounds (loops share nothing but the
engine), only the engine's grouping does, which is what fusing needs: members of one batch plan step in
lockstep and measure in the same rounds.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Generator, Mapping
from dataclasses import dataclass
from typing import Any, Protocol

import torch

from schedules.clock import ScheduleClock
from schedules.metrics import EpochRecord
from schedules.spec import Horizon, TrialSpec

Report = Callable[[EpochRecord], Any]


class Step:
    """One optimizer step on examples ``order[pos : pos + size]`` (``order``: the epoch's permutation on the
    device) at LR ``lr``. A slotted class, not a dataclass: one is made per step and per member."""

    __slots__ = ("lr", "order", "pos", "size")

    def __init__(self, order: torch.Tensor, pos: int, size: int, lr: float) -> None:
        self.order, self.pos, self.size, self.lr = order, pos, size, lr


@dataclass(frozen=True)
class Gradient:
    """A measurement pass: (f(theta), ||grad f(theta)||) over the training set or the task's subset;
    ``batch_size`` is the nominal b that faithful mode chunks and weights by (``schedules.grad``)."""

    batch_size: int


@dataclass(frozen=True)
class TrainLoss:
    """The sum of the batch-mean losses of the steps since the last ``TrainLoss`` (restarted at 0)."""


@dataclass(frozen=True)
class TestPass:
    """(test loss, test accuracy or None) in eval mode."""


Request = Step | Gradient | TrainLoss | TestPass
TRAIN_LOSS = TrainLoss()
TEST_PASS = TestPass()


@dataclass(frozen=True)
class Outcome:
    """What a loop returns: its records, how it ended, and the gradient norm before training."""

    records: tuple[EpochRecord, ...]
    status: str
    stop_reason: str
    initial_grad_norm: float
    wall_s: float  # from ``started`` to the loop's end


class Engine(Protocol):
    """Serves the requests of the loops it was built for; ``member`` is the loop's index."""

    def step(self, requests: list[tuple[int, Step]]) -> None: ...

    def gradient(self, requests: list[tuple[int, Gradient]]) -> list[tuple[float, float]]: ...

    def train_loss(self, members: list[int]) -> list[float]: ...

    def test(self, members: list[int]) -> list[tuple[float, float | None]]: ...

    def retire(self, member: int) -> None: ...


Loop = Generator[Request, Any, Outcome]


def trial_loop(
    spec: TrialSpec,
    *,
    n: int,
    device: torch.device,
    measured: int,
    subset: int | None,
    tokens_per_example: int | None,
    started: float,
    report: Report | None,
    should_stop: Callable[[], bool] | None,
) -> Loop:
    """The walk of one trial (module docstring). ``n``: training examples; ``measured``: examples per
    measurement pass (``subset``, when not None, is that subset's size, marked in every record);
    ``started``: the ``time.perf_counter()`` that records' ``wall_s`` count from."""
    schedule, budget = spec.schedule, spec.budget
    clock = ScheduleClock(schedule, Horizon(epochs=budget.max_epochs, n_train=n))
    adaptive = clock.is_adaptive
    per_step_lr = bool(schedule.lr.per_step)
    gen = torch.Generator(device=device)
    gen.manual_seed(spec.seed)

    _, initial_norm = yield Gradient(clock.batch_size_of(0, 0))
    measure_sfo = measured
    records: list[EpochRecord] = []
    sfo = step = stage = 0
    status, stop_reason = "completed", "max_epochs"
    lr = 0.0
    max_sfo = budget.max_sfo
    target = spec.target.grad_norm

    for epoch in range(budget.max_epochs):
        b = clock.batch_size_of(epoch, stage)
        perm = torch.randperm(n, generator=gen, device=device)
        batch_count = pos = 0
        truncated = False
        while pos < n:
            size = min(b, n - pos)
            if max_sfo is not None and sfo + size > max_sfo:
                truncated = True
                break
            if per_step_lr or batch_count == 0:
                lr = clock.lr_at(epoch, step, stage)
            yield Step(perm, pos, size, lr)
            pos += size
            batch_count += 1
            sfo += size
            step += 1
            if adaptive and clock.check_due(step, epoch, stage):
                _, norm = yield Gradient(b)
                measure_sfo += measured
                if clock.advances(stage, norm):  # arXiv 2508.05302 (paper-notes §5.4)
                    stage += 1
                    b = clock.batch_size_of(epoch, stage)
                    lr = clock.lr_at(epoch, step, stage)
        if batch_count == 0:  # the SFO budget ran out exactly at the epoch boundary
            stop_reason = "max_sfo"
            break
        full_loss, grad_norm = yield Gradient(b)
        train_loss = (yield TRAIN_LOSS) / batch_count
        test_loss, test_acc = yield TEST_PASS
        measure_sfo += measured
        record = EpochRecord(
            epoch=epoch + 1,
            step=step,
            sfo=sfo,
            lr=float(lr),
            batch_size=int(b),
            train_loss=train_loss,
            full_loss=full_loss,
            grad_norm=grad_norm,
            test_loss=test_loss,
            test_acc=test_acc,
            measure_sfo=measure_sfo,
            wall_s=time.perf_counter() - started,
            grad_norm_subset=subset,
            tokens=None if tokens_per_example is None else sfo * tokens_per_example,
        )
        records.append(record)
        if report is not None:
            report(record)
        if not all(math.isfinite(v) for v in (record.train_loss, full_loss, grad_norm)):
            status, stop_reason = "diverged", "diverged"
            break
        if truncated:
            stop_reason = "max_sfo"
            break
        if spec.target.stop_at_target and target is not None and grad_norm <= target:
            stop_reason = "target"
            break
        if should_stop is not None and should_stop():
            status, stop_reason = "stopped", "stopped"
            break
    return Outcome(tuple(records), status, stop_reason, initial_norm, time.perf_counter() - started)


def run(loops: Mapping[int, Loop], engine: Engine) -> dict[int, Outcome]:
    """Drive ``loops`` (member index -> loop) to their ends on ``engine``; returns each loop's ``Outcome``.

    Each round serves every pending request: the steps in one ``engine.step`` call, then the measurements, one
    engine call per kind. A loop that ends is retired from the engine at once (its storage can be given back
    while the others go on)."""
    outcomes: dict[int, Outcome] = {}
    pending: dict[int, Request] = {}

    def advance(member: int, result: Any) -> None:
        try:
            pending[member] = loops[member].send(result)
        except StopIteration as done:
            pending.pop(member, None)
            outcomes[member] = done.value
            engine.retire(member)

    for member in loops:
        advance(member, None)
    while pending:
        waiting = list(pending.items())
        steps = [(m, r) for m, r in waiting if type(r) is Step]
        grads = [(m, r) for m, r in waiting if type(r) is Gradient]
        losses = [m for m, r in waiting if type(r) is TrainLoss]
        tests = [m for m, r in waiting if type(r) is TestPass]
        served: list[tuple[int, Any]] = []
        if steps:
            engine.step(steps)
            served += [(m, None) for m, _ in steps]
        if grads:
            served += zip([m for m, _ in grads], engine.gradient(grads), strict=True)
        if losses:
            served += zip(losses, engine.train_loss(losses), strict=True)
        if tests:
            served += zip(tests, engine.test(tests), strict=True)
        for m, result in served:
            advance(m, result)
    return outcomes
