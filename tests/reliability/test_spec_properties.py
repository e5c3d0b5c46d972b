"""Property tests of the schedule specs on generated JSON (hypothesis), sensible and hostile values mixed:

- every dict that ``Schedule.from_json`` accepts survives a JSON text round trip exactly;
- every accepted schedule that also passes the whole-budget check (``schedules.plancheck``) gives finite,
  positive batch sizes (1 <= b <= n_train) and LRs at every epoch and at the first, last and sampled steps;
- every rejected dict raises ``SpecError`` (never another exception type) whose ``field`` is a place in the
  input (an existing key path, or a required key missing under an existing object) and opens the message.
"""

from __future__ import annotations

import dataclasses
import json
import math
from collections.abc import Mapping
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from schedules.families.lr import SEESAW_BASES
from schedules.plancheck import check_candidate_plans, check_plans
from schedules.spec import (
    BATCH_FAMILIES,
    LR_FAMILIES,
    Horizon,
    Schedule,
    SpecError,
    batch_plan,
    total_steps,
)

INT_PARAMS = {
    "b0",
    "interval",
    "increment",
    "b_max",
    "warmup_epochs",
    "warmup_interval",
    "check_every",
    "max_cuts",
}
HOSTILE: st.SearchStrategy[Any] = st.sampled_from(
    [0, -1, 0.0, -0.5, math.nan, math.inf, -math.inf, True, None, "8", [8], {}, 1e308, 5e-324, 2**70, 2.5]
)
PROPERTY_SETTINGS = settings(
    max_examples=200, deadline=None, database=None, suppress_health_check=[HealthCheck.too_slow]
)


def _value(name: str) -> st.SearchStrategy[Any]:
    if name in INT_PARAMS:
        sensible: st.SearchStrategy[Any] = st.integers(1, 60)
        wide: st.SearchStrategy[Any] = st.integers(-5, 10**7)
    else:
        sensible = st.floats(0.01, 4.0)
        wide = st.floats(1e-300, 1e300) | st.floats(-10, 10)
    return st.one_of(sensible, sensible, sensible, wide, HOSTILE)


def _fields(cls: type) -> list[str]:
    return [f.name for f in dataclasses.fields(cls) if f.name != "base"]


@st.composite
def family_dict(draw: st.DrawFn, registry: Mapping[str, type], *, depth: int = 0) -> Any:
    if draw(st.integers(0, 40)) == 0:
        return draw(HOSTILE)  # not a dict at all
    names = list(registry)
    if draw(st.integers(0, 30)) == 0:
        family: Any = draw(st.sampled_from(["nope", "", 3, None]))
    else:
        family = draw(st.sampled_from(names))
    d: dict[str, Any] = {} if draw(st.integers(0, 40)) == 0 else {"family": family}
    cls = registry.get(family) if isinstance(family, str) else None
    if cls is not None:
        for name in _fields(cls):
            # required ones are mostly present, optional ones half the time
            if draw(st.integers(0, 9)) < (9 if name in ("b0", "lr0", "interval", "factor", "lr_max") else 5):
                d[name] = draw(_value(name))
        if family == "seesaw" and depth == 0 and draw(st.integers(0, 20)) > 0:
            bases = {k: v for k, v in LR_FAMILIES.items() if k in SEESAW_BASES or draw(st.booleans())}
            d["base"] = draw(family_dict(bases, depth=1))
    if draw(st.integers(0, 30)) == 0:
        d["unknown_knob"] = 1
    return d


schedules_json = st.fixed_dictionaries(
    {"batch_size": family_dict(BATCH_FAMILIES), "lr": family_dict(LR_FAMILIES)}
)


def _pos(lo: float, hi: float) -> st.SearchStrategy[float]:
    return st.floats(lo, hi, allow_nan=False, allow_infinity=False)


