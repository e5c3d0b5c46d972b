"""A job's path in one process: the API, the driver's steps, the report and the trial views for real (the
database on SQLite and PostgreSQL, Optuna, the results writer), Tune's loop faked (``tests.workers.doubles``).

It counts the conversions along the path (issue 15): the job spec is validated once where it crosses into a
process (the API's body; the driver's stored row) and the baselines are expanded once per process, and every
stored trial config is exactly the trial spec the trainable was handed, which builds alone (the rerun with
``schedsearch train`` is in ``test_e2e.py``). Stored rows of the older shape are read in one place: the
restart, the report and the API read them as trial specs."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from sqlalchemy import select

import schedules.paper
import service.jobspec
from schedules.spec import TrialSpec
from service.api.app import create_app
from service.settings import Settings
from service.storage import repository as repo
from service.storage.db import session_scope
from service.storage.models import Trial
from tests.support.users import make_user as make_user
from tests.workers.doubles import FakeTrial, FakeTuner, epoch_results
from workers import driver

CONSTANT = {"batch_size": {"family": "constant", "b0": 32}, "lr": {"family": "constant", "lr0": 0.2}}
SEARCHED = {
    "batch_size": {"family": "constant", "b0": {"choice": [16, 32]}},
    "lr": {"family": "constant", "lr0": {"loguniform": [0.05, 0.5]}},
}
BODY: dict[str, Any] = {
    "name": "the job path",
    "task": {"name": "digits-mlp"},
    "optimizer": {"name": "nshb", "momentum": 0.9},
    "space": [SEARCHED, CONSTANT],
    "baselines": ["paper", {"name": "mine", **CONSTANT}],
    "budget": {"max_epochs": 3, "max_sfo": 5000},
    "target": {"grad_norm": 0.3},
    "search": {"algorithm": "tpe", "num_trials": 2, "seed": 7, "early_stopping": False},
    "grad_norm_mode": "faithful",
}
# the four paper strategies, the named baseline, the fixed candidate and two searched trials
KEYS = {f"baseline:paper-{n}" for n in ("i", "ii", "iii", "iv")} | {"baseline:mine", "fixed:1"}


@dataclass
class Conversions:
    validations: int = 0  # job specs validated (from any entry point: a request body, a stored row)
    expansions: int = 0  # expansions of the paper's baselines

    def reset(self) -> None:
        self.validations = self.expansions = 0


@pytest.fixture
def conversions(monkeypatch: pytest.MonkeyPatch) -> Conversions:
    """Counts job spec validations (the first thing every one runs is ``JobSpec``'s plain-JSON check of its
    input, ``strictjson.check`` looked up in ``service.jobspec``) and baseline expansions (the paper's
    strategies scaled to the budget)."""
    counts = Conversions()
    real = service.jobspec.strictjson
    scale = schedules.paper.paper_strategies

    class Counting:
        def __getattr__(self, name: str) -> Any:
            return getattr(real, name)

        def check(self, value: Any) -> None:
            counts.validations += 1
            real.check(value)

    def paper_strategies(**kwargs: Any) -> Any:
        counts.expansions += 1
        return scale(**kwargs)

    monkeypatch.setattr(service.jobspec, "strictjson", Counting())
    monkeypatch.setattr(schedules.paper, "paper_strategies", paper_strategies)
    return counts


@pytest.fixture
def app(settings: Settings) -> Iterator[FastAPI]:
    app = create_app(settings)
    yield app
    app.state.engine.dispose()


@pytest.fixture
def client(app: FastAPI) -> Iterator[TestClient]:
    with TestClient(app) as c:
        yield c


@pytest.fixture
def fake_tune(monkeypatch: pytest.MonkeyPatch) -> dict[str, dict[str, Any]]:
    """Tune faked for the driver (no cluster to connect to); returns trial key -> the ``trial`` config its
    trainable was handed."""
    handed: dict[str, dict[str, Any]] = {}

    def results(trial: FakeTrial) -> list[dict[str, Any]]:
        handed[str(trial.config.get("_key") or trial.trial_id)] = trial.config["trial"]
        return epoch_results(trial.config, epochs=3)

    monkeypatch.setattr(driver, "_connect", lambda settings, run: None)
    monkeypatch.setattr(
        driver,
        "_build_tuner",
        lambda run, searcher, writer, stopper: FakeTuner(searcher, writer, stopper, results),
    )
    return handed


def _trials(app: FastAPI, job_id: str) -> list[Trial]:
    with session_scope(app.state.session_factory) as s:
        return list(s.scalars(select(Trial).where(Trial.job_id == job_id).order_by(Trial.id)))


def test_a_job_is_validated_and_expanded_once_per_process(
    app: FastAPI,
    client: TestClient,
    make_user: Any,
    settings: Settings,
    conversions: Conversions,
    fake_tune: dict[str, dict[str, Any]],
) -> None:
    alice = make_user("alice")
    created = client.post("/v1/jobs", json=BODY, headers=alice)
    assert created.status_code == 202, created.text
    job_id = created.json()["id"]
    assert (conversions.validations, conversions.expansions) == (1, 1)  # the API's process

    conversions.reset()  # the driver's process (here the same one)
    assert driver.run_job(settings, job_id) == "succeeded"
    assert (conversions.validations, conversions.expansions) == (1, 1)  # the final report included

    rows = _trials(app, job_id)
    assert {r.trial_key for r in rows} >= KEYS and len(rows) == len(KEYS) + 2
    for row in rows:
        assert row.config == fake_tune[row.trial_key]  # stored exactly as the trainable got it
        spec = TrialSpec.from_json(row.config)  # ... and it builds alone
        assert (spec.seed, spec.grad_norm_mode, spec.budget.max_epochs) == (7, "faithful", 3)
    job = client.get(f"/v1/jobs/{job_id}", headers=alice).json()
    assert "report" in job["summary"] and "report_error" not in job["summary"]

    conversions.reset()  # reading it back over the API
    report = client.get(f"/v1/jobs/{job_id}/report", headers=alice).json()
    assert {r["name"] for r in report["paper"]} == {"paper-i", "paper-ii", "paper-iii", "paper-iv"}
    assert (conversions.validations, conversions.expansions) == (1, 0)
    conversions.reset()
    listed = client.get(f"/v1/jobs/{job_id}/trials", headers=alice).json()["data"]
    assert {t["trial_key"]: t["config"] for t in listed} == {r.trial_key: r.config for r in rows}
    assert conversions.validations == 0  # rows hold trial specs: nothing to convert


def _old_row_job(app: FastAPI, body: dict[str, Any]) -> tuple[str, int]:
    """A job with one searched trial stored in the shape of trials.config before it held the trial spec."""
    with session_scope(app.state.session_factory) as s:
        owner = repo.get_or_create_user(s, name="alice")
        spec = service.jobspec.JobSpec.model_validate(body)
        job, _ = repo.create_job(
            s, owner_id=owner.id, name="old", spec=spec.to_json(), objective="sfo_to_target"
        )
        trial = repo.upsert_trial(
            s,
            job_id=job.id,
            trial_key="0123abcd",
            name="0123abcd",
            config={"schedule": CONSTANT, "momentum": 0.85, "params": {"lr.lr0": 0.2}},
        )
        return job.id, trial.id


def _expected(momentum: float) -> dict[str, Any]:
    return {
        "task": {"name": "digits-mlp", "options": {}},
        "optimizer": {"name": "nshb", "momentum": momentum},
        "schedule": CONSTANT,
        "budget": {"max_epochs": 3, "max_sfo": 5000},
        "target": {"grad_norm": 0.3, "stop_at_target": False},
        "seed": 7,
        "grad_norm_mode": "faithful",
    }


def test_a_row_of_the_older_shape_reads_as_its_trial_spec(
    app: FastAPI, client: TestClient, make_user: Any
) -> None:
    alice = make_user("alice")
    job_id, trial_id = _old_row_job(app, BODY)
    with session_scope(app.state.session_factory) as s:  # the restart plan: its stored schedule and momentum
        row = repo.get_trial(s, job_id=job_id, trial_id=trial_id)
        job = service.jobspec.expand_job(
            service.jobspec.JobSpec.model_validate(repo.get_job(s, job_id=job_id).spec)
        )
        plan = driver.plan_job(job, [row])
    (restarted,) = [p for p in plan.given if p.key == "0123abcd"]
    assert (
        restarted.trial == _expected(0.85) and TrialSpec.from_json(restarted.trial).optimizer.momentum == 0.85
    )
    shown = client.get(f"/v1/jobs/{job_id}/trials/{trial_id}", headers=alice).json()
    assert shown["config"] == _expected(0.85)  # the API's trial view
    listed = client.get(f"/v1/jobs/{job_id}/trials", headers=alice).json()["data"]
    assert listed[0]["config"] == _expected(0.85)
    with session_scope(app.state.session_factory) as s:  # the job's best trial: the same response model
        repo.get_job(s, job_id=job_id).best_trial_id = trial_id
    best = client.get(f"/v1/jobs/{job_id}", headers=alice).json()["best_trial"]
    assert best["config"] == _expected(0.85)
    with session_scope(app.state.session_factory) as s:  # the report reads its schedule
        from service.report import trial_schedule

        assert trial_schedule(repo.get_trial(s, job_id=job_id, trial_id=trial_id), job.spec) == CONSTANT


def test_a_row_of_the_older_shape_under_a_spec_that_no_longer_validates_reads_as_stored(
    app: FastAPI, client: TestClient, make_user: Any
) -> None:
    alice = make_user("alice")
    job_id, trial_id = _old_row_job(app, BODY)
    with session_scope(app.state.session_factory) as s:
        job = repo.get_job(s, job_id=job_id)
        job.spec = {**job.spec, "target": {"grad_norm": -1}}  # written before a rule, or by hand
    shown = client.get(f"/v1/jobs/{job_id}/trials/{trial_id}", headers=alice)
    assert shown.status_code == 200
    assert shown.json()["config"] == {"schedule": CONSTANT, "momentum": 0.85, "params": {"lr.lr0": 0.2}}
