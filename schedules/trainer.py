"""One trial, straight-line: ``train(spec, report=...) -> TrialResult`` (docs/design.md, paper-notes §6.2).

What one call does:

1. load the task (``schedules.tasks.runtime.load_task``) onto the device (CUDA when present) and build the
   model under ``spec.seed``;
2. precompute the batch plan b_e and T from the schedule: the run's ``schedules.clock.ScheduleClock``, which
   defines the walk's rules once (batch size per epoch and adaptive stage, LR per step, the adaptive checks)
   for this loop and for the adapters a user's own loop imports;
3. each epoch, draw a permutation with a seeded ``torch.Generator`` (without replacement, last partial batch
   kept) and take steps on the batches ``perm[pos : pos + b]``, fetched by the task's reader
   (``schedules.batches``: an index gather from on-device tensors, or a streamed DataLoader whose batch
   sampler yields the same index lists); the LR of every step is the clock's ``lr_at`` (``schedule.lr.at``)
   assigned to the optimizer (no scheduler objects); the loss is the task's (``Task.loss``), its batch mean
   minimised;
4. after each epoch, a measurement pass: f(theta) and ||grad f(theta)|| over the whole training set (or the
   task's fixed gradient-norm subset, which the record then names), test loss and accuracy
   (``schedules.grad``); ``report(record)`` gets the ``EpochRecord``; ``should_stop()`` is polled.

Decisions worth knowing:

- The batch size changes only at epoch boundaries (``batch_plan``), except for the ``adaptive`` family, whose
  stage can advance at any ``check_every``-th step; the epoch then continues through the same permutation with
  the new batch size (on the streamed path the DataLoader restarts at that position). The momentum buffer is
  carried across every batch-size change, as the paper's code does (paper-notes §6.4).
- SFO is the sum of training batch sizes, exactly. Measurement passes (one per epoch, one before training, and
  the adaptive family's checks) are counted apart in ``measure_sfo``.
- ``max_sfo`` is never exceeded: the trial stops before the first step that would pass it, and the epoch cut
  short that way still gets its measurement and record (its ``epoch`` is the epoch it stopped in).
- Divergence (non-finite training loss, f or gradient norm at an epoch end) ends the trial with status
  ``diverged``; it is a result, not an exception. The diverged epoch's record is kept with the non-finite
  values as they were.
- Augmentation (``Task.augment``) draws from its own generator seeded from the trial seed, so it never moves
  the permutation; in ``faithful`` mode the measurement passes augment too, from a third seeded stream, so
  the training trajectory does not depend on the gradient-norm mode.
- Losses accumulate on the device; the only host syncs are one per epoch (plus one per adaptive check).
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from schedules.batches import Reader, reader
from schedules.clock import ScheduleClock
from schedules.grad import evaluate_over, full_gradient_over
from schedules.metrics import EpochRecord, TrialSummary, summarize
from schedules.optim import make_optimizer, set_lr
from schedules.spec import Horizon, TrialSpec
from schedules.tasks.runtime import Loss, Task, load_task, resolve_device

Report = Callable[[EpochRecord], Any]

# Seeds of the trial's other random streams, offset from the trial seed so that none of them repeats the
# permutation's stream. The gradient-norm subset is the same for every trial of a task (every schedule is
# measured on the same examples), so its seed does not depend on the trial.
AUGMENT_SEED_OFFSET = 1_000_003
MEASURE_AUGMENT_SEED_OFFSET = 2_000_029
GRAD_NORM_SUBSET_SEED = 0


@dataclass(frozen=True)
class TrialResult:
    spec: TrialSpec
    records: tuple[EpochRecord, ...]
    summary: TrialSummary
    device: str = "cpu"
    measure_s: float = 0.0  # wall seconds spent in measurement passes (included in summary.wall_s)
    task_bytes: int = 0  # bytes of the task's tensors on the device (0 for streamed data)

    def to_json(self) -> dict[str, Any]:
        return {
            "spec": self.spec.to_json(),
            "records": [_as_dict(r) for r in self.records],
            "summary": _as_dict(self.summary),
            "device": self.device,
            "measure_s": self.measure_s,
            "task_bytes": self.task_bytes,
        }


def _as_dict(value: Any) -> dict[str, Any]:
    to_json = getattr(value, "to_json", None)
    if callable(to_json):
        return dict(to_json())
    import dataclasses

    return dataclasses.asdict(value)


@contextmanager
def _threads(task: Task) -> Iterator[None]:
    # Small CPU tasks are dominated by per-op overhead, which extra intra-op threads only add to.
    before = torch.get_num_threads()
    small = task.device.type == "cpu" and task.n_train * task.train.example_numel <= 2_000_000
    if small:
        torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def _step(
    model: nn.Module,
    optimizer: Any,
    params: Sequence[torch.Tensor],
    loss: Loss,
    x: torch.Tensor,
    y: torch.Tensor,
) -> torch.Tensor:
    """One optimizer step on a batch: the batch mean of the task's loss, backward, update. Returns the loss
    (detached, on the device)."""
    value = loss.mean(model(x), y)
    for p in params:  # zero_grad(set_to_none=True) without its profiler bookkeeping
        p.grad = None
    value.backward()
    optimizer.update()
    return value.detach()


def _generator(device: torch.device, seed: int) -> torch.Generator:
    gen = torch.Generator(device=device)
    gen.manual_seed(seed)
    return gen


def grad_norm_subset(task: Task) -> torch.Tensor | None:
    """The fixed, seeded subset of training indices (sorted) on which the gradient norm is measured, or None
    to measure over the whole training set (also when the subset asked for is at least n)."""
    k = task.grad_norm_subset
    if k is None or k >= task.n_train:
        return None
    perm = torch.randperm(task.n_train, generator=torch.Generator().manual_seed(GRAD_NORM_SUBSET_SEED))
    return perm[:k].sort().values.to(task.device)


class _Measurements:
    """The measurement passes of one trial (paper-notes §6.2) and what they cost: wall seconds and
    per-example gradients (``examples`` per gradient pass)."""

    def __init__(
        self, task: Task, model: nn.Module, train_reader: Reader, test_reader: Reader, mode: str, seed: int
    ) -> None:
        self.task, self.model, self.mode = task, model, mode
        self.train_reader, self.test_reader = train_reader, test_reader
        self.subset = grad_norm_subset(task)
        self.examples = task.n_train if self.subset is None else int(self.subset.shape[0])
        self.seconds = 0.0
        self.augment: Callable[[torch.Tensor], torch.Tensor] | None = None
        if task.augment is not None and mode == "faithful":
            gen = _generator(task.device, seed + MEASURE_AUGMENT_SEED_OFFSET)
            augment = task.augment
            self.augment = lambda x: augment(x, gen)

    def grad(self, batch_size: int) -> tuple[float, float]:
        """(f(theta), ||grad f(theta)||) over the training set or the subset; one host sync."""
        t = time.perf_counter()
        subset = self.subset
        fg = full_gradient_over(
            self.model,
            lambda size: self.train_reader.chunks(size, subset),
            n=self.examples,
            chunk=self.task.measure_chunk,
            mode=self.mode,
            batch_size=batch_size,
            loss=self.task.loss,
            augment=self.augment,
        )
        out = float(fg.loss), float(fg.grad_norm)  # the host sync happens here, inside the timed span
        self.seconds += time.perf_counter() - t
        return out

    def test(self) -> tuple[float, float | None]:
        t = time.perf_counter()
        loss, acc = evaluate_over(
            self.model,
            self.test_reader.chunks,
            n=self.task.n_test,
            chunk=self.task.measure_chunk,
            loss=self.task.loss,
            accuracy=self.task.accuracy,
        )
        out = float(loss), (float(acc) if acc is not None else None)
        self.seconds += time.perf_counter() - t
        return out


def train(
    spec: TrialSpec,
    report: Report | None = None,
    *,
    device: str | torch.device | None = None,
    should_stop: Callable[[], bool] | None = None,
) -> TrialResult:
    """Run one trial to its end (max epochs, max SFO, target, divergence or ``should_stop``).

    Raises what ``load_task`` raises for a task that cannot load (``SpecError`` for an unknown task or bad
    options, ``TaskUnavailable`` for a plugin missing here, ``ValueError`` for unreadable data)."""
    dev = resolve_device(device)
    task = load_task(spec.task.name, spec.task.options, device=dev)
    with _threads(task):
        return _train(spec, task, report, should_stop)


def _train(
    spec: TrialSpec, task: Task, report: Report | None, should_stop: Callable[[], bool] | None
) -> TrialResult:
    started = time.perf_counter()
    dev, n = task.device, task.n_train
    schedule, budget = spec.schedule, spec.budget
    clock = ScheduleClock(schedule, Horizon(epochs=budget.max_epochs, n_train=n))
    adaptive = clock.is_adaptive
    per_step_lr = bool(schedule.lr.per_step)

    fork_devices = [dev] if dev.type == "cuda" else []
    with torch.random.fork_rng(devices=fork_devices):
        torch.manual_seed(spec.seed)
        model = task.build_model()
    model.train()
    optimizer = make_optimizer(spec.optimizer.name, model.parameters(), momentum=spec.optimizer.momentum)
    params = [p for p in model.parameters() if p.requires_grad]
    gen = _generator(dev, spec.seed)
    augment_gen = _generator(dev, spec.seed + AUGMENT_SEED_OFFSET) if task.augment is not None else None
    batches = reader(task.train, device=dev, seed=spec.seed)
    tests = reader(task.test, device=dev, seed=spec.seed)
    measure = _Measurements(task, model, batches, tests, spec.grad_norm_mode, spec.seed)
    subset = None if measure.subset is None else measure.examples
    tokens_per_example = task.tokens_per_example
    try:
        _, initial_norm = measure.grad(clock.batch_size_of(0, 0))
        measure_sfo = measure.examples
        records: list[EpochRecord] = []
        sfo = step = stage = 0
        status, stop_reason = "completed", "max_epochs"
        lr = 0.0
        max_sfo = budget.max_sfo
        target = spec.target.grad_norm

        for epoch in range(budget.max_epochs):
            b = clock.batch_size_of(epoch, stage)
            perm = torch.randperm(n, generator=gen, device=dev)
            loss_acc = torch.zeros((), device=dev)
            batch_count = pos = 0
            truncated = False
            while pos < n:
                size = min(b, n - pos)
                if max_sfo is not None and sfo + size > max_sfo:
                    truncated = True
                    break
                x, y = batches.take(perm, pos, size)
                if augment_gen is not None:
                    assert task.augment is not None
                    x = task.augment(x, augment_gen)
                pos += size
                if per_step_lr or batch_count == 0:
                    lr = clock.lr_at(epoch, step, stage)
                    set_lr(optimizer, lr)
                loss_acc += _step(model, optimizer, params, task.loss, x, y)
                batch_count += 1
                sfo += size
                step += 1
                if adaptive and clock.check_due(step, epoch, stage):
                    _, norm = measure.grad(b)
                    measure_sfo += measure.examples
                    if clock.advances(stage, norm):  # arXiv 2508.05302 (paper-notes §5.4)
                        stage += 1
                        b = clock.batch_size_of(epoch, stage)
                        lr = clock.lr_at(epoch, step, stage)
                        set_lr(optimizer, lr)
            if batch_count == 0:  # the SFO budget ran out exactly at the epoch boundary
                stop_reason = "max_sfo"
                break
            full_loss, grad_norm = measure.grad(b)
            train_loss = float(loss_acc) / batch_count
            test_loss, test_acc = measure.test()
            measure_sfo += measure.examples
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
    finally:
        batches.close()
        tests.close()

    summary = summarize(
        records,
        target_grad_norm=target,
        status=status,
        stop_reason=stop_reason,
        initial_grad_norm=initial_norm,
        wall_s=time.perf_counter() - started,
    )
    return TrialResult(
        spec=spec,
        records=tuple(records),
        summary=summary,
        device=str(dev),
        measure_s=measure.seconds,
        task_bytes=task.device_bytes,
    )
