"""Many trials of one task in one process: ``train_population(specs, report=...) -> list[TrialResult]``.

The members (trial specs) share a task and so a model architecture; they may differ in schedule, optimizer
variant and momentum, seed, budget, target and gradient-norm mode. Each keeps everything a trial has alone:
its batch plan, seeded permutation, LR per step, momentum buffers, SFO count, measurement passes and records,
because each runs the single trainer's own loop (``schedules.loop.trial_loop``); only the engine that serves
the loops' requests differs:

- ``engine="fused"``: ``schedules.fused.FusedEngine``, members with the same current batch size step as one
  computation. Batch sizes, LRs, steps and SFO equal the member's single-trial run exactly; losses, norms and
  accuracies agree within floating-point rounding (``schedules.fused``, the tolerance in
  ``tests/schedules/test_population.py``).
- ``engine="plain"``: ``schedules.trainer.PlainEngine``, members one after another, each its own module:
  bit for bit the single trainer's numbers, with no speed-up beyond sharing the process and the task's data.
- ``engine="auto"`` (default): plain for one member (so K = 1 is the single trainer exactly) and for tasks
  that stream their data, fused otherwise.

A member that diverges, reaches its target or budget, or is stopped ends alone; the others go on. ``report``
is called as ``report(i, record)`` with the member's index in ``specs``, ``should_stop(i)`` once per epoch of
member i. No Ray here: ``workers`` hands a population to one Tune trial.
"""

from __future__ import annotations

import functools
import time
from collections.abc import Callable, Sequence
from typing import Any

import torch

from schedules.fused import FusedEngine
from schedules.metrics import EpochRecord
from schedules.spec import SpecError, TrialSpec
from schedules.tasks.runtime import load_task, resolve_device
from schedules.trainer import PlainEngine, TrialResult, _threads, train_members

ENGINES = ("auto", "fused", "plain")

PopulationReport = Callable[[int, EpochRecord], Any]


def check_population(specs: Sequence[TrialSpec]) -> None:
    """Raise ``SpecError`` unless ``specs`` is non-empty and every member names the first member's task with
    the same options (one task means one dataset and one model architecture)."""
    if not specs:
        raise SpecError("specs", [], "a population needs at least one trial spec")
    first = specs[0].task
    for i, spec in enumerate(specs[1:], start=1):
        if spec.task.name != first.name or dict(spec.task.options) != dict(first.options):
            raise SpecError(
                f"specs[{i}].task",
                {"name": spec.task.name, "options": dict(spec.task.options)},
                f"must be member 0's task ({first.name!r} with options {dict(first.options)}): a population "
                "trains one task, its members may differ in schedule, optimizer, seed, budget, target and "
                "grad_norm_mode only",
            )


def train_population(
    specs: Sequence[TrialSpec],
    report: PopulationReport | None = None,
    *,
    device: str | torch.device | None = None,
    should_stop: Callable[[int], bool] | None = None,
    engine: str = "auto",
    **engine_options: Any,
) -> list[TrialResult]:
    """Train the members ``specs`` together on one device (module docstring); one ``TrialResult`` per
    member, in order. ``engine_options`` go to ``FusedEngine`` (``forward``, ``fuse_flops``).

    Raises ``SpecError`` for members of different tasks, what ``load_task`` raises for a task that cannot
    load, ``schedules.fused.FuseRefused`` when ``engine="fused"`` meets a task or model it cannot fuse, and
    ``ValueError`` for an unknown ``engine``."""
    if engine not in ENGINES:
        raise ValueError(f"engine must be one of {', '.join(ENGINES)}, got engine={engine!r}")
    check_population(specs)
    task = load_task(specs[0].task.name, specs[0].task.options, device=resolve_device(device))
    fuse = engine == "fused" or (engine == "auto" and len(specs) > 1 and not task.streamed)
    reports = [None if report is None else functools.partial(report, i) for i in range(len(specs))]
    stops = [None if should_stop is None else functools.partial(should_stop, i) for i in range(len(specs))]
    with _threads(task):
        started = time.perf_counter()
        runner = FusedEngine(task, specs, **engine_options) if fuse else PlainEngine(task, specs)
        return train_members(task, specs, runner, reports=reports, should_stops=stops, started=started)
