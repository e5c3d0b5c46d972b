"""The dispatchers' lease protocol (``service/storage/repository/leases.py``).

The same tests on SQLite and PostgreSQL (``db_url`` is parametrized)."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy.orm import Session, sessionmaker

from service.errors import LeaseLost
from service.storage import repository as repo
from service.storage.db import session_scope
from service.storage.models import utcnow
from tests.support.storage import add_job as _job
from tests.support.storage import add_user as _user


def test_claim_heartbeat_and_lease_expiry(session_factory: sessionmaker[Session]) -> None:
    alice = _user(session_factory)
    job_id = _job(session_factory, alice)
    with session_scope(session_factory) as s:
        job = repo.claim_job(s, owner="d1", lease_seconds=30)
        assert job is not None and (job.id, job.status, job.lease_owner, job.attempts) == (
            job_id,
            "running",
            "d1",
            1,
        )
    with session_scope(session_factory) as s:
        assert repo.claim_job(s, owner="d2", lease_seconds=30) is None  # lease still held
        repo.heartbeat(s, job_id=job_id, owner="d1", lease_seconds=30)
        with pytest.raises(LeaseLost):
            repo.heartbeat(s, job_id=job_id, owner="d2", lease_seconds=30)
    later = utcnow() + timedelta(seconds=120)
    with session_scope(session_factory) as s:
        taken = repo.claim_job(s, owner="d2", lease_seconds=30, now=later)  # d1's lease expired
        assert taken is not None and (taken.status, taken.lease_owner, taken.attempts) == ("running", "d2", 2)
    with session_scope(session_factory) as s, pytest.raises(LeaseLost):
        repo.set_job_status(s, job_id=job_id, status="succeeded", owner="d1")
    with session_scope(session_factory) as s:
        done = repo.set_job_status(s, job_id=job_id, status="succeeded", owner="d2", summary={"best": 1})
        assert (done.status, done.lease_owner, done.summary, done.finished_at is not None) == (
            "succeeded",
            None,
            {"best": 1},
            True,
        )


def test_two_claimers_never_get_the_same_job(session_factory: sessionmaker[Session]) -> None:
    alice = _user(session_factory)
    _job(session_factory, alice)
    s1, s2 = session_factory(), session_factory()
    try:
        first = repo.claim_job(s1, owner="d1", lease_seconds=30)
        s1.commit()
        second = repo.claim_job(s2, owner="d2", lease_seconds=30)
        s2.commit()
        assert first is not None and second is None
    finally:
        s1.close()
        s2.close()


def test_concurrent_dispatchers_claim_each_job_once(session_factory: sessionmaker[Session]) -> None:
    import threading

    alice = _user(session_factory)
    jobs = {_job(session_factory, alice, name=f"j{i}") for i in range(6)}
    claimed: dict[str, list[str]] = {"d1": [], "d2": [], "d3": []}
    barrier = threading.Barrier(len(claimed))

    def dispatcher(owner: str) -> None:
        barrier.wait()
        while True:
            with session_scope(session_factory) as s:
                job = repo.claim_job(s, owner=owner, lease_seconds=60)
            if job is None:
                return
            claimed[owner].append(job.id)

    threads = [threading.Thread(target=dispatcher, args=(owner,)) for owner in claimed]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    every = [job_id for ids in claimed.values() for job_id in ids]
    assert sorted(every) == sorted(jobs)  # each job exactly once, none lost
