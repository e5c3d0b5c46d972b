"""Faults of the API process and its database, against a real ``schedsearch serve`` subprocess (embedded
dispatcher off): the database goes away and comes back; the server is killed with SIGKILL and restarted.

The dispatcher, worker-node, cancel and failing-trial faults are covered by the workers suite
(``tests/workers/test_cluster_jobs.py``); docs/reliability.md maps every fault to its test.
"""

from __future__ import annotations

import concurrent.futures
import copy
from pathlib import Path

import httpx
import pytest
from sqlalchemy import func, select

from service.settings import Settings
from service.storage import repository as repo
from service.storage.db import make_engine, make_session_factory, session_scope
from service.storage.migrate import upgrade
from service.storage.models import Job, Trial, TrialMetric
from tests.reliability.serve import Server, create_token, free_port, server_env
from tests.support.jobs import JOB
from tests.support.postgres import set_pg_connections

pytestmark = pytest.mark.slow


@pytest.mark.postgres
def test_database_outage_is_503_with_a_clear_message_and_the_api_recovers(
    pg_outage_db: str, tmp_path: Path
) -> None:
    database = pg_outage_db.rsplit("/", 1)[1]
    env = server_env(pg_outage_db, tmp_path / "data", free_port())
    token = create_token(env, "alice")
    server = Server(env, tmp_path / "serve.log")
    headers = {"Authorization": f"Bearer {token}"}
    try:
        with httpx.Client(base_url=server.url, headers=headers, timeout=15) as client:
            job_id = client.post("/v1/jobs", json=JOB).json()["id"]

            set_pg_connections(database, False)
            during = {
                "list": client.get("/v1/jobs"),
                "get": client.get(f"/v1/jobs/{job_id}"),
                "submit": client.post("/v1/jobs", json={**JOB, "name": "during the outage"}),
                "cancel": client.post(f"/v1/jobs/{job_id}/cancel"),
                "healthz": client.get("/healthz"),
            }
            for name, response in during.items():
                assert response.status_code == 503, (name, response.text)
            for name in ("list", "get", "submit", "cancel"):
                assert during[name].json()["detail"] == "the database is unavailable; retry later", name
                assert during[name].headers["Retry-After"] == "5"
            # Metrics still answer (a scrape must not fail with the database).
            assert client.get("/metrics").status_code == 200
            # Nothing of the connection (host, user, database name) or the token leaks into a response.
            for response in during.values():
                for secret in (database, token, "postgres@"):
                    assert secret not in response.text

            set_pg_connections(database, True)
            after = client.get("/v1/jobs")
            assert after.status_code == 200, after.text
            # The refused submission and cancel left nothing behind: one job, still queued.
            assert [(j["id"], j["status"]) for j in after.json()["data"]] == [(job_id, "queued")]
            assert client.get("/healthz").json() == {"status": "ok", "database": "ok"}
            assert client.post("/v1/jobs", json={**JOB, "name": "after"}).status_code == 202
    finally:
        server.stop()
    log = server.log()
    assert "database unavailable on GET /v1/jobs: OperationalError" in log
    assert token not in log
    assert "Traceback" not in log  # a fault is one line in the log, not a stack trace per request


def _store_results(url: str, job_id: str) -> None:
    """What a dispatcher writes while the API runs: two trials with three epochs of metrics each."""
    engine = make_engine(url, settings=Settings(database_url=url))
    with session_scope(make_session_factory(engine)) as session:
        for key in ("t0", "t1"):
            trial = repo.upsert_trial(session, job_id=job_id, trial_key=key, config={"schedule": {}})
            records = [{"epoch": e, "sfo": 100 * e, "grad_norm": 1.0 / e} for e in (1, 2, 3)]
            repo.append_metrics(session, trial_id=trial.id, records=records)
    engine.dispose()


def _counts(url: str) -> tuple[int, int, int]:
    engine = make_engine(url, settings=Settings(database_url=url))
    with make_session_factory(engine)() as session:
        out = tuple(
            int(session.execute(select(func.count()).select_from(m)).scalar_one())
            for m in (Job, Trial, TrialMetric)
        )
    engine.dispose()
    return out  # type: ignore[return-value]


@pytest.fixture
def restart_db(db_url: str, tmp_path: Path) -> str:
    """``db_url`` is already migrated and empty; the SQLite case gets its own file for the server."""
    if db_url.startswith("sqlite"):
        url = f"sqlite:///{tmp_path / 'restart.db'}"
        engine = make_engine(url, settings=Settings(database_url=url))
        upgrade(engine)
        engine.dispose()
        return url
    return db_url


