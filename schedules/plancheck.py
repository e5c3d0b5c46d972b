"""Whole-budget check of a schedule: every batch size and LR the run will use is finite and positive.

A family validates its parameters alone (``factor > 1``), but whether ``b0 factor^k`` or ``lr0 factor^k``
stays a finite float depends on the run: ``factor=1e10`` is fine for 3 epochs and overflows in 40. The job
spec knows the horizon (``budget.max_epochs`` and the task's training-set size), so the service calls
:func:`check_plans` before it stores a job; a schedule that fails here would only fail later on a worker.

Torch-free. Raises ``SpecError`` whose ``field`` names the parameter to change.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

from schedules.families._base import SpecError
from schedules.space import box_points, distributions, fixed, is_searched, resolve_dict
from schedules.spec import Horizon, Schedule, batch_plan


def _growth_field(family: object, prefix: str) -> str:
    """The parameter that makes values grow: ``factor`` where the family has one, else the family itself."""
    return f"{prefix}.factor" if getattr(family, "factor", None) is not None else f"{prefix}.family"


def check_plans(schedule: Schedule, horizon: Horizon) -> None:
    """Raise ``SpecError`` unless, over ``horizon``:

    - the first batch size fits the training set (b0 <= n_train; later growth is clipped by ``batch_plan``);
    - every epoch's batch size is computable (no float overflow) and >= 1;
    - the LR at the first and the last step of every epoch is finite and > 0 (no overflow, no underflow).
    """
    bs = schedule.batch_size
    if bs.b0 > horizon.n_train:
        raise SpecError(
            "batch_size.b0",
            bs.b0,
            f"must be <= the training-set size n_train={horizon.n_train} (a batch cannot hold more examples "
            "than the task has)",
        )
    try:
        batches = batch_plan(schedule, horizon)
    except (OverflowError, ValueError, ZeroDivisionError) as exc:
        raise SpecError(
            _growth_field(bs, "batch_size"),
            getattr(bs, "factor", bs.family),
            f"makes the batch size overflow within budget.max_epochs={horizon.epochs} ({exc})",
        ) from None
    if any(b < 1 for b in batches):
        raise SpecError("batch_size", bs.to_json(), "gives a batch size < 1 within the budget")
    lr = schedule.lr
    try:
        # lr_plan's values, from the batch plan computed above (lr_plan would compute it again)
        steps = [math.ceil(horizon.n_train / b) for b in batches]
        total = sum(steps)
        starts: list[float] = []
        ends: list[float] = []
        step = 0
        for e, n_steps in enumerate(steps):
            starts.append(lr.at(epoch=e, step=step, total_steps=total, horizon=horizon))
            step += n_steps
            if lr.per_step:
                ends.append(lr.at(epoch=e, step=step - 1, total_steps=total, horizon=horizon))
    except (OverflowError, ValueError, ZeroDivisionError) as exc:
        raise SpecError(
            _growth_field(lr, "lr"),
            getattr(lr, "factor", lr.family),
            f"makes the learning rate overflow within budget.max_epochs={horizon.epochs} ({exc})",
        ) from None
    if bs.is_adaptive and starts:
        # The trainer multiplies the LR by lr_factor^k at stage k; powers are monotone in k, so the last stage
        # it can reach is the extreme one (lr_factor < 1 can underflow to 0, > 1 can overflow).
        last = bs.max_stage  # type: ignore[attr-defined]
        try:
            multiplier = bs.stage_lr_multiplier(last)  # type: ignore[attr-defined]
        except OverflowError:  # lr_factor ** last is past the largest float
            multiplier = math.inf
        for value in (min(starts) * multiplier, max(starts) * multiplier):
            if not (math.isfinite(value) and value > 0):
                raise SpecError(
                    "batch_size.lr_factor",
                    bs.lr_factor,  # type: ignore[attr-defined]
                    f"gives a learning rate of {value!r} at adaptive stage {last} (lr x lr_factor^{last}); "
                    "every LR must be finite and > 0",
                )
    for e, value in enumerate([*starts, *ends]):
        if not (math.isfinite(value) and value > 0):
            epoch = e if e < len(starts) else e - len(starts)
            grows = not math.isfinite(value)
            raise SpecError(
                _growth_field(lr, "lr") if grows else "lr.lr0",
                getattr(lr, "factor", None) if grows else lr.first_lr,
                f"gives a learning rate of {value!r} at epoch {epoch} within budget.max_epochs="
                f"{horizon.epochs}; every LR must be finite and > 0",
            )


#: Most points of a search-space candidate checked over the horizon (each costs two plans of max_epochs).
MAX_CANDIDATE_POINTS = 32


def candidate_points(
    candidate: Mapping[str, Any], *, max_points: int = MAX_CANDIDATE_POINTS
) -> list[dict[str, Any]]:
    """Fixed schedule dicts at the edges of a candidate's box (``schedules.space.box_points`` at each
    distribution's ``extremes``): every corner when there are at most ``max_points``, else all-low, all-high
    and each axis flipped from those two. Overflow and underflow grow monotonically with each parameter, so
    the edges are where they happen first."""
    if not is_searched(candidate):
        return [dict(candidate)]
    return [
        resolve_dict(candidate, fixed(chosen))
        for chosen in box_points(candidate, extremes=True, max_points=max_points)
    ]


def check_candidate_plans(
    candidate: Mapping[str, Any], horizon: Horizon, *, max_points: int = MAX_CANDIDATE_POINTS
) -> None:
    """:func:`check_plans` at the edges of a search-space candidate (see :func:`candidate_points`); the
    error says at which values."""
    for point in candidate_points(candidate, max_points=max_points):
        try:
            check_plans(Schedule.from_json(point), horizon)
        except SpecError as exc:
            at = ", ".join(f"{n}={v!r}" for n, v in _picked(candidate, point))
            where = f" (with {at})" if at else ""
            raise SpecError(exc.field, exc.value, f"{exc.requirement}{where}") from None


def _picked(candidate: Mapping[str, Any], point: Mapping[str, Any]) -> list[tuple[str, Any]]:
    out = []
    for name, _ in distributions(candidate):
        node: Any = point
        for part in name.split("."):
            node = node[part]
        out.append((name, node))
    return out
