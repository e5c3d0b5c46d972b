"""Another user's job is invisible on every endpoint; an admin sees every job."""

from __future__ import annotations

from collections.abc import Callable

from fastapi import FastAPI
from fastapi.testclient import TestClient

from service.storage import repository as repo
from service.storage.db import session_scope
from tests.support.jobs import JOB


def test_every_job_endpoint_is_404_for_another_user(
    app: FastAPI,
    client: TestClient,
    alice: dict[str, str],
    bob: dict[str, str],
    make_user: Callable[..., dict[str, str]],
) -> None:
    job_id = client.post("/v1/jobs", json=JOB, headers=alice).json()["id"]
    with session_scope(app.state.session_factory) as s:
        trial_id = repo.upsert_trial(s, job_id=job_id, trial_key="t0", config={}).id
    # Every documented operation under /v1/jobs/{job_id}, read from the OpenAPI schema so a new route cannot
    # be forgotten.
    paths = sorted(
        (path, method.upper())
        for path, operations in app.openapi()["paths"].items()
        if path.startswith("/v1/jobs/{job_id}")
        for method in operations
    )
    assert len(paths) >= 8
    for path, method in paths:
        url = path.replace("{job_id}", job_id).replace("{trial_id}", str(trial_id))
        response = client.request(method, url, headers=bob)
        assert (response.status_code, response.json()["detail"]) == (404, f"job {job_id} not found"), url
        assert client.request(method, url, headers=alice).status_code in (200, 202), url
    assert client.get("/v1/jobs", headers=bob).json() == {"data": [], "count": 0, "limit": 50, "offset": 0}

    admin = make_user("root", admin=True)
    listed = client.get("/v1/jobs", headers=admin).json()
    assert [(j["id"], j["owner"]) for j in listed["data"]] == [(job_id, "alice")]
    assert client.get(f"/v1/jobs/{job_id}", headers=admin).status_code == 200


def test_unknown_job_and_trial_are_404(client: TestClient, alice: dict[str, str]) -> None:
    assert client.get("/v1/jobs/nope", headers=alice).json() == {"detail": "job nope not found"}
    job_id = client.post("/v1/jobs", json=JOB, headers=alice).json()["id"]
    response = client.get(f"/v1/jobs/{job_id}/trials/999/metrics", headers=alice)
    assert (response.status_code, response.json()["detail"]) == (404, f"trial 999 of job {job_id} not found")
