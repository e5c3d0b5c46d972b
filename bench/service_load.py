"""Service load: requests/s and p50/p99 latency of a real ``schedsearch serve`` on SQLite and PostgreSQL.

For each backend the script starts ``schedsearch serve --no-dispatcher`` as a subprocess on 127.0.0.1 (one
uvicorn process, access log off), creates a token with ``schedsearch token create``, submits one job over
HTTP and gives it trials with per-epoch metrics through the repository (what a dispatcher would write), then
runs a closed-loop load generator (asyncio + httpx, one connection per client, in this process) for each
operation at each concurrency level:

- ``submit``: POST /v1/jobs (quotas and the submit rate limit raised for the run, so every request is a
  real insert); ``list``: GET /v1/jobs?limit=20; ``read``: GET /v1/jobs/{id};
- ``trials``: GET /v1/jobs/{id}/trials?limit=20; ``metrics``: GET /v1/jobs/{id}/trials/{tid}/metrics.

Each (operation, concurrency) cell stops at ``--requests`` requests or ``--cell-seconds`` seconds. Errors are
transport failures and non-2xx answers. The load generator shares the two cores with the server, so these are
lower bounds of what the server would do alone. PostgreSQL runs in a dedicated database (created and dropped
here) on 127.0.0.1:5432, user postgres.

    python bench/service_load.py --quick                    # < 2 minutes
    python bench/service_load.py --backends sqlite postgres # the table in docs/benchmarks.md
"""

from __future__ import annotations

import argparse
import asyncio
import copy
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench._report import IMG_DIR, percentile, table, write_latest

PG_ADMIN_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"
OPERATIONS = ("submit", "list", "read", "trials", "metrics")
READS = ("list", "read", "trials", "metrics")
TRIALS_PER_JOB = 20
#: The schedule of every seeded trial (one point of JOB's space).
SCHEDULE = {
    "batch_size": {"family": "exp_growth", "b0": 16, "factor": 2.0, "interval": 3},
    "lr": {"family": "warmup_const", "lr0": 0.1, "lr_max": 0.5, "warmup_epochs": 6, "warmup_interval": 2},
}
#: A request slower than this counts as an error (ReadTimeout); the server's own pool timeout is 30 s.
CLIENT_TIMEOUT_S = 10.0
EPOCHS_PER_TRIAL = 30
JOB: dict[str, Any] = {
    "apiVersion": "schedsearch/v1",
    "name": "load test",
    "task": {"name": "digits-mlp"},
    "optimizer": {"name": "nshb", "momentum": 0.9},
    "space": [
        {
            "batch_size": {
                "family": "exp_growth",
                "b0": {"choice": [8, 16, 32]},
                "factor": {"uniform": [1.5, 3.0]},
                "interval": 3,
            },
            "lr": {
                "family": "warmup_const",
                "lr0": 0.1,
                "lr_max": {"loguniform": [0.2, 1.0]},
                "warmup_epochs": 6,
                "warmup_interval": 2,
            },
        }
    ],
    "baselines": ["paper"],
    "budget": {"max_epochs": 20, "total_sfo": 5_000_000},
    "target": {"grad_norm": 0.02},
    "search": {"algorithm": "tpe", "num_trials": 8, "max_concurrent": 2, "seed": 0},
}


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _cli() -> list[str]:
    exe = shutil.which("schedsearch", path=str(Path(sys.executable).parent))
    return [exe] if exe else [sys.executable, "-c", "import sys; from cli import main; sys.exit(main())"]


@contextmanager
def postgres_database() -> Iterator[str]:
    """A fresh database on the local PostgreSQL, dropped afterwards; yields its SQLAlchemy URL."""
    from sqlalchemy import create_engine, text

    name = f"schedsearch_bench_{os.getpid()}"
    admin = create_engine(PG_ADMIN_URL, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'DROP DATABASE IF EXISTS "{name}"'))
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    try:
        yield PG_ADMIN_URL.rsplit("/", 1)[0] + f"/{name}"
    finally:
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


