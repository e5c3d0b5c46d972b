"""Schedule and trial-spec JSON: exact round trips, and errors that name the field, the value and the rule."""

from __future__ import annotations

from typing import Any

import pytest

from schedules.spec import BATCH_FAMILIES, LR_FAMILIES, Schedule, SpecError, TrialSpec

CONST_LR = {"family": "constant", "lr0": 0.1}
CONST_B = {"family": "constant", "b0": 128}

CANONICAL_BATCH = [
    {"family": "constant", "b0": 128},
    {"family": "exp_growth", "b0": 8, "factor": 2.0, "interval": 30, "b_max": None},
    {"family": "exp_growth", "b0": 8, "factor": 2.0, "interval": 30, "b_max": 1024},
    {"family": "linear_growth", "b0": 16, "increment": 8, "interval": 25, "b_max": None},
    {
        "family": "adaptive",
        "b0": 8,
        "factor": 2.0,
        "lr_factor": 1.4,
        "eps0": 0.5,
        "check_every": 1000,
        "b_max": 4096,
    },
]
CANONICAL_LR = [
    {"family": "constant", "lr0": 0.1},
    {"family": "diminishing", "lr0": 0.1},
    {"family": "linear", "lr0": 0.1},
    {"family": "poly", "lr0": 0.1, "power": 2.0},
    {"family": "cosine", "lr0": 0.1, "lr_min": 0.0},
    {"family": "step_decay", "lr0": 0.1, "decay": 0.5, "interval": 30},
    {"family": "exp_growth", "lr0": 0.1, "interval": 30, "lr_max": 1.0, "factor": None},
    {"family": "warmup_const", "lr0": 0.1, "lr_max": 1.0, "warmup_epochs": 30, "warmup_interval": 3},
    {
        "family": "warmup_cosine",
        "lr0": 0.1,
        "lr_max": 0.5,
        "warmup_epochs": 30,
        "warmup_interval": 3,
        "lr_min": 0.0,
    },
    {
        "family": "seesaw",
        "base": {"family": "cosine", "lr0": 0.1, "lr_min": 0.0},
        "alpha": 2.0,
        "max_cuts": None,
    },
]


def test_every_family_has_a_canonical_example() -> None:
    assert {d["family"] for d in CANONICAL_BATCH} == set(BATCH_FAMILIES)
    assert {d["family"] for d in CANONICAL_LR} == set(LR_FAMILIES)


@pytest.mark.parametrize("batch", CANONICAL_BATCH, ids=lambda d: f"b-{d['family']}")
def test_batch_round_trip_is_exact(batch: dict[str, Any]) -> None:
    d = {"batch_size": batch, "lr": CONST_LR}
    assert Schedule.from_json(d).to_json() == d


@pytest.mark.parametrize("lr", CANONICAL_LR, ids=lambda d: f"lr-{d['family']}")
def test_lr_round_trip_is_exact(lr: dict[str, Any]) -> None:
    d = {"batch_size": CONST_B, "lr": lr}
    s = Schedule.from_json(d)
    assert s.to_json() == d
    assert Schedule.from_json(s.to_json()) == s


def test_defaults_are_filled_and_ints_become_floats() -> None:
    s = Schedule.from_json(
        {
            "batch_size": {"family": "exp_growth", "b0": 8, "factor": 2, "interval": 30},
            "lr": {"family": "poly", "lr0": 1},
        }
    )
    assert s.to_json()["batch_size"]["factor"] == 2.0 and isinstance(
        s.to_json()["batch_size"]["factor"], float
    )
    assert s.to_json()["lr"] == {"family": "poly", "lr0": 1.0, "power": 2.0}


