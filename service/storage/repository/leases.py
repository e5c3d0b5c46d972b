"""The dispatchers' lease protocol on jobs, apart from the rest of the job's life (as Optuna keeps its
heartbeat protocol apart from its storage): ``claim_job`` takes a job for one dispatcher until its lease
expires, ``heartbeat`` extends it (``LeaseLost`` once another dispatcher holds it), ``release_job`` gives it
up. A job whose lease expired is claimable again: that is how a dead dispatcher's jobs are taken over.
``set_job_status(owner=...)`` (``jobs``) checks the lease before a dispatcher changes a job's status.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy import and_, case, func, or_, select, update
from sqlalchemy.orm import Session
from sqlalchemy.sql.elements import ColumnElement

from service.errors import LeaseLost
from service.storage.models import Job, utcnow
from service.storage.repository.events import add_job_event
from service.storage.repository.jobs import get_job
from service.storage.states import JobStatus


def _claimable(now: datetime) -> ColumnElement[bool]:
    lease_free = or_(Job.lease_owner.is_(None), Job.lease_expires_at.is_(None), Job.lease_expires_at < now)
    # A running or cancelling job whose lease expired lost its dispatcher: another may take it over.
    return or_(
        and_(Job.status == JobStatus.QUEUED.value, lease_free),
        and_(Job.status.in_([JobStatus.RUNNING.value, JobStatus.CANCELLING.value]), lease_free),
    )


def claim_job(
    session: Session,
    *,
    owner: str,
    lease_seconds: float,
    now: datetime | None = None,
    job_id: str | None = None,
) -> Job | None:
    """Atomically take the oldest claimable job for dispatcher ``owner``, or None.

    Claimable: queued, or running/cancelling with an expired lease (its dispatcher died). A queued job
    becomes running. On PostgreSQL candidates are read ``FOR UPDATE SKIP LOCKED`` so concurrent dispatchers
    skip each other's rows; on both backends the claim itself is a conditional UPDATE (lease free) whose row
    count decides the winner, which is what makes SQLite (one writer at a time) safe too. Commit soon after.
    """
    now = now or utcnow()
    claimable = _claimable(now)
    stmt = select(Job.id).where(claimable).order_by(Job.created_at, Job.id).limit(10)
    if job_id is not None:
        stmt = stmt.where(Job.id == job_id)
    if session.get_bind().dialect.name == "postgresql":
        stmt = stmt.with_for_update(skip_locked=True)
    for candidate in list(session.scalars(stmt)):
        result = session.execute(
            update(Job)
            .where(Job.id == candidate, claimable)
            .values(
                status=case(
                    (Job.status == JobStatus.QUEUED.value, JobStatus.RUNNING.value), else_=Job.status
                ),
                started_at=func.coalesce(Job.started_at, now),
                lease_owner=owner,
                lease_expires_at=now + timedelta(seconds=lease_seconds),
                heartbeat_at=now,
                attempts=Job.attempts + 1,
                updated_at=now,
            )
            .execution_options(synchronize_session=False)
        )
        if int(getattr(result, "rowcount", 0) or 0) == 1:
            job = session.get(Job, candidate, populate_existing=True)
            assert job is not None
            add_job_event(
                session,
                job_id=job.id,
                kind="claimed",
                message=f"claimed by {owner}",
                data={"attempt": job.attempts},
            )
            return job
    return None


def heartbeat(
    session: Session, *, job_id: str, owner: str, lease_seconds: float, now: datetime | None = None
) -> Job:
    """Extend ``owner``'s lease on the job and return it (read ``status`` to see a cancel request).

    ``LeaseLost`` if the job's lease belongs to someone else (it expired and was claimed again) or the job is
    already finished.
    """
    now = now or utcnow()
    result = session.execute(
        update(Job)
        .where(Job.id == job_id, Job.lease_owner == owner)
        .values(lease_expires_at=now + timedelta(seconds=lease_seconds), heartbeat_at=now)
        .execution_options(synchronize_session=False)
    )
    if int(getattr(result, "rowcount", 0) or 0) != 1:
        get_job(session, job_id=job_id)  # NotFound first, if that is the reason
        raise LeaseLost(f"job {job_id} is not leased by {owner!r}")
    job = session.get(Job, job_id, populate_existing=True)
    assert job is not None
    return job


def release_job(session: Session, *, job_id: str, owner: str) -> None:
    """Give up the lease without changing the status (a clean dispatcher shutdown); no-op if not ours."""
    session.execute(
        update(Job)
        .where(Job.id == job_id, Job.lease_owner == owner)
        .values(lease_owner=None, lease_expires_at=None)
        .execution_options(synchronize_session="fetch")
    )
