"""Theory check: which of the paper's strategies a schedule is, and whether convergence is guaranteed.

Torch-free. The seed paper's theorem constants were not retrieved (paper-notes §2.4, §7), so the check is the
conservative intersection the notes recommend, and every condition lives in ``CONDITIONS`` below so that it
is easy to change in one place:

| code | applies to | rule | source |
|---|---|---|---|
| ``constant_batch`` | (i) | a constant batch gives no guarantee (warning) | abstract [P] |
| ``growth_ratio`` | LR grows | gamma^2 < delta | SGD sibling [Cr], §2.4.1 |
| ``momentum_growth`` | LR grows, beta > 0 | beta^2 gamma < 1 | config pattern [C][I], §2.4.2 |
| ``lr_capped`` | LR grows | an explicit cap lr_max and lr <= lr_max throughout | §2.4.4 |

gamma and delta are read off the plan, so the check works for any family: delta is the smallest ratio
between successive batch stages (distinct consecutive values of the batch plan), gamma the largest ratio
between successive LR stages. For ``adaptive`` they are the family's ``factor`` and ``lr_factor`` (times any
growth of the LR family). A finding whose inputs are unknown (momentum given as a distribution) makes the
guarantee False, with a warning saying what was not checked.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal, NamedTuple

from schedules.families.batch import AdaptiveBatch
from schedules.spec import Horizon, Schedule, batch_plan, lr_plan

Strategy = Literal["i", "ii", "iii", "warmup", "other"]

STRATEGY_NAMES: dict[str, str] = {
    "i": "(i) constant batch size, non-increasing LR",
    "ii": "(ii) increasing batch size, non-increasing LR",
    "iii": "(iii) increasing batch size, increasing LR",
    "warmup": "(iv) increasing batch size with an LR warm-up",
    "other": "not one of the paper's strategies",
}
#: Strategies for which the paper proves convergence of the expected full gradient norm (abstract [P]).
GUARANTEED_STRATEGIES = ("ii", "iii", "warmup")
WARMUP_FAMILIES = ("warmup_const", "warmup_cosine")
#: Training-set size assumed when the caller gives only max_epochs (CIFAR, the paper's dataset); it only
#: matters for clipping the batch plan and for the per-step LR families' T.
DEFAULT_N_TRAIN = 50_000
DEFAULT_EPOCHS = 300
_EPS = 1e-12


class Finding(NamedTuple):
    """One violated (or unchecked) condition: a stable code and a message in words."""

    code: str
    message: str

    def to_json(self) -> dict[str, str]:
        return {"code": self.code, "message": self.message}


@dataclass(frozen=True)
class Facts:
    """What the conditions read: the plan, its stage ratios and the optimizer."""

    schedule: Schedule
    horizon: Horizon
    optimizer: str
    momentum: float | None
    strategy: str
    batches: list[int]
    lrs: list[float]
    delta: float | None  # smallest batch growth between stages; None when the batch never grows
    delta_at: int | None  # the epoch (or adaptive stage) where that smallest growth happens
    gamma: float | None  # largest LR growth between stages; None when the LR never grows
    gamma_at: int | None
    lr_cap: float | None  # the family's lr_max (or the adaptive LR's last value)
    lr_peak: float  # the largest LR the run can reach


@dataclass(frozen=True)
class Condition:
    """One rule: ``applies(facts)`` says whether it is relevant; ``evaluate(facts)`` returns the finding when
    the rule fails, else None. ``unknown(facts)`` returns why the rule cannot be checked (then it is a
    warning and there is no guarantee). ``severity`` "violation" means a condition of the theorem fails;
    "warning" means the paper gives no guarantee for this shape."""

    code: str
    severity: Literal["violation", "warning"]
    rule: str
    applies: Callable[[Facts], bool]
    evaluate: Callable[[Facts], Finding | None]
    unknown: Callable[[Facts], str | None] = lambda f: None


def _lr_grows(f: Facts) -> bool:
    return f.gamma is not None


def _growth_ratio(f: Facts) -> Finding | None:
    assert f.gamma is not None
    delta = f.delta if f.delta is not None else 1.0
    if f.gamma**2 < delta:
        return None
    where = (
        f"smallest batch growth between stages, at epoch {f.delta_at}"
        if f.delta is not None
        else "the batch size never grows"
    )
    return Finding(
        "growth_ratio",
        f"the LR grows faster than the square root of the batch growth: gamma^2 = {f.gamma**2:.4g} "
        f"(gamma = {f.gamma:.4g} at epoch {f.gamma_at}) is not < delta = {delta:.4g} ({where}); the "
        "gradient-noise term sum lr^2/b then does not shrink",
    )


def _momentum_growth(f: Facts) -> Finding | None:
    assert f.gamma is not None and f.momentum is not None
    value = f.momentum**2 * f.gamma
    if value < 1.0:
        return None
    limit = f.gamma**-0.5
    return Finding(
        "momentum_growth",
        f"the momentum is too large for this LR growth: beta^2 gamma = {f.momentum:g}^2 x {f.gamma:.4g} = "
        f"{value:.4g} is not < 1 (needs beta < {limit:.4f}; the paper uses 0.87 for 10x growth)",
    )


def _lr_capped(f: Facts) -> Finding | None:
    if f.lr_cap is None:
        return Finding(
            "lr_capped",
            "the LR grows without a cap: set lr.lr_max so that it stops growing (the analysis needs "
            "lr <= lr_max below a smoothness limit)",
        )
    if f.lr_peak <= f.lr_cap * (1 + 1e-9):
        return None
    return Finding("lr_capped", f"the LR reaches {f.lr_peak:.4g}, above its cap lr_max = {f.lr_cap:.4g}")


def _constant_batch(f: Facts) -> Finding | None:
    return Finding(
        "constant_batch",
        "with a constant batch size the paper does not guarantee that the full gradient norm goes to 0 "
        "(it can stall at a noise floor that grows with lr/b); grow the batch size for a guarantee",
    )


#: Every condition of the check, in the order they are reported.
CONDITIONS: tuple[Condition, ...] = (
    Condition("constant_batch", "warning", "batch size grows", lambda f: f.strategy == "i", _constant_batch),
    Condition("growth_ratio", "violation", "gamma^2 < delta", _lr_grows, _growth_ratio),
    Condition(
        "momentum_growth",
        "violation",
        "beta^2 gamma < 1",
        lambda f: _lr_grows(f) and f.optimizer != "sgd" and f.momentum != 0.0,
        _momentum_growth,
        unknown=lambda f: (
            None if f.momentum is not None else "the momentum is not a fixed number (searched?)"
        ),
    ),
    Condition("lr_capped", "violation", "lr <= lr_max", _lr_grows, _lr_capped),
)


@dataclass(frozen=True)
class TheoryReport:
    strategy: str
    converges_guaranteed: bool
    violations: tuple[Finding, ...]
    warnings: tuple[Finding, ...]
    notes: tuple[str, ...]
    gamma: float | None
    delta: float | None
    momentum: float | None
    optimizer: str
    checked: tuple[str, ...] = field(default=())

    @property
    def strategy_name(self) -> str:
        return STRATEGY_NAMES[self.strategy]

    def to_json(self) -> dict[str, Any]:
        return {
            "strategy": self.strategy,
            "strategy_name": self.strategy_name,
            "converges_guaranteed": self.converges_guaranteed,
            "violations": [v.to_json() for v in self.violations],
            "warnings": [w.to_json() for w in self.warnings],
            "notes": list(self.notes),
            "gamma": self.gamma,
            "delta": self.delta,
            "optimizer": self.optimizer,
            "momentum": self.momentum,
            "checked": list(self.checked),
        }


def _stage_ratios(values: list[float]) -> list[tuple[int, float]]:
    """(epoch, ratio) at every epoch where the value changes: successive stage values."""
    out: list[tuple[int, float]] = []
    for e in range(1, len(values)):
        prev, cur = values[e - 1], values[e]
        if prev > 0 and abs(cur - prev) > _EPS * max(abs(prev), 1.0):
            out.append((e, cur / prev))
    return out


def _shape(values: list[float]) -> str:
    """ "flat", "down" (non-increasing), "up" (non-decreasing), "up_down" (rises, then non-increasing) or
    "other"."""
    ratios = [r for _, r in _stage_ratios(values)]
    ups = [r > 1 for r in ratios]
    if not ratios:
        return "flat"
    if not any(ups):
        return "down"
    if all(ups):
        return "up"
    first_down = ups.index(False)
    return "up_down" if not any(ups[first_down:]) else "other"


def _classify(schedule: Schedule, batches: list[int], lrs: list[float], batch_grows: bool) -> str:
    lr_shape = _shape(lrs)
    if any(b2 < b1 for b1, b2 in itertools.pairwise(batches)):
        return "other"
    if not batch_grows:
        return "i" if lr_shape in ("flat", "down") else "other"
    if schedule.lr.family in WARMUP_FAMILIES or lr_shape == "up_down":
        return "warmup"
    if lr_shape in ("flat", "down"):
        return "ii"
    return "iii" if lr_shape == "up" else "other"


def _lr_cap(schedule: Schedule) -> float | None:
    cap = getattr(schedule.lr, "lr_max", None)
    return float(cap) if cap is not None else None


def _facts(schedule: Schedule, horizon: Horizon, optimizer: str, momentum: float | None) -> Facts:
    batches = batch_plan(schedule, horizon)
    lrs = lr_plan(schedule, horizon)
    bs = schedule.batch_size
    if isinstance(bs, AdaptiveBatch):
        # The trainer moves the stage; judge the rule by its stages 0..max_stage.
        stage_b = [bs.stage_batch(k) for k in range(bs.max_stage + 1)]
        b_ratios = [(k, b2 / b1) for k, (b1, b2) in enumerate(itertools.pairwise(stage_b), 1)]
        lr_growth = max([r for _, r in _stage_ratios(lrs)] + [1.0])
        batch_grows = len(stage_b) > 1
        gamma_val = bs.lr_factor * lr_growth
        gamma: tuple[int, float] | None = (1, gamma_val) if gamma_val > 1 + _EPS and batch_grows else None
        peak = max(lrs) * max(bs.lr_factor, 1.0) ** bs.max_stage
        cap = _lr_cap(schedule)
        if cap is None and gamma is not None and lr_growth <= 1.0:
            cap = peak  # the LR stops growing with the batch at b_max: capped by construction
        stage_lrs = [lrs[0] * bs.lr_factor**k for k in range(bs.max_stage + 1)]
        strategy = _classify(schedule, stage_b, stage_lrs, batch_grows)
    else:
        # A stage that the n_train clip cuts short is not a growth step of the family.
        b_ratios = [
            (e, r) for e, r in _stage_ratios([float(b) for b in batches]) if batches[e] < horizon.n_train
        ]
        batch_grows = any(r > 1 for _, r in b_ratios)
        ups = [(e, r) for e, r in _stage_ratios(lrs) if r > 1]
        gamma = max(ups, key=lambda p: p[1]) if ups else None
        cap = _lr_cap(schedule)
        peak = max(lrs)
        strategy = _classify(schedule, batches, lrs, batch_grows)
    grow = [(e, r) for e, r in b_ratios if r > 1]
    delta = min(grow, key=lambda p: p[1]) if grow else None
    return Facts(
        schedule=schedule,
        horizon=horizon,
        optimizer=optimizer,
        momentum=0.0 if optimizer == "sgd" else momentum,
        strategy=strategy,
        batches=batches,
        lrs=lrs,
        delta=delta[1] if delta else None,
        delta_at=delta[0] if delta else None,
        gamma=gamma[1] if gamma else None,
        gamma_at=gamma[0] if gamma else None,
        lr_cap=cap,
        lr_peak=peak,
    )


def check(
    schedule: Schedule,
    *,
    optimizer: str = "nshb",
    momentum: float | None = 0.9,
    horizon: Horizon | None = None,
    max_epochs: int | None = None,
    n_train: int | None = None,
) -> TheoryReport:
    """The theory check of ``schedule`` run with ``optimizer`` (shb, nshb, sgd) and constant ``momentum``
    (None: unknown, e.g. searched). The horizon is ``horizon``, else (``max_epochs`` or 300 epochs,
    ``n_train`` or 50,000 examples)."""
    if horizon is None:
        horizon = Horizon(epochs=max_epochs or DEFAULT_EPOCHS, n_train=n_train or DEFAULT_N_TRAIN)
    facts = _facts(schedule, horizon, optimizer, momentum)
    violations: list[Finding] = []
    warnings: list[Finding] = []
    checked: list[str] = []
    for cond in CONDITIONS:
        if not cond.applies(facts):
            continue
        checked.append(cond.code)
        why_unknown = cond.unknown(facts)
        if why_unknown is not None:
            warnings.append(Finding(cond.code, f"{cond.rule} could not be checked: {why_unknown}"))
            continue
        finding = cond.evaluate(facts)
        if finding is not None:
            (warnings if cond.severity == "warning" else violations).append(finding)
    notes = _notes(facts)
    guaranteed = facts.strategy in GUARANTEED_STRATEGIES and not violations and not warnings
    return TheoryReport(
        strategy=facts.strategy,
        converges_guaranteed=guaranteed,
        violations=tuple(violations),
        warnings=tuple(warnings),
        notes=tuple(notes),
        gamma=facts.gamma,
        delta=facts.delta,
        momentum=facts.momentum,
        optimizer=optimizer,
        checked=tuple(checked),
    )


def _notes(f: Facts) -> list[str]:
    notes = [
        f"strategy {STRATEGY_NAMES[f.strategy]}",
        "conservative check: the seed paper's exact theorem constants are unknown; gamma^2 < delta and "
        "beta^2 gamma < 1 are the recommended intersection (paper-notes §2.4)",
    ]
    if f.strategy == "other":
        notes.append("no guarantee is claimed for shapes outside the paper's strategies")
    if f.gamma is not None:
        notes.append(
            "the smoothness limit on lr_max (an eta < 2/L-type bound) is unknown and not checked; "
            "the paper's theory counts a fixed number of steps per stage, while epoch stages shrink "
            "the steps as b grows"
        )
    if f.delta is not None:
        notes.append("the momentum buffer is carried across batch-size changes, as in the paper's code")
    return notes
