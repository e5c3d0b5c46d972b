"""The active-jobs quota under concurrent submissions to a real ``schedsearch serve`` (uvicorn, its worker
threads, SQLite and PostgreSQL): 30 submissions of one user at once never store more than the quota."""

from __future__ import annotations

import concurrent.futures
import copy
from pathlib import Path

import httpx
import pytest

from service.settings import Settings
from service.storage.db import make_engine
from service.storage.migrate import upgrade
from tests.reliability.serve import Server, create_token, free_port, server_env
from tests.support.jobs import JOB

pytestmark = pytest.mark.slow


@pytest.fixture
def server_db(db_url: str, tmp_path: Path) -> str:
    """``db_url`` is migrated and empty; the SQLite case gets its own file for the server process."""
    if db_url.startswith("sqlite"):
        url = f"sqlite:///{tmp_path / 'race.db'}"
        engine = make_engine(url, settings=Settings(database_url=url))
        upgrade(engine)
        engine.dispose()
        return url
    return db_url


def test_thirty_concurrent_submits_store_at_most_the_quota(server_db: str, tmp_path: Path) -> None:
    env = server_env(server_db, tmp_path / "data", free_port())
    env["SCHEDSEARCH_MAX_ACTIVE_JOBS_PER_USER"] = "3"
    env["SCHEDSEARCH_SUBMIT_BURST"] = "100"  # the rate limit is not under test here
    token = create_token(env, "alice")
    server = Server(env, tmp_path / "serve.log")
    headers = {"Authorization": f"Bearer {token}"}
    try:
        with httpx.Client(base_url=server.url, headers=headers, timeout=60) as client:

            def submit(i: int) -> int:
                body = copy.deepcopy(JOB)
                body["name"] = f"race {i}"
                return client.post("/v1/jobs", json=body).status_code

            with concurrent.futures.ThreadPoolExecutor(30) as pool:
                codes = list(pool.map(submit, range(30)))
            listed = client.get("/v1/jobs", params={"limit": 100}).json()
    finally:
        server.stop()
    assert sorted(codes) == [202] * 3 + [429] * 27, codes
    assert listed["count"] == 3