@contextmanager
def serve(database_url: str, data_dir: Path) -> Iterator[tuple[str, str]]:
    """``schedsearch serve --no-dispatcher`` on a free port; yields (base URL, token)."""
    import httpx

    port = _free_port()
    env = {
        **os.environ,
        "SCHEDSEARCH_DATA_DIR": str(data_dir),
        "SCHEDSEARCH_DATABASE_URL": database_url,
        "SCHEDSEARCH_EMBEDDED_DISPATCHER": "false",
        "SCHEDSEARCH_PORT": str(port),
        "SCHEDSEARCH_LOG_LEVEL": "warning",
        # every submit must be a real insert, not a quota or rate-limit answer
        "SCHEDSEARCH_MAX_ACTIVE_JOBS_PER_USER": "1000000000",
        "SCHEDSEARCH_SUBMIT_RATE_PER_MINUTE": "1000000000",
        "SCHEDSEARCH_SUBMIT_BURST": "1000000000",
    }
    token = (
        subprocess.run(
            [*_cli(), "token", "create", "--user", "bench"],
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
            check=True,
        )
        .stdout.strip()
        .splitlines()[-1]
    )
    log_path = data_dir / "serve.log"
    with open(log_path, "w") as log:
        proc = subprocess.Popen(
            [*_cli(), "serve", "--no-dispatcher"], env=env, stdout=log, stderr=subprocess.STDOUT
        )
        url = f"http://127.0.0.1:{port}"
        try:
            deadline = time.monotonic() + 60
            while True:
                try:
                    if httpx.get(f"{url}/healthz", timeout=1).status_code == 200:
                        break
                except httpx.TransportError:
                    pass
                if proc.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"serve did not come up:\n{log_path.read_text()[-3000:]}")
                time.sleep(0.2)
            yield url, token
        finally:
            proc.terminate()
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


def seed_trials(database_url: str, job_id: str) -> list[int]:
    """Trials with per-epoch metrics for ``job_id``, written as the dispatcher would (repository calls)."""
    from service.jobspec import JobSpec
    from service.storage import repository as repo
    from service.storage.db import make_engine, make_session_factory, session_scope

    engine = make_engine(database_url)
    spec = JobSpec.model_validate(JOB)
    ids = []
    try:
        with session_scope(make_session_factory(engine)) as session:
            for i in range(TRIALS_PER_JOB):
                trial = repo.upsert_trial(
                    session,
                    job_id=job_id,
                    trial_key=f"bench-{i}",
                    config=spec.trial_spec(SCHEDULE, momentum=0.9, seed=0).to_json(),  # as the driver does
                )
                session.flush()
                records = [
                    {
                        "epoch": e,
                        "sfo": e * 1347,
                        "step": e * 40,
                        "lr": 0.1,
                        "batch_size": 32,
                        "train_loss": 1.0 / e,
                        "full_loss": 1.0 / e,
                        "grad_norm": 0.3 / e,
                        "test_loss": 1.0,
                        "test_acc": 0.9,
                        "measure_sfo": e * 1347,
                        "wall_s": 0.1 * e,
                    }
                    for e in range(1, EPOCHS_PER_TRIAL + 1)
                ]
                repo.append_metrics(session, trial_id=trial.id, records=records)
                ids.append(int(trial.id))
    finally:
        engine.dispose()
    return ids


