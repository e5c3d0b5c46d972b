"""Users and tokens (``service/storage/repository/users.py``).

The same tests on SQLite and PostgreSQL (``db_url`` is parametrized)."""

from __future__ import annotations

import pytest
from sqlalchemy.orm import Session, sessionmaker

from service.errors import Conflict
from service.storage import repository as repo
from service.storage.db import session_scope
from tests.support.storage import add_user as _user


def test_create_user_twice_is_conflict(session_factory: sessionmaker[Session]) -> None:
    _user(session_factory)
    with pytest.raises(Conflict, match="user 'alice' already exists"), session_scope(session_factory) as s:
        repo.create_user(s, name="alice")
