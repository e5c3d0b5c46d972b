"""Jobs API on SQLite and PostgreSQL: submit, list, read, cancel, idempotency, validation, auth."""

from __future__ import annotations

from typing import Any

import pytest
from fastapi.testclient import TestClient

from schedules.tasks import catalogue
from tests.support.jobs import JOB, job_body

INSTALLED = catalogue().names


def _submit(
    client: TestClient, headers: dict[str, str], body: dict[str, Any] | None = None, **kw: Any
) -> Any:
    return client.post("/v1/jobs", json=body if body is not None else JOB, headers=headers, **kw)


def test_create_list_get_cancel(client: TestClient, alice: dict[str, str]) -> None:
    created = _submit(client, alice)
    assert created.status_code == 202, created.text
    job = created.json()
    assert (job["status"], job["name"], job["owner"], job["objective"]) == (
        "queued",
        JOB["name"],
        "alice",
        "sfo_to_target",
    )
    # 4 searched trials + 1 baseline
    assert job["progress"] == {
        "trials_total": 5,
        "trials_finished": 0,
        "sfo_spent": 0,
        "sfo_budget": 2_000_000,
    }
    assert job["spec"]["apiVersion"] == "schedsearch/v1"
    # the theory check ran on the fixed baseline: a constant batch has no convergence guarantee
    assert [(w["schedule"], [f["code"] for f in w["warnings"]]) for w in job["warnings"]] == [
        ("constant", ["constant_batch"])
    ]

    listed = client.get("/v1/jobs", headers=alice).json()
    assert (listed["count"], [j["id"] for j in listed["data"]]) == (1, [job["id"]])

    got = client.get(f"/v1/jobs/{job['id']}", headers=alice)
    assert got.status_code == 200 and got.json()["id"] == job["id"]

    cancelled = client.post(f"/v1/jobs/{job['id']}/cancel", headers=alice)
    assert (cancelled.status_code, cancelled.json()["status"]) == (202, "cancelled")
    assert client.get("/v1/jobs", params={"status": "queued"}, headers=alice).json()["count"] == 0
    assert client.get("/v1/jobs", params={"status": "cancelled"}, headers=alice).json()["count"] == 1
    events = client.get(f"/v1/jobs/{job['id']}/events", headers=alice).json()
    assert [e["kind"] for e in events] == ["submitted", "cancel_requested"]


def test_pagination_counts_all(client: TestClient, alice: dict[str, str]) -> None:
    ids = [_submit(client, alice, job_body(name=f"job {i}")).json()["id"] for i in range(3)]
    page = client.get("/v1/jobs", params={"limit": 2, "offset": 0}, headers=alice).json()
    rest = client.get("/v1/jobs", params={"limit": 2, "offset": 2}, headers=alice).json()
    assert (page["count"], len(page["data"]), len(rest["data"])) == (3, 2, 1)
    assert {j["id"] for j in page["data"] + rest["data"]} == set(ids)


def test_idempotency_key(client: TestClient, alice: dict[str, str]) -> None:
    first = client.post("/v1/jobs", json=JOB, headers={**alice, "Idempotency-Key": "abc"})
    again = client.post("/v1/jobs", json=JOB, headers={**alice, "Idempotency-Key": "abc"})
    assert (first.status_code, again.status_code) == (202, 200)
    assert again.json()["id"] == first.json()["id"]
    other = client.post("/v1/jobs", json=job_body(name="other"), headers={**alice, "Idempotency-Key": "abc"})
    assert other.status_code == 409
    assert other.json()["detail"] == (
        f"Idempotency-Key 'abc' was already used for job {first.json()['id']} with a different request body; "
        "use a new key for a new job"
    )
    assert client.get("/v1/jobs", headers=alice).json()["count"] == 1


def test_cancel_twice_and_finished(client: TestClient, alice: dict[str, str]) -> None:
    job_id = _submit(client, alice).json()["id"]
    assert client.post(f"/v1/jobs/{job_id}/cancel", headers=alice).json()["status"] == "cancelled"
    assert client.post(f"/v1/jobs/{job_id}/cancel", headers=alice).json()["status"] == "cancelled"  # no-op


def test_unauthenticated_is_401_with_challenge(client: TestClient) -> None:
    missing = client.get("/v1/jobs")
    assert (missing.status_code, missing.headers["WWW-Authenticate"]) == (401, "Bearer")
    assert missing.json()["detail"] == "missing bearer token; send 'Authorization: Bearer <token>'"
    wrong = client.get("/v1/jobs", headers={"Authorization": "Bearer ss_nope"})
    assert (wrong.status_code, wrong.json()["detail"]) == (401, "invalid or revoked bearer token")


def _detail(response: Any) -> list[tuple[list[Any], str]]:
    assert response.status_code == 422, response.text
    return [(d["loc"], d["msg"]) for d in response.json()["detail"]]