@st.composite
def valid_batch(draw: st.DrawFn) -> dict[str, Any]:
    """Batch families with valid parameters over wide ranges: whether the *plan* fits is left open."""
    family = draw(st.sampled_from(list(BATCH_FAMILIES)))
    b0 = draw(st.integers(1, 512) | st.integers(1, 100_000))
    d: dict[str, Any] = {"family": family, "b0": b0}
    if family in ("exp_growth", "linear_growth"):
        d["interval"] = draw(st.integers(1, 100))
        if family == "exp_growth":
            d["factor"] = draw(_pos(1.0001, 4.0) | _pos(4.0, 1e150))
        else:
            d["increment"] = draw(st.integers(1, 10**6))
        d["b_max"] = draw(st.none() | st.integers(b0 + 1, b0 + 10**6))
    elif family == "adaptive":
        d.update(
            factor=draw(_pos(1.01, 10.0)),
            lr_factor=draw(_pos(0.1, 3.0)),
            eps0=draw(_pos(1e-6, 10.0)),
            check_every=draw(st.integers(1, 5000)),
            b_max=draw(st.integers(b0, b0 * 4096)),
        )
    return d


@st.composite
def valid_lr(draw: st.DrawFn, *, bases_only: bool = False) -> dict[str, Any]:
    names = list(SEESAW_BASES) if bases_only else list(LR_FAMILIES)
    family = draw(st.sampled_from(names))
    lr0 = draw(_pos(1e-4, 2.0) | _pos(1e-300, 1e3))
    d: dict[str, Any] = {"family": family, "lr0": lr0}
    if family == "poly":
        d["power"] = draw(_pos(0.01, 100.0))
    elif family == "cosine":
        d["lr_min"] = draw(st.just(0.0) | _pos(0.0, lr0))
    elif family == "step_decay":
        d.update(decay=draw(_pos(1e-12, 0.999)), interval=draw(st.integers(1, 100)))
    elif family == "exp_growth":
        d["interval"] = draw(st.integers(1, 100))
        kind = draw(st.sampled_from(["lr_max", "factor", "both"]))
        if kind != "factor":
            d["lr_max"] = lr0 * draw(_pos(1.001, 1e6))
        if kind != "lr_max":
            d["factor"] = draw(_pos(1.0001, 3.0) | _pos(3.0, 1e200))
    elif family in ("warmup_const", "warmup_cosine"):
        w_total = draw(st.integers(2, 100))
        d.update(
            lr_max=lr0 * draw(_pos(1.001, 1e6)),
            warmup_epochs=w_total,
            warmup_interval=draw(st.integers(1, w_total - 1)),
        )
    elif family == "seesaw":
        del d["lr0"]
        d.update(base=draw(valid_lr(bases_only=True)), alpha=draw(_pos(1.01, 100.0)))
    return d


valid_schedules = st.fixed_dictionaries({"batch_size": valid_batch(), "lr": valid_lr()})
horizons = st.builds(Horizon, epochs=st.integers(1, 300), n_train=st.integers(1, 60_000))


def _resolves_in(field: str, d: Any) -> bool:
    """``field`` is a place in ``d``: every part but the last is an existing object key path, and the last
    is a key of that object, a known parameter name, or ``family``."""
    parts = field.split(".")
    node = d
    for part in parts[:-1]:
        if not isinstance(node, Mapping) or part not in node:
            return False
        node = node[part]
    return True if not isinstance(node, Mapping) else parts[-1] in node or parts[-1] in _KNOWN_NAMES


_KNOWN_NAMES = {
    "family",
    "base",
    *{f for r in (BATCH_FAMILIES, LR_FAMILIES) for c in r.values() for f in _fields(c)},
}


@PROPERTY_SETTINGS
@given(d=schedules_json)
def test_accepted_specs_round_trip_through_json_text_exactly(d: dict[str, Any]) -> None:
    try:
        schedule = Schedule.from_json(d)
    except SpecError:
        return
    canonical = schedule.to_json()
    text = json.dumps(canonical, allow_nan=False)  # an accepted spec holds no NaN/Infinity
    again = Schedule.from_json(json.loads(text))
    assert again == schedule
    assert again.to_json() == canonical
    assert json.dumps(again.to_json(), allow_nan=False) == text


