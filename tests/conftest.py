"""Shared fixtures: a migrated database on SQLite and on the real PostgreSQL through one parametrized fixture.

``db_url`` runs a test twice: on a fresh SQLite file (a copy of a migrated template) and on a PostgreSQL
database created for this test session on 127.0.0.1:5432 (user postgres), emptied before each test and
dropped at the end. When PostgreSQL is not answering, the postgresql case skips with the reason.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.postgres import fresh_pg_database, pg_unavailable_reason, set_pg_connections, truncate_all


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


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """URL of an empty, migrated database: SQLite file or the session's PostgreSQL database."""
    if request.param == "sqlite":
        template: Path = request.getfixturevalue("_sqlite_template")
        path = tmp_path / "schedsearch.db"
        shutil.copyfile(template, path)
        return f"sqlite:///{path}"
    url: str = request.getfixturevalue("_pg_session_db")
    truncate_all(url)
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
