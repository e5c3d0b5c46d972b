"""Trials of a job and their per-epoch metrics.

Writes are idempotent so a worker's replay is harmless: ``upsert_trial`` by ``(job_id, trial_key)``,
``append_metrics`` ignores an epoch already stored, ``set_trial_status`` to the current status only updates
the given fields.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from service.errors import NotFound
from service.objectives import OBJECTIVES, objective_value
from service.storage.models import Job, Trial, TrialMetric, utcnow
from service.storage.repository._common import UNSET, _insert, _page
from service.storage.states import TRIAL_TERMINAL, TrialStatus, check_trial_transition


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
