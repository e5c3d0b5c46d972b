"""Repository: keyword-only functions over a ``Session`` for users, tokens, jobs, trials, metrics and events.

Contract (shared by the API and the dispatcher in ``workers``):

- functions flush, never commit; wrap a unit of work in ``service.storage.db.session_scope``;
- errors are the domain errors of ``service.errors`` (``NotFound``, ``Conflict``,
  ``InvalidTransition``, ``LeaseLost``, ``QuotaExceeded``), never HTTP types;
- status changes go through ``service.storage.states``; setting the current status again is a no-op, so a
  replayed worker update is harmless; status writes are compare-and-set on the row, so two writers cannot both
  win a transition;
- ``owner_id=None`` in readers means "no owner filter" (admins and workers); the API passes the caller's id
  for non-admins so another user's job is a ``NotFound``.

Dispatcher loop, for orientation::

    with session_scope(factory) as s:
        job = claim_job(s, owner=me, lease_seconds=60)          # None when nothing to do
    ...
    with session_scope(factory) as s:
        job = heartbeat(s, job_id=job.id, owner=me, lease_seconds=60)   # LeaseLost if another took it
        if job.status == "cancelling": ...                          # or is_cancel_requested(s, job_id=...)
        trial = upsert_trial(s, job_id=job.id, trial_key="tune-0001", config=cfg)
        set_trial_status(s, trial_id=trial.id, status="running", node_id=node)
        append_metrics(s, trial_id=trial.id, records=[record_dict, ...])    # replays are ignored
        set_trial_status(s, trial_id=trial.id, status="succeeded", summary=summary_dict)
        refresh_job_progress(s, job_id=job.id)
    with session_scope(factory) as s:
        set_job_status(s, job_id=job.id, status="succeeded", summary=report, owner=me)
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Select, and_, case, func, or_, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session
from sqlalchemy.sql.elements import ColumnElement

from service.errors import Conflict, LeaseLost, NotFound, QuotaExceeded
from service.objectives import OBJECTIVES, is_better, objective_value
from service.storage.models import ApiToken, Job, JobEvent, Trial, TrialMetric, User, utcnow
from service.storage.states import (
    JOB_COUNTS_AGAINST_QUOTA,
    JOB_TERMINAL,
    TRIAL_TERMINAL,
    JobStatus,
    TrialStatus,
    check_job_transition,
    check_trial_transition,
)


class _Unset:
    def __repr__(self) -> str:
        return "UNSET"


UNSET: Any = _Unset()
"""Marks "leave this column as it is" where None is a meaningful value."""


def _insert(session: Session, table: Any) -> Any:
    """A dialect insert that supports ``on_conflict_do_nothing`` on both backends."""
    return (postgresql.insert if session.get_bind().dialect.name == "postgresql" else sqlite.insert)(table)


def _page(session: Session, stmt: Select[Any], *, limit: int, offset: int) -> tuple[list[Any], int]:
    total = session.scalar(select(func.count()).select_from(stmt.order_by(None).subquery())) or 0
    rows = list(session.scalars(stmt.limit(limit).offset(offset)))
    return rows, int(total)


# --------------------------------------------------------------------------- users and tokens


def create_user(session: Session, *, name: str, is_admin: bool = False) -> User:
    """Create a user; ``Conflict`` if the name is taken."""
    if session.scalar(select(User).where(User.name == name)) is not None:
        raise Conflict(f"user {name!r} already exists")
    user = User(name=name, is_admin=is_admin)
    session.add(user)
    session.flush()
    return user


def get_or_create_user(session: Session, *, name: str, is_admin: bool | None = None) -> User:
    """The user called ``name``, created if missing; ``is_admin`` (when given) is applied to it."""
    user = session.scalar(select(User).where(User.name == name))
    if user is None:
        user = User(name=name, is_admin=bool(is_admin))
        session.add(user)
    elif is_admin is not None:
        user.is_admin = is_admin
    session.flush()
    return user


def add_token(session: Session, *, user_id: int, token_hash: str, prefix: str) -> ApiToken:
    """Store a token's sha256 hex digest (the plaintext never reaches the database)."""
    token = ApiToken(user_id=user_id, token_hash=token_hash, prefix=prefix)
    session.add(token)
    session.flush()
    return token


def find_token(session: Session, *, token_hash: str) -> ApiToken | None:
    """The unrevoked token with this digest, with its user loaded; None if unknown."""
    return session.scalar(
        select(ApiToken).where(ApiToken.token_hash == token_hash, ApiToken.revoked_at.is_(None))
    )


# --------------------------------------------------------------------------- jobs: submission and reads


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


# --------------------------------------------------------------------------- jobs: state changes


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


