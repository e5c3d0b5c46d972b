"""A job's append-only event log (submitted, claimed, status changes, driver events)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from service.storage.models import JobEvent


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
