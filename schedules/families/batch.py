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
    ceil_clean,
    param,
    stage_of,
)

#: How ``exp_growth`` rounds b0 factor^k up to an integer (paper-notes §2.2, importer rules).
ROUNDINGS = ("clean", "official")


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
    b0: int = param(ge=1, doc="The batch size.")

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
    b0: int = param(ge=1, doc="First batch size.")
    factor: float = param(gt=1, doc="Growth per stage (delta).")
    interval: int = param(ge=1, doc="Epochs per stage (E).")
    b_max: int | None = param(
        None, gt="b0", doc="Batch size of the last stage (affine rescale); null: uncapped."
    )
    rounding: str = param(
        "clean",
        choices=ROUNDINGS,
        omit_default=True,
        doc="How b0 delta^k becomes an integer: clean (ceil ignoring float noise) or official (the paper "
        "code's plain float ceil, as imported configs use).",
    )

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
    b0: int = param(ge=1, doc="First batch size.")
    increment: int = param(ge=1, doc="Added per stage (c).")
    interval: int = param(ge=1, doc="Epochs per stage (E).")
    b_max: int | None = param(None, gt="b0", doc="Cap; null: uncapped.")

    def at(self, epoch: int, horizon: HorizonLike) -> int:
        b = self.b0 + self.increment * stage_of(epoch, self.interval)
        return b if self.b_max is None else min(b, self.b_max)


#: Most stages an adaptive rule may have between b0 and b_max (factor 1.01 from 8 to 4096 takes 627).
MAX_ADAPTIVE_STAGES = 1000


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
    b0: int = param(8, ge=1, doc="Batch size of stage 0.")
    factor: float = param(2.0, gt=1, doc="Batch growth per stage (delta).")
    lr_factor: float = param(1.4, gt=0, doc="LR multiplier per stage (gamma).")
    eps0: float = param(0.5, gt=0, doc="Gradient-norm threshold of stage 0.")
    check_every: int = param(1000, ge=1, doc="Steps between two threshold checks.")
    b_max: int = param(4096, ge="b0", doc="Largest batch size (last stage).")

    def _check(self) -> None:
        # The trainer and the theory check walk the stages one by one: a factor barely above 1 would need
        # millions of them before b_max (1.000001 from 8 to 4096: 6.2 million).
        if self.b_max > self.b0:
            stages = math.log(self.b_max / self.b0) / math.log(self.factor)
            if stages > MAX_ADAPTIVE_STAGES:
                raise SpecError(
                    "factor",
                    self.factor,
                    f"must reach b_max={self.b_max} from b0={self.b0} within {MAX_ADAPTIVE_STAGES} stages "
                    f"for adaptive (it needs {math.ceil(stages)})",
                )

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
        try:
            value = self.b0 * self.factor**k
        except OverflowError:
            return self.b_max
        # min(b0 factor^k, b_max) is b_max however far past the largest float b0 factor^k would be.
        return self.b_max if not math.isfinite(value) else min(ceil_clean(value), self.b_max)

    def stage_lr_multiplier(self, k: int) -> float:
        return float(self.lr_factor ** min(k, self.max_stage))

    def stage_threshold(self, k: int) -> float:
        return self.eps0 * math.sqrt(self.b0 / self.stage_batch(k))

    def at(self, epoch: int, horizon: HorizonLike) -> int:
        # The plan of an adaptive run is its stage-0 plan; the trainer replaces it as k moves.
        return self.b0


#: The explicit registry of batch-size families, by JSON name (``schedules.families.registry.parse_batch``
#: reads it).
BATCH_FAMILIES: dict[str, type[BatchSchedule]] = {
    cls.family: cls for cls in (ConstantBatch, ExpGrowthBatch, LinearGrowthBatch, AdaptiveBatch)
}