@pytest.mark.parametrize(
    ("d", "field", "text"),
    [
        # growth factor must grow
        (
            {"batch_size": {"family": "exp_growth", "b0": 8, "factor": 0.5, "interval": 30}, "lr": CONST_LR},
            "batch_size.factor",
            "batch_size.factor must be > 1 for exp_growth, got factor=0.5",
        ),
        # ints where ints
        (
            {
                "batch_size": {"family": "exp_growth", "b0": 8.5, "factor": 2.0, "interval": 30},
                "lr": CONST_LR,
            },
            "batch_size.b0",
            "must be an integer >= 1 for exp_growth, got b0=8.5",
        ),
        # booleans are not numbers
        ({"batch_size": {"family": "constant", "b0": True}, "lr": CONST_LR}, "batch_size.b0", "got b0=True"),
        # non-finite
        ({"batch_size": CONST_B, "lr": {"family": "constant", "lr0": float("nan")}}, "lr.lr0", "finite"),
        # b_max must exceed b0
        (
            {
                "batch_size": {"family": "exp_growth", "b0": 8, "factor": 2.0, "interval": 30, "b_max": 8},
                "lr": CONST_LR,
            },
            "batch_size.b_max",
            ">= 9",
        ),
        # unknown family lists the known ones
        (
            {"batch_size": {"family": "huge"}, "lr": CONST_LR},
            "batch_size.family",
            "one of constant, exp_growth, linear_growth, adaptive",
        ),
        (
            {"batch_size": CONST_B, "lr": {"family": "onecycle", "lr0": 0.1}},
            "lr.family",
            "warmup_cosine, seesaw",
        ),
        # unknown keys rejected
        (
            {"batch_size": {"family": "constant", "b0": 8, "factor": 2}, "lr": CONST_LR},
            "batch_size.factor",
            "is not a parameter of constant",
        ),
        ({"batch_size": CONST_B, "lr": CONST_LR, "momentum": 0.9}, "schedule.momentum", "not a known key"),
        # missing required
        (
            {"batch_size": {"family": "step_decay"}, "lr": CONST_LR},
            "batch_size.family",
            "got family='step_decay'",
        ),
        (
            {"batch_size": CONST_B, "lr": {"family": "step_decay", "lr0": 0.1, "decay": 0.5}},
            "lr.interval",
            "required",
        ),
        (
            {"batch_size": CONST_B, "lr": {"family": "exp_growth", "lr0": 0.1, "interval": 30}},
            "lr.lr_max",
            "at least one",
        ),
        # ranges
        (
            {"batch_size": CONST_B, "lr": {"family": "step_decay", "lr0": 0.1, "decay": 1.0, "interval": 3}},
            "lr.decay",
            "> 0 and < 1",
        ),
        (
            {
                "batch_size": CONST_B,
                "lr": {
                    "family": "warmup_const",
                    "lr0": 0.1,
                    "lr_max": 1.0,
                    "warmup_epochs": 3,
                    "warmup_interval": 3,
                },
            },
            "lr.warmup_interval",
            "<= 2",
        ),
        (
            {"batch_size": CONST_B, "lr": {"family": "warmup_const", "lr0": 0.1, "lr_max": 0.05}},
            "lr.lr_max",
            "> 0.1",
        ),
        (
            {"batch_size": CONST_B, "lr": {"family": "cosine", "lr0": 0.1, "lr_min": 0.2}},
            "lr.lr_min",
            "<= 0.1",
        ),
        # seesaw base: nested path, and only per-epoch decays
        (
            {"batch_size": CONST_B, "lr": {"family": "seesaw", "base": {"family": "cosine", "lr0": -1}}},
            "lr.base.lr0",
            "lr.base.lr0 must be > 0",
        ),
        (
            {"batch_size": CONST_B, "lr": {"family": "seesaw", "base": {"family": "poly", "lr0": 0.1}}},
            "lr.base.family",
            "constant, cosine, step_decay",
        ),
        (
            {"batch_size": CONST_B, "lr": {"family": "seesaw", "base": CONST_LR, "alpha": 1.0}},
            "lr.alpha",
            "> 1",
        ),
        # an integer too large for a float (JSON allows any number of digits)
        ({"batch_size": CONST_B, "lr": {"family": "constant", "lr0": 10**400}}, "lr.lr0", "finite number"),
        (
            {
                "batch_size": {"family": "exp_growth", "b0": 8, "factor": 10**400, "interval": 1},
                "lr": CONST_LR,
            },
            "batch_size.factor",
            "finite number",
        ),
        # combinations that cannot work
        (
            {"batch_size": {"family": "adaptive"}, "lr": {"family": "linear", "lr0": 0.1}},
            "lr.family",
            "adaptive",
        ),
        (
            {"batch_size": {"family": "adaptive"}, "lr": {"family": "seesaw", "base": CONST_LR}},
            "lr.family",
            "both",
        ),
    ],
)
def test_schedule_errors_name_the_field(d: dict[str, Any], field: str, text: str) -> None:
    with pytest.raises(SpecError) as info:
        Schedule.from_json(d)
    assert info.value.field == field
    assert text in str(info.value)


