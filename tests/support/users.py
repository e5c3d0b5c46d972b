"""Users with API tokens, for the suites that run the app in-process (``tests/service/api``, reliability).

Import ``make_user`` into a conftest that defines an ``app`` fixture; pytest resolves ``app`` per suite."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from fastapi import FastAPI
from sqlalchemy.orm import Session, sessionmaker

from service.auth import create_token
from service.storage.db import session_scope


@pytest.fixture
def make_user(app: FastAPI) -> Callable[..., dict[str, str]]:
    """Create a user with a token; returns the Authorization header."""
    factory: sessionmaker[Session] = app.state.session_factory

    def make(name: str, admin: bool = False) -> dict[str, str]:
        with session_scope(factory) as session:
            token = create_token(session, user_name=name, admin=admin)
        return {"Authorization": f"Bearer {token}"}

    return make