def test_kill_9_and_restart_keeps_every_job_trial_and_metric_exactly_once(
    restart_db: str, tmp_path: Path
) -> None:
    env = server_env(restart_db, tmp_path / "data", free_port())
    env["SCHEDSEARCH_MAX_ACTIVE_JOBS_PER_USER"] = "100"  # 13 queued jobs; the quota is tested elsewhere
    token = create_token(env, "alice")
    headers = {"Authorization": f"Bearer {token}"}
    server = Server(env, tmp_path / "serve.log")
    keys = [f"submit-{i}" for i in range(12)]

    def submit(client: httpx.Client, key: str) -> int | None:
        body = copy.deepcopy(JOB)
        body["name"] = key
        try:
            return client.post("/v1/jobs", json=body, headers={"Idempotency-Key": key}).status_code
        except httpx.TransportError:
            return None  # the server died under this request: the client retries below

    try:
        with httpx.Client(base_url=server.url, headers=headers, timeout=10) as client:
            first = client.post("/v1/jobs", json=JOB, headers={"Idempotency-Key": "first"}).json()["id"]
            _store_results(restart_db, first)
            # Submissions in flight while the process is killed.
            with concurrent.futures.ThreadPoolExecutor(4) as pool:
                futures = [pool.submit(submit, client, k) for k in keys]
                server.kill9()
                codes = [f.result() for f in futures]
            assert set(codes) <= {202, None}, codes
    finally:
        server.stop()

    server = Server(env, tmp_path / "serve.log")  # the same database, a fresh process
    try:
        with httpx.Client(base_url=server.url, headers=headers, timeout=10) as client:
            # Clients retry everything that did not get an answer (and everything else too): each key gives
            # one job, an earlier success comes back as a 200 replay.
            retried = {
                k: client.post("/v1/jobs", json={**JOB, "name": k}, headers={"Idempotency-Key": k})
                for k in keys
            }
            assert {r.status_code for r in retried.values()} <= {200, 202}, {
                k: r.text for k, r in retried.items()
            }
            jobs = client.get("/v1/jobs", params={"limit": 100}).json()
            assert sorted(j["name"] for j in jobs["data"]) == sorted([JOB["name"], *keys])
            trials = client.get(f"/v1/jobs/{first}/trials").json()
            assert sorted(t["trial_key"] for t in trials["data"]) == ["t0", "t1"]
            for trial in trials["data"]:
                metrics = client.get(f"/v1/jobs/{first}/trials/{trial['id']}/metrics").json()
                assert [m["epoch"] for m in metrics["data"]] == [1, 2, 3]
    finally:
        server.stop()
    assert _counts(restart_db) == (1 + len(keys), 2, 6)
    assert token not in server.log()  # both runs wrote to this log; requests carried the token throughout


def test_sqlite_locked_by_another_writer_is_503_then_recovers(tmp_path: Path) -> None:
    """SQLite's outage: another process holds the write lock longer than the busy timeout."""
    import sqlite3

    from fastapi.testclient import TestClient

    from service.api.app import create_app
    from service.auth import create_token as make_token

    path = tmp_path / "locked.db"
    settings = Settings(
        database_url=f"sqlite:///{path}",
        data_dir=tmp_path,
        embedded_dispatcher=False,
        sqlite_busy_timeout_ms=200,
    )
    engine = make_engine(settings.resolved_database_url(), settings=settings)
    upgrade(engine)
    engine.dispose()
    app = create_app(settings)
    with session_scope(app.state.session_factory) as session:
        headers = {"Authorization": f"Bearer {make_token(session, user_name='alice')}"}
    holder = sqlite3.connect(path, isolation_level=None)
    try:
        with TestClient(app, raise_server_exceptions=False) as client:
            holder.execute("BEGIN EXCLUSIVE")
            locked = client.post("/v1/jobs", json=JOB, headers=headers)
            assert (locked.status_code, locked.json()["detail"]) == (
                503,
                "the database is unavailable; retry later",
            )
            holder.execute("ROLLBACK")
            assert (
                client.get("/v1/jobs", headers=headers).json()["count"] == 0
            )  # the refused job left nothing
            assert client.post("/v1/jobs", json=JOB, headers=headers).status_code == 202
    finally:
        holder.close()
        app.state.engine.dispose()
