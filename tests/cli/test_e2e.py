"""`schedsearch submit --wait` end to end: a real `schedsearch serve` with its embedded dispatcher and a
local Ray (token auth), the console script as a user runs it, a small digits job."""

from __future__ import annotations

import json
import os
import re
import subprocess
from pathlib import Path

import pytest

from tests.support.serve import Server, cli, create_token, free_port

pytestmark = [pytest.mark.ray, pytest.mark.slow]

JOB = {
    "name": "cli e2e",
    "task": {"name": "digits-mlp"},
    "optimizer": {"name": "nshb", "momentum": 0.9},
    "space": [
        {
            "batch_size": {"family": "exp_growth", "b0": {"choice": [16, 32]}, "factor": 2.0, "interval": 1},
            "lr": {"family": "constant", "lr0": {"loguniform": [0.1, 0.5]}},
        }
    ],
    "baselines": [
        {
            "name": "constant-128",
            "batch_size": {"family": "constant", "b0": 128},
            "lr": {"family": "constant", "lr0": 0.1},
        }
    ],
    "budget": {"max_epochs": 3, "total_sfo": 1_000_000},
    "target": {"grad_norm": 0.5},
    "search": {
        "algorithm": "random",
        "num_trials": 2,
        "max_concurrent": 2,
        "seed": 0,
        "early_stopping": False,
    },
}


def _stop_local_ray(data_dir: Path) -> None:
    # The dispatcher stops the head it started when the server stops; this is the safety net if it did not.
    from workers import raycluster

    node = raycluster.load_node(data_dir / "ray" / "head.json")
    if node is not None and raycluster.is_running(node):
        raycluster.stop_node(node)


def test_submit_wait_runs_a_job_on_ray_and_ends_with_the_results_table(tmp_path: Path) -> None:
    data = tmp_path / "data"
    port = free_port()
    env = {**os.environ, "SCHEDSEARCH_DATA_DIR": str(data), "SCHEDSEARCH_PORT": str(port),
           "SCHEDSEARCH_EMBEDDED_DISPATCHER": "true", "COLUMNS": "200"}  # fmt: skip
    for name in ("SCHEDSEARCH_DATABASE_URL", "SCHEDSEARCH_RAY_ADDRESS", "RAY_ADDRESS", "SCHEDSEARCH_TOKEN"):
        env.pop(name, None)
    token = create_token(env, "e2e")
    spec = tmp_path / "job.json"
    spec.write_text(json.dumps(JOB))
    log_path = tmp_path / "serve.log"
    # stop_timeout_s: the embedded dispatcher stops its Ray head on shutdown.
    server: Server | None = None
    try:
        server = Server(env, log_path, stop_timeout_s=60)
        plot = tmp_path / "plot.png"
        run = subprocess.run(
            [*cli(), "submit", str(spec), "--wait", "--interval", "0.5", "--max-wait", "300",
             "--plot", str(plot), "--url", server.url, "--token", token],
            env=env, capture_output=True, text=True, timeout=360,
        )  # fmt: skip
    finally:
        if server is not None:
            server.stop()
        _stop_local_ray(data)
    assert run.returncode == 0, f"{run.stderr}\n--- serve log ---\n{log_path.read_text()[-4000:]}"
    # Progress: the bar's last state and the closing line, then the Ray dashboard link of the job.
    assert "3/3 trials" in run.stderr
    assert re.search(r"succeeded: 3 of 3 trials, [\d,]+ SFO spent", run.stderr)
    assert re.search(r"Ray dashboard: http://127\.0\.0\.1:\d+/#/jobs/", run.stderr)
    # The results table: the best searched trial and the baseline, SFO to target side by side.
    best = next(line for line in run.stdout.splitlines() if "best found" in line)
    assert re.search(r"trial \d+", best) and "1.00x" in best
    assert any("constant-128" in line and "baseline" in line for line in run.stdout.splitlines())
    assert plot.read_bytes()[:4] == b"\x89PNG"
