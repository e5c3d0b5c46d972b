"""`schedsearch submit --wait` end to end: a real `schedsearch serve` with its embedded dispatcher and a
local Ray (token auth), the console script as a user runs it, a small digits job."""

from __future__ import annotations

import json
import os
import re
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

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


def _cli() -> list[str]:
    exe = shutil.which("schedsearch", path=str(Path(sys.executable).parent))
    return (
        [exe] if exe else [sys.executable, "-c", "import sys; from service.cli import main; sys.exit(main())"]
    )


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _stop_local_ray(data_dir: Path) -> None:
    # The dispatcher stops the head it started when the server stops; this is the safety net if it did not.
    from workers import raycluster

    node = raycluster.load_node(data_dir / "ray" / "head.json")
    if node is not None and raycluster.is_running(node):
        raycluster.stop_node(node)


def test_submit_wait_runs_a_job_on_ray_and_ends_with_the_results_table(tmp_path: Path) -> None:
    data = tmp_path / "data"
    port = _free_port()
    env = {**os.environ, "SCHEDSEARCH_DATA_DIR": str(data), "SCHEDSEARCH_PORT": str(port),
           "SCHEDSEARCH_EMBEDDED_DISPATCHER": "true", "COLUMNS": "200"}  # fmt: skip
    for name in ("SCHEDSEARCH_DATABASE_URL", "SCHEDSEARCH_RAY_ADDRESS", "RAY_ADDRESS", "SCHEDSEARCH_TOKEN"):
        env.pop(name, None)
    token = subprocess.run(
        [*_cli(), "token", "create", "--user", "e2e"], env=env, capture_output=True, text=True, timeout=60,
        check=True,
    ).stdout.splitlines()[-1]  # fmt: skip
    spec = tmp_path / "job.json"
    spec.write_text(json.dumps(JOB))
    log_path = tmp_path / "serve.log"
    url = f"http://127.0.0.1:{port}"
    with log_path.open("w") as log:
        server = subprocess.Popen([*_cli(), "serve"], env=env, stdout=log, stderr=subprocess.STDOUT)
        try:
            deadline = time.monotonic() + 60
            while True:
                try:
                    if httpx.get(f"{url}/healthz", timeout=1).status_code == 200:
                        break
                except httpx.TransportError:
                    pass
                if server.poll() is not None or time.monotonic() > deadline:
                    pytest.fail(f"serve did not come up:\n{log_path.read_text()}")
                time.sleep(0.2)
            plot = tmp_path / "plot.png"
            run = subprocess.run(
                [*_cli(), "submit", str(spec), "--wait", "--interval", "0.5", "--max-wait", "300",
                 "--plot", str(plot), "--url", url, "--token", token],
                env=env, capture_output=True, text=True, timeout=360,
            )  # fmt: skip
        finally:
            server.terminate()
            try:
                server.wait(timeout=60)
            except subprocess.TimeoutExpired:
                server.kill()
                server.wait()
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
