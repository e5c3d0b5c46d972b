"""Rows for the storage tests (a user and a queued job, each committed in its own unit of work) and the row
counts of every table (a refused request must leave them unchanged)."""

from __future__ import annotations

from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from service.storage import repository as repo
from service.storage.db import session_scope
from service.storage.models import Base

#: The stored spec of ``add_job``'s jobs: the repository stores a spec as given (the API validates it).
SPEC: dict[str, Any] = {"name": "j", "objective": "sfo_to_target"}


def add_user(factory: sessionmaker[Session], name: str = "alice", admin: bool = False) -> int:
    """A new user's id."""
    with session_scope(factory) as s:
        return repo.create_user(s, name=name, is_admin=admin).id


def add_job(factory: sessionmaker[Session], owner_id: int, **kw: Any) -> str:
    """A new queued job's id; ``name``, ``objective`` and ``create_job``'s other keywords may be given."""
    with session_scope(factory) as s:
        job, created = repo.create_job(
            s,
            owner_id=owner_id,
            name=kw.pop("name", "j"),
            spec=SPEC,
            objective=kw.pop("objective", "sfo_to_target"),
            **kw,
        )
        assert created
        return job.id


def row_counts(factory: sessionmaker[Session]) -> dict[str, int]:
    """Rows in every table: a request that was refused must leave all of them unchanged."""
    with factory() as session:
        return {
            table.name: int(session.execute(select(func.count()).select_from(table)).scalar_one())
            for table in Base.metadata.sorted_tables
        }
