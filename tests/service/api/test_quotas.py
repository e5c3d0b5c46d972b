"""Quotas and limits from the settings: each response names the limit and its value."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient

from service.api.app import create_app
from service.settings import Settings
from tests.support.jobs import JOB, job_body


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


def test_rejected_submissions_use_up_the_rate_limit(
    tight: TestClient, make_user_tight: dict[str, str]
) -> None:
    """Every authenticated submission takes a token before its body is looked at: malformed JSON, a
    structural error, a schedule the service refuses. Otherwise refused requests cost validation for free."""
    headers = make_user_tight
    raw = {**headers, "Content-Type": "application/json"}
    refused = [
        tight.post("/v1/jobs", content=b'{"name": ', headers=raw),  # not JSON
        tight.post("/v1/jobs", json=job_body(budget={"max_epochs": 0}), headers=headers),  # out of range
        tight.post(
            "/v1/jobs",
            json=job_body(
                baselines=[{"batch_size": {"family": "constant", "b0": -1}, "lr": JOB["space"][0]["lr"]}]
            ),
            headers=headers,
        ),  # a schedule that cannot work
    ]
    assert [r.status_code for r in refused] == [422, 422, 422]
    valid = tight.post("/v1/jobs", json=JOB, headers=headers)
    assert (valid.status_code, valid.json()["limit"]) == (429, "submit_rate_per_minute")
    # Without a token nothing is taken (there is no user to charge): still a 401.
    assert tight.post("/v1/jobs", json=JOB).status_code == 401


def test_cheap_checks_come_before_the_expensive_ones(
    client: TestClient, alice: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """A job refused by a per-job limit is refused before any schedule is checked over its budget: the
    whole-budget and corner checks (seconds for the largest jobs) never run for it."""
    import schedules.plancheck
    import schedules.space

    calls: list[str] = []
    for module, name in ((schedules.plancheck, "check_plans"), (schedules.space, "validate")):
        original = getattr(module, name)

        def spy(*args: Any, _original: Any = original, _name: str = name, **kwargs: Any) -> Any:
            calls.append(_name)
            return _original(*args, **kwargs)

        monkeypatch.setattr(module, name, spy)
    big = job_body(
        space=[JOB["space"][0]] * 64,
        budget={"max_epochs": 10_000},
        search={**JOB["search"], "num_trials": 100_000},
    )
    response = client.post("/v1/jobs", json=big, headers=alice)
    assert (response.status_code, response.json()["limit"]) == (422, "max_trials_per_job")
    assert calls == []
    # The same checks do run for a job that passes the limits (the spy sees them).
    assert client.post("/v1/jobs", json=JOB, headers=alice).status_code == 202
    assert "validate" in calls and "check_plans" in calls


# A searched candidate that stays valid over 10,000 epochs (no growth to overflow).
SAFE_CANDIDATE = {
    "batch_size": {"family": "constant", "b0": {"choice": [8, 16]}},
    "lr": {"family": "constant", "lr0": {"loguniform": [0.01, 0.1]}},
}


def test_a_job_whose_checks_would_cost_too_much_is_refused_before_they_run(
    settings: Settings, make_user: Any
) -> None:
    """Checking a job before storing it costs time in proportion to budget.max_epochs times its schedules;
    past max_check_schedule_epochs the job is refused up front, naming the limit, instead of running
    seconds of checks (256 baselines at 10,000 epochs took 8 s)."""
    app = create_app(settings.model_copy(update={"max_check_schedule_epochs": 100_000}))
    constant = {"batch_size": {"family": "constant", "b0": 8}, "lr": {"family": "constant", "lr0": 0.1}}
    baselines = [{"name": f"b{i}", **constant} for i in range(11)]
    with TestClient(app) as client:
        from service.auth import create_token
        from service.storage.db import session_scope

        with session_scope(app.state.session_factory) as session:
            headers = {"Authorization": f"Bearer {create_token(session, user_name='dave')}"}
        # 10,000 epochs x (11 baselines + 2 x 1 searched candidate) = 130,000 > 100,000
        body = job_body(space=[SAFE_CANDIDATE], baselines=baselines, budget={"max_epochs": 10_000})
        response = client.post("/v1/jobs", json=body, headers=headers)
        assert (response.status_code, response.json()) == (
            422,
            {
                "detail": "the job needs 130000 schedule-epochs of checks before it can be stored "
                "(budget.max_epochs=10000 x (11 fixed schedules + 2 x 1 searched candidates)), more than "
                "max_check_schedule_epochs=100000; use fewer epochs, baselines or candidates",
                "limit": "max_check_schedule_epochs",
                "value": 100_000,
            },
        )
        # Within the limit the same job is checked and accepted.
        fewer = job_body(space=[SAFE_CANDIDATE], baselines=baselines[:7], budget={"max_epochs": 10_000})
        assert client.post("/v1/jobs", json=fewer, headers=headers).status_code == 202
    app.state.engine.dispose()
