"""Batch-size families (paper-notes §2.3 and §6.1). Values are per epoch (0-based) and ``ceil``'d.

Seesaw's multiplier and the clip to the training-set size are applied by ``schedules.spec.batch_plan``,
not here, so ``at`` is the family's own formula.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import ClassVar

from schedules.families._base import (
    BatchSchedule,
    HorizonLike,
    SpecError,
    as_float,
    as_int,
    ceil_clean,
    optional_param,
    stage_of,
)

#: How ``exp_growth`` rounds b0 factor^k up to an integer (paper-notes §2.2, importer rules).
ROUNDINGS = ("clean", "official")


def _set(obj: object, name: str, value: object) -> None:
    object.__setattr__(obj, name, value)


def affine_stage_value(start: float, factor: float, stage: int, *, cap: float, last_stage: float) -> float:
    """The paper code's affine rescale (paper-notes §2.3): a factor^k + (start - a), with
    a = (cap - start) / (factor^last_stage - 1), so stage 0 is ``start`` and stage ``last_stage`` is ``cap``;
    capped at ``cap``. ``last_stage`` = (N - E) / E may be fractional, as in the paper's code."""
    if last_stage <= 0:  # the run is shorter than one interval: the first stage is the only one
        return start
    a = (cap - start) / (factor**last_stage - 1.0)
    return min(a * factor**stage + (start - a), cap)


@dataclass(frozen=True)
class ConstantBatch(BatchSchedule):
    """b_e = b0.  Table (b0=128): e=0 -> 128, e=299 -> 128."""

    family: ClassVar[str] = "constant"
    b0: int

    def __post_init__(self) -> None:
        _set(self, "b0", as_int("b0", self.b0, family=self.family, ge=1))

    def at(self, epoch: int, horizon: HorizonLike) -> int:
        return self.b0


@dataclass(frozen=True)
class ExpGrowthBatch(BatchSchedule):
    """b_e = ceil(b0 factor^floor(e/interval)); with ``b_max`` the paper's affine rescale, last stage = b_max.

    Table (b0=8, factor=2, interval=30, 300 epochs): e=0 -> 8, e=30 -> 16, e=299 -> 4096;
    with b_max=1024 the stages are 8, 10, 14, 22, 38, 70, 134, 261, 516, 1024.

    ``rounding`` says how the stage value becomes an integer:

    - ``"clean"`` (the default, every native schedule): ceil ignoring float noise below 1e-9, so that
      b0 = 100, factor = 1.1 gives 110 at stage 1 (100 * 1.1 is 110.00000000000001 in floats);
    - ``"official"``: ``math.ceil`` of the float product exactly as the paper's code computes it
      (``utils/get_bs_scheduler.py``: ceil(b0 * lambda(e))), which gives 111 and 122 (not 110 and 121) at
      stages 1 and 2 for b0 = 100, factor = 1.1. The importer of official configs sets it
      (``schedules.paper``), so an imported run is the official run; for integer factors both agree.
    """

    family: ClassVar[str] = "exp_growth"
    b0: int
    factor: float
    interval: int
    b_max: int | None = None
    rounding: str = optional_param("clean")

    def __post_init__(self) -> None:
        f = self.family
        _set(self, "b0", as_int("b0", self.b0, family=f, ge=1))
        _set(self, "factor", as_float("factor", self.factor, family=f, gt=1))
        _set(self, "interval", as_int("interval", self.interval, family=f, ge=1))
        if self.b_max is not None:
            _set(self, "b_max", as_int("b_max", self.b_max, family=f, ge=self.b0 + 1))
        if self.rounding not in ROUNDINGS:
            raise SpecError("rounding", self.rounding, f"must be one of {', '.join(ROUNDINGS)} for {f}")

    def at(self, epoch: int, horizon: HorizonLike) -> int:
        k = stage_of(epoch, self.interval)
        last = (horizon.epochs - self.interval) / self.interval
        if self.rounding == "official":
            return self._official(k, last)
        if self.b_max is None:
            return ceil_clean(self.b0 * self.factor**k)
        return ceil_clean(affine_stage_value(self.b0, self.factor, k, cap=self.b_max, last_stage=last))

    def _official(self, k: int, last: float) -> int:
        """The paper code's ``exp_growth_bs_lambda`` times b0, ceil'd, operation for operation."""
        if self.b_max is None or last <= 0:  # a run shorter than one interval has only its first stage
            return math.ceil(self.b0 * self.factor**k)
        a = (self.b_max - self.b0) / (self.factor**last - 1)
        b = self.b0 - a
        return math.ceil(self.b0 * min((1 / self.b0) * (a * self.factor**k + b), self.b_max / self.b0))


