"""One trial, straight-line: ``train(spec, report=...) -> TrialResult`` (docs/design.md, paper-notes §6.2).

The walk itself (steps 2-4 below) is ``schedules.loop.trial_loop``, written once for this trainer and the
population trainer (``schedules.population``); here are the unfused pieces that serve its requests
(``PlainEngine``: how a batch is fetched, how a step is applied, how a measurement is taken) and
``train_members``, which runs loops on an engine and assembles their results.

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

import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, Protocol

import torch
from torch import nn

from schedules.batches import Reader, reader
from schedules.grad import evaluate_over, full_gradient_over
from schedules.loop import Engine, Gradient, Report, Step, run, trial_loop
from schedules.metrics import EpochRecord, TrialSummary, summarize
from schedules.optim import make_optimizer, set_lr
from schedules.spec import TrialSpec
from schedules.tasks.runtime import Loss, Task, load_task, resolve_device

__all__ = ["PlainEngine", "Report", "TrialResult", "grad_norm_subset", "train", "train_members"]

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


class _PlainMember:
    """One trial's own module, optimizer, readers, augmentation stream and measurement passes."""

    def __init__(self, task: Task, spec: TrialSpec) -> None:
        dev = task.device
        self.model = build_member_model(task, spec.seed)
        self.optimizer = make_optimizer(
            spec.optimizer.name, self.model.parameters(), momentum=spec.optimizer.momentum
        )
        self.params = [p for p in self.model.parameters() if p.requires_grad]
        self.augment_gen = (
            _generator(dev, spec.seed + AUGMENT_SEED_OFFSET) if task.augment is not None else None
        )
        self.batches = reader(task.train, device=dev, seed=spec.seed)
        self.tests = reader(task.test, device=dev, seed=spec.seed)
        self.measure = _Measurements(
            task, self.model, self.batches, self.tests, spec.grad_norm_mode, spec.seed
        )
        self.loss_sum = torch.zeros((), device=dev)

    def close(self) -> None:
        self.batches.close()
        self.tests.close()


class PlainEngine:
    """The unfused engine (``schedules.loop``): every trial its own ``nn.Module`` and ``SGDM``, requests
    served one at a time. With one trial this is the single-trial trainer; with several it packs them into
    one process without fusing them, and each gets exactly the numbers it gets alone."""

    def __init__(self, task: Task, specs: Sequence[TrialSpec]) -> None:
        self.task = task
        self.members: dict[int, _PlainMember] = {}
        try:
            for i, spec in enumerate(specs):
                self.members[i] = _PlainMember(task, spec)
        except BaseException:
            self.close()
            raise

    def step(self, requests: list[tuple[int, Step]]) -> None:
        augment = self.task.augment
        for member, request in requests:
            m = self.members[member]
            x, y = m.batches.take(request.order, request.pos, request.size)
            if m.augment_gen is not None:
                assert augment is not None
                x = augment(x, m.augment_gen)
            set_lr(m.optimizer, request.lr)
            m.loss_sum += _step(m.model, m.optimizer, m.params, self.task.loss, x, y)

    def gradient(self, requests: list[tuple[int, Gradient]]) -> list[tuple[float, float]]:
        return [self.members[member].measure.grad(r.batch_size) for member, r in requests]

    def train_loss(self, members: list[int]) -> list[float]:
        out = []
        for member in members:
            m = self.members[member]
            out.append(float(m.loss_sum))
            m.loss_sum = torch.zeros((), device=self.task.device)
        return out

    def test(self, members: list[int]) -> list[tuple[float, float | None]]:
        return [self.members[member].measure.test() for member in members]

    def measure_seconds(self, member: int) -> float:
        return self.members[member].measure.seconds

    def retire(self, member: int) -> None:
        self.members[member].close()

    def close(self) -> None:
        for m in self.members.values():
            m.close()


def build_member_model(task: Task, seed: int) -> nn.Module:
    """The task's model, initialised under ``seed`` (the global RNG is restored afterwards), in train mode."""
    dev = task.device
    with torch.random.fork_rng(devices=[dev] if dev.type == "cuda" else []):
        torch.manual_seed(seed)
        model = task.build_model()
    model.train()
    return model


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
        started = time.perf_counter()
        engine = PlainEngine(task, [spec])
        (result,) = train_members(
            task, [spec], engine, reports=[report], should_stops=[should_stop], started=started
        )
        return result


class _MeasuringEngine(Engine, Protocol):
    def measure_seconds(self, member: int) -> float: ...

    def close(self) -> None: ...


def train_members(
    task: Task,
    specs: Sequence[TrialSpec],
    engine: _MeasuringEngine,
    *,
    reports: Sequence[Report | None],
    should_stops: Sequence[Callable[[], bool] | None],
    started: float,
) -> list[TrialResult]:
    """Run one ``trial_loop`` per spec on ``engine`` (``schedules.loop.run``) and assemble their results;
    the engine is closed at the end. Shared by ``train`` (one trial, ``PlainEngine``) and
    ``schedules.population.train_population``."""
    subset = grad_norm_subset(task)
    measured = task.n_train if subset is None else int(subset.shape[0])
    loops = {
        i: trial_loop(
            spec,
            n=task.n_train,
            device=task.device,
            measured=measured,
            subset=None if subset is None else measured,
            tokens_per_example=task.tokens_per_example,
            started=started,
            report=reports[i],
            should_stop=should_stops[i],
        )
        for i, spec in enumerate(specs)
    }
    try:
        outcomes = run(loops, engine)
    finally:
        engine.close()
    results = []
    for i, spec in enumerate(specs):
        out = outcomes[i]
        summary = summarize(
            out.records,
            target_grad_norm=spec.target.grad_norm,
            status=out.status,
            stop_reason=out.stop_reason,
            initial_grad_norm=out.initial_grad_norm,
            wall_s=out.wall_s,
        )
        results.append(
            TrialResult(
                spec=spec,
                records=out.records,
                summary=summary,
                device=str(task.device),
                measure_s=engine.measure_seconds(i),
                task_bytes=task.device_bytes,
            )
        )
    return results