async def _cell(
    url: str,
    token: str,
    op: str,
    concurrency: int,
    job_id: str,
    trial_ids: list[int],
    max_requests: int,
    max_seconds: float,
) -> dict[str, Any]:
    import httpx

    latencies: list[float] = []
    errors: dict[str, int] = {}
    issued = 0
    deadline = time.perf_counter() + max_seconds
    headers = {"Authorization": f"Bearer {token}"}

    def request(client: httpx.AsyncClient, i: int) -> Any:
        if op == "submit":
            return client.post("/v1/jobs", json={**copy.deepcopy(JOB), "name": f"load {i}"})
        if op == "list":
            return client.get("/v1/jobs", params={"limit": 20})
        if op == "read":
            return client.get(f"/v1/jobs/{job_id}")
        if op == "trials":
            return client.get(f"/v1/jobs/{job_id}/trials", params={"limit": 20})
        return client.get(f"/v1/jobs/{job_id}/trials/{trial_ids[i % len(trial_ids)]}/metrics")

    async def client_loop(client: httpx.AsyncClient) -> None:
        nonlocal issued
        while issued < max_requests and time.perf_counter() < deadline:
            i = issued
            issued += 1
            t = time.perf_counter()
            try:
                response = await request(client, i)
                key = None if response.status_code < 300 else str(response.status_code)
            except httpx.HTTPError as exc:
                key = type(exc).__name__
            latencies.append(time.perf_counter() - t)
            if key is not None:
                errors[key] = errors.get(key, 0) + 1

    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    async with httpx.AsyncClient(
        base_url=url, headers=headers, timeout=CLIENT_TIMEOUT_S, limits=limits
    ) as client:
        started = time.perf_counter()
        await asyncio.gather(*(client_loop(client) for _ in range(concurrency)))
        wall = time.perf_counter() - started
    return {
        "op": op,
        "concurrency": concurrency,
        "requests": len(latencies),
        "wall_s": wall,
        "rps": len(latencies) / wall if wall > 0 else 0.0,
        "p50_ms": 1000 * percentile(latencies, 50),
        "p99_ms": 1000 * percentile(latencies, 99),
        "max_ms": 1000 * max(latencies, default=float("nan")),
        "errors": sum(errors.values()),
        "error_kinds": errors,
    }


def drain(url: str, limit_s: float = 60.0) -> float:
    """Wait until the server answers /healthz (a database round trip) within 0.5 s again, so requests that
    a timed-out cell left queued on the server do not land in the next cell; returns the seconds waited."""
    import httpx

    started = time.perf_counter()
    while time.perf_counter() - started < limit_s:
        t = time.perf_counter()
        try:
            if (
                httpx.get(f"{url}/healthz", timeout=limit_s).status_code == 200
                and time.perf_counter() - t < 0.5
            ):
                break
        except httpx.HTTPError:
            time.sleep(0.5)
    return time.perf_counter() - started


def run_backend(
    backend: str, database_url: str, data_dir: Path, levels: list[int], max_requests: int, max_seconds: float
) -> list[dict[str, Any]]:
    import httpx

    cells = []
    with serve(database_url, data_dir) as (url, token):
        response = httpx.post(
            f"{url}/v1/jobs", json=JOB, headers={"Authorization": f"Bearer {token}"}, timeout=30
        )
        response.raise_for_status()
        job_id = response.json()["id"]
        trial_ids = seed_trials(database_url, job_id)
        # warm-up: connection pools, first-request imports
        asyncio.run(_cell(url, token, "read", 2, job_id, trial_ids, 20, 5.0))
        for op in OPERATIONS:
            for c in levels:
                cell = asyncio.run(
                    _cell(url, token, op, c, job_id, trial_ids, max(max_requests, 2 * c), max_seconds)
                )
                cell["backend"] = backend
                cell["drain_s"] = drain(url)
                cells.append(cell)
                print(
                    f"  {backend:<9}{op:<8} c={c:<4} {cell['rps']:7.0f} req/s  p50 {cell['p50_ms']:6.1f} ms  "
                    f"p99 {cell['p99_ms']:6.1f} ms  errors {cell['errors']}  drain {cell['drain_s']:.1f}s",
                    flush=True,
                )
    return cells


