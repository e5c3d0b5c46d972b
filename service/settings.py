"""Service settings: one pydantic-settings class, environment prefix ``SCHEDSEARCH_``.

Read through :func:`get_settings` (cached) so tests can build their own ``Settings`` and pass it to
``create_app(settings)`` or clear the cache; nothing here builds a settings object at import time.
The table of settings lives in ``docs/settings.md``.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

from pydantic import Field, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict


class Settings(BaseSettings):
    """Everything the service, the CLI and the dispatcher read from the environment."""

    model_config = SettingsConfigDict(env_prefix="SCHEDSEARCH_", extra="ignore")

    # Storage
    data_dir: Path = Field(
        default=Path(".schedsearch"), description="Directory for the SQLite file and plots."
    )
    database_url: str | None = Field(
        default=None,
        description="SQLAlchemy URL; None means sqlite:///<data_dir>/schedsearch.db. PostgreSQL: "
        "postgresql+psycopg://user@host/db (postgresql:// and postgres:// are read as that).",
    )
    data_root: Path | None = Field(
        default=None,
        description="Root of task data on the workers (same variable the workers read); a job's "
        "task.options.data_root must lie inside it, and is refused when this is unset.",
    )
    sqlite_busy_timeout_ms: int = Field(
        default=10_000, ge=0, description="SQLite busy timeout per connection."
    )
    # The API's worker thread pool has 40 threads; a connection pool at least that large means a request
    # never waits for a connection that another request holds while waiting for a thread.
    db_pool_size: int = Field(default=20, ge=1, le=1000, description="Pooled database connections kept open.")
    db_max_overflow: int = Field(
        default=30, ge=0, le=1000, description="Extra connections opened under load beyond the pool size."
    )
    max_inflight_requests: int = Field(
        default=32,
        ge=1,
        le=1000,
        description="Requests handled at once by one API process; keep <= db_pool_size + db_max_overflow.",
    )

    @field_validator("database_url")
    @classmethod
    def _psycopg_url(cls, url: str | None) -> str | None:
        """Plain ``postgresql://`` and ``postgres://`` URLs (what hosting providers and libpq hand out) use
        psycopg 3, the driver this project installs (SQLAlchemy's default for them is psycopg2). The one place
        a URL is normalised: everything reads it through ``resolved_database_url``."""
        for scheme in ("postgresql://", "postgres://"):
            if url is not None and url.startswith(scheme):
                return "postgresql+psycopg://" + url[len(scheme) :]
        return url

    @model_validator(mode="after")
    def _inflight_fits_pool(self) -> Settings:
        connections = self.db_pool_size + self.db_max_overflow
        if self.max_inflight_requests > connections:
            raise ValueError(
                f"max_inflight_requests must be <= db_pool_size + db_max_overflow = {connections}, got "
                f"max_inflight_requests={self.max_inflight_requests} (a request could wait for a connection "
                "held by a request waiting for a thread)"
            )
        return self

    # HTTP server
    host: str = "127.0.0.1"
    port: int = Field(default=8000, ge=0, le=65535)
    max_body_bytes: int = Field(default=1_000_000, ge=1024, description="Larger request bodies get 413.")
    log_level: str = "info"

    # Ray and the dispatcher
    ray_address: str | None = Field(default=None, description="Ray cluster address; None starts a local Ray.")
    ray_dashboard_url: str | None = Field(
        default=None, description="Dashboard the dispatcher submits Ray Jobs to (default: discovered)."
    )
    ray_dashboard_public_url: str | None = Field(
        default=None,
        description="Dashboard address users open, stored as each job's link (default: ray_dashboard_url).",
    )
    embedded_dispatcher: bool = Field(
        default=True, description="`serve` also runs the dispatcher in a background thread."
    )
    lease_seconds: float = Field(
        default=60.0, gt=0, description="A dispatcher's claim on a job expires after this."
    )

    # Quotas (per user / per job) and the submission rate limit
    max_active_jobs_per_user: int = Field(default=10, ge=1, description="Queued + running jobs per user.")
    max_trials_per_job: int = Field(default=500, ge=1, description="search.num_trials + baselines.")
    max_sfo_per_job: int = Field(
        default=10_000_000_000, ge=1, description="Upper bound for budget.total_sfo."
    )
    max_check_schedule_epochs: int = Field(
        default=300_000,
        ge=1,
        description="Checks a submission may cost: budget.max_epochs x (fixed schedules + 2 x searched "
        "candidates); beyond it 422 before any check runs.",
    )
    submit_rate_per_minute: float = Field(
        default=60.0, gt=0, description="Token-bucket refill rate for POST /v1/jobs per user."
    )
    submit_burst: int = Field(default=20, ge=1, description="Token-bucket size for POST /v1/jobs per user.")

    def resolved_database_url(self) -> str:
        """The SQLAlchemy URL to connect to (normalised: ``_psycopg_url``); the SQLite default lives under
        ``data_dir``."""
        if self.database_url:
            return self.database_url
        return f"sqlite:///{(self.data_dir / 'schedsearch.db').as_posix()}"


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """The process-wide settings, read from the environment once."""
    return Settings()
