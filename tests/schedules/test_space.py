"""Search-space candidates: distribution checks, corner validation and resolution through a pick callback."""

from __future__ import annotations

import random
from collections.abc import Mapping
from typing import Any

import pytest

from schedules.space import distributions, random_pick, resolve, validate
from schedules.spec import Schedule, SpecError

CANDIDATE: dict[str, Any] = {
    "batch_size": {
        "family": "exp_growth",
        "b0": {"choice": [8, 16]},
        "factor": {"uniform": [1.5, 3.0]},
        "interval": {"int": [1, 5]},
    },
    "lr": {"family": "warmup_const", "lr0": {"loguniform": [0.01, 0.2]}, "lr_max": {"uniform": [0.3, 1.0]}},
}


def test_names_are_dotted_in_document_order() -> None:
    assert [n for n, _ in distributions(CANDIDATE)] == [
        "batch_size.b0",
        "batch_size.factor",
        "batch_size.interval",
        "lr.lr0",
        "lr.lr_max",
    ]


def test_resolve_calls_pick_with_prefixed_names() -> None:
    seen: list[str] = []

    def pick(name: str, dist: Mapping[str, Any]) -> Any:
        seen.append(name)
        _, args = next(iter(dist.items()))
        return args[-1]  # the upper bound / last option

    s = resolve(CANDIDATE, pick, prefix="1.")
    assert seen[0] == "1.batch_size.b0" and len(seen) == 5
    assert s.to_json()["batch_size"] == {
        "family": "exp_growth",
        "b0": 16,
        "factor": 3.0,
        "interval": 5,
        "b_max": None,
    }


def test_every_random_sample_of_a_valid_space_builds() -> None:
    validate(CANDIDATE)
    rng = random.Random(0)
    for _ in range(200):
        s = resolve(CANDIDATE, random_pick(rng))
        assert 0.01 <= s.lr.first_lr <= 0.2
        assert Schedule.from_json(s.to_json()) == s  # round trip of arbitrary sampled values


def test_nested_seesaw_base_is_searchable() -> None:
    c = {
        "batch_size": {"family": "constant", "b0": 8},
        "lr": {"family": "seesaw", "base": {"family": "cosine", "lr0": {"uniform": [0.05, 0.2]}}},
    }
    validate(c)
    assert [n for n, _ in distributions(c)] == ["lr.base.lr0"]


@pytest.mark.parametrize(
    ("patch", "field", "text"),
    [
        # overlapping ranges: the corner lr0=0.2, lr_max=0.1 cannot be a warm-up
        ({"lr": {**CANDIDATE["lr"], "lr_max": {"uniform": [0.1, 1.0]}}}, "lr.lr_max", "lr.lr0=0.2"),
        # a float range on an integer parameter
        (
            {"batch_size": {**CANDIDATE["batch_size"], "interval": {"uniform": [1, 5]}}},
            "batch_size.interval",
            "integer",
        ),
        # the family must be fixed
        ({"lr": {"family": {"choice": ["constant", "cosine"]}, "lr0": 0.1}}, "lr.family", "must be fixed"),
        # malformed distributions
        ({"lr": {**CANDIDATE["lr"], "lr0": {"loguniform": [0.0, 0.2]}}}, "lr.lr0", "lo > 0"),
        ({"lr": {**CANDIDATE["lr"], "lr0": {"uniform": [0.2, 0.1]}}}, "lr.lr0", "lo < hi"),
        ({"lr": {**CANDIDATE["lr"], "lr0": {"choice": []}}}, "lr.lr0", "non-empty"),
        ({"batch_size": {**CANDIDATE["batch_size"], "b0": {"int": [8.5, 16]}}}, "batch_size.b0", "integers"),
        # a bound too large for a float
        ({"lr": {**CANDIDATE["lr"], "lr0": {"uniform": [0.1, 10**400]}}}, "lr.lr0", "finite numbers"),
        ({"lr": {**CANDIDATE["lr"], "lr0": {"choice": [0.1, 10**400]}}}, "lr.lr0", "finite number"),
        # a choice option that is out of range
        (
            {"batch_size": {**CANDIDATE["batch_size"], "factor": {"choice": [2.0, 0.5]}}},
            "batch_size.factor",
            "> 1",
        ),
        # unknown parameter
        ({"lr": {**CANDIDATE["lr"], "gamma": {"uniform": [1.0, 2.0]}}}, "lr.gamma", "not a parameter"),
    ],
)
def test_invalid_spaces_name_the_field(patch: dict[str, Any], field: str, text: str) -> None:
    with pytest.raises(SpecError) as info:
        validate({**CANDIDATE, **patch})
    assert info.value.field == field
    assert text in str(info.value)


def test_too_many_corners_is_refused() -> None:
    many = {
        "batch_size": {"family": "constant", "b0": {"choice": list(range(1, 70))}},
        "lr": {"family": "constant", "lr0": {"choice": [0.01 * i for i in range(1, 70)]}},
    }
    with pytest.raises(SpecError, match="too many corner combinations"):
        validate(many)
