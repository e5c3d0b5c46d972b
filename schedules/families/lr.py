"""Learning-rate families, formulas exactly as the paper's code (paper-notes §2.3), plus step decay, Seesaw.

Per-step families (``diminishing``, ``linear``, ``poly``) count the global step t (0-based); ``linear`` and
``poly`` need T, the total number of steps, from the batch plan. The others move once per epoch
(0-based e) and read the run length N from the horizon.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, ClassVar

from schedules.families._base import (
    HorizonLike,
    LRSchedule,
    SpecError,
    missing_error,
    param,
    parse_family,
    stage_of,
)
from schedules.families.batch import affine_stage_value


def _require_total(total_steps: int | None, family: str) -> int:
    if total_steps is None or total_steps < 1:
        raise SpecError(
            "total_steps", total_steps, f"must be an integer >= 1 for the per-step family {family}"
        )
    return total_steps


@dataclass(frozen=True)
class ConstantLR(LRSchedule):
    """lr = lr0."""

    family: ClassVar[str] = "constant"
    lr0: float = param(gt=0, doc="The learning rate.")

    def at(self, *, epoch: int, step: int = 0, total_steps: int | None = None, horizon: HorizonLike) -> float:
        return self.lr0


@dataclass(frozen=True)
class DiminishingLR(LRSchedule):
    """lr_t = lr0 / sqrt(t + 1), per step.  Table (lr0=0.1): t=0 -> 0.1, t=3 -> 0.05, t=99 -> 0.01."""

    family: ClassVar[str] = "diminishing"
    per_step: ClassVar[bool] = True
    lr0: float = param(gt=0, doc="LR at step 0.")

    def at(self, *, epoch: int, step: int = 0, total_steps: int | None = None, horizon: HorizonLike) -> float:
        return self.lr0 / math.sqrt(step + 1)


@dataclass(frozen=True)
class LinearLR(LRSchedule):
    """lr_t = lr0 (1 - t/T), per step.  Table (lr0=0.1, T=100): t=0 -> 0.1, t=50 -> 0.05, t=100 -> 0."""

    family: ClassVar[str] = "linear"
    per_step: ClassVar[bool] = True
    needs_total_steps: ClassVar[bool] = True
    lr0: float = param(gt=0, doc="LR at step 0.")

    def at(self, *, epoch: int, step: int = 0, total_steps: int | None = None, horizon: HorizonLike) -> float:
        t_total = _require_total(total_steps, self.family)
        return self.lr0 * max(0.0, 1.0 - step / t_total)


@dataclass(frozen=True)
class PolyLR(LRSchedule):
    """lr_t = lr0 (1 - t/T)^power, per step (torch PolynomialLR with total_iters = T; 0 after T).

    Table (lr0=0.1, power=2, T=100): t=0 -> 0.1, t=50 -> 0.025.
    """

    family: ClassVar[str] = "poly"
    per_step: ClassVar[bool] = True
    needs_total_steps: ClassVar[bool] = True
    lr0: float = param(gt=0, doc="LR at step 0.")
    power: float = param(2.0, gt=0, doc="Exponent p.")

    def at(self, *, epoch: int, step: int = 0, total_steps: int | None = None, horizon: HorizonLike) -> float:
        t_total = _require_total(total_steps, self.family)
        return self.lr0 * max(0.0, 1.0 - min(step, t_total) / t_total) ** self.power


@dataclass(frozen=True)
class CosineLR(LRSchedule):
    """lr_e = lr_min + (lr0 - lr_min)(1 + cos(pi e / N))/2, per epoch.

    Table (lr0=0.1, N=300): e=0 -> 0.1, e=150 -> 0.05, e=300 -> 0.
    """

    family: ClassVar[str] = "cosine"
    lr0: float = param(gt=0, doc="LR at epoch 0.")
    lr_min: float = param(0.0, ge=0, le="lr0", doc="LR at the last epoch.")

    def at(self, *, epoch: int, step: int = 0, total_steps: int | None = None, horizon: HorizonLike) -> float:
        return self.lr_min + (self.lr0 - self.lr_min) * (1 + math.cos(math.pi * epoch / horizon.epochs)) / 2


@dataclass(frozen=True)
class StepDecayLR(LRSchedule):
    """lr_e = lr0 decay^floor(e/interval).  Table (lr0=0.1, decay=0.5, interval=30): e=30 -> 0.05."""

    family: ClassVar[str] = "step_decay"
    lr0: float = param(gt=0, doc="LR of the first stage.")
    decay: float = param(gt=0, lt=1, doc="Factor per stage.")
    interval: int = param(ge=1, doc="Epochs per stage (E).")

    def at(self, *, epoch: int, step: int = 0, total_steps: int | None = None, horizon: HorizonLike) -> float:
        return self.lr0 * self.decay ** stage_of(epoch, self.interval)


@dataclass(frozen=True)
class ExpGrowthLR(LRSchedule):
    """The paper's "increasing LR", per epoch, stage k = floor(e/interval), N = run length in epochs:

    - only ``lr_max``: gamma = (lr_max/lr0)^(interval/(N - interval)), lr = min(lr0 gamma^k, lr_max), so
      lr_max is reached in the last stage;
    - only ``factor``: lr = lr0 factor^k (uncapped);
    - both: the affine rescale of the batch size (last stage = lr_max), capped at lr_max.

    Table (lr0=0.1, lr_max=1.0, interval=30, N=300): stages 0.1, 0.1292, 0.1668, ..., 0.7743, 1.0.
    """

    family: ClassVar[str] = "exp_growth"
    lr0: float = param(gt=0, doc="LR of the first stage.")
    interval: int = param(ge=1, doc="Epochs per stage (E).")
    lr_max: float | None = param(None, gt="lr0", doc="LR of the last stage; null: uncapped.")
    factor: float | None = param(None, gt=1, doc="Growth per stage (gamma); null: reach lr_max.")

    def _check(self) -> None:
        if self.lr_max is None and self.factor is None:
            raise missing_error("lr_max", "or lr.factor must be given for exp_growth (at least one)")

    def growth_factor(self, horizon: HorizonLike) -> float:
        """gamma: ``factor`` when given, else the one that reaches lr_max in the last stage."""
        if self.factor is not None:
            return self.factor
        assert self.lr_max is not None
        span = horizon.epochs - self.interval
        if span <= 0:
            return 1.0
        return float((self.lr_max / self.lr0) ** (self.interval / span))

    def at(self, *, epoch: int, step: int = 0, total_steps: int | None = None, horizon: HorizonLike) -> float:
        k = stage_of(epoch, self.interval)
        if self.lr_max is None:
            assert self.factor is not None
            return self.lr0 * self.factor**k
        if self.factor is None:
            return min(self.lr0 * self.growth_factor(horizon) ** k, self.lr_max)
        last = (horizon.epochs - self.interval) / self.interval
        return affine_stage_value(self.lr0, self.factor, k, cap=self.lr_max, last_stage=last)


def _warmup_value(lr0: float, lr_max: float, warmup_epochs: int, warmup_interval: int, epoch: int) -> float:
    """min(lr0 gamma_w^floor(e/w), lr_max), gamma_w = (lr_max/lr0)^(w/(W - w)): lr_max at e = W - w."""
    gamma_w = (lr_max / lr0) ** (warmup_interval / (warmup_epochs - warmup_interval))
    return min(lr0 * gamma_w ** stage_of(epoch, warmup_interval), lr_max)


@dataclass(frozen=True)
class WarmupConstLR(LRSchedule):
    """Warm-up in plateaus of ``warmup_interval`` epochs up to lr_max (reached at e = W - w), then lr_max.

    Table (lr0=0.1, lr_max=1.0, W=30, w=3): e=0 -> 0.1, e=3 -> 0.1292, e=27 -> 1.0, e=200 -> 1.0.
    """

    family: ClassVar[str] = "warmup_const"
    lr0: float = param(gt=0, doc="LR at epoch 0.")
    lr_max: float = param(gt="lr0", doc="LR after the warm-up.")
    warmup_epochs: int = param(30, ge=2, doc="Warm-up length W in epochs.")
    # w < W, or the warm-up factor (lr_max/lr0)^(w/(W-w)) divides by zero.
    warmup_interval: int = param(3, ge=1, lt="warmup_epochs", doc="Epochs per warm-up plateau (w).")

    def at(self, *, epoch: int, step: int = 0, total_steps: int | None = None, horizon: HorizonLike) -> float:
        if epoch < self.warmup_epochs:
            return _warmup_value(self.lr0, self.lr_max, self.warmup_epochs, self.warmup_interval, epoch)
        return self.lr_max


@dataclass(frozen=True)
class WarmupCosineLR(LRSchedule):
    """The same warm-up, then for e >= W: lr_min + (lr_max - lr_min)(1 + cos(pi (e - W)/(N - W)))/2.

    Table (lr0=0.1, lr_max=1.0, W=30, w=3, N=300): e=27 -> 1.0, e=30 -> 1.0, e=165 -> 0.5.
    """

    family: ClassVar[str] = "warmup_cosine"
    lr0: float = param(gt=0, doc="LR at epoch 0.")
    lr_max: float = param(gt="lr0", doc="LR after the warm-up (the top of the cosine).")
    warmup_epochs: int = param(30, ge=2, doc="Warm-up length W in epochs.")
    warmup_interval: int = param(3, ge=1, lt="warmup_epochs", doc="Epochs per warm-up plateau (w).")
    lr_min: float = param(0.0, ge=0, lt="lr_max", doc="LR at the last epoch.")

    def at(self, *, epoch: int, step: int = 0, total_steps: int | None = None, horizon: HorizonLike) -> float:
        if epoch < self.warmup_epochs:
            return _warmup_value(self.lr0, self.lr_max, self.warmup_epochs, self.warmup_interval, epoch)
        span = horizon.epochs - self.warmup_epochs
        if span <= 0:
            return self.lr_max
        frac = (epoch - self.warmup_epochs) / span
        return self.lr_min + (self.lr_max - self.lr_min) * (1 + math.cos(math.pi * frac)) / 2


#: Bases Seesaw accepts: per-epoch and non-increasing, so "fallen by another factor alpha" is well defined.
SEESAW_BASES = ("constant", "cosine", "step_decay")
#: Default cap on Seesaw's batch multiplier when the base reaches 0 (cosine with lr_min = 0 at the end).
SEESAW_MAX_MULTIPLIER = 1024.0


@dataclass(frozen=True)
class SeesawLR(LRSchedule):
    """Seesaw (arXiv 2510.14717) on a per-epoch decaying base: each time the base has fallen by another factor
    ``alpha``, the LR is cut by sqrt(alpha) instead and the batch grows by alpha.

    k(e) = floor(log_alpha(base(0)/base(e)) + 1e-9), capped at ``max_cuts``; LR = base(0) alpha^(-k/2),
    batch multiplier alpha^k. ``max_cuts`` = None means the largest k with alpha^k <= 1024, which also
    covers a base that reaches 0. The batch is further clipped to n_train by ``batch_plan``.

    Table (base step_decay 0.1, decay 0.5, interval 30; alpha=2): e=0 -> LR 0.1, batch x1;
    e=30 -> LR 0.0707, batch x2; e=60 -> LR 0.05, batch x4.
    """

    family: ClassVar[str] = "seesaw"
    base: LRSchedule = dataclasses.field(metadata={"families": SEESAW_BASES, "doc": "The decay it follows."})
    alpha: float = param(2.0, gt=1, doc="LR cut sqrt(alpha) and batch growth alpha per step of the base.")
    max_cuts: int | None = param(None, ge=0, le=64, doc="Most cuts; null: up to a batch multiplier of 1024.")

    def __post_init__(self) -> None:
        # The base first: the numeric checks would not say what is wrong with it.
        if not isinstance(self.base, LRSchedule) or self.base.family not in SEESAW_BASES:
            name = getattr(self.base, "family", self.base)
            raise SpecError(
                "base.family",
                name,
                f"must be one of {', '.join(SEESAW_BASES)} (a per-epoch decay) for seesaw",
            )
        super().__post_init__()

    @classmethod
    def from_params(cls, params: Mapping[str, Any]) -> SeesawLR:
        if "base" not in params:
            raise missing_error("base", "is required for seesaw (a per-epoch LR family dict)")
        base = params["base"]
        if not isinstance(base, Mapping):
            raise SpecError("base", base, "must be an LR family dict for seesaw")
        rest = {k: v for k, v in params.items() if k != "base"}
        # Any LR family parses here; __post_init__ then names the per-epoch decays Seesaw accepts.
        parsed = parse_family(base, "base", LR_FAMILIES, "learning-rate")
        built = super().from_params({**rest, "base": parsed})
        assert isinstance(built, SeesawLR)
        return built

    @property
    def first_lr(self) -> float:
        return self.base.first_lr

    @property
    def cut_cap(self) -> int:
        if self.max_cuts is not None:
            return self.max_cuts
        return math.floor(math.log(SEESAW_MAX_MULTIPLIER) / math.log(self.alpha) + 1e-9)

    def cuts(self, epoch: int, horizon: HorizonLike) -> int:
        """k(e): how many times the base has fallen by another factor alpha since epoch 0."""
        b0 = self.base.at(epoch=0, horizon=horizon)
        be = self.base.at(epoch=epoch, horizon=horizon)
        if be <= 0:
            return self.cut_cap
        k = math.floor(math.log(b0 / be) / math.log(self.alpha) + 1e-9)
        return max(0, min(k, self.cut_cap))

    def at(self, *, epoch: int, step: int = 0, total_steps: int | None = None, horizon: HorizonLike) -> float:
        return self.base.first_lr * self.alpha ** (-self.cuts(epoch, horizon) / 2)

    def batch_multiplier(self, epoch: int, horizon: HorizonLike) -> float:
        return float(self.alpha ** self.cuts(epoch, horizon))


#: The explicit registry of LR families, by JSON name (``schedules.families.registry.parse_lr`` reads it;
#: Seesaw parses its base with it).
LR_FAMILIES: dict[str, type[LRSchedule]] = {
    cls.family: cls
    for cls in (
        ConstantLR,
        DiminishingLR,
        LinearLR,
        PolyLR,
        CosineLR,
        StepDecayLR,
        ExpGrowthLR,
        WarmupConstLR,
        WarmupCosineLR,
        SeesawLR,
    )
}


__all__ = [
    "LR_FAMILIES",
    "SEESAW_BASES",
    "ConstantLR",
    "CosineLR",
    "DiminishingLR",
    "ExpGrowthLR",
    "LinearLR",
    "PolyLR",
    "SeesawLR",
    "StepDecayLR",
    "WarmupConstLR",
    "WarmupCosineLR",
]
