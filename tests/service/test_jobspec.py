"""Job spec helpers: the expanded job (baselines, fixed and searched candidates), distributions, trial
counts, objectives (task sizes: the task definitions, tests/schedules/test_task_definitions.py)."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import ValidationError

from schedules.space import distribution_paths
from service.jobspec import JobSpec, count_trials, expand_job
from service.objectives import is_better, objective_value
from tests.support.jobs import JOB, job_body

CONSTANT = {"batch_size": {"family": "constant", "b0": 32}, "lr": {"family": "constant", "lr0": 0.1}}


def test_paper_shorthand_expands_to_the_four_strategies() -> None:
    from schedules.paper import paper_strategies

    spec = JobSpec.model_validate(job_body(baselines=["paper", "paper-ii", {"name": "mine", **CONSTANT}]))
    job = expand_job(spec)
    expanded = job.baselines
    expected = paper_strategies(max_epochs=JOB["budget"]["max_epochs"], optimizer="nshb")
    # "paper-ii" named again is not run twice; the dict keeps its own name
    assert [b.name for b in expanded] == [*expected, "mine"]
    assert expanded[0].schedule == expected["paper-i"].to_json()
    assert expanded[-1].schedule == CONSTANT
    assert count_trials(job) == JOB["search"]["num_trials"] + len(expected) + 1


def test_unnamed_baseline_gets_its_index() -> None:
    spec = JobSpec.model_validate(job_body(baselines=[CONSTANT]))
    assert [b.name for b in expand_job(spec).baselines] == ["baseline-0"]


def test_fixed_schedules_include_fully_fixed_candidates_only() -> None:
    spec = JobSpec.model_validate(job_body(space=[JOB["space"][0], CONSTANT], baselines=[]))
    assert [s.name for s in expand_job(spec).fixed_schedules] == ["space-1"]


def test_distribution_paths_finds_each_with_its_path() -> None:
    assert sorted((path, next(iter(d))) for path, d in distribution_paths(JOB["space"][0])) == [
        (("batch_size", "b0"), "choice"),
        (("batch_size", "factor"), "uniform"),
        (("lr", "lr_max"), "loguniform"),
    ]


@pytest.mark.parametrize(
    ("objective", "summary", "value"),
    [
        ("sfo_to_target", {"sfo_to_target": 1200}, 1200.0),  # reached
        ("sfo_to_target", {"sfo_to_target": None}, None),  # never reached
        ("final_grad_norm", {"final_grad_norm": float("nan")}, None),  # diverged: not comparable
        ("test_acc", {"best_test_acc": 0.93}, 0.93),  # reads best_test_acc
    ],
)
def test_objective_value(objective: str, summary: dict[str, Any], value: float | None) -> None:
    assert objective_value(objective, summary) == value


def test_is_better_respects_direction() -> None:
    assert is_better("sfo_to_target", 10.0, 20.0) and not is_better("sfo_to_target", 30.0, 20.0)
    assert is_better("test_acc", 0.9, 0.8) and is_better("test_acc", 0.1, None)


def test_a_point_of_the_job_is_one_trial_spec() -> None:
    spec = JobSpec.model_validate(job_body())
    trial = spec.trial_spec(CONSTANT, momentum=0.8, seed=3)
    assert trial.to_json() == {
        "task": {"name": "digits-mlp", "options": {}},
        "optimizer": {"name": "nshb", "momentum": 0.8},
        "schedule": {
            "batch_size": {"family": "constant", "b0": 32},
            "lr": {"family": "constant", "lr0": 0.1},
        },
        "budget": {"max_epochs": JOB["budget"]["max_epochs"], "max_sfo": JOB["budget"]["max_sfo"]},
        "target": {"grad_norm": JOB["target"]["grad_norm"], "stop_at_target": False},
        "seed": 3,
        "grad_norm_mode": "clean",
    }
    assert expand_job(spec).trial(CONSTANT).seed == JOB["search"]["seed"]  # the job's seed and momentum


def test_grad_norm_mode_is_the_jobs_choice_and_reaches_its_trial_specs() -> None:
    clean = JobSpec.model_validate(job_body())
    assert "grad_norm_mode" not in clean.to_json()  # at its default the stored spec keeps its form
    faithful = JobSpec.model_validate(job_body(grad_norm_mode="faithful"))
    assert faithful.to_json()["grad_norm_mode"] == "faithful"
    assert JobSpec.model_validate(faithful.to_json()) == faithful
    assert expand_job(faithful).trial(CONSTANT).grad_norm_mode == "faithful"
    with pytest.raises(ValidationError, match="grad_norm_mode"):
        JobSpec.model_validate(job_body(grad_norm_mode="exact"))
