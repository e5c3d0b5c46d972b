"""SQLAlchemy 2 models: users, api_tokens, jobs, trials, trial_metrics, job_events.

The schema is created by the Alembic migrations in ``service/migrations``; a test checks that the migrations
and these models agree. Timestamps are timezone-aware UTC in Python on both databases (``UTCDateTime``).
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    DateTime,
    Dialect,
    Float,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship
from sqlalchemy.types import TypeDecorator

# Stable constraint names so migrations on SQLite (batch mode) and PostgreSQL name things the same way.
NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


def utcnow() -> datetime:
    return datetime.now(UTC)


def new_job_id() -> str:
    return uuid.uuid4().hex


class UTCDateTime(TypeDecorator[datetime]):
    """Aware UTC datetimes in Python; SQLite stores them naive (no time zones), PostgreSQL as timestamptz.

    Naive values are rejected on the way in, so a local-time bug cannot slip into lease comparisons.
    """

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError(f"naive datetime {value!r}; use an aware UTC datetime")
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)


class User(Base):
    __tablename__ = "users"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(64), unique=True)
    is_admin: Mapped[bool] = mapped_column(Boolean, default=False)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)

    tokens: Mapped[list[ApiToken]] = relationship(back_populates="user", cascade="all, delete-orphan")


class ApiToken(Base):
    """A bearer token; only its sha256 hex digest is stored."""

    __tablename__ = "api_tokens"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    # The first characters of the token, so a user can tell tokens apart without the secret.
    prefix: Mapped[str] = mapped_column(String(12))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)

    user: Mapped[User] = relationship(back_populates="tokens")


@dataclass(frozen=True)
class JobProgress:
    """How far a job is: trials finished of the total, SFO spent of the budget (``budget.total_sfo``)."""

    trials_total: int
    trials_finished: int
    sfo_spent: int
    sfo_budget: int | None


class Job(Base):
    __tablename__ = "jobs"
    __table_args__ = (
        UniqueConstraint("owner_id", "idempotency_key", name="uq_jobs_owner_id_idempotency_key"),
        Index("ix_jobs_status_created_at", "status", "created_at"),
    )

    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=new_job_id)
    owner_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    name: Mapped[str] = mapped_column(String(200))
    spec: Mapped[dict[str, Any]] = mapped_column(JSON)
    status: Mapped[str] = mapped_column(String(16), default="queued")
    objective: Mapped[str] = mapped_column(String(32))
    # Theory-check warnings computed at submission (fixed schedules only).
    warnings: Mapped[list[Any]] = mapped_column(JSON, default=list)

    idempotency_key: Mapped[str | None] = mapped_column(String(200), nullable=True)
    request_hash: Mapped[str | None] = mapped_column(String(64), nullable=True)

    # Progress, written by the dispatcher.
    trials_total: Mapped[int] = mapped_column(Integer, default=0)
    trials_finished: Mapped[int] = mapped_column(Integer, default=0)
    sfo_spent: Mapped[int] = mapped_column(BigInteger, default=0)
    best_trial_id: Mapped[int | None] = mapped_column(Integer, nullable=True)
    best_value: Mapped[float | None] = mapped_column(Float, nullable=True)
    summary: Mapped[dict[str, Any] | None] = mapped_column(JSON, nullable=True)
    error: Mapped[str | None] = mapped_column(Text, nullable=True)
    ray_dashboard_url: Mapped[str | None] = mapped_column(String(500), nullable=True)
    ray_job_id: Mapped[str | None] = mapped_column(String(200), nullable=True)

    # The dispatcher's lease: owner plus expiry, renewed by heartbeats.
    lease_owner: Mapped[str | None] = mapped_column(String(200), nullable=True)
    lease_expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    heartbeat_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    attempts: Mapped[int] = mapped_column(Integer, default=0)

    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)
    started_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    cancel_requested_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)

    trials: Mapped[list[Trial]] = relationship(back_populates="job", cascade="all, delete-orphan")
    events: Mapped[list[JobEvent]] = relationship(back_populates="job", cascade="all, delete-orphan")
    owner: Mapped[User] = relationship()
    # best_trial_id is not a foreign key (a trial row refers to its job already); read-only, and a plain
    # many-to-one on the primary key, so a trial already in the session is not read again.
    best_trial: Mapped[Trial | None] = relationship(
        primaryjoin="foreign(Job.best_trial_id) == Trial.id", viewonly=True
    )

    @property
    def owner_name(self) -> str:
        return self.owner.name

    @property
    def progress(self) -> JobProgress:
        budget = self.spec.get("budget") if isinstance(self.spec, dict) else None
        total_sfo = budget.get("total_sfo") if isinstance(budget, dict) else None
        return JobProgress(self.trials_total, self.trials_finished, self.sfo_spent, total_sfo)


class Trial(Base):
    __tablename__ = "trials"
    __table_args__ = (UniqueConstraint("job_id", "trial_key", name="uq_trials_job_id_trial_key"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    job_id: Mapped[str] = mapped_column(ForeignKey("jobs.id", ondelete="CASCADE"), index=True)
    # The worker's stable key (e.g. Tune trial id or "baseline:<name>"), so replays upsert, not duplicate.
    trial_key: Mapped[str] = mapped_column(String(200))
    kind: Mapped[str] = mapped_column(String(16), default="search")  # "search" | "baseline"
    name: Mapped[str | None] = mapped_column(String(200), nullable=True)
    config: Mapped[dict[str, Any]] = mapped_column(JSON)
    status: Mapped[str] = mapped_column(String(16), default="pending")
    summary: Mapped[dict[str, Any] | None] = mapped_column(JSON, nullable=True)
    objective: Mapped[float | None] = mapped_column(Float, nullable=True)
    sfo: Mapped[int] = mapped_column(BigInteger, default=0)
    epochs: Mapped[int] = mapped_column(Integer, default=0)
    node_id: Mapped[str | None] = mapped_column(String(200), nullable=True)
    error: Mapped[str | None] = mapped_column(Text, nullable=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)
    started_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)

    job: Mapped[Job] = relationship(back_populates="trials")


class TrialMetric(Base):
    """One per-epoch record (``schedules.metrics.EpochRecord`` as JSON); (trial_id, epoch) is unique."""

    __tablename__ = "trial_metrics"
    __table_args__ = (UniqueConstraint("trial_id", "epoch", name="uq_trial_metrics_trial_id_epoch"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    trial_id: Mapped[int] = mapped_column(ForeignKey("trials.id", ondelete="CASCADE"), index=True)
    epoch: Mapped[int] = mapped_column(Integer)
    sfo: Mapped[int] = mapped_column(BigInteger)
    grad_norm: Mapped[float | None] = mapped_column(Float, nullable=True)
    record: Mapped[dict[str, Any]] = mapped_column(JSON)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class JobEvent(Base):
    """An append-only log line for a job: submitted, claimed, cancel requested, finished, ..."""

    __tablename__ = "job_events"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    job_id: Mapped[str] = mapped_column(ForeignKey("jobs.id", ondelete="CASCADE"), index=True)
    kind: Mapped[str] = mapped_column(String(32))
    message: Mapped[str] = mapped_column(Text, default="")
    data: Mapped[dict[str, Any] | None] = mapped_column(JSON, nullable=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)

    job: Mapped[Job] = relationship(back_populates="events")
