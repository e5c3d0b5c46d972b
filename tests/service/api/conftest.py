"""API fixtures: an app on the parametrized database, a TestClient, and users with tokens."""

from __future__ import annotations

import copy
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from service.api.app import create_app
from service.settings import Settings
from tests.support.users import make_user as make_user  # a fixture, shared with the other in-process suite

# A small valid job: one searched candidate with distributions and one fixed baseline.
JOB: dict[str, Any] = {
    "apiVersion": "schedsearch/v1",
    "name": "digits: warm-up vs growth",
    "task": {"name": "digits-mlp"},
    "optimizer": {"name": "nshb", "momentum": 0.9},
    "space": [
        {
            "batch_size": {
                "family": "exp_growth",
                "b0": {"choice": [8, 16, 32]},
                "factor": {"uniform": [1.5, 4.0]},
                "interval": 3,
            },
            "lr": {
                "family": "warmup_const",
                "lr0": 0.1,
                "lr_max": {"loguniform": [0.2, 2.0]},
                "warmup_epochs": 6,
                "warmup_interval": 1,
            },
        }
    ],
    "baselines": [
        {
            "name": "constant",
            "batch_size": {"family": "constant", "b0": 32},
            "lr": {"family": "constant", "lr0": 0.1},
        }
    ],
    "budget": {"max_epochs": 12, "max_sfo": 100_000, "total_sfo": 2_000_000},
    "target": {"grad_norm": 0.05},
    "objective": "sfo_to_target",
    "search": {"algorithm": "tpe", "num_trials": 4, "max_concurrent": 2, "seed": 0, "early_stopping": True},
    "resources": {"cpus": 1, "gpus": 0},
}


def job_body(**changes: Any) -> dict[str, Any]:
    """A copy of JOB with top-level keys replaced."""
    body = copy.deepcopy(JOB)
    body.update(changes)
    return body


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
