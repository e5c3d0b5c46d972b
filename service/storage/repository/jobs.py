"""Jobs: submission (idempotency, the per-user quota), reads, cancel requests, status changes and progress.

The lease protocol of the dispatchers is in ``leases``; a job's event log in ``events``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from sqlalchemy import func, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from service.errors import Conflict, LeaseLost, NotFound, QuotaExceeded
from service.objectives import OBJECTIVES, is_better
from service.storage.models import Job, Trial, User, utcnow
from service.storage.repository._common import UNSET, _page
from service.storage.repository.events import add_job_event
from service.storage.states import (
    JOB_COUNTS_AGAINST_QUOTA,
    JOB_TERMINAL,
    TRIAL_TERMINAL,
    JobStatus,
    check_job_transition,
)

# --------------------------------------------------------------------------- submission and reads


def count_active_jobs(session: Session, *, owner_id: int) -> int:
    """Queued, running and cancelling jobs of one user (the per-user quota counts these)."""
    stmt = select(func.count(Job.id)).where(
        Job.owner_id == owner_id, Job.status.in_([s.value for s in JOB_COUNTS_AGAINST_QUOTA])
    )
    return int(session.scalar(stmt) or 0)


def find_job_by_idempotency_key(session: Session, *, owner_id: int, key: str) -> Job | None:
    return session.scalar(select(Job).where(Job.owner_id == owner_id, Job.idempotency_key == key))


def find_idempotent_job(session: Session, *, owner_id: int, key: str, request_hash: str | None) -> Job | None:
    """The job stored under ``key`` if it was created from the same request; None if the key is unused;
    ``Conflict`` if the key was used with another request body."""
    existing = find_job_by_idempotency_key(session, owner_id=owner_id, key=key)
    return None if existing is None else _same_request(existing, key, request_hash)


def create_job(
    session: Session,
    *,
    owner_id: int,
    name: str,
    spec: Mapping[str, Any],
    objective: str,
    trials_total: int = 0,
    warnings: Sequence[Any] = (),
    idempotency_key: str | None = None,
    request_hash: str | None = None,
    max_active_jobs: int | None = None,
) -> tuple[Job, bool]:
    """Insert a queued job; returns ``(job, created)``.

    With ``idempotency_key``: the same key and the same ``request_hash`` return the stored job with
    ``created=False``; the same key with another hash is a ``Conflict``. ``max_active_jobs`` enforces the
    per-user quota (``QuotaExceeded``, retryable), checked after the idempotency lookup so a retry of an
    accepted request never trips it. With a quota, the user's submissions are serialized from here to the
    end of the transaction (``_lock_owner_submissions``): commit soon after.
    """
    if objective not in OBJECTIVES:
        raise ValueError(f"objective must be one of {sorted(OBJECTIVES)}, got {objective!r}")
    if max_active_jobs is not None:
        # Count and insert as one step: without the lock, concurrent submissions all count the same active
        # jobs and all insert (30 at once stored 12 on PostgreSQL, 8 on SQLite with a quota of 3). Taken
        # before the idempotency lookup, so a retry that waited here finds the job its first try stored.
        _lock_owner_submissions(session, owner_id=owner_id)
    if idempotency_key is not None:
        existing = find_job_by_idempotency_key(session, owner_id=owner_id, key=idempotency_key)
        if existing is not None:
            return _same_request(existing, idempotency_key, request_hash), False
    if max_active_jobs is not None:
        active = count_active_jobs(session, owner_id=owner_id)
        if active >= max_active_jobs:
            raise QuotaExceeded(
                f"max_active_jobs_per_user={max_active_jobs} reached: you have {active} queued or running "
                "jobs; wait for one to finish or cancel one",
                limit="max_active_jobs_per_user",
                value=max_active_jobs,
                retryable=True,
            )
    job = Job(
        owner_id=owner_id,
        name=name,
        spec=dict(spec),
        objective=objective,
        status=JobStatus.QUEUED.value,
        trials_total=trials_total,
        warnings=list(warnings),
        idempotency_key=idempotency_key,
        request_hash=request_hash,
    )
    try:
        # A savepoint, so a concurrent insert with the same key does not poison the caller's transaction.
        with session.begin_nested():
            session.add(job)
            session.flush()
    except IntegrityError:
        if idempotency_key is None:
            raise
        existing = find_job_by_idempotency_key(session, owner_id=owner_id, key=idempotency_key)
        if existing is None:
            raise
        return _same_request(existing, idempotency_key, request_hash), False
    add_job_event(session, job_id=job.id, kind="submitted", message=f"job {name!r} queued")
    return job, True


def _lock_owner_submissions(session: Session, *, owner_id: int) -> None:
    """Serialize one user's quota-checked submissions until the session's transaction ends.

    PostgreSQL: a row lock on the user (``SELECT ... FOR UPDATE``); other users' submissions, the users'
    reads and token checks are not blocked, and READ COMMITTED gives the count after the lock a fresh
    snapshot. SQLite: ``BEGIN IMMEDIATE`` takes the database's write lock now, before the count, instead of at
    the insert (the driver starts its implicit transaction only at the first write, so the count would run
    outside it); a transaction that has already written holds that lock anyway. Waiting for the lock is
    bounded by the busy timeout (SQLite) or the other submission's short transaction (PostgreSQL)."""
    if session.get_bind().dialect.name == "postgresql":
        session.execute(select(User.id).where(User.id == owner_id).with_for_update())
        return
    connection = session.connection()
    dbapi_connection: Any = connection.connection.dbapi_connection
    if not dbapi_connection.in_transaction:
        connection.exec_driver_sql("BEGIN IMMEDIATE")


