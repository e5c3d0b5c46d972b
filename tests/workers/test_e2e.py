"""End to end: ``schedsearch serve`` (uvicorn) with its embedded dispatcher and the local Ray that the
dispatcher starts by itself (no ``SCHEDSEARCH_RAY_ADDRESS``), a small job submitted over HTTP."""

from __future__ import annotations

import json
import os
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.support.serve import cli, create_token, free_port
from tests.workers.helpers import Db, Proc, job_spec, wait_for
from workers import raycluster

pytestmark = [pytest.mark.ray, pytest.mark.slow]


@pytest.fixture
def service(tmp_path: Path) -> Iterator[tuple[str, dict[str, str], Path]]:
    port = free_port()
    data_dir = tmp_path / "data"
    env = {
        "SCHEDSEARCH_DATA_DIR": str(data_dir),
        "SCHEDSEARCH_PORT": str(port),
        "SCHEDSEARCH_EMBEDDED_DISPATCHER": "true",
        "SCHEDSEARCH_LOG_LEVEL": "info",
    }
    # The dispatcher makes its own local Ray and token: nothing Ray-related comes from this process.
    base = {k: v for k, v in os.environ.items() if not k.startswith(("SCHEDSEARCH_", "RAY_AUTH"))}
    token = create_token({**base, **env}, "e2e")
    saved = {k: os.environ.pop(k) for k in list(os.environ) if k.startswith(("SCHEDSEARCH_", "RAY_AUTH"))}
    try:
        proc = Proc(["serve"], env, tmp_path / "serve.log")
    finally:
        os.environ.update(saved)
    url = f"http://127.0.0.1:{port}"
    head_file = data_dir / "ray" / "head.json"
    try:

        def up() -> bool:
            try:
                return httpx.get(f"{url}/healthz", timeout=1).status_code == 200
            except httpx.TransportError:
                assert proc.popen.poll() is None, proc.log()
                return False

        wait_for(up, timeout_s=40, what="serve to answer /healthz")
        yield url, {"Authorization": f"Bearer {token}"}, data_dir
    finally:
        head = raycluster.load_node(head_file)
        proc.stop()
        # A clean shutdown stops the local Ray the dispatcher started.
        if head is not None and raycluster.is_running(head):
            raycluster.stop_node(head)
            pytest.fail(f"the dispatcher left its local Ray running:\n{proc.log()}")


def assert_reruns_alone(db_file: Path, job_id: str, trial_key: str, stored: list[dict[str, Any]]) -> None:
    """``schedsearch train FILE`` with the trial's ``trials.config`` (read from the database itself) gives
    the epochs the job stored for it."""
    db = Db(f"sqlite:///{db_file}")
    try:
        (row,) = [t for t in db.trials(job_id) if t.trial_key == trial_key]
    finally:
        db.close()
    spec_file, out = db_file.parent / "trial.json", db_file.parent / "rerun.json"
    spec_file.write_text(json.dumps(row.config))
    run = subprocess.run(
        [*cli(), "train", str(spec_file), "--json", str(out), "--no-progress"],
        capture_output=True,
        text=True,
        timeout=300,
        env={k: v for k, v in os.environ.items() if not k.startswith("SCHEDSEARCH_")},
    )
    assert run.returncode == 0, run.stderr[-2000:]
    rerun = json.loads(out.read_text())["records"]
    assert [(r["epoch"], r["step"], r["sfo"], r["batch_size"], r["lr"]) for r in rerun] == [
        (r["epoch"], r["step"], r["sfo"], r["batch_size"], r["lr"]) for r in stored
    ]
    for mine, theirs in zip(rerun, stored, strict=True):  # same spec and seed: the same numbers on CPU
        for key in ("train_loss", "full_loss", "grad_norm", "test_loss", "test_acc"):
            assert mine[key] == pytest.approx(theirs[key], rel=1e-6), (key, mine, theirs)


def test_small_job_over_http_with_local_ray(service: tuple[str, dict[str, str], Path]) -> None:
    url, headers, data_dir = service
    spec = job_spec(search={"num_trials": 3, "early_stopping": True})
    with httpx.Client(base_url=url, headers=headers, timeout=10) as client:
        created = client.post("/v1/jobs", json=spec)
        assert created.status_code == 202, created.text
        job_id = created.json()["id"]

        def finished() -> dict | None:
            job = client.get(f"/v1/jobs/{job_id}").json()
            return job if job["status"] in ("succeeded", "failed", "cancelled") else None

        started = time.monotonic()
        job = wait_for(finished, timeout_s=150, what="the job to finish", every_s=1.0)
        assert job["status"] == "succeeded", job
        assert time.monotonic() - started < 150

        trials = client.get(f"/v1/jobs/{job_id}/trials", params={"limit": 100}).json()["data"]
        # 3 searched trials plus the baseline, each present once and each ended.
        assert len(trials) == 4, trials
        assert len({t["trial_key"] for t in trials}) == 4
        assert {t["status"] for t in trials} <= {"succeeded", "pruned", "diverged"}
        assert sum(t["kind"] == "baseline" for t in trials) == 1

        baseline = next(t for t in trials if t["kind"] == "baseline")
        curve = client.get(f"/v1/jobs/{job_id}/trials/{baseline['id']}/metrics").json()
        points = curve["data"]
        epochs = [p["epoch"] for p in points]
        assert epochs == [1, 2, 3, 4], curve  # one row per epoch, in order, no duplicates
        sfo = [p["sfo"] for p in points]
        assert sfo == sorted(sfo) and sfo[-1] == 4 * 1347  # SFO grows by one epoch of examples per epoch

        # The baseline reaches the loose target within its budget: SFO to target is one of its epoch ends.
        summary = baseline["summary"]
        assert summary["sfo_to_target"] in sfo, summary
        assert summary["status"] == "completed"

        # Its row's config, as the job's database holds it, is the trial spec it ran: it reruns alone.
        assert_reruns_alone(data_dir / "schedsearch.db", job_id, baseline["trial_key"], points)

        report = client.get(f"/v1/jobs/{job_id}/report")
        assert report.status_code == 200, report.text
        assert job["summary"]["overhead"]["trials_measured"] == 4
        assert job["summary"]["trials"] == {
            s: sum(t["status"] == s for t in trials) for s in {t["status"] for t in trials}
        }

        # The job links to its Ray Job, which the dashboard lists for a caller with the token only.
        ray_dir = data_dir / "ray"
        head = raycluster.load_node(ray_dir / "head.json")
        assert head is not None and head.dashboard_url is not None
        token = (ray_dir / "auth_token").read_text().strip()
        ray_job_id = str(job["ray_dashboard_url"]).rsplit("/", 1)[-1]
        auth = {"Authorization": f"Bearer {token}"}

        def ray_job() -> dict | None:
            listed = httpx.get(f"{head.dashboard_url}/api/jobs/", headers=auth, timeout=10)
            assert listed.status_code == 200
            ours = [j for j in listed.json() if (j.get("metadata") or {}).get("schedsearch_job") == job_id]
            assert len(ours) == 1, listed.json()
            # The driver exits (and Ray marks its job) a moment after it has finished the job.
            return ours[0] if ours[0]["status"] == "SUCCEEDED" else None

        assert wait_for(ray_job, timeout_s=30, what="the Ray Job to end")["submission_id"] == ray_job_id
        assert httpx.get(f"{head.dashboard_url}/api/jobs/", timeout=10).status_code == 401
