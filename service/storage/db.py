"""Engine and session helpers for SQLite (WAL, busy timeout, foreign keys) and PostgreSQL.

Repository functions only flush; a unit of work commits through :func:`session_scope`::

    engine = make_engine(settings=settings)
    factory = make_session_factory(engine)
    with session_scope(factory) as session:
        job = repository.claim_job(session, owner="dispatcher-1", lease_seconds=60)
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, create_engine, event
from sqlalchemy.engine import make_url
from sqlalchemy.exc import InterfaceError, OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeoutError
from sqlalchemy.orm import Session, sessionmaker

from service.settings import Settings, get_settings

#: Exceptions that mean "the database is not reachable right now" (refused or dropped connections, a pool
#: timeout, a SQLite file locked past the busy timeout), as opposed to a bug in a query. The API answers them
#: with 503; the workers wait and retry (workers.outage).
DATABASE_FAULTS: tuple[type[Exception], ...] = (OperationalError, InterfaceError, PoolTimeoutError)


def is_database_fault(exc: BaseException) -> bool:
    return isinstance(exc, DATABASE_FAULTS)


def make_engine(url: str | None = None, *, settings: Settings | None = None) -> Engine:
    """An engine for ``url``, a SQLAlchemy URL (default: the settings' ``resolved_database_url()``); pool
    sizes and the SQLite busy timeout come from ``settings``. For SQLite it makes the parent directory and
    sets WAL, the busy timeout and foreign keys."""
    settings = settings or get_settings()
    url = url or settings.resolved_database_url()
    parsed = make_url(url)
    kwargs: dict[str, Any] = {}
    if parsed.database not in (None, "", ":memory:"):  # in-memory SQLite: a one-connection pool
        kwargs.update(pool_size=settings.db_pool_size, max_overflow=settings.db_max_overflow)
    if parsed.get_backend_name() == "sqlite":
        if parsed.database and parsed.database != ":memory:":
            Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
        # Threads share the engine (uvicorn worker threads, the embedded dispatcher).
        kwargs["connect_args"] = {
            "check_same_thread": False,
            "timeout": settings.sqlite_busy_timeout_ms / 1000,
        }
    else:
        kwargs["pool_pre_ping"] = True
    engine = create_engine(url, **kwargs)
    if parsed.get_backend_name() == "sqlite":
        busy_ms = settings.sqlite_busy_timeout_ms

        @event.listens_for(engine, "connect")
        def _sqlite_pragmas(dbapi_conn: Any, _record: Any) -> None:
            cursor = dbapi_conn.cursor()
            # WAL lets readers proceed while the dispatcher writes; the busy timeout makes writers wait
            # for the lock instead of failing at once.
            cursor.execute("PRAGMA journal_mode=WAL")
            cursor.execute(f"PRAGMA busy_timeout={int(busy_ms)}")
            cursor.execute("PRAGMA foreign_keys=ON")
            cursor.execute("PRAGMA synchronous=NORMAL")
            cursor.close()

    return engine


def make_session_factory(engine: Engine) -> sessionmaker[Session]:
    # Objects stay readable after commit: routes and workers return them after the unit of work ends.
    return sessionmaker(bind=engine, expire_on_commit=False)


@contextmanager
def session_scope(factory: sessionmaker[Session]) -> Iterator[Session]:
    """One unit of work: commit on success, roll back on any exception."""
    session = factory()
    try:
        yield session
        session.commit()
    except BaseException:
        session.rollback()
        raise
    finally:
        session.close()
