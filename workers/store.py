"""The workers' unit-of-work adapter over ``service.storage.repository``.

Each method is one transaction, so the Tune driver's callbacks and the dispatcher never hold a session
across Ray calls; the driver's store retries a transaction through a database outage of up to the lease
(``JobStore.connect``, ``workers.outage``). Everything writes through the repository's idempotent functions
(upsert by ``(job_id, trial_key)``, metrics ignored when ``(trial_id, epoch)`` exists, status transitions
that are no-ops when repeated), which is what makes replays after a restart, or a retry, harmless.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, TypeVar

from sqlalchemy import select, update
from sqlalchemy.orm import Session, sessionmaker

from service.settings import Settings
from service.storage import repository as repo
from service.storage.db import make_engine, make_session_factory, session_scope
from service.storage.models import Job, Trial
from service.storage.states import TRIAL_TERMINAL, JobStatus, TrialStatus
from workers.outage import OutageLog, with_retries

logger = logging.getLogger(__name__)
T = TypeVar("T")


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
    """The driver's and the dispatcher's unit-of-work adapter; ``retry_s`` > 0 makes each unit of work wait
    out a database outage of up to that many seconds (``workers.outage``), which the driver sets to the
    lease: an outage shorter than the lease neither loses a result nor ends the driver."""

    def __init__(self, factory: sessionmaker[Session], job_id: str, *, retry_s: float = 0.0) -> None:
        self.factory = factory
        self.job_id = job_id
        self.retry_s = retry_s
        self._ids: dict[str, int] = {}
        self._outage_log: OutageLog | None = None

    def __getstate__(self) -> dict[str, Any]:
        # Tune pickles the run config (callbacks included) into the experiment folder; the connection
        # (and the database URL inside it) must not travel there.
        return {
            "job_id": self.job_id,
            "factory": None,
            "_ids": {},
            "retry_s": self.retry_s,
            "_outage_log": None,
        }

    @classmethod
    def connect(cls, settings: Settings, job_id: str) -> JobStore:
        engine = make_engine(settings=settings)
        return cls(make_session_factory(engine), job_id, retry_s=settings.lease_seconds)

    def close(self) -> None:
        bind = self.factory.kw.get("bind")
        if bind is not None:
            bind.dispose()

    def retrying(self, work: Callable[[], T]) -> T:
        """``work()`` retried through a database outage of up to ``retry_s`` seconds (none when 0), logged
        once per outage; the driver's Optuna calls go through it too, so one outage is one pair of lines."""
        if self.retry_s <= 0:
            return work()
        if self._outage_log is None:
            waiting = f"writes wait for it for up to {self.retry_s:g} s"
            self._outage_log = OutageLog(logger, prefix=f"job {self.job_id}: ", waiting=waiting)
        return with_retries(work, window_s=self.retry_s, outage=self._outage_log)

    def _unit(self, work: Callable[[Session], T]) -> T:
        """``work`` in one transaction, retried through a database outage (``retrying``)."""

        def once() -> T:
            with session_scope(self.factory) as s:
                return work(s)

        return self.retrying(once)

    # -- reading the job

    def job(self) -> Job:
        return self._unit(lambda s: repo.get_job(s, job_id=self.job_id))

    def cancel_requested(self) -> bool:
        return self._unit(lambda s: repo.is_cancel_requested(s, job_id=self.job_id))

    def trials(self) -> list[Trial]:
        return self._unit(
            lambda s: list(s.scalars(select(Trial).where(Trial.job_id == self.job_id).order_by(Trial.id)))
        )

    # -- writing trials

    def start_trial(
        self, *, key: str, name: str, kind: str, config: Mapping[str, Any], node_id: str | None = None
    ) -> int:
        def work(s: Session) -> int:
            trial = repo.upsert_trial(
                s, job_id=self.job_id, trial_key=key, config=config, kind=kind, name=name
            )
            if trial.status == TrialStatus.PENDING.value:
                repo.set_trial_status(s, trial_id=trial.id, status=TrialStatus.RUNNING, node_id=node_id)
            self._ids[key] = trial.id
            return trial.id

        return self._unit(work)

    def write(self, updates: Sequence[TrialUpdate]) -> None:
        """Append metrics and apply final states for several trials in one transaction."""
        if not updates:
            return

        def work(s: Session) -> None:
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

        self._unit(work)

    def finish_unfinished(self, status: TrialStatus, reason: str) -> int:
        def work(s: Session) -> int:
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

        return self._unit(work)

    # -- the job

    def progress(self, *, trials_total: int) -> None:
        """The job's planned number of trials (its progress is then refreshed from the trial rows)."""
        self._unit(lambda s: repo.set_trials_total(s, job_id=self.job_id, trials_total=trials_total))

    def event(self, kind: str, message: str, data: Mapping[str, Any] | None = None) -> None:
        self._unit(lambda s: repo.add_job_event(s, job_id=self.job_id, kind=kind, message=message, data=data))

    def mark_running(self) -> None:
        """queued -> running, for a driver started by hand rather than by a dispatcher's claim."""

        def work(s: Session) -> None:
            if repo.get_job(s, job_id=self.job_id).status == JobStatus.QUEUED.value:
                repo.set_job_status(s, job_id=self.job_id, status=JobStatus.RUNNING, message="driver started")

        self._unit(work)

    def finish_job(
        self,
        status: JobStatus,
        *,
        summary: Mapping[str, Any] | None = None,
        error: str | None = None,
        message: str = "",
    ) -> Job:
        """Move the job to a terminal status (from running, or cancelled from cancelling)."""

        def work(s: Session) -> Job:
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

        return self._unit(work)
