"""End to end with a third-party task: the example plugin (examples/plugins/spirals, its own package with a
``schedsearch.tasks`` entry point, a custom dataset and model) installed into the environment, a real
``schedsearch serve`` whose embedded dispatcher runs jobs on the session's local Ray, a job naming the
plugin's task submitted over REST; it runs on Ray and succeeds with per-epoch metrics."""

from __future__ import annotations

import importlib.metadata
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.support.cluster import Cluster
from tests.support.serve import Server, create_token, free_port
from tests.workers.helpers import dispatcher_env, migrated_sqlite, wait_for

pytestmark = [pytest.mark.ray, pytest.mark.slow]

PLUGIN = Path(__file__).resolve().parents[2] / "examples" / "plugins" / "spirals"
N = 384  # training points of the job below: SFO of one epoch

JOB: dict[str, Any] = {
    "apiVersion": "schedsearch/v1",
    "name": "spirals plugin",
    "task": {"name": "spirals-mlp", "options": {"n": N, "n_test": 128, "width": 16, "blocks": 1}},
    "optimizer": {"name": "nshb", "momentum": 0.9},
    "space": [
        {
            "batch_size": {"family": "constant", "b0": {"choice": [32, 64]}},
            "lr": {"family": "constant", "lr0": 0.5},
        }
    ],
    "baselines": [
        {
            "name": "growing",
            "batch_size": {"family": "exp_growth", "b0": 16, "factor": 2.0, "interval": 1},
            "lr": {"family": "constant", "lr0": 0.5},
        }
    ],
    # no budget.max_sfo: the driver takes n from the plugin's definition
    "budget": {"max_epochs": 3},
    "target": {"grad_norm": 0.05},
    "search": {"algorithm": "random", "num_trials": 1, "max_concurrent": 1, "early_stopping": True},
    "resources": {"cpus": 1, "gpus": 0},
}


@pytest.fixture(scope="module")
def plugin() -> str:
    """The plugin's distribution, installed now unless scripts/setup.sh already did (editable, no deps:
    schedsearch and torch are here). Processes started afterwards (serve, the Ray Job's driver, Ray's
    worker processes) read the entry point when they start."""
    try:
        importlib.metadata.distribution("schedsearch-spirals")
    except importlib.metadata.PackageNotFoundError:
        subprocess.run(
            [sys.executable, "-m", "pip", "install", "-q", "--no-deps", "-e", str(PLUGIN)],
            check=True,
            timeout=300,
        )
    return importlib.metadata.version("schedsearch-spirals")


@pytest.fixture
def service(plugin: str, local_ray: Cluster, tmp_path: Path) -> Iterator[tuple[str, dict[str, str]]]:
    url = migrated_sqlite(tmp_path / "schedsearch.db")
    env = {
        **os.environ,
        **dispatcher_env(url, tmp_path / "data", local_ray.env(), dashboard_url=local_ray.dashboard_url),
        "SCHEDSEARCH_PORT": str(free_port()),
        "SCHEDSEARCH_EMBEDDED_DISPATCHER": "true",
    }
    token = create_token(env, "plugin-user")
    server = Server(env, tmp_path / "serve.log", ready_timeout_s=60, stop_timeout_s=30)
    try:
        yield server.url, {"Authorization": f"Bearer {token}"}
    finally:
        server.stop()


def test_a_job_naming_the_plugins_task_runs_on_ray(plugin: str, service: tuple[str, dict[str, str]]) -> None:
    url, headers = service
    with httpx.Client(base_url=url, headers=headers, timeout=10) as client:
        listed = {t["name"]: t for t in client.get("/v1/tasks").json()["data"]}
        assert listed["spirals-mlp"]["package"] == f"schedsearch-spirals {plugin}"
        assert [o["name"] for o in listed["spirals-mlp"]["options"]][:3] == ["n", "n_test", "turns"]
        # the plugin's schema is enforced at submission, with the valid options listed
        bad = client.post("/v1/jobs", json={**JOB, "task": {"name": "spirals-mlp", "options": {"depth": 2}}})
        assert bad.status_code == 422 and "is not an option of task spirals-mlp (valid: n, n_test" in bad.text

        created = client.post("/v1/jobs", json=JOB)
        assert created.status_code == 202, created.text
        job_id = created.json()["id"]

        def finished() -> dict[str, Any] | None:
            job = client.get(f"/v1/jobs/{job_id}").json()
            return job if job["status"] in ("succeeded", "failed", "cancelled") else None

        job = wait_for(finished, timeout_s=180, what="the plugin job to finish", every_s=1.0)
        assert job["status"] == "succeeded", job
        trials = client.get(f"/v1/jobs/{job_id}/trials", params={"limit": 10}).json()["data"]
        assert len(trials) == 2 and {t["status"] for t in trials} <= {"succeeded", "pruned"}, trials
        baseline = next(t for t in trials if t["kind"] == "baseline")
        assert baseline["status"] == "succeeded", baseline
        points = client.get(f"/v1/jobs/{job_id}/trials/{baseline['id']}/metrics").json()["data"]
        # one record per epoch; each epoch spends n = the plugin's n_train(options)
        assert [p["epoch"] for p in points] == [1, 2, 3]
        assert [p["sfo"] for p in points] == [N, 2 * N, 3 * N]
        assert [p["batch_size"] for p in points] == [16, 32, 64]
        assert all(p["grad_norm_subset"] is None and 0.0 <= p["test_acc"] <= 1.0 for p in points)
        assert points[-1]["grad_norm"] < baseline["summary"]["initial_grad_norm"]  # it trained
        events = [e["kind"] for e in client.get(f"/v1/jobs/{job_id}/events").json()]
        assert "early_stopping_off" not in events  # n was known from the definition
