"""Scale-out: the same job through the real Tune driver on a one-node and a two-node Ray cluster on 127.0.0.1.

Each cluster is started with ``workers.raycluster`` (token auth, free non-default ports, every node in its
own process group, stopped by group), with ``--cpus-per-node`` CPUs on every node, so the two-node cluster has
twice the slots. The job (digits-mlp, random search, no early stopping, so both clusters run the same trials)
is created in a fresh SQLite database and run in this process with ``workers.driver.run_job``, exactly what
the dispatcher's Ray Job runs. Reported: wall time of the experiment, trials per minute, and Tune's per-trial
overhead from the driver's job summary (time outside the training function).

    python bench/scale_out.py --quick      # < 2 minutes on 2 CPU cores
    python bench/scale_out.py              # the table in docs/benchmarks.md
"""

from __future__ import annotations

import argparse
import copy
import logging
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench._report import table, write_latest

DIGITS_N_TRAIN = 1347
JOB: dict[str, Any] = {
    "apiVersion": "schedsearch/v1",
    "name": "scale-out benchmark",
    "task": {"name": "digits-mlp"},
    "optimizer": {"name": "nshb", "momentum": 0.9},
    "space": [
        {
            "batch_size": {
                "family": "exp_growth",
                "b0": {"choice": [16, 32]},
                "factor": {"uniform": [1.5, 3.0]},
                "interval": 2,
            },
            "lr": {"family": "constant", "lr0": {"loguniform": [0.1, 1.0]}},
        }
    ],
    "budget": {"max_epochs": 8, "max_sfo": 8 * DIGITS_N_TRAIN},
    "target": {"grad_norm": 0.05},
    "objective": "sfo_to_target",
    "search": {
        "algorithm": "random",
        "num_trials": 8,
        "max_concurrent": 8,
        "seed": 0,
        "early_stopping": False,
    },
    "resources": {"cpus": 1, "gpus": 0},
}


def run_on_cluster(nodes: int, cpus_per_node: int, spec: dict[str, Any], token: str) -> dict[str, Any]:
    import ray

    from service.settings import Settings
    from service.storage import repository as repo
    from service.storage.db import make_engine, make_session_factory, session_scope
    from service.storage.migrate import upgrade
    from workers import raycluster
    from workers.driver import run_job

    temp = Path(tempfile.mkdtemp(prefix=f"ss-so{nodes}-"))  # short: Ray's unix socket paths are limited
    started_nodes: list[Any] = []
    try:
        t0 = time.perf_counter()
        head = raycluster.start_head(temp / "ray", token=token, num_cpus=cpus_per_node)
        started_nodes.append(head)
        for i in range(1, nodes):
            started_nodes.append(
                raycluster.start_worker(head, token=token, num_cpus=cpus_per_node, name=f"worker{i}")
            )
        cluster_start_s = time.perf_counter() - t0
        url = f"sqlite:///{temp / 'bench.db'}"
        settings = Settings(database_url=url, data_dir=temp / "data", ray_address=head.gcs_address)
        engine = make_engine(url, settings=settings)
        upgrade(engine)
        factory = make_session_factory(engine)
        with session_scope(factory) as s:
            owner = repo.get_or_create_user(s, name="bench")
            job, _ = repo.create_job(
                s, owner_id=owner.id, name=spec["name"], spec=spec, objective="sfo_to_target"
            )
            job_id = job.id
        ray.init(address=head.gcs_address, logging_level=logging.WARNING, log_to_driver=False)
        deadline = time.monotonic() + 60
        while len([n for n in ray.nodes() if n.get("Alive")]) < nodes and time.monotonic() < deadline:
            time.sleep(0.5)
        alive = len([n for n in ray.nodes() if n.get("Alive")])
        t1 = time.perf_counter()
        status = run_job(settings, job_id, storage_path=temp / "tune")
        wall = time.perf_counter() - t1
        with session_scope(factory) as s:
            stored = repo.get_job(s, job_id=job_id)
            summary = dict(stored.summary or {})
        engine.dispose()
        trials = sum((summary.get("trials") or {}).values())
        overhead = summary.get("overhead") or {}
        return {
            "nodes": nodes,
            "alive_nodes": alive,
            "cpus_per_node": cpus_per_node,
            "status": status,
            "cluster_start_s": cluster_start_s,
            "job_wall_s": wall,
            "trials": trials,
            "trial_status": summary.get("trials"),
            "trials_per_min": 60.0 * trials / wall if wall else None,
            "nodes_used": len(summary.get("nodes") or []),
            "overhead": overhead,
        }
    finally:
        if ray.is_initialized():
            ray.shutdown()
        for node in reversed(started_nodes):
            raycluster.stop_node(node)
        shutil.rmtree(temp, ignore_errors=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cpus-per-node", type=int, default=1)
    parser.add_argument("--trials", type=int, default=None)
    parser.add_argument("--epochs", type=int, default=None)
    parser.add_argument("--quick", action="store_true", help="4 short trials per cluster (< 2 minutes)")
    parser.add_argument("--name", default="scale_out", help="result file name (tests use another)")
    parser.add_argument("--results-dir", type=Path, default=None, help="default: bench/results")
    args = parser.parse_args(argv)
    spec = copy.deepcopy(JOB)
    trials = args.trials or (4 if args.quick else 12)
    epochs = args.epochs or (4 if args.quick else 12)
    spec["search"]["num_trials"] = trials
    spec["budget"] = {"max_epochs": epochs, "max_sfo": epochs * DIGITS_N_TRAIN}
    from workers import raycluster

    # Ray reads the auth mode and token once per process, at its first import: set them before that, and
    # use one token for both clusters.
    token = raycluster.new_token()
    os.environ.update(raycluster.auth_env(token))
    started = time.perf_counter()
    runs = []
    for nodes in (1, 2):
        run = run_on_cluster(nodes, args.cpus_per_node, spec, token)
        runs.append(run)
        print(
            f"  {nodes} node(s): {run['status']} {run['trials']} trials in {run['job_wall_s']:.1f}s "
            f"(nodes used {run['nodes_used']}, cluster start {run['cluster_start_s']:.1f}s)",
            flush=True,
        )
    print(
        table(
            [
                "nodes",
                "CPUs/node",
                "trials",
                "job wall s",
                "trials/min",
                "overhead/trial s (in trial)",
                "overhead/trial s (slots x wall)",
                "train s/trial",
            ],
            [
                [
                    r["nodes"],
                    r["cpus_per_node"],
                    r["trials"],
                    r["job_wall_s"],
                    r["trials_per_min"],
                    r["overhead"].get("in_trial_mean_s"),
                    r["overhead"].get("per_trial_s"),
                    r["overhead"].get("train_mean_s"),
                ]
                for r in runs
            ],
        )
    )
    speedup = runs[0]["job_wall_s"] / runs[1]["job_wall_s"] if runs[1]["job_wall_s"] else None
    print(f"two-node speed-up: {speedup:.2f}x (ideal 2x)" if speedup else "two-node speed-up: -")
    path = write_latest(
        args.name,
        {
            "quick": args.quick,
            "job": spec,
            "runs": runs,
            "speedup": speedup,
            "engine": "workers.driver.run_job in-process against workers.raycluster nodes",
            "wall_s": time.perf_counter() - started,
        },
        results_dir=args.results_dir,
    )
    print(f"wrote bench/results/{path.name} in {time.perf_counter() - started:.0f}s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
