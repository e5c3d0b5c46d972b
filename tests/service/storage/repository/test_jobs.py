"""Jobs: submission, reads, cancel, status and progress (``service/storage/repository/jobs.py``).

The same tests on SQLite and PostgreSQL (``db_url`` is parametrized)."""

from __future__ import annotations

import pytest
from sqlalchemy.orm import Session, sessionmaker

from service.errors import Conflict, InvalidTransition, NotFound, QuotaExceeded
from service.storage import repository as repo
from service.storage.db import session_scope
from tests.support.storage import SPEC
from tests.support.storage import add_job as _job
from tests.support.storage import add_user as _user


def test_job_roundtrip_and_owner_isolation(session_factory: sessionmaker[Session]) -> None:
    alice, bob = _user(session_factory), _user(session_factory, "bob")
    job_id = _job(session_factory, alice)
    with session_scope(session_factory) as s:
        job = repo.get_job(s, job_id=job_id, owner_id=alice)
        assert (job.status, job.spec, job.created_at.tzinfo is not None) == ("queued", SPEC, True)
        with pytest.raises(NotFound, match=f"job {job_id} not found"):
            repo.get_job(s, job_id=job_id, owner_id=bob)
        assert repo.list_jobs(s, owner_id=bob) == ([], 0)
        jobs, total = repo.list_jobs(s, owner_id=None)
        assert ([j.id for j in jobs], total) == ([job_id], 1)
        assert [e.kind for e in repo.list_job_events(s, job_id=job_id)] == ["submitted"]


def test_list_jobs_pages_and_filters(session_factory: sessionmaker[Session]) -> None:
    alice = _user(session_factory)
    ids = [_job(session_factory, alice, name=f"j{i}") for i in range(5)]
    with session_scope(session_factory) as s:
        repo.request_cancel(s, job_id=ids[0])
        page, total = repo.list_jobs(s, owner_id=alice, limit=2, offset=1)
        assert total == 5 and len(page) == 2
        assert set(j.id for j in page) <= set(ids)
        cancelled, n = repo.list_jobs(s, owner_id=alice, status=["cancelled"])
        assert ([j.id for j in cancelled], n) == ([ids[0]], 1)


def test_idempotency_key_same_body_returns_job_other_body_conflicts(
    session_factory: sessionmaker[Session],
) -> None:
    alice = _user(session_factory)
    first = _job(session_factory, alice, idempotency_key="k1", request_hash="h1")
    with session_scope(session_factory) as s:
        again, created = repo.create_job(
            s,
            owner_id=alice,
            name="j",
            spec=SPEC,
            objective="sfo_to_target",
            idempotency_key="k1",
            request_hash="h1",
        )
        assert (again.id, created) == (first, False)
        with pytest.raises(Conflict, match="Idempotency-Key 'k1' was already used"):
            repo.create_job(
                s,
                owner_id=alice,
                name="j",
                spec=SPEC,
                objective="sfo_to_target",
                idempotency_key="k1",
                request_hash="other",
            )


def test_active_job_quota(session_factory: sessionmaker[Session]) -> None:
    alice = _user(session_factory)
    _job(session_factory, alice, max_active_jobs=2)
    done = _job(session_factory, alice, max_active_jobs=2)
    with pytest.raises(QuotaExceeded, match="max_active_jobs_per_user=2 reached: you have 2"):
        _job(session_factory, alice, max_active_jobs=2)
    with session_scope(session_factory) as s:
        repo.request_cancel(s, job_id=done)  # queued -> cancelled frees the slot
    _job(session_factory, alice, max_active_jobs=2)


def test_cancel_paths(session_factory: sessionmaker[Session]) -> None:
    alice = _user(session_factory)
    queued, running = _job(session_factory, alice), _job(session_factory, alice)
    with session_scope(session_factory) as s:
        assert repo.request_cancel(s, job_id=queued).status == "cancelled"
        repo.claim_job(s, owner="d1", lease_seconds=30, job_id=running)
        assert repo.request_cancel(s, job_id=running).status == "cancelling"
        assert repo.is_cancel_requested(s, job_id=running)
        assert repo.request_cancel(s, job_id=running).status == "cancelling"  # repeated: no-op
        assert repo.heartbeat(s, job_id=running, owner="d1", lease_seconds=30).status == "cancelling"
        assert repo.set_job_status(s, job_id=running, status="cancelled", owner="d1").status == "cancelled"
        with pytest.raises(InvalidTransition, match="job cannot go from cancelled to running"):
            repo.set_job_status(s, job_id=running, status="running")


def test_concurrent_submits_never_exceed_the_active_jobs_quota(
    session_factory: sessionmaker[Session],
) -> None:
    """30 submissions of one user at once, each in its own session and thread (as the API's worker threads
    run them), against max_active_jobs=3: counting the active jobs and inserting the new one are one atomic
    step, so exactly 3 are created and the other 27 are refused, with the idempotent replay still working."""
    import threading

    alice = _user(session_factory)
    bob = _user(session_factory, "bob")
    _job(session_factory, bob)  # another user's active job does not count against alice
    barrier = threading.Barrier(30)
    outcomes: list[str] = []
    lock = threading.Lock()

    def submit(i: int) -> None:
        barrier.wait()
        try:
            with session_scope(session_factory) as s:
                # What the API does first: the idempotency lookup reads before the quota is checked.
                repo.find_idempotent_job(s, owner_id=alice, key=f"k{i}", request_hash="h")
                repo.create_job(
                    s,
                    owner_id=alice,
                    name=f"j{i}",
                    spec={"name": f"j{i}"},
                    objective="sfo_to_target",
                    idempotency_key=f"k{i}",
                    request_hash="h",
                    max_active_jobs=3,
                )
            outcome = "created"
        except QuotaExceeded:
            outcome = "quota"
        except Exception as exc:  # anything else is a failure of the test, reported below
            outcome = f"{type(exc).__name__}: {exc}"
        with lock:
            outcomes.append(outcome)

    threads = [threading.Thread(target=submit, args=(i,)) for i in range(30)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert sorted(outcomes) == ["created"] * 3 + ["quota"] * 27, outcomes
    with session_scope(session_factory) as s:
        assert repo.count_active_jobs(s, owner_id=alice) == 3
        assert repo.count_active_jobs(s, owner_id=bob) == 1


def test_progress_setters_write_only_their_columns(session_factory: sessionmaker[Session]) -> None:
    alice = _user(session_factory)
    job_id = _job(session_factory, alice)
    with session_scope(session_factory) as s:
        job = repo.set_trials_total(s, job_id=job_id, trials_total=7)
        assert (job.trials_total, job.trials_finished, job.ray_job_id) == (7, 0, None)
        job = repo.set_ray_job(s, job_id=job_id, ray_job_id="raysubmit-1", dashboard_url="http://d/#/jobs/1")
        assert (job.ray_job_id, job.ray_dashboard_url, job.trials_total) == (
            "raysubmit-1",
            "http://d/#/jobs/1",
            7,
        )
        with pytest.raises(NotFound):
            repo.set_trials_total(s, job_id="0" * 32, trials_total=1)
