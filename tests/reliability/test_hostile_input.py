"""Hostile input at the API: each request gets a 4xx that names the field, and nothing is written.

Every row is one request a careless or malicious client could send. The test asserts the status, that the
``detail`` names the offending field (its ``loc`` for a 422), and that no table gained or lost a row.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from service.settings import Settings
from tests.service.api.conftest import JOB

CONST_LR = {"family": "constant", "lr0": 0.1}


def _job(**changes: Any) -> dict[str, Any]:
    body = copy.deepcopy(JOB)
    body.update(changes)
    return body


def _baseline_only(batch: dict[str, Any], lr: dict[str, Any] = CONST_LR) -> dict[str, Any]:
    """A job that runs one fixed schedule (no search), so the schedule alone decides acceptance."""
    return _job(
        space=[],
        baselines=[{"name": "b", "batch_size": batch, "lr": lr}],
        search={**JOB["search"], "num_trials": 0},
    )


def _raw(body: dict[str, Any], old: str, new: str) -> str:
    """The JSON text of ``body`` with one literal replaced: how NaN/Infinity reach the server (Python's
    json module writes and reads them, as do many clients)."""
    text = json.dumps(body)
    assert old in text, old
    return text.replace(old, new, 1)


HOSTILE: list[tuple[str, Any, int, tuple[Any, ...]]] = [
    # (id, body: dict or raw JSON text, status, loc of the named field)
    ("nan-target", _raw(JOB, '"grad_norm": 0.05', '"grad_norm": NaN'), 422, ("body", "target", "grad_norm")),
    (
        "inf-target",
        _raw(JOB, '"grad_norm": 0.05', '"grad_norm": Infinity'),
        422,
        ("body", "target", "grad_norm"),
    ),
    ("inf-lr0-in-space", _raw(JOB, '"lr0": 0.1', '"lr0": Infinity'), 422, ("body", "space", 0, "lr", "lr0")),
    ("nan-momentum", _raw(JOB, '"momentum": 0.9', '"momentum": NaN'), 422, ("body", "optimizer", "momentum")),
    (
        "nan-baseline-lr0",  # inside a free-form schedule dict, not a typed field
        _raw(JOB, '"lr0": 0.1}}], "budget"', '"lr0": NaN}}], "budget"'),
        422,
        ("body", "baselines", 0, "lr", "lr0"),
    ),
    (
        "nan-baseline-name",  # the only untyped value of a baseline that is not part of the schedule
        _raw(JOB, '"name": "constant"', '"name": NaN'),
        422,
        ("body", "baselines", 0, "name"),
    ),
    (
        "huge-num-trials",
        _job(search={**JOB["search"], "num_trials": 10**12}),
        422,
        ("body", "search", "num_trials"),
    ),
    (
        "huge-max-epochs",
        _job(budget={**JOB["budget"], "max_epochs": 10**9}),
        422,
        ("body", "budget", "max_epochs"),
    ),
    (
        "batch-larger-than-dataset",  # digits-mlp trains on 1347 examples
        _baseline_only({"family": "constant", "b0": 100_000}),
        422,
        ("body", "baselines", 0, "batch_size", "b0"),
    ),
    (
        "batch-choice-larger-than-dataset",
        _job(
            space=[
                {
                    **JOB["space"][0],
                    "batch_size": {**JOB["space"][0]["batch_size"], "b0": {"choice": [8, 4096]}},
                }
            ]
        ),
        422,
        ("body", "space", 0, "batch_size", "b0"),
    ),
    (
        "batch-growth-overflows",  # 1e300^2 is past the largest float within 12 epochs
        _baseline_only({"family": "exp_growth", "b0": 8, "factor": 1e300, "interval": 1}),
        422,
        ("body", "baselines", 0, "batch_size", "factor"),
    ),
    (
        "lr-growth-overflows",
        _baseline_only(
            {"family": "constant", "b0": 8},
            {"family": "exp_growth", "lr0": 0.1, "factor": 1e200, "interval": 1},
        ),
        422,
        ("body", "baselines", 0, "lr", "factor"),
    ),
    (
        "lr-growth-overflows-at-the-top-of-a-range",
        _job(
            space=[
                {
                    "batch_size": {"family": "constant", "b0": 8},
                    "lr": {
                        "family": "exp_growth",
                        "lr0": 0.1,
                        "interval": 1,
                        "factor": {"loguniform": [1.5, 1e100]},
                    },
                }
            ]
        ),
        422,
        ("body", "space", 0, "lr", "factor"),
    ),
    (
        "lr-underflows-to-zero",  # 1e-300 * 1e-10^k is 0.0 after a few epochs
        _baseline_only(
            {"family": "constant", "b0": 8},
            {"family": "step_decay", "lr0": 1e-300, "decay": 1e-10, "interval": 1},
        ),
        422,
        ("body", "baselines", 0, "lr", "lr0"),
    ),
    ("unknown-task", _job(task={"name": "imagenet"}), 422, ("body", "task", "name")),
    (
        "unknown-batch-family",
        _baseline_only({"family": "quadratic", "b0": 8}),
        422,
        ("body", "baselines", 0, "batch_size", "family"),
    ),
    (
        "unknown-lr-family",
        _baseline_only({"family": "constant", "b0": 8}, {"family": "cyclic", "lr0": 0.1}),
        422,
        ("body", "baselines", 0, "lr", "family"),
    ),
    ("unknown-top-level-key", _job(extra={"x": 1}), 422, ("body", "extra")),
    (
        "folder-traversal",
        _job(task={"name": "cifar10-resnet18", "options": {"folder": "../../../etc"}}),
        422,
        ("body", "task", "options", "folder"),
    ),
    (
        "absolute-folder",
        _job(task={"name": "cifar10-resnet18", "options": {"folder": "/etc"}}),
        422,
        ("body", "task", "options", "folder"),
    ),
    (
        "data-root-with-dotdot",
        _job(task={"name": "cifar100-resnet18", "options": {"data_root": "/srv/data/../../etc"}}),
        422,
        ("body", "task", "options", "data_root"),
    ),
    (
        "data-root-outside-the-server-root",  # the server's root is /srv/data in this test
        _job(task={"name": "cifar10-resnet18", "options": {"data_root": "/etc"}}),
        422,
        ("body", "task", "options", "data_root"),
    ),
    (
        "data-root-prefix-trick",  # /srv/database starts with /srv/data but is not inside it
        _job(task={"name": "cifar10-resnet18", "options": {"data_root": "/srv/database"}}),
        422,
        ("body", "task", "options", "data_root"),
    ),
    ("control-characters-in-name", _job(name="job\x1b[31m"), 422, ("body", "name")),
    ("not-json", "{not json", 422, ("body",)),
    ("json-but-not-an-object", "[1, 2, 3]", 422, ("body",)),
]


@pytest.fixture
def settings(db_url: str, tmp_path: Any) -> Settings:
    # A configured data root, so "outside the data root" has a meaning.
    return Settings(
        database_url=db_url,
        data_dir=tmp_path / "data",
        embedded_dispatcher=False,
        data_root=Path("/srv/data"),
    )


@pytest.mark.parametrize(("body", "status", "loc"), [h[1:] for h in HOSTILE], ids=[h[0] for h in HOSTILE])
def test_hostile_job_is_refused_naming_the_field_and_writes_nothing(
    client: TestClient,
    make_user: Callable[..., dict[str, str]],
    counts: Callable[[], dict[str, int]],
    body: Any,
    status: int,
    loc: tuple[Any, ...],
) -> None:
    headers = make_user("mallory")
    before = counts()
    if isinstance(body, str):
        response = client.post(
            "/v1/jobs", content=body, headers={**headers, "Content-Type": "application/json"}
        )
    else:
        response = client.post("/v1/jobs", json=body, headers=headers)
    assert response.status_code == status, response.text
    errors = response.json()["detail"]
    assert any(tuple(e["loc"][: len(loc)]) == loc for e in errors), errors
    assert counts() == before


def test_a_data_root_inside_the_server_root_is_accepted(
    client: TestClient, make_user: Callable[..., dict[str, str]]
) -> None:
    """The refusals above are about the path, not about CIFAR jobs: the same job inside the root passes."""
    body = _job(task={"name": "cifar10-resnet18", "options": {"data_root": "/srv/data/cifar", "subset": 512}})
    response = client.post("/v1/jobs", json=body, headers=make_user("alice"))
    assert response.status_code == 202, response.text


def test_without_a_server_data_root_a_job_cannot_choose_one(
    db_url: str, tmp_path: Any, make_user: Callable[..., dict[str, str]]
) -> None:
    from service.api.app import create_app

    app = create_app(Settings(database_url=db_url, data_dir=tmp_path / "d", embedded_dispatcher=False))
    body = _job(task={"name": "cifar10-resnet18", "options": {"data_root": "/anything"}})
    with TestClient(app) as client:
        response = client.post("/v1/jobs", json=body, headers=make_user("alice"))
    app.state.engine.dispose()
    assert response.status_code == 422
    assert response.json()["detail"][0]["msg"] == (
        "task.options.data_root cannot be chosen by a job: the server has no SCHEDSEARCH_DATA_ROOT; leave it "
        "unset, got '/anything'"
    )


@pytest.mark.parametrize(
    ("path", "body"),
    [
        ("/v1/jobs", _job(name="x" * 50, space=[JOB["space"][0]] * 40)),  # a big but well-formed job
        ("/v1/schedules/check", {"schedule": {"pad": "x" * 6000}}),  # any endpoint with a body
    ],
)
def test_oversized_body_is_413_and_writes_nothing(
    db_url: str,
    tmp_path: Any,
    make_user: Callable[..., dict[str, str]],
    counts: Callable[[], dict[str, int]],
    path: str,
    body: dict[str, Any],
) -> None:
    from service.api.app import create_app

    small = create_app(
        Settings(database_url=db_url, data_dir=tmp_path / "d", embedded_dispatcher=False, max_body_bytes=4096)
    )
    headers = make_user("mallory")
    before = counts()
    with TestClient(small) as client:
        declared = client.post(path, json=body, headers=headers)

        def chunks() -> Any:  # no Content-Length: the limit must hold while streaming too
            raw = json.dumps(body).encode()
            for i in range(0, len(raw), 1024):
                yield raw[i : i + 1024]

        streamed = client.post(
            path, content=chunks(), headers={**headers, "Content-Type": "application/json"}
        )
    small.state.engine.dispose()
    for response in (declared, streamed):
        assert response.status_code == 413, response.text
        assert response.json()["limit"] == "max_body_bytes"
    assert counts() == before


@pytest.mark.parametrize(
    ("method", "path", "loc"),
    [
        ("GET", "/v1/jobs?limit=100000", ("query", "limit")),  # page size over the cap
        ("GET", "/v1/jobs?offset=-1", ("query", "offset")),  # negative offset
        ("GET", "/v1/jobs?status=exploded", ("query", "status", 0)),  # unknown status filter
        ("GET", "/v1/jobs/x/trials/99999999999999999999", ("path", "trial_id")),  # past a 32-bit key
        ("GET", "/v1/jobs/x/plot.png?top=1000", ("query", "top")),  # more curves than allowed
    ],
)
def test_hostile_query_and_path_parameters_are_422(
    client: TestClient, make_user: Callable[..., dict[str, str]], method: str, path: str, loc: tuple[Any, ...]
) -> None:
    response = client.request(method, path, headers=make_user("mallory"))
    assert response.status_code == 422, response.text
    assert [tuple(e["loc"]) for e in response.json()["detail"]] == [loc]


def test_nan_in_the_schedule_check_is_422_not_500(
    client: TestClient, make_user: Callable[..., dict[str, str]]
) -> None:
    raw = (
        '{"schedule": {"batch_size": {"family": "constant", "b0": 8}, '
        '"lr": {"family": "constant", "lr0": NaN}}}'
    )
    response = client.post(
        "/v1/schedules/check", content=raw, headers={**make_user("m"), "Content-Type": "application/json"}
    )
    assert response.status_code == 422, response.text
    assert response.json()["detail"][0]["loc"] == ["body", "schedule", "lr", "lr0"]
    assert response.json()["detail"][0]["input"] == "NaN"
