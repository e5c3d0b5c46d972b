"""Trials and metrics (``service/storage/repository/trials.py``).

The same tests on SQLite and PostgreSQL (``db_url`` is parametrized)."""

from __future__ import annotations

import pytest
from sqlalchemy.orm import Session, sessionmaker

from service.errors import InvalidTransition
from service.storage import repository as repo
from service.storage.db import session_scope
from tests.support.storage import add_job as _job
from tests.support.storage import add_user as _user


def test_trials_upsert_metrics_idempotent_and_progress(session_factory: sessionmaker[Session]) -> None:
    alice = _user(session_factory)
    job_id = _job(session_factory, alice)
    with session_scope(session_factory) as s:
        t1 = repo.upsert_trial(s, job_id=job_id, trial_key="a", config={"x": 1})
        again = repo.upsert_trial(s, job_id=job_id, trial_key="a", config={"x": 2})
        assert (again.id, again.config) == (t1.id, {"x": 1})
        t2 = repo.upsert_trial(s, job_id=job_id, trial_key="b", config={}, kind="baseline", name="paper-i")
        t3 = repo.upsert_trial(s, job_id=job_id, trial_key="c", config={})
        recs = [{"epoch": e, "sfo": 100 * e, "grad_norm": 1.0 / e} for e in (1, 2, 3)]
        assert repo.append_metrics(s, trial_id=t1.id, records=recs[:2]) == 2
        assert repo.append_metrics(s, trial_id=t1.id, records=recs) == 1  # epochs 1, 2 replayed
        assert [m.epoch for m in repo.list_metrics(s, trial_id=t1.id)] == [1, 2, 3]
        repo.set_trial_status(s, trial_id=t1.id, status="running", node_id="n1")
        repo.set_trial_status(s, trial_id=t1.id, status="succeeded", summary={"sfo_to_target": 300})
        repo.set_trial_status(s, trial_id=t2.id, status="succeeded", summary={"sfo_to_target": 200})
        repo.set_trial_status(s, trial_id=t3.id, status="pruned", summary={"sfo_to_target": None})
        with pytest.raises(InvalidTransition, match="trial cannot go from succeeded to running"):
            repo.set_trial_status(s, trial_id=t1.id, status="running")
        job = repo.refresh_job_progress(s, job_id=job_id)
        assert (job.trials_finished, job.sfo_spent, job.best_trial_id, job.best_value) == (
            3,
            300,
            t2.id,
            200.0,
        )
        ordered, total = repo.list_trials(s, job_id=job_id)
        assert ([t.trial_key for t in ordered], total) == (["b", "a", "c"], 3)  # no value sorts last
        worst_first, _ = repo.list_trials(s, job_id=job_id, descending=True)
        assert [t.trial_key for t in worst_first] == ["a", "b", "c"]
        baselines, _ = repo.list_trials(s, job_id=job_id, kind="baseline")
        assert [t.name for t in baselines] == ["paper-i"]


def test_test_acc_objective_sorts_highest_first(session_factory: sessionmaker[Session]) -> None:
    alice = _user(session_factory)
    job_id = _job(session_factory, alice, objective="test_acc")
    with session_scope(session_factory) as s:
        for key, acc in (("lo", 0.5), ("hi", 0.9)):
            t = repo.upsert_trial(s, job_id=job_id, trial_key=key, config={})
            repo.set_trial_status(s, trial_id=t.id, status="succeeded", summary={"best_test_acc": acc})
        assert [t.trial_key for t in repo.list_trials(s, job_id=job_id)[0]] == ["hi", "lo"]
        assert repo.refresh_job_progress(s, job_id=job_id).best_value == 0.9


def test_finish_unfinished_trials(session_factory: sessionmaker[Session]) -> None:
    alice = _user(session_factory)
    job_id = _job(session_factory, alice)
    with session_scope(session_factory) as s:
        done = repo.upsert_trial(s, job_id=job_id, trial_key="done", config={})
        repo.set_trial_status(s, trial_id=done.id, status="succeeded")
        repo.upsert_trial(s, job_id=job_id, trial_key="p", config={})
        running = repo.upsert_trial(s, job_id=job_id, trial_key="r", config={})
        repo.set_trial_status(s, trial_id=running.id, status="running")
        assert repo.finish_unfinished_trials(s, job_id=job_id) == 2
        statuses = {t.trial_key: t.status for t in repo.list_trials(s, job_id=job_id, sort="created")[0]}
        assert statuses == {"done": "succeeded", "p": "cancelled", "r": "cancelled"}