@pytest.mark.parametrize(
    ("changes", "expected"),
    [
        # a budget below its range names the field and the bound
        (
            {"budget": {"max_epochs": 0}},
            [(["body", "budget", "max_epochs"], "Input should be greater than or equal to 1")],
        ),
        # an unknown task lists every installed task by name (plugins installed here included)
        (
            {"task": {"name": "mnist"}},
            [
                (
                    ["body", "task", "name"],
                    f"task.name must be one of {', '.join(INSTALLED)}, got name='mnist'",
                )
            ],
        ),
        # task options are checked against the task's definition, located under task.options
        (
            {"task": {"name": "digits-mlp", "options": {"depth": 9}}},
            [
                (
                    ["body", "task", "options", "depth"],
                    "task.options.depth must be an integer in [0, 8] for task digits-mlp, got depth=9",
                )
            ],
        ),
        # an unknown option lists the task's options
        (
            {"task": {"name": "synthetic-logreg", "options": {"features": 9}}},
            [
                (
                    ["body", "task", "options", "features"],
                    "task.options.features is not an option of task synthetic-logreg (valid: n, n_test, d, "
                    "label_noise, seed, stream, num_workers, grad_norm_subset), got features=9",
                )
            ],
        ),
        # per-trial SFO above the job's total
        (
            {"budget": {"max_epochs": 5, "max_sfo": 10, "total_sfo": 5}},
            [
                (
                    ["body", "budget"],
                    "budget.max_sfo must be <= budget.total_sfo, got max_sfo=10 and total_sfo=5",
                )
            ],
        ),
        # momentum out of [0, 1)
        (
            {"optimizer": {"name": "shb", "momentum": 1.0}},
            [(["body", "optimizer", "momentum"], "optimizer.momentum must be in [0, 1), got 1.0")],
        ),
        # unknown keys are refused, so typos do not pass silently
        ({"budgett": {}}, [(["body", "budgett"], "Extra inputs are not permitted")]),
        # grid search needs discrete distributions
        (
            {"search": {"algorithm": "grid", "num_trials": 2}},
            [
                (
                    ["body", "space", 0, "batch_size", "factor"],
                    "search.algorithm=grid needs choice or int distributions, "
                    "got uniform at space.0.batch_size.factor",
                ),
                (
                    ["body", "space", 0, "lr", "lr_max"],
                    "search.algorithm=grid needs choice or int distributions, "
                    "got loguniform at space.0.lr.lr_max",
                ),
            ],
        ),
        # an unknown paper strategy name
        (
            {"baselines": ["no-such-strategy"]},
            None,  # message lists the presets; checked below by prefix
        ),
    ],
)
def test_invalid_spec_is_422_naming_the_field(
    client: TestClient,
    alice: dict[str, str],
    changes: dict[str, Any],
    expected: list[tuple[list[Any], str]] | None,
) -> None:
    body = job_body(**changes)
    details = _detail(_submit(client, alice, body))
    if expected is None:
        assert details[0][0] == ["body", "baselines", 0]
        assert details[0][1].startswith("baselines.0 must be 'paper' or one of the paper's strategies (")
        assert details[0][1].endswith("), got 'no-such-strategy'")
    else:
        assert details == expected


def test_bad_schedule_in_space_is_located(client: TestClient, alice: dict[str, str]) -> None:
    from schedules.spec import SpecError, parse_batch

    bad = {"family": "exp_growth", "b0": 8, "factor": 0.5, "interval": 3}
    with pytest.raises(SpecError) as info:
        parse_batch(bad)
    body = job_body(space=[{"batch_size": bad, "lr": {"family": "constant", "lr0": 0.1}}])
    details = _detail(_submit(client, alice, body))
    field = info.value.field.split(".")
    assert details == [(["body", "space", 0, *field], str(info.value))]
    assert field[0] == "batch_size"


def test_listing_jobs_reads_owners_and_best_trials_in_the_same_queries_for_any_number_of_jobs(
    app: Any, client: TestClient, alice: dict[str, str], make_user: Any
) -> None:
    """An admin lists another user's jobs, each with a best trial: the owner and the best trial of every job
    come from two queries, not one per job."""
    from sqlalchemy import event

    from service.storage import repository as repo
    from service.storage.db import session_scope

    admin = make_user("root", admin=True)

    def add_jobs(n: int) -> None:
        for _ in range(n):
            job_id = client.post("/v1/jobs", json=JOB, headers=alice).json()["id"]
            with session_scope(app.state.session_factory) as s:
                trial = repo.upsert_trial(s, job_id=job_id, trial_key="best", config={})
                repo.set_trial_status(s, trial_id=trial.id, status="succeeded", summary={"sfo_to_target": 3})
                repo.refresh_job_progress(s, job_id=job_id)

    def statements_of_a_listing() -> int:
        seen: list[str] = []

        def count(_conn: Any, _cursor: Any, statement: str, *_rest: Any) -> None:
            seen.append(statement)

        event.listen(app.state.engine, "before_cursor_execute", count)
        try:
            page = client.get("/v1/jobs", headers=admin).json()
        finally:
            event.remove(app.state.engine, "before_cursor_execute", count)
        assert {(j["owner"], j["best_trial"]["trial_key"]) for j in page["data"]} == {("alice", "best")}
        return len(seen)

    add_jobs(1)
    one = statements_of_a_listing()
    add_jobs(4)
    assert statements_of_a_listing() == one