def update_job_progress(
    session: Session,
    *,
    job_id: str,
    trials_total: int = UNSET,
    trials_finished: int = UNSET,
    sfo_spent: int = UNSET,
    best_trial_id: int | None = UNSET,
    best_value: float | None = UNSET,
    summary: Mapping[str, Any] | None = UNSET,
    ray_dashboard_url: str | None = UNSET,
    ray_job_id: str | None = UNSET,
) -> Job:
    """Set any of the progress columns; arguments left out are not touched."""
    job = get_job(session, job_id=job_id)
    given = {
        "trials_total": trials_total,
        "trials_finished": trials_finished,
        "sfo_spent": sfo_spent,
        "best_trial_id": best_trial_id,
        "best_value": best_value,
        "summary": dict(summary) if isinstance(summary, Mapping) else summary,
        "ray_dashboard_url": ray_dashboard_url,
        "ray_job_id": ray_job_id,
    }
    for key, value in given.items():
        if value is not UNSET:
            setattr(job, key, value)
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


# --------------------------------------------------------------------------- events


def add_job_event(
    session: Session, *, job_id: str, kind: str, message: str = "", data: Mapping[str, Any] | None = None
) -> JobEvent:
    event = JobEvent(job_id=job_id, kind=kind, message=message, data=dict(data) if data is not None else None)
    session.add(event)
    session.flush()
    return event


def list_job_events(session: Session, *, job_id: str, limit: int = 100) -> list[JobEvent]:
    stmt = select(JobEvent).where(JobEvent.job_id == job_id).order_by(JobEvent.id).limit(limit)
    return list(session.scalars(stmt))


# --------------------------------------------------------------------------- trials and metrics


def upsert_trial(
    session: Session,
    *,
    job_id: str,
    trial_key: str,
    config: Mapping[str, Any],
    kind: str = "search",
    name: str | None = None,
) -> Trial:
    """The trial ``(job_id, trial_key)``, created pending if new; an existing row is returned unchanged."""
    session.execute(
        _insert(session, Trial.__table__)
        .values(
            job_id=job_id,
            trial_key=trial_key,
            kind=kind,
            name=name,
            config=dict(config),
            status=TrialStatus.PENDING.value,
            sfo=0,
            epochs=0,
            created_at=utcnow(),
            updated_at=utcnow(),
        )
        .on_conflict_do_nothing(index_elements=["job_id", "trial_key"])
    )
    trial = session.scalar(
        select(Trial)
        .where(Trial.job_id == job_id, Trial.trial_key == trial_key)
        .execution_options(populate_existing=True)
    )
    assert trial is not None
    return trial


def get_trial(session: Session, *, job_id: str, trial_id: int) -> Trial:
    trial = session.get(Trial, trial_id)
    if trial is None or trial.job_id != job_id:
        raise NotFound(f"trial {trial_id} of job {job_id} not found")
    return trial


def get_trial_by_key(session: Session, *, job_id: str, trial_key: str) -> Trial:
    trial = session.scalar(select(Trial).where(Trial.job_id == job_id, Trial.trial_key == trial_key))
    if trial is None:
        raise NotFound(f"trial {trial_key!r} of job {job_id} not found")
    return trial


def set_trial_status(
    session: Session,
    *,
    trial_id: int,
    status: TrialStatus | str,
    summary: Mapping[str, Any] | None = UNSET,
    objective: float | None = UNSET,
    error: str | None = UNSET,
    node_id: str | None = UNSET,
) -> Trial:
    """Move a trial through the transition table and record its summary/error/node.

    Without an explicit ``objective``, it is read from ``summary`` with the job's objective
    (``service.objectives``). Re-sending the current status only updates the given fields.
    """
    trial = session.get(Trial, trial_id)
    if trial is None:
        raise NotFound(f"trial {trial_id} not found")
    target = TrialStatus(status)
    changed = check_trial_transition(trial.status, target)
    now = utcnow()
    if changed:
        trial.status = target.value
        if target == TrialStatus.RUNNING and trial.started_at is None:
            trial.started_at = now
        if target in TRIAL_TERMINAL:
            trial.finished_at = now
    if summary is not UNSET:
        trial.summary = dict(summary) if summary is not None else None
        if objective is UNSET:
            job_objective = session.scalar(select(Job.objective).where(Job.id == trial.job_id))
            trial.objective = objective_value(job_objective or "sfo_to_target", summary)
    if objective is not UNSET:
        trial.objective = objective
    if error is not UNSET:
        trial.error = error
    if node_id is not UNSET:
        trial.node_id = node_id
    trial.updated_at = now
    session.flush()
    return trial


def finish_unfinished_trials(
    session: Session, *, job_id: str, status: TrialStatus | str = TrialStatus.CANCELLED
) -> int:
    """Move every pending/running trial of the job to ``status`` (cancelled by default); returns the count."""
    target = TrialStatus(status)
    if target not in TRIAL_TERMINAL:
        raise ValueError(f"status must be a terminal trial status {sorted(s.value for s in TRIAL_TERMINAL)}")
    result = session.execute(
        update(Trial)
        .where(
            Trial.job_id == job_id, Trial.status.in_([TrialStatus.PENDING.value, TrialStatus.RUNNING.value])
        )
        .values(status=target.value, finished_at=utcnow(), updated_at=utcnow())
        .execution_options(synchronize_session="fetch")
    )
    return int(getattr(result, "rowcount", 0) or 0)