def _same_request(existing: Job, key: str, request_hash: str | None) -> Job:
    if existing.request_hash != request_hash:
        raise Conflict(
            f"Idempotency-Key {key!r} was already used for job {existing.id} with a different request body; "
            "use a new key for a new job"
        )
    return existing


def get_job(session: Session, *, job_id: str, owner_id: int | None = None) -> Job:
    """The job, or ``NotFound``; with ``owner_id`` another user's job is also ``NotFound``."""
    # Ids are 32 hex digits; anything else cannot exist (and a NUL byte would be a PostgreSQL error).
    if len(job_id) != 32 or not all(c in "0123456789abcdef" for c in job_id):
        raise NotFound(f"job {job_id} not found")
    job = session.get(Job, job_id)
    if job is None or (owner_id is not None and job.owner_id != owner_id):
        raise NotFound(f"job {job_id} not found")
    return job


def list_jobs(
    session: Session,
    *,
    owner_id: int | None = None,
    status: Sequence[str] | None = None,
    limit: int = 50,
    offset: int = 0,
) -> tuple[list[Job], int]:
    """Jobs newest first, with the total count before paging."""
    stmt = select(Job)
    if owner_id is not None:
        stmt = stmt.where(Job.owner_id == owner_id)
    if status:
        stmt = stmt.where(Job.status.in_([JobStatus(s).value for s in status]))
    stmt = stmt.order_by(Job.created_at.desc(), Job.id.desc())
    return _page(session, stmt, limit=limit, offset=offset)


def count_jobs_by_status(session: Session) -> dict[str, int]:
    """All jobs grouped by status (for the Prometheus gauge)."""
    rows = session.execute(select(Job.status, func.count(Job.id)).group_by(Job.status))
    counts = {s.value: 0 for s in JobStatus}
    counts.update({status: int(n) for status, n in rows})
    return counts


# --------------------------------------------------------------------------- state changes


def _cas_job(session: Session, job: Job, target: JobStatus, **values: Any) -> bool:
    """Move ``job`` to ``target`` only if its row still has the status we read; False if someone else won."""
    result = session.execute(
        update(Job)
        .where(Job.id == job.id, Job.status == job.status)
        .values(status=target.value, updated_at=utcnow(), **values)
        .execution_options(synchronize_session=False)
    )
    session.refresh(job)
    return int(getattr(result, "rowcount", 0) or 0) == 1


