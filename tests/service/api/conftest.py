"""API fixtures: an app on the parametrized database, a TestClient, and users with tokens."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from service.api.app import create_app
from service.settings import Settings
from tests.support.users import make_user as make_user  # a fixture, shared with the other in-process suite


@pytest.fixture
def api_settings(settings: Settings) -> Settings:
    return settings


@pytest.fixture
def app(api_settings: Settings) -> Iterator[FastAPI]:
    app = create_app(api_settings)
    yield app
    app.state.engine.dispose()


@pytest.fixture
def client(app: FastAPI) -> Iterator[TestClient]:
    with TestClient(app) as c:
        yield c


@pytest.fixture
def alice(make_user: Callable[..., dict[str, str]]) -> dict[str, str]:
    return make_user("alice")


@pytest.fixture
def bob(make_user: Callable[..., dict[str, str]]) -> dict[str, str]:
    return make_user("bob")