def append_metrics(session: Session, *, trial_id: int, records: Sequence[Mapping[str, Any]]) -> int:
    """Insert per-epoch records (each needs ``epoch`` and ``sfo``); returns how many were new.

    A record whose (trial_id, epoch) already exists is ignored, so replaying a batch is safe. The trial's
    ``sfo`` and ``epochs`` columns are raised to the largest values seen.
    """
    if not records:
        return 0
    rows: list[dict[str, Any]] = []
    max_sfo = max_epoch = 0
    for record in records:
        if "epoch" not in record or "sfo" not in record:
            raise ValueError(f"a metric record needs 'epoch' and 'sfo', got keys {sorted(record)}")
        grad_norm = record.get("grad_norm")
        max_sfo = max(max_sfo, int(record["sfo"]))
        max_epoch = max(max_epoch, int(record["epoch"]))
        rows.append(
            {
                "trial_id": trial_id,
                "epoch": int(record["epoch"]),
                "sfo": int(record["sfo"]),
                "grad_norm": float(grad_norm) if grad_norm is not None else None,
                "record": _finite_json(dict(record)),
                "created_at": utcnow(),
            }
        )
    result = session.execute(
        _insert(session, TrialMetric.__table__)
        .values(rows)
        .on_conflict_do_nothing(index_elements=["trial_id", "epoch"])
        # RETURNING counts the rows really inserted; rowcount is -1 for batched inserts on psycopg.
        .returning(TrialMetric.__table__.c.epoch)
    )
    inserted = len(result.all())
    trial = session.get(Trial, trial_id)
    if trial is None:
        raise NotFound(f"trial {trial_id} not found")
    trial.sfo = max(int(trial.sfo or 0), max_sfo)
    trial.epochs = max(int(trial.epochs or 0), max_epoch)
    session.flush()
    return inserted


def _finite_json(value: Any) -> Any:
    # A diverged epoch carries NaN/inf; PostgreSQL's JSON type rejects those tokens (the whole insert would
    # fail), so they are stored as null, as EpochRecord.to_json does.
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, Mapping):
        return {k: _finite_json(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_finite_json(v) for v in value]
    return value


def list_trials(
    session: Session,
    *,
    job_id: str,
    status: Sequence[str] | None = None,
    kind: str | None = None,
    sort: str = "objective",
    descending: bool | None = None,
    limit: int = 100,
    offset: int = 0,
) -> tuple[list[Trial], int]:
    """Trials of a job with the total count. ``sort``: ``objective`` (best first by the job's objective
    unless ``descending`` says otherwise; trials without a value last), ``created``, or ``sfo``."""
    stmt = select(Trial).where(Trial.job_id == job_id)
    if status:
        stmt = stmt.where(Trial.status.in_([TrialStatus(s).value for s in status]))
    if kind is not None:
        stmt = stmt.where(Trial.kind == kind)
    if sort == "objective":
        if descending is None:
            job_objective = session.scalar(select(Job.objective).where(Job.id == job_id)) or "sfo_to_target"
            descending = OBJECTIVES[job_objective][1] == "max"
        key = Trial.objective.desc() if descending else Trial.objective.asc()
        stmt = stmt.order_by(Trial.objective.is_(None), key, Trial.id)
    elif sort == "created":
        stmt = stmt.order_by(Trial.id.desc() if descending else Trial.id)
    elif sort == "sfo":
        stmt = stmt.order_by(Trial.sfo.desc() if descending else Trial.sfo.asc(), Trial.id)
    else:
        raise ValueError(f"sort must be one of objective, created, sfo; got {sort!r}")
    return _page(session, stmt, limit=limit, offset=offset)


def list_metrics(session: Session, *, trial_id: int) -> list[TrialMetric]:
    """The per-epoch curve of one trial, by epoch."""
    stmt = select(TrialMetric).where(TrialMetric.trial_id == trial_id).order_by(TrialMetric.epoch)
    return list(session.scalars(stmt))


def metrics_for_trials(session: Session, *, trial_ids: Sequence[int]) -> dict[int, list[TrialMetric]]:
    """Curves of several trials in one query (report and plot)."""
    out: dict[int, list[TrialMetric]] = {tid: [] for tid in trial_ids}
    if not trial_ids:
        return out
    stmt = (
        select(TrialMetric)
        .where(TrialMetric.trial_id.in_(list(trial_ids)))
        .order_by(TrialMetric.trial_id, TrialMetric.epoch)
    )
    for metric in session.scalars(stmt):
        out[metric.trial_id].append(metric)
    return out
