"""Repository contract: the same tests on SQLite and PostgreSQL (``db_url`` is parametrized)."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy.orm import Session, sessionmaker

from service.errors import Conflict, InvalidTransition, LeaseLost, NotFound, QuotaExceeded
from service.storage import repository as repo
from service.storage.db import session_scope
from service.storage.models import utcnow

SPEC: dict[str, Any] = {"name": "j", "objective": "sfo_to_target"}


def _user(factory: sessionmaker[Session], name: str = "alice", admin: bool = False) -> int:
    with session_scope(factory) as s:
        return repo.create_user(s, name=name, is_admin=admin).id


def _job(factory: sessionmaker[Session], owner_id: int, **kw: Any) -> str:
    with session_scope(factory) as s:
        job, created = repo.create_job(
            s,
            owner_id=owner_id,
            name=kw.pop("name", "j"),
            spec=SPEC,
            objective=kw.pop("objective", "sfo_to_target"),
            **kw,
        )
        assert created
        return job.id


def test_create_user_twice_is_conflict(session_factory: sessionmaker[Session]) -> None:
    _user(session_factory)
    with pytest.raises(Conflict, match="user 'alice' already exists"), session_scope(session_factory) as s:
        repo.create_user(s, name="alice")


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
