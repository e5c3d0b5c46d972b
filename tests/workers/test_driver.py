"""``workers/driver.py``, its pure parts: the restart plan and the study as the job summary names it. No Ray
cluster needed."""

from __future__ import annotations

from typing import Any

import pytest

from service.jobspec import JobSpec, expand_job
from service.storage.models import Trial
from tests.workers.helpers import job_spec
from workers.driver import optuna_summary, plan_job

FIXED: dict[str, Any] = {
    "batch_size": {"family": "constant", "b0": 64},
    "lr": {"family": "constant", "lr0": 0.2},
}


def _trial(key: str, status: str, kind: str = "search") -> Trial:
    return Trial(
        trial_key=key,
        status=status,
        kind=kind,
        name=key,
        config={"schedule": FIXED, "momentum": 0.9, "params": {}},
    )


def test_plan_skips_finished_trials_and_restarts_unfinished_ones() -> None:
    spec = expand_job(JobSpec.model_validate(job_spec(search={"num_trials": 4})))
    fresh = plan_job(spec, [])
    assert [p.key for p in fresh.given] == ["baseline:constant-32"]
    assert (fresh.n_search, fresh.trials_total, fresh.restarted) == (4, 5, 0)

    existing = [
        _trial("baseline:constant-32", "succeeded", "baseline"),  # finished: never again
        _trial("a1", "succeeded"),
        _trial("a2", "pruned"),
        _trial("a3", "running"),  # unfinished: restarted with its stored config and key
    ]
    plan = plan_job(spec, existing)
    assert [(p.key, p.schedule) for p in plan.given] == [("a3", FIXED)]
    assert (plan.n_search, plan.trials_total, plan.restarted) == (1, 5, 1)  # 4 - 2 finished - 1 restarted


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        (
            "postgresql+psycopg://user:password@db.internal:5432/prod",
            {"study": "schedsearch-job-1", "where": "the optuna schema of the service's PostgreSQL database"},
        ),
        (
            "sqlite:////srv/schedsearch/schedsearch.db",
            {"study": "schedsearch-job-1", "where": "the -optuna file next to the service's SQLite database"},
        ),
    ],
)
def test_the_job_summary_names_the_study_not_the_storage(url: str, expected: dict[str, str]) -> None:
    """The summary is shown to the job's owner: the study's name and where it lives in words, never the
    database's user, host, name, password or file path."""
    summary = optuna_summary(url, "schedsearch-job-1")
    assert summary == expected
    for secret in ("user", "password", "db.internal", "prod", "/srv"):
        assert secret not in str(summary)
