"""``JobStore``, the workers' unit of work, against the real databases (SQLite and PostgreSQL): one
transaction per call, replays harmless, the first ending of a trial wins. No Ray cluster."""

from __future__ import annotations

import pickle
from typing import Any

import pytest

from service.storage import repository as repo
from service.storage.db import session_scope
from service.storage.states import JobStatus, TrialStatus
from tests.workers.doubles import job_store as job_store
from workers.store import JobStore, TrialUpdate

CONFIG = {"schedule": {"batch_size": {"family": "constant", "b0": 8}}}


def _record(epoch: int) -> dict[str, Any]:
    return {"epoch": epoch, "sfo": 100 * epoch, "grad_norm": 1.0 / epoch}


@pytest.fixture
def store(job_store: JobStore) -> JobStore:
    return job_store


def test_a_started_trial_runs_and_a_replayed_start_keeps_the_first_row(store: JobStore) -> None:
    first = store.start_trial(key="t1", name="one", kind="search", config=CONFIG)
    again = store.start_trial(key="t1", name="one", kind="search", config={"other": 1})
    assert again == first
    (trial,) = store.trials()
    assert (trial.trial_key, trial.status, trial.config) == ("t1", TrialStatus.RUNNING.value, CONFIG)


def test_write_appends_epochs_once_and_the_first_ending_wins(store: JobStore) -> None:
    store.start_trial(key="t1", name="one", kind="search", config=CONFIG)
    store.write([TrialUpdate(key="t1", records=[_record(1), _record(2)], node_id="node-a")])
    store.write([TrialUpdate(key="t1", records=[_record(2), _record(3)])])  # epoch 2 replayed: ignored
    summary = {"status": "completed", "sfo_to_target": 300}
    store.write([TrialUpdate(key="t1", status=TrialStatus.SUCCEEDED.value, summary=summary)])
    store.write([TrialUpdate(key="t1", status=TrialStatus.FAILED.value, error="late")])  # a replayed end
    (trial,) = store.trials()
    with session_scope(store.factory) as s:
        epochs = [m.epoch for m in repo.list_metrics(s, trial_id=trial.id)]
    assert epochs == [1, 2, 3]
    assert (trial.status, trial.summary, trial.error, trial.node_id) == ("succeeded", summary, None, "node-a")
    assert trial.objective == 300  # read from the summary by the job's objective
    assert store.job().trials_finished == 1


def test_unfinished_trials_end_with_the_reason_unless_they_have_their_own(store: JobStore) -> None:
    ids = {key: store.start_trial(key=key, name=key, kind="search", config=CONFIG) for key in ("a", "b", "c")}
    store.write([TrialUpdate(key="c", status=TrialStatus.SUCCEEDED.value, summary={"status": "completed"})])
    with session_scope(store.factory) as s:  # a running trial that already says what went wrong
        repo.set_trial_status(s, trial_id=ids["b"], status=TrialStatus.RUNNING, error="its own error")
    assert store.finish_unfinished(TrialStatus.CANCELLED, "job cancelled") == 2
    by_key = {t.trial_key: (t.status, t.error) for t in store.trials()}
    assert by_key == {
        "a": ("cancelled", "job cancelled"),
        "b": ("cancelled", "its own error"),
        "c": ("succeeded", None),  # finished trials keep their ending
    }
    assert store.job().trials_finished == 3


def test_the_job_moves_through_its_states(store: JobStore) -> None:
    assert store.job().status == JobStatus.QUEUED.value
    store.mark_running()
    store.mark_running()  # a second driver start changes nothing
    assert store.job().status == JobStatus.RUNNING.value
    assert not store.cancel_requested()
    with session_scope(store.factory) as s:
        repo.request_cancel(s, job_id=store.job_id)
    assert store.cancel_requested()
    ended = store.finish_job(JobStatus.CANCELLED, message="cancelled while running")
    assert ended.status == JobStatus.CANCELLED.value


def test_a_running_job_cancelled_by_the_driver_passes_through_cancelling(store: JobStore) -> None:
    store.mark_running()
    store.finish_job(JobStatus.CANCELLED, message="stopped")  # running -> cancelling -> cancelled
    with session_scope(store.factory) as s:
        kinds = [e.message for e in repo.list_job_events(s, job_id=store.job_id, limit=100)]
    assert store.job().status == JobStatus.CANCELLED.value
    assert any("stopped" in k for k in kinds)


def test_the_store_pickles_without_its_connection(store: JobStore) -> None:
    """Tune pickles the callbacks (and this store inside the writer) into the experiment folder."""
    state = pickle.loads(pickle.dumps(store)).__dict__
    assert state["factory"] is None and state["job_id"] == store.job_id