TRIAL = {
    "task": {"name": "digits-mlp", "options": {"hidden": 64}},
    "optimizer": {"name": "shb", "momentum": 0.87},
    "schedule": {"batch_size": CANONICAL_BATCH[1], "lr": CANONICAL_LR[7]},
    "budget": {"max_epochs": 30, "max_sfo": 100000},
    "target": {"grad_norm": 0.01, "stop_at_target": True},
    "seed": 3,
    "grad_norm_mode": "faithful",
}


def test_trial_round_trip_is_exact() -> None:
    spec = TrialSpec.from_json(TRIAL)
    assert spec.to_json() == TRIAL
    assert TrialSpec.from_json(spec.to_json()) == spec
    assert spec.horizon(1000).epochs == 30


def test_trial_defaults() -> None:
    spec = TrialSpec.from_json(
        {"task": {"name": "digits-mlp"}, "schedule": TRIAL["schedule"], "budget": {"max_epochs": 2}}
    )
    assert spec.to_json()["optimizer"] == {"name": "nshb", "momentum": 0.9}
    assert spec.to_json()["target"] == {"grad_norm": None, "stop_at_target": False}
    assert (spec.seed, spec.grad_norm_mode) == (0, "clean")
    sgd = TrialSpec.from_json({**TRIAL, "optimizer": {"name": "sgd"}})
    assert sgd.optimizer.momentum == 0.0


@pytest.mark.parametrize(
    ("patch", "field"),
    [
        ({"optimizer": {"name": "adam"}}, "optimizer.name"),  # unknown optimizer
        ({"optimizer": {"name": "nshb", "momentum": 1.0}}, "optimizer.momentum"),  # beta < 1
        ({"optimizer": {"name": "sgd", "momentum": 0.9}}, "optimizer.momentum"),  # sgd has no momentum
        ({"budget": {"max_epochs": 0}}, "budget.max_epochs"),  # at least one epoch
        ({"budget": {"max_epochs": 3, "epochs": 3}}, "budget.epochs"),  # unknown key
        ({"target": {"grad_norm": -1.0}}, "target.grad_norm"),  # positive target
        ({"target": {"stop_at_target": True}}, "target.stop_at_target"),  # stopping needs a target
        ({"seed": -1}, "seed"),  # non-negative seed
        ({"grad_norm_mode": "noisy"}, "grad_norm_mode"),  # clean or faithful
        ({"task": {"options": {}}}, "task.name"),  # task name required
        ({"extra": 1}, "extra"),  # unknown top-level key
        ({"schedule": {"batch_size": {"family": "constant", "b0": 0}, "lr": CONST_LR}}, "batch_size.b0"),
    ],
)
def test_trial_errors(patch: dict[str, Any], field: str) -> None:
    with pytest.raises(SpecError) as info:
        TrialSpec.from_json({**TRIAL, **patch})
    assert info.value.field == field