def request_cancel(session: Session, *, job_id: str, owner_id: int | None = None) -> Job:
    """Ask to cancel: queued -> cancelled at once; running -> cancelling (the dispatcher finishes it).

    Cancelling an already cancelling or cancelled job is a no-op; a finished job is ``InvalidTransition``.
    """
    job = get_job(session, job_id=job_id, owner_id=owner_id)
    for _ in range(3):  # retried only when the dispatcher changed the row between our read and write
        current = JobStatus(job.status)
        if current in (JobStatus.CANCELLING, JobStatus.CANCELLED):
            return job
        now = utcnow()
        target = JobStatus.CANCELLED if current == JobStatus.QUEUED else JobStatus.CANCELLING
        check_job_transition(current, target)
        extra: dict[str, Any] = {"cancel_requested_at": now}
        if target == JobStatus.CANCELLED:
            extra.update(finished_at=now, lease_owner=None, lease_expires_at=None)
        if _cas_job(session, job, target, **extra):
            add_job_event(session, job_id=job.id, kind="cancel_requested", message=f"{current} -> {target}")
            return job
    raise Conflict(f"job {job_id} changed state while cancelling; retry")


def is_cancel_requested(session: Session, *, job_id: str) -> bool:
    """True once a cancel was asked for (status cancelling or cancelled)."""
    status = session.scalar(select(Job.status).where(Job.id == job_id))
    if status is None:
        raise NotFound(f"job {job_id} not found")
    return status in (JobStatus.CANCELLING.value, JobStatus.CANCELLED.value)


def set_job_status(
    session: Session,
    *,
    job_id: str,
    status: JobStatus | str,
    owner: str | None = None,
    error: str | None = UNSET,
    summary: Mapping[str, Any] | None = UNSET,
    message: str = "",
) -> Job:
    """Move a job through the transition table; a terminal status also records ``finished_at`` and drops
    the lease. With ``owner`` the caller must hold the lease (``LeaseLost`` otherwise)."""
    target = JobStatus(status)
    job = get_job(session, job_id=job_id)
    for _ in range(3):
        if owner is not None and job.lease_owner != owner:
            raise LeaseLost(f"job {job_id} is not leased by {owner!r}")
        extra: dict[str, Any] = {}
        if error is not UNSET:
            extra["error"] = error
        if summary is not UNSET:
            extra["summary"] = dict(summary) if summary is not None else None
        if not check_job_transition(job.status, target):
            if extra:
                for key, value in extra.items():
                    setattr(job, key, value)
                session.flush()
            return job
        if target in JOB_TERMINAL:
            extra.update(finished_at=utcnow(), lease_owner=None, lease_expires_at=None)
        previous = job.status
        if _cas_job(session, job, target, **extra):
            add_job_event(
                session,
                job_id=job_id,
                kind=f"status:{target.value}",
                message=message or f"{previous} -> {target}",
            )
            return job
    raise Conflict(f"job {job_id} changed state concurrently; retry")


def set_trials_total(session: Session, *, job_id: str, trials_total: int) -> Job:
    """How many trials the job will run (the driver's plan: searched trials plus baselines)."""
    job = get_job(session, job_id=job_id)
    job.trials_total = trials_total
    session.flush()
    return job


def set_ray_job(session: Session, *, job_id: str, ray_job_id: str, dashboard_url: str) -> Job:
    """The Ray Job that runs the job's driver and where its owner can watch it (the dispatcher, at submit)."""
    job = get_job(session, job_id=job_id)
    job.ray_job_id = ray_job_id
    job.ray_dashboard_url = dashboard_url
    session.flush()
    return job


def refresh_job_progress(session: Session, *, job_id: str) -> Job:
    """Recompute trials_finished, sfo_spent and the best trial from the trials table (idempotent).

    trials_total is raised to the number of trial rows if the rows outnumber it.
    """
    job = get_job(session, job_id=job_id)
    rows = session.execute(
        select(Trial.id, Trial.status, Trial.sfo, Trial.objective).where(Trial.job_id == job_id)
    )
    finished = 0
    spent = 0
    count = 0
    best_id: int | None = None
    best_value: float | None = None
    for trial_id, status, sfo, value in rows:
        count += 1
        spent += int(sfo or 0)
        finished += status in {s.value for s in TRIAL_TERMINAL}
        if value is not None and is_better(job.objective, float(value), best_value):
            best_id, best_value = trial_id, float(value)
    job.trials_finished = finished
    job.sfo_spent = spent
    job.trials_total = max(job.trials_total, count)
    job.best_trial_id = best_id
    job.best_value = best_value
    session.flush()
    return job
