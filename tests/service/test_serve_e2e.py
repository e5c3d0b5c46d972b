"""End to end: a real ``schedsearch serve`` (uvicorn, SQLite, no dispatcher) driven over HTTP."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.service.api.conftest import JOB

pytestmark = pytest.mark.slow


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _cli() -> list[str]:
    exe = shutil.which("schedsearch", path=str(Path(sys.executable).parent))
    return (
        [exe] if exe else [sys.executable, "-c", "import sys; from service.cli import main; sys.exit(main())"]
    )


@pytest.fixture
def server(tmp_path: Path) -> Iterator[tuple[str, dict[str, str]]]:
    port = _free_port()
    env = {
        **os.environ,
        "SCHEDSEARCH_DATA_DIR": str(tmp_path / "data"),
        "SCHEDSEARCH_EMBEDDED_DISPATCHER": "false",
        "SCHEDSEARCH_PORT": str(port),
    }
    env.pop("SCHEDSEARCH_DATABASE_URL", None)
    token_run = subprocess.run(
        [*_cli(), "token", "create", "--user", "e2e"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    token = token_run.stdout.strip().splitlines()[-1]
    log = (tmp_path / "serve.log").open("w")
    proc = subprocess.Popen([*_cli(), "serve"], env=env, stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                if httpx.get(f"{url}/healthz", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if proc.poll() is not None or time.monotonic() > deadline:
                pytest.fail(f"serve did not come up:\n{(tmp_path / 'serve.log').read_text()}")
            time.sleep(0.2)
        yield url, {"Authorization": f"Bearer {token}"}
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
        log.close()


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
