"""The workers' unit-of-work adapter over ``service.storage.repository``.

Each method is one transaction, so the Tune driver's callbacks and the dispatcher never hold a session
across Ray calls. Everything writes through the repository's idempotent functions (upsert by
``(job_id, trial_key)``, metrics ignored when ``(trial_id, epoch)`` exists, status transitions that are
no-ops when repeated), which is what makes replays after a restart harmless.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.orm import Session, sessionmaker

from service.settings import Settings
from service.storage import repository as repo
from service.storage.db import make_engine, make_session_factory, session_scope
from service.storage.models import Job, Trial
from service.storage.states import TRIAL_TERMINAL, JobStatus, TrialStatus


@dataclass
class TrialUpdate:
    """What the results callback accumulated for one trial since its last flush."""

    key: str
    records: list[dict[str, Any]] = field(default_factory=list)
    node_id: str | None = None
    status: str | None = None  # a terminal status to set after the records
    summary: Mapping[str, Any] | None = None
    error: str | None = None


class JobStore:
    def __init__(self, factory: sessionmaker[Session], job_id: str) -> None:
        self.factory = factory
        self.job_id = job_id
        self._ids: dict[str, int] = {}

    def __getstate__(self) -> dict[str, Any]:
        # Tune pickles the run config (callbacks included) into the experiment folder; the connection
        # (and the database URL inside it) must not travel there.
        return {"job_id": self.job_id, "factory": None, "_ids": {}}

    @classmethod
    def connect(cls, settings: Settings, job_id: str) -> JobStore:
        engine = make_engine(settings.resolved_database_url(), settings=settings)
        return cls(make_session_factory(engine), job_id)

    def close(self) -> None:
        bind = self.factory.kw.get("bind")
        if bind is not None:
            bind.dispose()

    # -- reading the job

    def job(self) -> Job:
        with session_scope(self.factory) as s:
            return repo.get_job(s, job_id=self.job_id)

    def cancel_requested(self) -> bool:
        with session_scope(self.factory) as s:
            return repo.is_cancel_requested(s, job_id=self.job_id)

    def trials(self) -> list[Trial]:
        with session_scope(self.factory) as s:
            return list(s.scalars(select(Trial).where(Trial.job_id == self.job_id).order_by(Trial.id)))

    # -- writing trials

    def start_trial(
        self, *, key: str, name: str, kind: str, config: Mapping[str, Any], node_id: str | None = None
    ) -> int:
        with session_scope(self.factory) as s:
            trial = repo.upsert_trial(
                s, job_id=self.job_id, trial_key=key, config=config, kind=kind, name=name
            )
            if trial.status == TrialStatus.PENDING.value:
                repo.set_trial_status(s, trial_id=trial.id, status=TrialStatus.RUNNING, node_id=node_id)
            self._ids[key] = trial.id
            return trial.id

    def write(self, updates: Sequence[TrialUpdate]) -> None:
        """Append metrics and apply final states for several trials in one transaction."""
        if not updates:
            return
        with session_scope(self.factory) as s:
            for u in updates:
                trial_id = self._ids.get(u.key)
                if trial_id is None:
                    trial_id = repo.get_trial_by_key(s, job_id=self.job_id, trial_key=u.key).id
                    self._ids[u.key] = trial_id
                if u.records:
                    repo.append_metrics(s, trial_id=trial_id, records=u.records)
                trial = s.get(Trial, trial_id)
                assert trial is not None
                if trial.status in {t.value for t in TRIAL_TERMINAL}:
                    continue  # a replay after a restart: the first ending wins
                kwargs: dict[str, Any] = {}
                if u.node_id is not None:
                    kwargs["node_id"] = u.node_id
                if u.status is None:
                    if kwargs:
                        repo.set_trial_status(s, trial_id=trial_id, status=trial.status, **kwargs)
                    continue
                if u.summary is not None:
                    kwargs["summary"] = u.summary
                if u.error is not None:
                    kwargs["error"] = u.error
                repo.set_trial_status(s, trial_id=trial_id, status=u.status, **kwargs)
            repo.refresh_job_progress(s, job_id=self.job_id)

    def finish_unfinished(self, status: TrialStatus, reason: str) -> int:
        with session_scope(self.factory) as s:
            ids = list(
                s.scalars(
                    select(Trial.id).where(
                        Trial.job_id == self.job_id,
                        Trial.status.in_([TrialStatus.PENDING.value, TrialStatus.RUNNING.value]),
                    )
                )
            )
            count = repo.finish_unfinished_trials(s, job_id=self.job_id, status=status)
            if ids:
                s.execute(update(Trial).where(Trial.id.in_(ids), Trial.error.is_(None)).values(error=reason))
            repo.refresh_job_progress(s, job_id=self.job_id)
            return count

    # -- the job

    def progress(self, **values: Any) -> None:
        with session_scope(self.factory) as s:
            repo.update_job_progress(s, job_id=self.job_id, **values)

    def event(self, kind: str, message: str, data: Mapping[str, Any] | None = None) -> None:
        with session_scope(self.factory) as s:
            repo.add_job_event(s, job_id=self.job_id, kind=kind, message=message, data=data)

    def mark_running(self) -> None:
        """queued -> running, for a driver started by hand rather than by a dispatcher's claim."""
        with session_scope(self.factory) as s:
            if repo.get_job(s, job_id=self.job_id).status == JobStatus.QUEUED.value:
                repo.set_job_status(s, job_id=self.job_id, status=JobStatus.RUNNING, message="driver started")

    def finish_job(
        self,
        status: JobStatus,
        *,
        summary: Mapping[str, Any] | None = None,
        error: str | None = None,
        message: str = "",
    ) -> Job:
        """Move the job to a terminal status (from running, or cancelled from cancelling)."""
        with session_scope(self.factory) as s:
            job = repo.get_job(s, job_id=self.job_id)
            current = JobStatus(job.status)
            if status == JobStatus.CANCELLED and current == JobStatus.RUNNING:
                repo.set_job_status(s, job_id=self.job_id, status=JobStatus.CANCELLING, message=message)
            kwargs: dict[str, Any] = {}
            if summary is not None:
                kwargs["summary"] = summary
            if error is not None:
                kwargs["error"] = error
            return repo.set_job_status(s, job_id=self.job_id, status=status, message=message, **kwargs)
