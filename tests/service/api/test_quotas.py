"""Quotas and limits from the settings: each response names the limit and its value."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient

from service.api.app import create_app
from service.settings import Settings
from tests.service.api.conftest import JOB, job_body


@pytest.fixture
def tight(settings: Settings) -> Iterator[TestClient]:
    limited = settings.model_copy(
        update={
            "max_active_jobs_per_user": 2,
            "max_trials_per_job": 5,
            "max_sfo_per_job": 3_000_000,
            "submit_burst": 3,
            "submit_rate_per_minute": 1.0,
            "max_body_bytes": 4096,
        }
    )
    app = create_app(limited)
    with TestClient(app) as client:
        yield client
    app.state.engine.dispose()


def test_active_jobs_quota_is_429(tight: TestClient, make_user_tight: dict[str, str]) -> None:
    headers = make_user_tight
    for _ in range(2):
        assert tight.post("/v1/jobs", json=JOB, headers=headers).status_code == 202
    third = tight.post("/v1/jobs", json=JOB, headers=headers)
    assert third.status_code == 429
    assert third.json() == {
        "detail": "max_active_jobs_per_user=2 reached: you have 2 queued or running jobs; "
        "wait for one to finish or cancel one",
        "limit": "max_active_jobs_per_user",
        "value": 2,
    }


def test_trials_and_sfo_limits_are_422(tight: TestClient, make_user_tight: dict[str, str]) -> None:
    too_many = job_body(search={**JOB["search"], "num_trials": 5})  # 5 + 1 baseline > 5
    response = tight.post("/v1/jobs", json=too_many, headers=make_user_tight)
    assert (response.status_code, response.json()) == (
        422,
        {
            "detail": "the job has 6 trials (search.num_trials + baselines) but max_trials_per_job=5",
            "limit": "max_trials_per_job",
            "value": 5,
        },
    )
    too_big = job_body(budget={**JOB["budget"], "total_sfo": 3_000_001})
    response = tight.post("/v1/jobs", json=too_big, headers=make_user_tight)
    assert (response.status_code, response.json()["detail"]) == (
        422,
        "budget.total_sfo=3000001 exceeds max_sfo_per_job=3000000",
    )
    open_ended = job_body(budget={"max_epochs": 5})
    created = tight.post("/v1/jobs", json=open_ended, headers=make_user_tight)
    assert (created.status_code, created.json()["progress"]["sfo_budget"]) == (202, 3_000_000)


def test_submit_rate_limit_is_429_with_retry_after(
    tight: TestClient, make_user_tight: dict[str, str]
) -> None:
    codes = []
    for i in range(4):
        response = tight.post("/v1/jobs", json=job_body(name=f"j{i}"), headers=make_user_tight)
        codes.append(response.status_code)
        if response.status_code == 202:
            tight.post(f"/v1/jobs/{response.json()['id']}/cancel", headers=make_user_tight)
    assert codes == [202, 202, 202, 429]
    assert response.json()["limit"] == "submit_rate_per_minute"
    assert int(response.headers["Retry-After"]) >= 1


def test_body_over_limit_is_413(tight: TestClient, make_user_tight: dict[str, str]) -> None:
    huge = job_body(name="x" * 5000)
    response = tight.post("/v1/jobs", json=huge, headers=make_user_tight)
    assert (response.status_code, response.json()["limit"]) == (413, "max_body_bytes")
    assert response.json()["detail"] == "request body exceeds max_body_bytes=4096"


@pytest.fixture
def make_user_tight(tight: TestClient) -> dict[str, str]:
    from service.auth import create_token
    from service.storage.db import session_scope

    app = tight.app
    with session_scope(app.state.session_factory) as session:  # type: ignore[attr-defined]
        token = create_token(session, user_name="carol")
    return {"Authorization": f"Bearer {token}"}


def test_streamed_body_over_limit_is_413(tight: TestClient, make_user_tight: dict[str, str]) -> None:
    def chunks() -> Iterator[bytes]:  # no Content-Length: the limit is enforced while reading
        yield b'{"name": "'
        for _ in range(10):
            yield b"x" * 1000
        yield b'"}'

    headers = {**make_user_tight, "Content-Type": "application/json"}
    response = tight.post("/v1/jobs", content=chunks(), headers=headers)
    assert (response.status_code, response.json()["limit"]) == (413, "max_body_bytes")


def test_a_per_trial_sfo_budget_over_the_job_limit_is_422(
    tight: TestClient, make_user_tight: dict[str, str]
) -> None:
    """An open-ended job gets max_sfo_per_job as its total; a per-trial budget above it would make the
    stored spec contradict itself (max_sfo > total_sfo) and fail when the driver reads it."""
    body = job_body(budget={"max_epochs": 5, "max_sfo": 3_000_001})
    response = tight.post("/v1/jobs", json=body, headers=make_user_tight)
    assert (response.status_code, response.json()) == (
        422,
        {
            "detail": "budget.max_sfo=3000001 exceeds max_sfo_per_job=3000000",
            "limit": "max_sfo_per_job",
            "value": 3_000_000,
        },
    )
    accepted = tight.post("/v1/jobs", json=job_body(budget={"max_epochs": 5}), headers=make_user_tight)
    assert accepted.status_code == 202
    from service.jobspec import JobSpec

    JobSpec.model_validate(accepted.json()["spec"])  # what the driver does with the stored spec
