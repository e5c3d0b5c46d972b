"""What the repository modules share: the ``UNSET`` marker, a dialect insert, paging."""

from __future__ import annotations

from typing import Any

from sqlalchemy import Select, func, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session


class _Unset:
    def __repr__(self) -> str:
        return "UNSET"


UNSET: Any = _Unset()
"""Marks "leave this column as it is" where None is a meaningful value."""


def _insert(session: Session, table: Any) -> Any:
    """A dialect insert that supports ``on_conflict_do_nothing`` on both backends."""
    return (postgresql.insert if session.get_bind().dialect.name == "postgresql" else sqlite.insert)(table)


def _page(session: Session, stmt: Select[Any], *, limit: int, offset: int) -> tuple[list[Any], int]:
    total = session.scalar(select(func.count()).select_from(stmt.order_by(None).subquery())) or 0
    rows = list(session.scalars(stmt.limit(limit).offset(offset)))
    return rows, int(total)
