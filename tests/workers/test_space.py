"""``workers/space.py``: the job space as Optuna define-by-run, grid and given points (no Ray cluster)."""

from __future__ import annotations

from typing import Any

import optuna
import pytest

from schedules.space import distributions
from service.jobspec import JobSpec, expand_job
from tests.workers.helpers import job_spec
from workers.space import JobSpace, given_points

TWO_FAMILIES: list[dict[str, Any]] = [
    {
        "batch_size": {"family": "constant", "b0": {"choice": [16, 32]}},
        "lr": {"family": "constant", "lr0": {"loguniform": [0.1, 1.0]}},
    },
    {
        "batch_size": {"family": "exp_growth", "b0": 16, "factor": {"uniform": [1.5, 3.0]}, "interval": 2},
        "lr": {"family": "constant", "lr0": 0.5},
    },
]
FIXED: dict[str, Any] = {
    "batch_size": {"family": "constant", "b0": 64},
    "lr": {"family": "constant", "lr0": 0.2},
}


def _space(candidates: list[dict[str, Any]], momentum: Any) -> JobSpace:
    """The job space of SMALL_JOB with these candidates and momentum (no baselines)."""
    optimizer = {"name": "nshb", "momentum": momentum}
    body = job_spec(space=candidates, optimizer=optimizer, baselines=[])
    return JobSpace(expand_job(JobSpec.model_validate(body)))


def _ask(space: JobSpace, seed: int = 0, n: int = 8) -> list[tuple[dict[str, Any], dict[str, Any]]]:
    """(config, Optuna params) of n define-by-run trials on an in-memory study."""
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=seed))
    out = []
    for _ in range(n):
        trial = study.ask()
        out.append((space(trial), trial.params))
        study.tell(trial, 1.0)
    return out


def test_family_choice_comes_first_and_conditions_the_parameters() -> None:
    space = _space([*TWO_FAMILIES, FIXED], 0.9)
    assert len(space.candidates) == 2  # the fixed candidate is a given point, not searched
    seen = set()
    for config, params in _ask(space, n=12):
        label = params["candidate"]
        index = int(label.split(":")[0])
        seen.add(index)
        names = set(params) - {"candidate"}
        # only the chosen family's parameters exist, named with its index
        assert names == {f"{index}.{name}" for name, _ in distributions(TWO_FAMILIES[index])}
        trial = config["trial"]  # the trial spec
        assert trial["schedule"]["batch_size"]["family"] == TWO_FAMILIES[index]["batch_size"]["family"]
        assert trial["optimizer"]["momentum"] == 0.9 and config["_kind"] == "search"
    assert seen == {0, 1}


def test_one_candidate_has_unprefixed_names_and_a_searched_momentum() -> None:
    space = _space(TWO_FAMILIES[:1], {"uniform": [0.8, 0.95]})
    for config, params in _ask(space, n=4):
        assert set(params) == {"batch_size.b0", "lr.lr0", "optimizer.momentum"}
        trial = config["trial"]
        assert 0.8 <= trial["optimizer"]["momentum"] <= 0.95
        assert trial["schedule"]["batch_size"]["b0"] in (16, 32)
        assert 0.1 <= trial["schedule"]["lr"]["lr0"] <= 1.0


def test_same_seed_same_suggestions() -> None:
    space = _space(TWO_FAMILIES, 0.9)
    assert _ask(space, seed=3) == _ask(space, seed=3)
    assert _ask(space, seed=3) != _ask(space, seed=4)


@pytest.mark.parametrize(
    ("limit", "expected"),
    [
        (100, 6),  # the full grid: b0 in {16, 32} x momentum choice of 3
        (4, 4),  # thinned evenly to the limit
    ],
)
def test_grid_enumerates_discrete_values(limit: int, expected: int) -> None:
    candidate = {
        "batch_size": {"family": "constant", "b0": {"choice": [16, 32]}},
        "lr": {"family": "constant", "lr0": 0.5},
    }
    points = _space([candidate], {"choice": [0.0, 0.5, 0.9]}).grid(limit)
    assert len(points) == expected
    assert len({p.key for p in points}) == expected
    pairs = {(p.schedule["batch_size"]["b0"], p.momentum) for p in points}
    assert len(pairs) == expected  # no duplicates
    if expected == 6:
        assert pairs == {(b, m) for b in (16, 32) for m in (0.0, 0.5, 0.9)}


def test_fixed_points_are_baselines_then_fixed_candidates() -> None:
    body = job_spec(space=[TWO_FAMILIES[0], FIXED], baselines=[{"name": "paper-a", **FIXED}])
    points = given_points(expand_job(JobSpec.model_validate(body)))
    assert [(p.key, p.kind) for p in points] == [("baseline:paper-a", "baseline"), ("fixed:1", "search")]
    assert points[0].config()["_key"] == "baseline:paper-a"


def test_with_a_searched_momentum_every_candidate_is_searched_and_baselines_run_at_its_center() -> None:
    """A fixed candidate still has its momentum to search. (Next to a candidate with distributions it used
    to be neither searched nor run.)"""
    body = job_spec(
        space=[TWO_FAMILIES[0], FIXED],
        optimizer={"momentum": {"choice": [0.5, 0.8, 0.9]}},
        baselines=[{"name": "b", **FIXED}],
    )
    job = expand_job(JobSpec.model_validate(body))
    assert JobSpace(job).candidates == (TWO_FAMILIES[0], FIXED)
    assert [(p.key, p.momentum) for p in given_points(job)] == [("baseline:b", 0.8)]
