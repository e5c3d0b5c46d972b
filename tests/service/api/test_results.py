"""Results API: trials sorted by the objective, per-epoch metrics, report and plot, from stored trials."""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI
from fastapi.testclient import TestClient

from schedules.paper import STRATEGY_NAMES
from schedules.spec import Schedule
from schedules.theory import check
from service.storage import repository as repo
from service.storage.db import session_scope
from tests.support.jobs import JOB

GROWTH = {
    "batch_size": {"family": "exp_growth", "b0": 8, "factor": 2.0, "interval": 3},
    "lr": {"family": "warmup_const", "lr0": 0.1, "lr_max": 0.5, "warmup_epochs": 6, "warmup_interval": 1},
}
CONSTANT = {"batch_size": {"family": "constant", "b0": 32}, "lr": {"family": "constant", "lr0": 0.1}}


def _curve(start: float, rate: float, per_epoch: int) -> list[dict[str, Any]]:
    return [{"epoch": e, "sfo": per_epoch * e, "grad_norm": start * rate**e, "lr": 0.1} for e in range(1, 6)]


def _store_trials(app: FastAPI, job_id: str) -> dict[str, int]:
    """Two searched trials and one baseline, as the dispatcher would write them."""
    ids = {}
    rows: list[tuple[str, str, str | None, dict[str, Any], dict[str, Any], list[dict[str, Any]]]] = [
        (
            "search-a",
            "search",
            None,
            GROWTH,
            {"sfo_to_target": 4000, "final_grad_norm": 0.01},
            _curve(1.0, 0.4, 1000),
        ),
        (
            "search-b",
            "search",
            None,
            GROWTH,
            {"sfo_to_target": None, "final_grad_norm": 0.2},
            _curve(1.0, 0.8, 1000),
        ),
        (
            "baseline:constant",
            "baseline",
            "constant",
            CONSTANT,
            {"sfo_to_target": 8000, "final_grad_norm": 0.03},
            _curve(1.0, 0.5, 2000),
        ),
    ]
    with session_scope(app.state.session_factory) as s:
        for key, kind, name, schedule, summary, curve in rows:
            trial = repo.upsert_trial(
                s, job_id=job_id, trial_key=key, config={"schedule": schedule}, kind=kind, name=name
            )
            repo.set_trial_status(s, trial_id=trial.id, status="running")
            repo.append_metrics(s, trial_id=trial.id, records=curve)
            repo.set_trial_status(s, trial_id=trial.id, status="succeeded", summary=summary)
            ids[key] = trial.id
        repo.refresh_job_progress(s, job_id=job_id)
    return ids


def test_job_progress_trials_metrics(app: FastAPI, client: TestClient, alice: dict[str, str]) -> None:
    job_id = client.post("/v1/jobs", json=JOB, headers=alice).json()["id"]
    ids = _store_trials(app, job_id)
    job = client.get(f"/v1/jobs/{job_id}", headers=alice).json()
    assert job["progress"]["trials_finished"] == 3
    assert job["progress"]["sfo_spent"] == 5000 + 5000 + 10000
    assert (job["best_trial"]["id"], job["best_value"]) == (ids["search-a"], 4000.0)

    trials = client.get(f"/v1/jobs/{job_id}/trials", headers=alice).json()
    assert [t["trial_key"] for t in trials["data"]] == ["search-a", "baseline:constant", "search-b"]
    desc = client.get(f"/v1/jobs/{job_id}/trials", params={"order": "desc"}, headers=alice).json()
    assert [t["trial_key"] for t in desc["data"]] == ["baseline:constant", "search-a", "search-b"]
    only = client.get(f"/v1/jobs/{job_id}/trials", params={"kind": "baseline"}, headers=alice).json()
    assert [t["name"] for t in only["data"]] == ["constant"]

    metrics = client.get(f"/v1/jobs/{job_id}/trials/{ids['search-a']}/metrics", headers=alice).json()
    assert metrics["count"] == 5
    assert [m["epoch"] for m in metrics["data"]] == [1, 2, 3, 4, 5]
    assert metrics["data"][1]["grad_norm"] == 1.0 * 0.4**2


def test_report_compares_best_with_baselines(app: FastAPI, client: TestClient, alice: dict[str, str]) -> None:
    job_id = client.post("/v1/jobs", json=JOB, headers=alice).json()["id"]
    ids = _store_trials(app, job_id)
    report = client.get(f"/v1/jobs/{job_id}/report", headers=alice).json()
    assert report["best"]["trial_id"] == ids["search-a"]
    assert report["best"]["schedule"] == GROWTH
    assert [(r["name"], r["sfo_to_target"], r["sfo_ratio"]) for r in report["table"]] == [
        ("search-a", 4000, 1.0),
        ("constant", 8000, 2.0),
    ]
    assert report["best_vs_best_baseline"] == {"baseline": "constant", "sfo_saving": 0.5}
    # the theory check of the best schedule, on the digits training set size
    expected = check(Schedule.from_json(GROWTH), optimizer="nshb", momentum=0.9, max_epochs=12, n_train=1347)
    assert report["theory"] == expected.to_json()
    assert report["paper"] == [] and report["paper_not_run"] == sorted(STRATEGY_NAMES)


def test_plot_is_a_png(app: FastAPI, client: TestClient, alice: dict[str, str]) -> None:
    job_id = client.post("/v1/jobs", json=JOB, headers=alice).json()["id"]
    empty = client.get(f"/v1/jobs/{job_id}/plot.png", headers=alice)
    assert (empty.status_code, empty.headers["content-type"], empty.content[:8]) == (
        200,
        "image/png",
        b"\x89PNG\r\n\x1a\n",
    )
    _store_trials(app, job_id)
    full = client.get(f"/v1/jobs/{job_id}/plot.png", headers=alice)
    assert full.content[:8] == b"\x89PNG\r\n\x1a\n" and len(full.content) > len(empty.content)


def test_healthz_and_metrics(client: TestClient, alice: dict[str, str], make_user: Any) -> None:
    assert client.get("/healthz").json() == {"status": "ok", "database": "ok"}
    client.post("/v1/jobs", json=JOB, headers=alice)
    # Job counts are for admins (tests/reliability/test_security.py); the scraper sends an admin's token.
    text = client.get("/metrics", headers=make_user("prometheus", admin=True)).text
    assert 'schedsearch_jobs{status="queued"} 1.0' in text
    assert 'schedsearch_http_requests_total{method="POST",route="/v1/jobs",status="202"} 1.0' in text
    assert 'schedsearch_http_request_duration_seconds_count{method="GET",route="/healthz"} 1.0' in text


def test_healthz_is_503_when_the_database_is_gone(tmp_path: Any) -> None:
    from service.api.app import create_app
    from service.settings import Settings

    # Nothing listens on port 1, so every connection is refused at once.
    app = create_app(
        Settings(database_url="postgresql+psycopg://postgres@127.0.0.1:1/none", data_dir=tmp_path)
    )
    with TestClient(app) as c:
        response = c.get("/healthz")
    assert (response.status_code, response.json()) == (
        503,
        {"status": "unavailable", "database": "error: OperationalError"},
    )
