"""Shared fixtures: a migrated database on SQLite and on the real PostgreSQL through one parametrized fixture.

``db_url`` runs a test twice: on a fresh SQLite file (a copy of a migrated template) and on a PostgreSQL
database created for this test session on 127.0.0.1:5432 (user postgres), emptied before each test and
dropped at the end. When PostgreSQL is not answering, the postgresql case skips with the reason.
"""

from __future__ import annotations

import os
import shutil
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

PG_HOST = os.environ.get("SCHEDSEARCH_TEST_PG_HOST", "127.0.0.1")
PG_PORT = int(os.environ.get("SCHEDSEARCH_TEST_PG_PORT", "5432"))
PG_USER = os.environ.get("SCHEDSEARCH_TEST_PG_USER", "postgres")


def pg_url(database: str) -> str:
    return f"postgresql+psycopg://{PG_USER}@{PG_HOST}:{PG_PORT}/{database}"


def _pg_admin_connect() -> object:
    import psycopg

    return psycopg.connect(
        host=PG_HOST, port=PG_PORT, user=PG_USER, dbname="postgres", autocommit=True, connect_timeout=3
    )


def pg_unavailable_reason() -> str | None:
    """None when PostgreSQL answers, otherwise why not (the skip reason)."""
    try:
        conn = _pg_admin_connect()
    except Exception as exc:  # any connection failure means "skip", with the reason shown
        return f"PostgreSQL is not answering on {PG_HOST}:{PG_PORT} as {PG_USER}: {exc}"
    conn.close()  # type: ignore[attr-defined]
    return None


@contextmanager
def fresh_pg_database(prefix: str = "schedsearch_test") -> Iterator[str]:
    """Create an empty PostgreSQL database, yield its URL, drop it afterwards."""
    name = f"{prefix}_{uuid.uuid4().hex[:10]}"
    conn = _pg_admin_connect()
    try:
        conn.execute(f'CREATE DATABASE "{name}"')  # type: ignore[attr-defined]
        yield pg_url(name)
    finally:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')  # type: ignore[attr-defined]
        conn.close()  # type: ignore[attr-defined]


def set_pg_connections(database: str, allowed: bool) -> None:
    """Let clients in, or shut the database: refuse new connections and end the open ones (what a database
    restart or a failover looks like to the API, the dispatcher and the drivers)."""
    conn: Any = _pg_admin_connect()
    try:
        conn.execute(f'ALTER DATABASE "{database}" ALLOW_CONNECTIONS {"true" if allowed else "false"}')
        if not allowed:
            conn.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = %s AND pid <> "
                "pg_backend_pid()",
                (database,),
            )
    finally:
        conn.close()


@pytest.fixture
def pg_outage_db() -> Iterator[str]:
    """A migrated PostgreSQL database of its own, whose connections a test may shut and reopen
    (``set_pg_connections``); reopened before it is dropped."""
    reason = pg_unavailable_reason()
    if reason is not None:
        pytest.skip(reason)
    from service.storage.db import make_engine
    from service.storage.migrate import upgrade

    with fresh_pg_database("schedsearch_outage") as url:
        engine = make_engine(url)
        upgrade(engine)
        engine.dispose()
        yield url
        set_pg_connections(url.rsplit("/", 1)[1], True)


@pytest.fixture(scope="session")
def _pg_session_db() -> Iterator[str]:
    reason = pg_unavailable_reason()
    if reason is not None:
        pytest.skip(reason)
    from service.storage.db import make_engine
    from service.storage.migrate import upgrade

    with fresh_pg_database() as url:
        engine = make_engine(url)
        upgrade(engine)
        engine.dispose()
        yield url


@pytest.fixture(scope="session")
def _sqlite_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from service.storage.db import make_engine
    from service.storage.migrate import upgrade

    path = tmp_path_factory.mktemp("sqlite-template") / "template.db"
    engine = make_engine(f"sqlite:///{path}")
    upgrade(engine)
    with engine.connect() as conn:
        # Fold the WAL into the main file so a plain file copy is complete.
        conn.exec_driver_sql("PRAGMA wal_checkpoint(TRUNCATE)")
    engine.dispose()
    return path


def _truncate_all(url: str) -> None:
    from sqlalchemy import text

    from service.storage.db import make_engine
    from service.storage.models import Base

    engine = make_engine(url)
    names = ", ".join(f'"{t.name}"' for t in Base.metadata.sorted_tables)
    with engine.begin() as conn:
        conn.execute(text(f"TRUNCATE {names} RESTART IDENTITY CASCADE"))
    engine.dispose()


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """URL of an empty, migrated database: SQLite file or the session's PostgreSQL database."""
    if request.param == "sqlite":
        template: Path = request.getfixturevalue("_sqlite_template")
        path = tmp_path / "schedsearch.db"
        shutil.copyfile(template, path)
        return f"sqlite:///{path}"
    url: str = request.getfixturevalue("_pg_session_db")
    _truncate_all(url)
    return url


@pytest.fixture
def settings(db_url: str, tmp_path: Path) -> object:
    """Settings pointing at ``db_url`` with the embedded dispatcher off."""
    from service.settings import Settings

    return Settings(database_url=db_url, data_dir=tmp_path / "data", embedded_dispatcher=False)


@pytest.fixture
def session_factory(db_url: str, settings: object) -> Iterator[object]:
    from service.storage.db import make_engine, make_session_factory

    engine = make_engine(db_url, settings=settings)  # type: ignore[arg-type]
    yield make_session_factory(engine)
    engine.dispose()
