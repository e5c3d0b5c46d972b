"""The one distribution grammar (``schedules.space.KINDS``): a kind added there, and nowhere else, is checked
at submission (corners, plan checks, grid), drawn by the Optuna space and the random sampler, listed in
messages and in the API's JSON schemas. No Ray cluster."""

from __future__ import annotations

import math
import random
from collections.abc import Sequence
from typing import Any

import optuna
import pytest
from pydantic import ValidationError

import schedules.space as space
from schedules.schema import components
from service.jobspec import parse_job
from tests.workers.helpers import job_spec
from workers.space import JobSpace


class LogInt(space.Int):
    """Integers drawn log-uniformly (``{"logint": [lo, hi]}``, lo >= 1): ``suggest_int(log=True)``."""

    name = "logint"

    def problem(self, args: Any) -> str | None:
        problem = super().problem(args)
        if problem is None and args[0] < 1:
            return "logint needs lo >= 1"
        return problem

    def suggest(self, trial: Any, name: str, args: Sequence[Any]) -> Any:
        return trial.suggest_int(name, int(args[0]), int(args[1]), log=True)

    def sample(self, rng: random.Random, args: Sequence[Any]) -> Any:
        return round(math.exp(rng.uniform(math.log(args[0]), math.log(args[1]))))


@pytest.fixture
def logint(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(space.KINDS, "logint", LogInt())


CANDIDATE = {
    "batch_size": {"family": "constant", "b0": {"logint": [8, 64]}},
    "lr": {"family": "constant", "lr0": 0.1},
}


@pytest.mark.usefixtures("logint")
def test_a_kind_added_to_the_grammar_works_everywhere() -> None:
    job = parse_job(job_spec(space=[CANDIDATE], search={"algorithm": "grid", "num_trials": 100}))
    points = JobSpace(job).grid(100)  # a discrete kind: a grid enumerates it
    assert [p.schedule["batch_size"]["b0"] for p in points] == list(range(8, 65))

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))
    trial = study.ask()
    config = JobSpace(job)(trial)  # the define-by-run space asks Optuna through the kind
    assert trial.distributions["batch_size.b0"] == optuna.distributions.IntDistribution(8, 64, log=True)
    assert config["trial"]["schedule"]["batch_size"]["b0"] == trial.params["batch_size.b0"]

    assert 8 <= space.resolve(CANDIDATE, space.random_pick(random.Random(0))).batch_size.b0 <= 64
    schema = components()["ConstantBatchCandidate"]["properties"]["b0"]["anyOf"][1]
    assert "logint" in {next(iter(option["properties"])) for option in schema["oneOf"]}


def _with_b0(b0: Any) -> dict[str, Any]:
    return job_spec(space=[{**CANDIDATE, "batch_size": {"family": "constant", "b0": b0}}])


@pytest.mark.usefixtures("logint")
@pytest.mark.parametrize(
    ("body", "text"),
    [
        (_with_b0({"logint": [0, 64]}), "logint needs lo >= 1"),  # the kind's own check
        (_with_b0({"logint": [8, 4096]}), "b0=4096"),  # the checks at its corners: b0 > n_train
        # a misspelled kind: the message lists the kinds, the new one too
        (job_spec(optimizer={"momentum": {"log_int": [1, 2]}}), "choice, int, uniform, loguniform, logint"),
    ],
)
def test_its_checks_run_at_submission(body: dict[str, Any], text: str) -> None:
    with pytest.raises(ValidationError) as info:
        parse_job(body)
    assert text in str(info.value)


def test_every_kind_answers_every_question() -> None:
    """What each consumer asks of a kind, for every kind in the grammar (a new one must say it all)."""
    rng = random.Random(0)
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))
    trial = study.ask()
    examples = {"choice": [0.5, 0.9], "int": [1, 3], "uniform": [0.1, 0.2], "loguniform": [0.1, 0.2]}
    assert set(space.KINDS) == set(examples)
    number = {"type": "number", "minimum": 0}
    for name, kind in space.KINDS.items():
        args = examples[name]
        assert kind.problem(args) is None and kind.problem("x") is not None
        assert (
            kind.corners(args) and kind.extremes(args) and kind.corner_count(args) == len(kind.corners(args))
        )
        assert kind.suggest(trial, name, args) is not None and kind.sample(rng, args) is not None
        assert kind.center(args) is not None and kind.schema(number) is not None
        assert (kind.grid(args) is None) == kind.continuous == (kind.midpoint(args) is not None)
