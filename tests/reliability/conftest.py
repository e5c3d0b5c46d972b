"""Fixtures for the reliability suite: an app on the parametrized database, users, and row counts.

``db_url`` and ``settings`` come from ``tests/conftest.py`` (SQLite and PostgreSQL).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from service.api.app import create_app
from service.settings import Settings
from tests.support.storage import row_counts
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


@pytest.fixture
def counts(app: FastAPI) -> Callable[[], dict[str, Any]]:
    return lambda: row_counts(app.state.session_factory)
