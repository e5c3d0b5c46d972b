"""Schedules and trial specs as frozen, self-validating values with one JSON form (docs/design.md).

Torch-free: the HTTP layer imports this module. Formulas and their sources are in the family modules
(``schedules/families/``, paper-notes §2.3); this module composes them:

- ``Schedule`` = (batch-size family, LR family), ``Schedule.from_json`` / ``to_json``;
- ``Horizon`` = (epochs, n_train), what a family needs to know of the run;
- ``batch_plan`` = b_e for every epoch, Seesaw's multiplier applied and clipped to n_train (a batch cannot
  hold more examples than the training set has);
- ``total_steps`` = T = sum_e ceil(n_train / b_e), which the per-step LR families need;
- ``TrialSpec`` = task, optimizer, schedule, budget, target, seed, grad-norm mode.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from schedules.families._base import (
    BatchSchedule,
    LRSchedule,
    SpecError,
    as_float,
    as_int,
    ceil_clean,
    missing_error,
)
from schedules.families.batch import AdaptiveBatch, ConstantBatch, ExpGrowthBatch, LinearGrowthBatch
from schedules.families.lr import (
    ConstantLR,
    CosineLR,
    DiminishingLR,
    ExpGrowthLR,
    LinearLR,
    PolyLR,
    SeesawLR,
    StepDecayLR,
    WarmupConstLR,
    WarmupCosineLR,
)
from schedules.families.registry import BATCH_FAMILIES, LR_FAMILIES, parse_batch, parse_lr

__all__ = [
    "BATCH_FAMILIES",
    "GRAD_NORM_MODES",
    "LR_FAMILIES",
    "OPTIMIZERS",
    "AdaptiveBatch",
    "BatchSchedule",
    "Budget",
    "ConstantBatch",
    "ConstantLR",
    "CosineLR",
    "DiminishingLR",
    "ExpGrowthBatch",
    "ExpGrowthLR",
    "Horizon",
    "LRSchedule",
    "LinearGrowthBatch",
    "LinearLR",
    "OptimizerSpec",
    "PolyLR",
    "Schedule",
    "SeesawLR",
    "SpecError",
    "StepDecayLR",
    "Target",
    "TaskSpec",
    "TrialSpec",
    "WarmupConstLR",
    "WarmupCosineLR",
    "batch_plan",
    "lr_plan",
    "parse_batch",
    "parse_lr",
    "total_steps",
]

OPTIMIZERS = ("shb", "nshb", "sgd")
GRAD_NORM_MODES = ("clean", "faithful")


def _check_keys(d: Any, allowed: tuple[str, ...], where: str, *, required: tuple[str, ...] = ()) -> None:
    if not isinstance(d, Mapping):
        raise SpecError(where, d, "must be an object")
    for key in d:
        if key not in allowed:
            raise SpecError(
                f"{where}.{key}" if where else str(key),
                d[key],
                f"is not a known key (valid: {', '.join(allowed)})",
            )
    for key in required:
        if key not in d:
            raise missing_error(f"{where}.{key}" if where else key, "is required")


@dataclass(frozen=True)
class Horizon:
    """The run a schedule is evaluated over: ``epochs`` (N) and the training-set size ``n_train`` (n)."""

    epochs: int
    n_train: int

    def __post_init__(self) -> None:
        object.__setattr__(self, "epochs", as_int("horizon.epochs", self.epochs, family="", ge=1))
        object.__setattr__(self, "n_train", as_int("horizon.n_train", self.n_train, family="", ge=1))


@dataclass(frozen=True)
class Schedule:
    """A batch-size family and an LR family. Combinations that cannot work are rejected here:

    - ``adaptive`` batch with a per-step LR that needs T (``linear``, ``poly``): T is unknown in advance
      because the trainer moves the batch size;
    - ``adaptive`` batch with ``seesaw`` LR: both would move the batch size.
    """

    batch_size: BatchSchedule
    lr: LRSchedule

    def __post_init__(self) -> None:
        if self.batch_size.is_adaptive and self.lr.needs_total_steps:
            raise SpecError(
                "lr.family",
                self.lr.family,
                "must not need the total step count T with batch_size.family=adaptive (T is unknown "
                "in advance); use constant, diminishing, cosine, step_decay, exp_growth or a warm-up",
            )
        if self.batch_size.is_adaptive and isinstance(self.lr, SeesawLR):
            raise SpecError(
                "lr.family",
                self.lr.family,
                "must not be seesaw with batch_size.family=adaptive (both would move the batch size)",
            )

    @classmethod
    def from_json(cls, d: Mapping[str, Any]) -> Schedule:
        _check_keys(d, ("batch_size", "lr"), "schedule", required=("batch_size", "lr"))
        try:
            return cls(batch_size=parse_batch(d["batch_size"]), lr=parse_lr(d["lr"]))
        except SpecError:
            raise
        except TypeError as exc:  # a family constructor given a wrongly shaped value
            raise SpecError("schedule", dict(d), f"is not a valid schedule ({exc})") from None

    def to_json(self) -> dict[str, Any]:
        return {"batch_size": self.batch_size.to_json(), "lr": self.lr.to_json()}


def batch_plan(schedule: Schedule, horizon: Horizon) -> list[int]:
    """b_e for e in range(horizon.epochs): the family's value, times Seesaw's multiplier, clipped to
    n_train (a batch cannot exceed the dataset). For ``adaptive`` this is the stage-0 plan (b0 throughout);
    the trainer moves the stage."""
    out: list[int] = []
    for e in range(horizon.epochs):
        b = schedule.batch_size.at(e, horizon) * schedule.lr.batch_multiplier(e, horizon)
        out.append(min(ceil_clean(b), horizon.n_train))
    return out


def total_steps(schedule: Schedule, horizon: Horizon) -> int:
    """T = sum_e ceil(n_train / b_e) over the batch plan (the last partial batch of an epoch is kept)."""
    return sum(math.ceil(horizon.n_train / b) for b in batch_plan(schedule, horizon))


def lr_plan(schedule: Schedule, horizon: Horizon) -> list[float]:
    """The LR at the first step of each epoch (for plots and the theory check)."""
    plan = batch_plan(schedule, horizon)
    t_total = sum(math.ceil(horizon.n_train / b) for b in plan)
    out: list[float] = []
    step = 0
    for e, b in enumerate(plan):
        out.append(schedule.lr.at(epoch=e, step=step, total_steps=t_total, horizon=horizon))
        step += math.ceil(horizon.n_train / b)
    return out


# --- trial spec -------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class TaskSpec:
    """A task by registry name (``schedules.tasks``) with its options; the names are checked there."""

    name: str
    options: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not self.name:
            raise SpecError("task.name", self.name, "must be a non-empty task name")
        if not isinstance(self.options, Mapping):
            raise SpecError("task.options", self.options, "must be an object")
        object.__setattr__(self, "options", dict(self.options))

    def __hash__(self) -> int:  # options is a dict; hash what is hashable
        return hash((self.name, tuple(sorted(self.options))))


@dataclass(frozen=True)
class OptimizerSpec:
    """``shb`` / ``nshb`` with constant momentum beta in [0, 1); ``sgd`` is momentum 0."""

    name: str = "nshb"
    momentum: float = 0.9

    def __post_init__(self) -> None:
        if self.name not in OPTIMIZERS:
            raise SpecError("optimizer.name", self.name, f"must be one of {', '.join(OPTIMIZERS)}")
        beta = as_float("optimizer.momentum", self.momentum, family="", ge=0, lt=1)
        if self.name == "sgd" and beta != 0.0:
            raise SpecError("optimizer.momentum", self.momentum, "must be 0 for optimizer.name=sgd")
        object.__setattr__(self, "momentum", beta)


@dataclass(frozen=True)
class Budget:
    """Stop after ``max_epochs`` epochs, or once ``max_sfo`` training gradients were used (if set)."""

    max_epochs: int
    max_sfo: int | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "max_epochs", as_int("budget.max_epochs", self.max_epochs, family="", ge=1))
        if self.max_sfo is not None:
            object.__setattr__(self, "max_sfo", as_int("budget.max_sfo", self.max_sfo, family="", ge=1))


@dataclass(frozen=True)
class Target:
    """The gradient-norm target epsilon (unsquared); ``stop_at_target`` ends the trial when reached."""

    grad_norm: float | None = None
    stop_at_target: bool = False

    def __post_init__(self) -> None:
        if self.grad_norm is not None:
            object.__setattr__(
                self, "grad_norm", as_float("target.grad_norm", self.grad_norm, family="", gt=0)
            )
        if not isinstance(self.stop_at_target, bool):
            raise SpecError("target.stop_at_target", self.stop_at_target, "must be true or false")
        if self.stop_at_target and self.grad_norm is None:
            raise SpecError("target.stop_at_target", True, "needs target.grad_norm to be set")


_TRIAL_KEYS = ("task", "optimizer", "schedule", "budget", "target", "seed", "grad_norm_mode")


@dataclass(frozen=True)
class TrialSpec:
    """One training run (docs/design.md "Trial spec"). JSON round trip is exact for the canonical form."""

    task: TaskSpec
    optimizer: OptimizerSpec
    schedule: Schedule
    budget: Budget
    target: Target = field(default_factory=Target)
    seed: int = 0
    grad_norm_mode: str = "clean"

    def __post_init__(self) -> None:
        object.__setattr__(self, "seed", as_int("seed", self.seed, family="", ge=0))
        if self.grad_norm_mode not in GRAD_NORM_MODES:
            raise SpecError(
                "grad_norm_mode", self.grad_norm_mode, f"must be one of {', '.join(GRAD_NORM_MODES)}"
            )

    @classmethod
    def from_json(cls, d: Mapping[str, Any]) -> TrialSpec:
        _check_keys(d, _TRIAL_KEYS, "", required=("task", "schedule", "budget"))
        task = d["task"]
        _check_keys(task, ("name", "options"), "task", required=("name",))
        opt = d.get("optimizer", {})
        _check_keys(opt, ("name", "momentum"), "optimizer")
        name = opt.get("name", "nshb")
        momentum = opt.get("momentum", 0.0 if name == "sgd" else 0.9)
        budget = d["budget"]
        _check_keys(budget, ("max_epochs", "max_sfo"), "budget", required=("max_epochs",))
        target = d.get("target", {})
        _check_keys(target, ("grad_norm", "stop_at_target"), "target")
        return cls(
            task=TaskSpec(name=task["name"], options=task.get("options", {})),
            optimizer=OptimizerSpec(name=name, momentum=momentum),
            schedule=Schedule.from_json(d["schedule"]),
            budget=Budget(max_epochs=budget["max_epochs"], max_sfo=budget.get("max_sfo")),
            target=Target(
                grad_norm=target.get("grad_norm"), stop_at_target=target.get("stop_at_target", False)
            ),
            seed=d.get("seed", 0),
            grad_norm_mode=d.get("grad_norm_mode", "clean"),
        )

    def to_json(self) -> dict[str, Any]:
        return {
            "task": {"name": self.task.name, "options": dict(self.task.options)},
            "optimizer": {"name": self.optimizer.name, "momentum": self.optimizer.momentum},
            "schedule": self.schedule.to_json(),
            "budget": {"max_epochs": self.budget.max_epochs, "max_sfo": self.budget.max_sfo},
            "target": {"grad_norm": self.target.grad_norm, "stop_at_target": self.target.stop_at_target},
            "seed": self.seed,
            "grad_norm_mode": self.grad_norm_mode,
        }

    def horizon(self, n_train: int) -> Horizon:
        """The schedule's horizon for this trial: max_epochs over a training set of ``n_train`` examples."""
        return Horizon(epochs=self.budget.max_epochs, n_train=n_train)