@PROPERTY_SETTINGS
@given(d=schedules_json)
def test_rejected_specs_raise_spec_error_naming_a_field_of_the_input(d: dict[str, Any]) -> None:
    try:
        Schedule.from_json(d)
    except SpecError as exc:
        assert exc.field, exc
        assert str(exc).startswith(exc.field), (str(exc), exc.field)
        assert exc.field == "schedule" or _resolves_in(exc.field, d), (exc.field, d)
    # any other exception type escapes and fails the test


@PROPERTY_SETTINGS
@given(d=valid_schedules | schedules_json, horizon=horizons, data=st.data())
def test_accepted_specs_give_finite_positive_values_over_the_whole_budget(
    d: dict[str, Any], horizon: Horizon, data: st.DataObject
) -> None:
    try:
        schedule = Schedule.from_json(d)
        check_plans(schedule, horizon)
    except SpecError as exc:
        assert _resolves_in(exc.field, d) or exc.field in ("batch_size", "schedule"), (exc.field, d)
        return
    plan = batch_plan(schedule, horizon)
    assert len(plan) == horizon.epochs
    assert all(isinstance(b, int) and 1 <= b <= horizon.n_train for b in plan), plan
    t_total = total_steps(schedule, horizon)
    assert t_total == sum(math.ceil(horizon.n_train / b) for b in plan)
    step = 0
    lrs: list[float] = []
    for epoch, b in enumerate(plan):
        steps = math.ceil(horizon.n_train / b)
        picks = {step, step + steps - 1, data.draw(st.integers(step, step + steps - 1))}
        for t in picks:
            lr = schedule.lr.at(epoch=epoch, step=t, total_steps=t_total, horizon=horizon)
            assert math.isfinite(lr) and lr > 0, (epoch, t, lr)
        step += steps
    bs = schedule.batch_size
    if bs.is_adaptive:  # the trainer moves the stage: every stage it can reach is finite and positive
        last = bs.max_stage  # type: ignore[attr-defined]
        for k in sorted({0, last // 2, last}):
            assert 1 <= bs.stage_batch(k) <= bs.b_max  # type: ignore[attr-defined]
            for lr in lrs:
                scaled = lr * bs.lr_factor ** min(k, last)  # type: ignore[attr-defined]
                assert math.isfinite(scaled) and scaled > 0, (k, lr, scaled)


@pytest.mark.parametrize(
    ("candidate", "field"),
    [
        # overflow only at the top of the factor's range
        (
            {
                "batch_size": {"family": "constant", "b0": 8},
                "lr": {
                    "family": "exp_growth",
                    "lr0": 0.1,
                    "interval": 1,
                    "factor": {"loguniform": [1.1, 1e60]},
                },
            },
            "lr.factor",
        ),
        # b0 fits the dataset at the low end of the choice only
        (
            {
                "batch_size": {"family": "constant", "b0": {"choice": [8, 100_000]}},
                "lr": {"family": "constant", "lr0": 0.1},
            },
            "batch_size.b0",
        ),
        # underflow to 0 only with the smallest lr0 of the range
        (
            {
                "batch_size": {"family": "constant", "b0": 8},
                "lr": {
                    "family": "step_decay",
                    "lr0": {"loguniform": [1e-300, 0.1]},
                    "decay": 1e-9,
                    "interval": 1,
                },
            },
            "lr.lr0",
        ),
    ],
)
def test_candidate_check_finds_the_bad_edge_of_a_range(candidate: dict[str, Any], field: str) -> None:
    with pytest.raises(SpecError) as info:
        check_candidate_plans(candidate, Horizon(epochs=60, n_train=50_000))
    assert info.value.field == field
    assert "(with " in str(info.value)  # the message says at which values
