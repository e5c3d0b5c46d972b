"""The task catalogue over the API (GET /v1/tasks), and POST /v1/jobs validated against it."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from schedules.tasks import catalogue
from service.settings import Settings
from tests.support import toy_tasks
from tests.support.jobs import job_body

BUILT_IN = ["cifar10-resnet18", "cifar100-resnet18", "digits-cnn", "digits-mlp", "synthetic-logreg"]
GENERIC = ["image-folder", "tabular-mlp", "text-transformer"]


def test_tasks_need_a_token(client: TestClient) -> None:
    assert client.get("/v1/tasks").status_code == 401


def test_tasks_list_every_installed_task_with_its_options(
    client: TestClient, alice: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    toy_tasks.install(monkeypatch, toy_tasks.REGRESSION)
    response = client.get("/v1/tasks", headers=alice)
    assert response.status_code == 200, response.text
    body = response.json()
    tasks = {t["name"]: t for t in body["data"]}
    # the built-ins, the generic tasks, plugins installed in this environment (scripts/setup.sh installs the
    # examples), the toy
    assert sorted(tasks) == sorted({*BUILT_IN, *GENERIC, *catalogue().names, "toy-regression"})
    assert set(BUILT_IN) | set(GENERIC) <= set(tasks) and body["count"] == len(tasks)
    assert tasks["toy-regression"]["description"] == "Linear targets with noise, an MLP, mean squared error"
    synthetic = tasks["synthetic-logreg"]
    assert [o["name"] for o in synthetic["options"]] == [
        "n", "n_test", "d", "label_noise", "seed", "stream", "num_workers", "grad_norm_subset",
    ]  # fmt: skip
    assert synthetic["options"][3] == {
        "name": "label_noise",
        "type": "float",
        "default": 0.1,
        "minimum": 0.0,
        "maximum": 0.5,
        "choices": None,
        "nullable": False,
        "description": "Share of labels flipped.",
    }
    assert synthetic["package"].startswith("schedsearch ") and synthetic["available"] is True
    # this server has no data root: the CIFAR tasks are listed, and say why a job cannot use them
    cifar = tasks["cifar10-resnet18"]
    assert (cifar["needs_data_root"], cifar["available"]) == (True, False)
    assert cifar["unavailable_reason"] == "the server has no data root (SCHEDSEARCH_DATA_ROOT)"
    assert cifar["options"][0]["name"] == "data_root"
    assert "augment" in [o["name"] for o in cifar["options"]]
    # the generic tasks read the user's files under the data root, so they are listed the same way
    for name in GENERIC:
        assert (tasks[name]["needs_data_root"], tasks[name]["available"]) == (True, False), name


def test_a_plugin_task_is_accepted_and_its_options_checked(
    client: TestClient, alice: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    toy_tasks.install(monkeypatch, toy_tasks.REGRESSION)
    ok = client.post(
        "/v1/jobs", json=job_body(task={"name": "toy-regression", "options": {"n": 64}}), headers=alice
    )
    assert ok.status_code == 202, ok.text
    bad = client.post(
        "/v1/jobs", json=job_body(task={"name": "toy-regression", "options": {"m": 1}}), headers=alice
    )
    assert bad.status_code == 422
    assert bad.json()["detail"][0]["loc"] == ["body", "task", "options", "m"]
    assert bad.json()["detail"][0]["msg"] == (
        "task.options.m is not an option of task toy-regression (valid: n, stream), got m=1"
    )
    # n_train comes from the plugin's definition: b0 above n = 64 is refused at submission
    too_big = job_body(
        task={"name": "toy-regression", "options": {"n": 64}},
        space=[],
        search={"num_trials": 0},
        baselines=[
            {"batch_size": {"family": "constant", "b0": 65}, "lr": {"family": "constant", "lr0": 0.1}}
        ],
    )
    refused = client.post("/v1/jobs", json=too_big, headers=alice)
    assert refused.status_code == 422
    assert refused.json()["detail"][0]["loc"] == ["body", "baselines", 0, "batch_size", "b0"]


def test_a_task_of_unknown_size_skips_only_the_size_check(
    client: TestClient, alice: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    toy_tasks.install(monkeypatch, toy_tasks.UNKNOWN_SIZE)

    def baseline(batch: dict[str, Any]) -> dict[str, Any]:
        return job_body(
            task={"name": "toy-unknown-size"},
            space=[],
            search={"num_trials": 0},
            baselines=[{"batch_size": batch, "lr": {"family": "constant", "lr0": 0.1}}],
        )

    # b0 cannot be compared with n before the data is loaded (the trainer clips it) ...
    big = client.post("/v1/jobs", json=baseline({"family": "constant", "b0": 100_000}), headers=alice)
    assert big.status_code == 202, big.text
    # ... but growth that overflows within the budget is still refused
    overflow = baseline({"family": "exp_growth", "b0": 8, "factor": 1e300, "interval": 1})
    refused = client.post("/v1/jobs", json=overflow, headers=alice)
    assert refused.status_code == 422, refused.text
    assert refused.json()["detail"][0]["loc"] == ["body", "baselines", 0, "batch_size", "factor"]


def test_cifar_without_a_server_data_root_is_refused_at_submission(
    client: TestClient, alice: dict[str, str]
) -> None:
    response = client.post("/v1/jobs", json=job_body(task={"name": "cifar10-resnet18"}), headers=alice)
    assert response.status_code == 422, response.text
    assert response.json()["detail"] == [
        {
            "type": "data_root",
            "loc": ["body", "task", "options", "data_root"],
            "msg": "task.options.data_root must name the folder of the data, but task cifar10-resnet18 reads "
            "its data under the server's data root and this server has none: set SCHEDSEARCH_DATA_ROOT on "
            "the API and the workers",
            "input": None,
        }
    ]


@pytest.fixture
def rooted_client(settings: Settings, tmp_path: Path) -> Any:
    from service.api.app import create_app

    app = create_app(settings.model_copy(update={"data_root": tmp_path / "data-root"}))
    with TestClient(app) as client:
        yield client
    app.state.engine.dispose()


def test_cifar_with_a_server_data_root_is_accepted_and_listed_available(
    rooted_client: TestClient, settings: Settings
) -> None:
    from service.auth import create_token
    from service.storage.db import make_engine, make_session_factory, session_scope

    engine = make_engine(settings.resolved_database_url(), settings=settings)
    with session_scope(make_session_factory(engine)) as session:
        headers = {"Authorization": f"Bearer {create_token(session, user_name='carol')}"}
    engine.dispose()
    listed = {t["name"]: t for t in rooted_client.get("/v1/tasks", headers=headers).json()["data"]}
    assert listed["cifar100-resnet18"]["available"] is True
    body = job_body(task={"name": "cifar100-resnet18", "options": {"subset": 512}})
    body["space"][0]["batch_size"]["b0"] = 32
    response = rooted_client.post("/v1/jobs", json=body, headers=headers)
    assert response.status_code == 202, response.text
