"""One trial, straight-line: ``train(spec, report=...) -> TrialResult`` (docs/design.md, paper-notes §6.2).

What one call does:

1. load the task onto the device (CUDA when present) and build the model under ``spec.seed``;
2. precompute the batch plan b_e and T from the schedule (``schedules.spec``);
3. each epoch, draw a permutation with a seeded ``torch.Generator`` (without replacement, last partial batch
   kept) and take steps on batches gathered by index from the on-device tensors; the LR of every step is
   ``schedule.lr.at(...)`` assigned to the optimizer (no scheduler objects);
4. after each epoch, a measurement pass: f(theta) and ||grad f(theta)|| over the whole training set, test loss
  and
   accuracy (``schedules.grad``); ``report(record)`` gets the ``EpochRecord``; ``should_stop()`` is polled.

Decisions worth knowing:

- The batch size changes only at epoch boundaries (``batch_plan``), except for the ``adaptive`` family, whose
  stage can advance at any ``check_every``-th step; the epoch then continues through the same permutation with
  the new batch size. The momentum buffer is carried across every batch-size change, as the paper's code does
  (paper-notes §6.4).
- SFO is the sum of training batch sizes, exactly. Measurement passes (one per epoch, one before training, and
  the adaptive family's checks) are counted apart in ``measure_sfo``.
- ``max_sfo`` is never exceeded: the trial stops before the first step that would pass it, and the epoch cut
  short that way still gets its measurement and record (its ``epoch`` is the epoch it stopped in).
- Divergence (non-finite training loss, f or gradient norm at an epoch end) ends the trial with status
  ``diverged``; it is a result, not an exception. The diverged epoch's record is kept with the non-finite
  values as they were.
- Losses accumulate on the device; the only host syncs are one per epoch (plus one per adaptive check).
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F

from schedules.grad import evaluate, full_gradient
from schedules.metrics import EpochRecord, TrialSummary, summarize
from schedules.optim import make_optimizer, set_lr
from schedules.spec import Horizon, TrialSpec, batch_plan, total_steps
from schedules.tasks import Task, get_task, resolve_device

Report = Callable[[EpochRecord], Any]


@dataclass(frozen=True)
class TrialResult:
    spec: TrialSpec
    records: tuple[EpochRecord, ...]
    summary: TrialSummary
    device: str = "cpu"
    measure_s: float = 0.0  # wall seconds spent in measurement passes (included in summary.wall_s)

    def to_json(self) -> dict[str, Any]:
        return {
            "spec": self.spec.to_json(),
            "records": [_as_dict(r) for r in self.records],
            "summary": _as_dict(self.summary),
            "device": self.device,
            "measure_s": self.measure_s,
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
    small = task.device.type == "cpu" and task.n_train * int(task.x_train[0].numel()) <= 2_000_000
    if small:
        torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def _adaptive_batch(params: Any, stage: int, n: int) -> int:
    return max(1, min(int(params.stage_batch(stage)), n))


def train(
    spec: TrialSpec,
    report: Report | None = None,
    *,
    device: str | torch.device | None = None,
    should_stop: Callable[[], bool] | None = None,
) -> TrialResult:
    """Run one trial to its end (max epochs, max SFO, target, divergence or ``should_stop``)."""
    dev = resolve_device(device)
    task = get_task(spec.task.name, spec.task.options, device=dev)
    with _threads(task):
        return _train(spec, task, report, should_stop)


def _train(
    spec: TrialSpec, task: Task, report: Report | None, should_stop: Callable[[], bool] | None
) -> TrialResult:
    started = time.perf_counter()
    dev, n = task.device, task.n_train
    schedule, budget = spec.schedule, spec.budget
    mode = spec.grad_norm_mode
    horizon = Horizon(epochs=budget.max_epochs, n_train=n)
    plan = batch_plan(schedule, horizon)
    big_t = total_steps(schedule, horizon)
    lr_at = schedule.lr.at
    bs: Any = schedule.batch_size
    adaptive = bool(bs.is_adaptive)
    per_step_lr = bool(schedule.lr.per_step)

    fork_devices = [dev] if dev.type == "cuda" else []
    with torch.random.fork_rng(devices=fork_devices):
        torch.manual_seed(spec.seed)
        model = task.build_model()
    model.train()
    optimizer = make_optimizer(spec.optimizer.name, model.parameters(), momentum=spec.optimizer.momentum)
    params = [p for p in model.parameters() if p.requires_grad]
    gen = torch.Generator(device=dev)
    gen.manual_seed(spec.seed)
    x, y = task.x_train, task.y_train

    measure_s = 0.0  # wall time inside measurement passes (the benchmark reports its share)

    def measure_grad(batch_size: int) -> tuple[float, float]:
        nonlocal measure_s
        t = time.perf_counter()
        fg = full_gradient(model, x, y, chunk=task.measure_chunk, mode=mode, batch_size=batch_size)
        out = float(fg.loss), float(fg.grad_norm)  # the host sync happens here, inside the timed span
        measure_s += time.perf_counter() - t
        return out

    def measure_test() -> tuple[float, float]:
        nonlocal measure_s
        t = time.perf_counter()
        loss, acc = evaluate(model, task.x_test, task.y_test, chunk=task.measure_chunk)
        out = float(loss), float(acc)
        measure_s += time.perf_counter() - t
        return out

    _, initial_norm = measure_grad(plan[0])
    measure_sfo = n
    records: list[EpochRecord] = []
    sfo = step = stage = 0
    status, stop_reason = "completed", "max_epochs"
    lr = 0.0
    max_sfo = budget.max_sfo
    target = spec.target.grad_norm

    for epoch in range(budget.max_epochs):
        b = _adaptive_batch(bs, stage, n) if adaptive else plan[epoch]
        perm = torch.randperm(n, generator=gen, device=dev)
        loss_acc = torch.zeros((), device=dev)
        batches = pos = 0
        truncated = False
        while pos < n:
            size = min(b, n - pos)
            if max_sfo is not None and sfo + size > max_sfo:
                truncated = True
                break
            idx = perm[pos : pos + size]
            pos += size
            if per_step_lr or batches == 0:
                lr = lr_at(epoch=epoch, step=step, total_steps=big_t, horizon=horizon)
                if adaptive:
                    lr *= bs.stage_lr_multiplier(stage)
                set_lr(optimizer, lr)
            loss = F.cross_entropy(model(x[idx]), y[idx])
            for p in params:  # zero_grad(set_to_none=True) without its profiler bookkeeping
                p.grad = None
            loss.backward()
            optimizer.update()
            loss_acc += loss.detach()
            batches += 1
            sfo += size
            step += 1
            if adaptive and step % bs.check_every == 0 and stage < bs.max_stage and b < n:
                # The rule of arXiv 2508.05302 (paper-notes §5.4):
                # next stage once ||grad f|| <= eps0 sqrt(b0 / b_k).
                _, norm = measure_grad(b)
                measure_sfo += n
                if norm <= bs.stage_threshold(stage):
                    stage += 1
                    b = _adaptive_batch(bs, stage, n)
                    lr = lr_at(epoch=epoch, step=step, total_steps=big_t, horizon=horizon)
                    lr *= bs.stage_lr_multiplier(stage)
                    set_lr(optimizer, lr)
        if batches == 0:  # the SFO budget ran out exactly at the epoch boundary
            stop_reason = "max_sfo"
            break
        full_loss, grad_norm = measure_grad(b)
        train_loss = float(loss_acc) / batches
        test_loss, test_acc = measure_test()
        measure_sfo += n
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

    summary = summarize(
        records,
        target_grad_norm=target,
        status=status,
        stop_reason=stop_reason,
        initial_grad_norm=initial_norm,
        wall_s=time.perf_counter() - started,
    )
    return TrialResult(
        spec=spec, records=tuple(records), summary=summary, device=str(dev), measure_s=measure_s
    )