@dataclass(frozen=True)
class LinearGrowthBatch(BatchSchedule):
    """b_e = min(b0 + increment floor(e/interval), b_max) (arXiv 2508.05297).

    Table (b0=16, increment=8, interval=25): e=0 -> 16, e=25 -> 24, e=199 -> 72.
    """

    family: ClassVar[str] = "linear_growth"
    b0: int
    increment: int
    interval: int
    b_max: int | None = None

    def __post_init__(self) -> None:
        f = self.family
        _set(self, "b0", as_int("b0", self.b0, family=f, ge=1))
        _set(self, "increment", as_int("increment", self.increment, family=f, ge=1))
        _set(self, "interval", as_int("interval", self.interval, family=f, ge=1))
        if self.b_max is not None:
            _set(self, "b_max", as_int("b_max", self.b_max, family=f, ge=self.b0 + 1))

    def at(self, epoch: int, horizon: HorizonLike) -> int:
        b = self.b0 + self.increment * stage_of(epoch, self.interval)
        return b if self.b_max is None else min(b, self.b_max)


@dataclass(frozen=True)
class AdaptiveBatch(BatchSchedule):
    """The eps-triggered rule of arXiv 2508.05302 (paper-notes §5.4), as a pure function of the stage k.

    The trainer owns k: every ``check_every`` steps it measures the full gradient norm and moves to k + 1
    when the norm is <= ``threshold(k)`` and ``stage_batch(k) < b_max``. Then
    b_k = min(b0 factor^k, b_max), LR multiplier lr_factor^k, eps_k = eps0 sqrt(b0 / b_k).

    Table (b0=8, factor=2, lr_factor=1.4, eps0=0.5, b_max=4096): k=0 -> b 8, eps 0.5;
    k=1 -> b 16, LR x1.4, eps 0.3536; k=9 -> b 4096 (cap, last stage).
    """

    family: ClassVar[str] = "adaptive"
    b0: int = 8
    factor: float = 2.0
    lr_factor: float = 1.4
    eps0: float = 0.5
    check_every: int = 1000
    b_max: int = 4096

    def __post_init__(self) -> None:
        f = self.family
        _set(self, "b0", as_int("b0", self.b0, family=f, ge=1))
        _set(self, "factor", as_float("factor", self.factor, family=f, gt=1))
        _set(self, "lr_factor", as_float("lr_factor", self.lr_factor, family=f, gt=0))
        _set(self, "eps0", as_float("eps0", self.eps0, family=f, gt=0))
        _set(self, "check_every", as_int("check_every", self.check_every, family=f, ge=1))
        _set(self, "b_max", as_int("b_max", self.b_max, family=f, ge=self.b0))

    @property
    def is_adaptive(self) -> bool:
        return True

    @property
    def max_stage(self) -> int:
        """The first stage whose batch size is b_max: the trainer never moves beyond it."""
        if self.b_max <= self.b0:
            return 0
        # closed form, then corrected for the ceil of the stage values
        k = max(0, math.ceil(math.log(self.b_max / self.b0) / math.log(self.factor) - 1e-9))
        while k > 0 and self.stage_batch(k - 1) >= self.b_max:
            k -= 1
        while self.stage_batch(k) < self.b_max:
            k += 1
        return k

    def stage_batch(self, k: int) -> int:
        if k < 0:
            raise SpecError("stage", k, "must be >= 0 for adaptive")
        return min(ceil_clean(self.b0 * self.factor**k), self.b_max)

    def stage_lr_multiplier(self, k: int) -> float:
        return float(self.lr_factor ** min(k, self.max_stage))

    def stage_threshold(self, k: int) -> float:
        return self.eps0 * math.sqrt(self.b0 / self.stage_batch(k))

    def at(self, epoch: int, horizon: HorizonLike) -> int:
        # The plan of an adaptive run is its stage-0 plan; the trainer replaces it as k moves.
        return self.b0
