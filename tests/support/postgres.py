"""The test PostgreSQL server on 127.0.0.1:5432 (user postgres, trust auth): whether it answers, databases
created and dropped per test session or test, and shutting a database's connections (an outage)."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

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


def truncate_all(url: str) -> None:
    """Empty every table of the database at ``url`` (ids start again at 1)."""
    from sqlalchemy import text

    from service.storage.db import make_engine
    from service.storage.models import Base

    engine = make_engine(url)
    names = ", ".join(f'"{t.name}"' for t in Base.metadata.sorted_tables)
    with engine.begin() as conn:
        conn.execute(text(f"TRUNCATE {names} RESTART IDENTITY CASCADE"))
    engine.dispose()
