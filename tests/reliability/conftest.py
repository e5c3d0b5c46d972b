"""Fixtures for the reliability suite: an app on the parametrized database, users, and row counts.

``db_url`` and ``settings`` come from ``tests/conftest.py`` (SQLite and PostgreSQL).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from service.api.app import create_app
from service.settings import Settings
from service.storage.models import Base
from tests.support.users import make_user as make_user  # a fixture, shared with the other in-process suite


@pytest.fixture
def app(settings: Settings) -> Iterator[FastAPI]:
    app = create_app(settings)
    yield app
    app.state.engine.dispose()


@pytest.fixture
def client(app: FastAPI) -> Iterator[TestClient]:
    # raise_server_exceptions=False: a 500 must show up as a status code the test asserts on, like a client
    # would see it, not as an exception inside the test.
    with TestClient(app, raise_server_exceptions=False) as c:
        yield c


def row_counts(factory: sessionmaker[Session]) -> dict[str, int]:
    """Rows in every table: a request that was refused must leave all of them unchanged."""
    with factory() as session:
        return {
            table.name: int(session.execute(select(func.count()).select_from(table)).scalar_one())
            for table in Base.metadata.sorted_tables
        }


@pytest.fixture
def counts(app: FastAPI) -> Callable[[], dict[str, Any]]:
    return lambda: row_counts(app.state.session_factory)
