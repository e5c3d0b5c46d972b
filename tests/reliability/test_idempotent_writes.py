"""Replaying results is safe (repository level, SQLite and PostgreSQL): a dispatcher that restarts, or a Tune
callback that fires again after a retry, writes the same trials and metrics again, and nothing is duplicated
or lost.
"""

from __future__ import annotations

import math
import threading
from typing import Any

import pytest
from sqlalchemy.orm import Session, sessionmaker

from service.storage import repository as repo
from service.storage.db import session_scope
from service.storage.models import Trial


def _job_and_trial(factory: sessionmaker[Session]) -> tuple[str, int]:
    with session_scope(factory) as session:
        user = repo.create_user(session, name="alice")
        job, _ = repo.create_job(
            session,
            owner_id=user.id,
            name="replays",
            spec={},
            objective="sfo_to_target",
            trials_total=1,
            warnings=[],
            idempotency_key=None,
            request_hash=None,
            max_active_jobs=10,
        )
        trial = repo.upsert_trial(session, job_id=job.id, trial_key="trial-0", config={"schedule": {}})
        return job.id, trial.id


def _records(*epochs: int, **extra: Any) -> list[dict[str, Any]]:
    return [{"epoch": e, "sfo": 32 * e, "grad_norm": 1.0 / e, **extra} for e in epochs]


def _epochs(factory: sessionmaker[Session], trial_id: int) -> list[int]:
    with factory() as session:
        return [m.epoch for m in repo.list_metrics(session, trial_id=trial_id)]


@pytest.mark.parametrize(
    ("batches", "inserted", "stored"),
    [
        ([(1, 2, 3), (1, 2, 3)], [3, 0], [1, 2, 3]),  # the same batch replayed
        ([(1, 2, 3), (2, 3, 4, 5)], [3, 2], [1, 2, 3, 4, 5]),  # an overlapping batch adds only the new epochs
        ([(3,), (1, 2), (1, 2, 3)], [1, 2, 0], [1, 2, 3]),  # out of order, then everything again
        ([(1, 1, 2)], [2], [1, 2]),  # a duplicate inside one batch
    ],
)
def test_metric_replays_are_ignored(
    session_factory: sessionmaker[Session],
    batches: list[tuple[int, ...]],
    inserted: list[int],
    stored: list[int],
) -> None:
    _, trial_id = _job_and_trial(session_factory)
    got = []
    for batch in batches:
        with session_scope(session_factory) as session:
            got.append(repo.append_metrics(session, trial_id=trial_id, records=_records(*batch)))
    assert got == inserted
    assert _epochs(session_factory, trial_id) == stored
    with session_factory() as session:
        trial = session.get(Trial, trial_id)
        assert trial is not None
        # The trial's progress columns follow the largest epoch seen, not the number of writes.
        assert (trial.epochs, trial.sfo) == (max(stored), 32 * max(stored))


def test_concurrent_replays_store_each_epoch_once(session_factory: sessionmaker[Session]) -> None:
    """Two writers (an old dispatcher that has not noticed it lost its lease, and the new one) race."""
    _, trial_id = _job_and_trial(session_factory)
    barrier = threading.Barrier(2)
    errors: list[BaseException] = []

    def write() -> None:
        try:
            barrier.wait()
            for start in range(1, 10, 3):
                with session_scope(session_factory) as session:
                    repo.append_metrics(
                        session, trial_id=trial_id, records=_records(*range(start, start + 4))
                    )
        except BaseException as exc:  # reported below; a thread's exception would otherwise vanish
            errors.append(exc)

    threads = [threading.Thread(target=write) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert not errors
    assert _epochs(session_factory, trial_id) == list(range(1, 11))  # batches 1-4, 4-7, 7-10


def test_a_diverged_epoch_with_nan_is_stored_and_replayed_once(
    session_factory: sessionmaker[Session],
) -> None:
    """NaN/inf values of a diverged epoch: PostgreSQL's JSON rejects them, so they are kept as null."""
    _, trial_id = _job_and_trial(session_factory)
    diverged = [{"epoch": 1, "sfo": 32, "grad_norm": math.nan, "train_loss": math.inf, "lr": 0.1}]
    for expected in (1, 0):
        with session_scope(session_factory) as session:
            assert repo.append_metrics(session, trial_id=trial_id, records=diverged) == expected
    with session_factory() as session:
        [metric] = repo.list_metrics(session, trial_id=trial_id)
    assert metric.record == {"epoch": 1, "sfo": 32, "grad_norm": None, "train_loss": None, "lr": 0.1}
    # The float column keeps NaN on PostgreSQL; SQLite stores NaN as NULL. Either way: not a number.
    assert metric.grad_norm is None or math.isnan(metric.grad_norm)


def test_trial_upsert_and_final_status_replays_change_nothing(session_factory: sessionmaker[Session]) -> None:
    job_id, trial_id = _job_and_trial(session_factory)
    summary = {"status": "completed", "sfo_to_target": 640, "total_sfo": 960}
    for _ in range(2):
        with session_scope(session_factory) as session:
            again = repo.upsert_trial(session, job_id=job_id, trial_key="trial-0", config={"other": 1})
            assert (again.id, again.config) == (trial_id, {"schedule": {}})  # the first write wins
            if again.status == "pending":
                repo.set_trial_status(session, trial_id=trial_id, status="running")
            repo.set_trial_status(session, trial_id=trial_id, status="succeeded", summary=summary)
    with session_factory() as session:
        trials, total = repo.list_trials(session, job_id=job_id, limit=10, offset=0)
    assert total == 1
    assert (trials[0].status, trials[0].objective) == ("succeeded", 640)