def plot(cells: list[dict[str, Any]], path: Path) -> None:
    """p99 latency and requests/s against concurrency, one line per (backend, operation)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (ax_p, ax_r) = plt.subplots(1, 2, figsize=(11, 4))
    for backend, style in (("sqlite", "-"), ("postgres", "--")):
        for op in OPERATIONS:
            row = sorted(
                (c for c in cells if c["backend"] == backend and c["op"] == op),
                key=lambda c: c["concurrency"],
            )
            if not row:
                continue
            xs = [c["concurrency"] for c in row]
            line = ax_p.plot(xs, [c["p99_ms"] for c in row], style, marker="o", label=f"{backend} {op}")[0]
            ax_r.plot(xs, [c["rps"] for c in row], style, marker="o", color=line.get_color())
    ax_p.axhline(50, color="red", lw=1, label="target 50 ms")
    for ax, label in ((ax_p, "p99 latency (ms)"), (ax_r, "requests / s")):
        ax.set_xscale("log")
        ax.set_xlabel("concurrent clients")
        ax.set_ylabel(label)
        ax.grid(True, which="both", alpha=0.3)
    ax_p.set_yscale("log")
    ax_p.legend(fontsize=6, ncol=2)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backends", nargs="+", default=None, choices=["sqlite", "postgres"])
    parser.add_argument("--concurrency", type=int, nargs="+", default=None)
    parser.add_argument("--requests", type=int, default=None, help="requests per cell (at most)")
    parser.add_argument("--cell-seconds", type=float, default=None, help="seconds per cell (at most)")
    parser.add_argument("--quick", action="store_true", help="fewer requests per cell (< 2 minutes)")
    parser.add_argument("--name", default="service_load", help="result file name (tests use another)")
    args = parser.parse_args(argv)
    backends = args.backends or ["sqlite", "postgres"]
    # quick stops at 50 clients to stay well under two minutes on two cores
    levels = args.concurrency or ([1, 10, 50] if args.quick else [1, 10, 50, 100])
    max_requests = args.requests or (100 if args.quick else 1000)
    max_seconds = args.cell_seconds or (2.0 if args.quick else 10.0)
    started = time.perf_counter()
    cells: list[dict[str, Any]] = []
    for backend in backends:
        data_dir = Path(tempfile.mkdtemp(prefix="ss-load-"))
        try:
            if backend == "sqlite":
                cells += run_backend(
                    backend, f"sqlite:///{data_dir / 'load.db'}", data_dir, levels, max_requests, max_seconds
                )
            else:
                with postgres_database() as url:
                    cells += run_backend(backend, url, data_dir, levels, max_requests, max_seconds)
        finally:
            shutil.rmtree(data_dir, ignore_errors=True)
    print(
        table(
            ["backend", "op", "clients", "requests", "req/s", "p50 ms", "p99 ms", "errors"],
            [
                [
                    c["backend"],
                    c["op"],
                    c["concurrency"],
                    c["requests"],
                    c["rps"],
                    c["p50_ms"],
                    c["p99_ms"],
                    c["errors"],
                ]
                for c in cells
            ],
        )
    )
    top = max(levels)
    target = {}
    for backend in backends:
        worst = max(
            (c for c in cells if c["backend"] == backend and c["op"] in READS and c["concurrency"] == top),
            key=lambda c: c["p99_ms"],
            default=None,
        )
        if worst:
            target[backend] = {
                "worst_read": worst["op"],
                "p99_ms": worst["p99_ms"],
                "target_ms": 50.0,
                "met": worst["p99_ms"] < 50.0,
            }
            print(
                f"{backend}: worst read p99 at {top} clients = {worst['p99_ms']:.1f} ms ({worst['op']}); "
                f"target < 50 ms {'met' if worst['p99_ms'] < 50 else 'MISSED'}"
            )
    image = IMG_DIR / f"{args.name}.png"
    plot(cells, image)
    print(f"plot: docs/img/{image.name}")
    errors = sum(c["errors"] for c in cells)
    print(f"errors: {errors}")
    path = write_latest(
        args.name,
        {
            "quick": args.quick,
            "backends": backends,
            "concurrency": levels,
            "max_requests_per_cell": max_requests,
            "max_seconds_per_cell": max_seconds,
            "trials_per_job": TRIALS_PER_JOB,
            "epochs_per_trial": EPOCHS_PER_TRIAL,
            "cells": cells,
            "read_p99_target": target,
            "errors": errors,
            "wall_s": time.perf_counter() - started,
        },
    )
    print(f"wrote bench/results/{path.name} in {time.perf_counter() - started:.0f}s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
