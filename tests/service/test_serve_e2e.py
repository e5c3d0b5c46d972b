"""End to end: a real ``schedsearch serve`` (uvicorn, SQLite, no dispatcher) driven over HTTP."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.support.jobs import JOB
from tests.support.serve import Server, create_token, free_port

pytestmark = pytest.mark.slow


@pytest.fixture
def server(tmp_path: Path) -> Iterator[tuple[str, dict[str, str]]]:
    port = free_port()
    env = {
        **os.environ,
        "SCHEDSEARCH_DATA_DIR": str(tmp_path / "data"),
        "SCHEDSEARCH_EMBEDDED_DISPATCHER": "false",
        "SCHEDSEARCH_PORT": str(port),
    }
    env.pop("SCHEDSEARCH_DATABASE_URL", None)
    token = create_token(env, "e2e")
    serve = Server(env, tmp_path / "serve.log", ready_timeout_s=30)
    try:
        yield serve.url, {"Authorization": f"Bearer {token}"}
    finally:
        serve.stop()


def test_create_list_read_cancel_over_http(server: tuple[str, dict[str, str]]) -> None:
    url, headers = server
    with httpx.Client(base_url=url, headers=headers, timeout=10) as client:
        created = client.post("/v1/jobs", json=JOB)
        assert created.status_code == 202, created.text
        job_id = created.json()["id"]
        assert [j["id"] for j in client.get("/v1/jobs").json()["data"]] == [job_id]
        assert client.get(f"/v1/jobs/{job_id}").json()["status"] == "queued"
        assert client.post(f"/v1/jobs/{job_id}/cancel").json()["status"] == "cancelled"
        assert client.get(f"/v1/jobs/{job_id}").json()["status"] == "cancelled"
        assert client.get("/v1/jobs", headers={"Authorization": "Bearer wrong"}).status_code == 401
        assert client.get("/openapi.json").json()["info"]["title"] == "schedsearch"
