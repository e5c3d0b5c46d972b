"""Per-epoch records and the trial summary (docs/design.md "Trial spec, metrics, trainer"; paper-notes §6.2).

Torch-free: the service stores and reports these. SFO counts training gradients only (the sum of the batch
sizes of training steps); the measurement passes' per-example gradients are ``measure_sfo``, kept apart.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, fields
from typing import Any

STATUSES: tuple[str, ...] = ("completed", "diverged", "stopped")
STOP_REASONS: tuple[str, ...] = ("max_epochs", "max_sfo", "target", "diverged", "stopped")


def _finite_or_none(x: float | None) -> float | None:
    return None if x is None or not math.isfinite(x) else float(x)


def _json_safe(record: Any) -> dict[str, Any]:
    """A dataclass as a JSON-safe dict: non-finite floats become None."""
    out = asdict(record)
    for k, v in out.items():
        if isinstance(v, float):
            out[k] = _finite_or_none(v)
    return out


def _known_fields(cls: type, d: Mapping[str, Any]) -> dict[str, Any]:
    """``d`` as a dict, refusing keys that are not fields of the dataclass ``cls``."""
    known = {f.name for f in fields(cls)}
    unknown = set(d) - known
    if unknown:
        raise ValueError(f"{cls.__name__} has no field(s) {sorted(unknown)} (valid: {sorted(known)})")
    return dict(d)


@dataclass(frozen=True)
class EpochRecord:
    """One completed epoch. ``epoch`` is 1-based (completed epochs); ``step`` and ``sfo`` are cumulative;
    ``lr`` and ``batch_size`` are those of the epoch's last step; ``train_loss`` is the running mean of the
    mini-batch losses; ``full_loss`` is f(theta) and ``grad_norm`` the unsquared exact-mean gradient norm,
    both from the measurement pass at the epoch end. ``grad_norm_subset`` is None when that pass covered the
    whole training set (exact), else the size of the fixed, seeded subset it covered: ``full_loss`` and
    ``grad_norm`` are then estimates. ``test_acc`` is None for tasks without an accuracy (regression,
    language models). ``tokens`` is the cumulative count of training tokens for sequence tasks (sfo times the
    tokens in one example), else None."""

    epoch: int
    step: int
    sfo: int
    lr: float
    batch_size: int
    train_loss: float
    full_loss: float | None
    grad_norm: float
    test_loss: float | None
    test_acc: float | None
    measure_sfo: int = 0
    wall_s: float = 0.0
    grad_norm_subset: int | None = None
    tokens: int | None = None

    def to_json(self) -> dict[str, Any]:
        """JSON-safe: non-finite floats (a diverged run) become None."""
        return _json_safe(self)

    @classmethod
    def from_json(cls, d: Mapping[str, Any]) -> EpochRecord:
        values = _known_fields(cls, d)
        for key in ("train_loss", "grad_norm"):
            if values.get(key) is None:
                values[key] = math.nan
        return cls(**values)


@dataclass(frozen=True)
class TrialSummary:
    """What the service reports for one trial. ``*_to_target`` are None when the target was never reached
    (checked at epoch ends). ``decay_exponent`` is the least-squares slope of log grad_norm against log sfo
    over epochs with sfo > 0 and a finite positive norm (None with fewer than two such epochs).
    ``grad_norm_subset`` is the records' (None: every norm is exact); ``total_tokens`` the last record's
    ``tokens``."""

    status: str  # one of STATUSES
    stop_reason: str  # one of STOP_REASONS
    sfo_to_target: int | None
    steps_to_target: int | None
    epochs_to_target: int | None
    final_grad_norm: float | None
    min_grad_norm: float | None
    best_test_acc: float | None
    decay_exponent: float | None
    total_sfo: int
    total_steps: int
    measure_sfo: int
    wall_s: float
    initial_grad_norm: float | None = None
    grad_norm_subset: int | None = None
    total_tokens: int | None = None

    def to_json(self) -> dict[str, Any]:
        return _json_safe(self)

    @classmethod
    def from_json(cls, d: Mapping[str, Any]) -> TrialSummary:
        return cls(**_known_fields(cls, d))


def decay_exponent(sfo: Sequence[float], grad_norm: Sequence[float]) -> float | None:
    """Least-squares slope of log grad_norm on log sfo, over points with sfo > 0 and finite norm > 0."""
    pts = [
        (math.log(s), math.log(g))
        for s, g in zip(sfo, grad_norm, strict=True)
        if s > 0 and math.isfinite(g) and g > 0
    ]
    if len(pts) < 2:
        return None
    mx = sum(x for x, _ in pts) / len(pts)
    my = sum(y for _, y in pts) / len(pts)
    sxx = sum((x - mx) ** 2 for x, _ in pts)
    if sxx == 0.0:
        return None
    return sum((x - mx) * (y - my) for x, y in pts) / sxx


def summarize(
    records: Sequence[EpochRecord],
    *,
    target_grad_norm: float | None,
    status: str = "completed",
    stop_reason: str = "max_epochs",
    initial_grad_norm: float | None = None,
    wall_s: float | None = None,
) -> TrialSummary:
    """The summary of a trial from its per-epoch records (in epoch order).

    The target is reached at the first epoch end with grad_norm <= ``target_grad_norm``; sfo, steps and
    epochs to target are that record's. Totals come from the last record (zero when there is none);
    ``wall_s`` defaults to the last record's.
    """
    if status not in STATUSES:
        raise ValueError(f"status must be one of {', '.join(STATUSES)}, got status={status!r}")
    if stop_reason not in STOP_REASONS:
        raise ValueError(
            f"stop_reason must be one of {', '.join(STOP_REASONS)}, got stop_reason={stop_reason!r}"
        )
    hit = None
    if target_grad_norm is not None:
        hit = next(
            (r for r in records if math.isfinite(r.grad_norm) and r.grad_norm <= target_grad_norm), None
        )
    finite_norms = [r.grad_norm for r in records if math.isfinite(r.grad_norm)]
    accs = [r.test_acc for r in records if r.test_acc is not None and math.isfinite(r.test_acc)]
    last = records[-1] if records else None
    return TrialSummary(
        status=status,
        stop_reason=stop_reason,
        sfo_to_target=hit.sfo if hit else None,
        steps_to_target=hit.step if hit else None,
        epochs_to_target=hit.epoch if hit else None,
        final_grad_norm=_finite_or_none(last.grad_norm) if last else None,
        min_grad_norm=min(finite_norms) if finite_norms else None,
        best_test_acc=max(accs) if accs else None,
        decay_exponent=decay_exponent([r.sfo for r in records], [r.grad_norm for r in records]),
        total_sfo=last.sfo if last else 0,
        total_steps=last.step if last else 0,
        measure_sfo=last.measure_sfo if last else 0,
        wall_s=wall_s if wall_s is not None else (last.wall_s if last else 0.0),
        initial_grad_norm=_finite_or_none(initial_grad_norm),
        grad_norm_subset=last.grad_norm_subset if last else None,
        total_tokens=last.tokens if last else None,
    )
