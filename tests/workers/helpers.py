"""Helpers of the workers acceptance tests: job specs, processes (serve, dispatcher), database polling."""

from __future__ import annotations

import copy
import os
import signal
import subprocess
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sqlalchemy import select

from service.settings import Settings
from service.storage import repository as repo
from service.storage.db import make_engine, make_session_factory, session_scope
from service.storage.models import Job, Trial, TrialMetric
from tests.support.serve import cli

if TYPE_CHECKING:
    from tests.support.cluster import Cluster

DIGITS_N_TRAIN = 1347  # digits-mlp training examples with the default split (SFO of one epoch)

# A small job on the real trainer: two searched families, a baseline, SFO-capped so that no n_train probe
# is needed; a few epochs of digits-mlp take well under a second each.
SMALL_JOB: dict[str, Any] = {
    "apiVersion": "schedsearch/v1",
    "name": "workers acceptance",
    "task": {"name": "digits-mlp"},
    "optimizer": {"name": "nshb", "momentum": 0.9},
    "space": [
        {
            "batch_size": {"family": "constant", "b0": {"choice": [16, 32]}},
            "lr": {"family": "constant", "lr0": {"loguniform": [0.1, 1.0]}},
        },
        {
            "batch_size": {
                "family": "exp_growth",
                "b0": 16,
                "factor": {"uniform": [1.5, 3.0]},
                "interval": 2,
            },
            "lr": {"family": "constant", "lr0": 0.5},
        },
    ],
    "baselines": [
        {
            "name": "constant-32",
            "batch_size": {"family": "constant", "b0": 32},
            "lr": {"family": "constant", "lr0": 0.5},
        }
    ],
    "budget": {"max_epochs": 4, "max_sfo": 4 * DIGITS_N_TRAIN},
    "target": {"grad_norm": 0.3},
    "objective": "sfo_to_target",
    "search": {"algorithm": "tpe", "num_trials": 4, "max_concurrent": 2, "seed": 0, "early_stopping": False},
    "resources": {"cpus": 1, "gpus": 0},
}


def job_spec(**changes: Any) -> dict[str, Any]:
    """SMALL_JOB with top-level keys replaced and nested dicts (``budget``, ``search``) updated."""
    spec = copy.deepcopy(SMALL_JOB)
    for key, value in changes.items():
        if isinstance(value, Mapping) and isinstance(spec.get(key), dict):
            spec[key].update(value)
        else:
            spec[key] = value
    return spec


def wait_for(predicate: Callable[[], Any], *, timeout_s: float, what: str, every_s: float = 0.5) -> Any:
    deadline = time.monotonic() + timeout_s
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout_s}s waiting for {what}")
        time.sleep(every_s)


class Db:
    """Direct access to a test database (creating jobs as the API would, reading results)."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.engine = make_engine(url, settings=Settings(database_url=url))
        self.factory = make_session_factory(self.engine)

    def create_job(self, spec: Mapping[str, Any], user: str = "alice") -> str:
        with session_scope(self.factory) as s:
            owner = repo.get_or_create_user(s, name=user)
            job, _ = repo.create_job(
                s,
                owner_id=owner.id,
                name=str(spec["name"]),
                spec=spec,
                objective=str(spec.get("objective", "sfo_to_target")),
            )
            return job.id

    def job(self, job_id: str) -> Job:
        with session_scope(self.factory) as s:
            return repo.get_job(s, job_id=job_id)

    def trials(self, job_id: str) -> list[Trial]:
        with session_scope(self.factory) as s:
            return list(s.scalars(select(Trial).where(Trial.job_id == job_id).order_by(Trial.id)))

    def metrics(self, trial_id: int) -> list[TrialMetric]:
        with session_scope(self.factory) as s:
            return repo.list_metrics(s, trial_id=trial_id)

    def events(self, job_id: str) -> list[tuple[str, str]]:
        with session_scope(self.factory) as s:
            return [(e.kind, e.message) for e in repo.list_job_events(s, job_id=job_id, limit=1000)]

    def wait_status(self, job_id: str, statuses: set[str], timeout_s: float) -> Job:
        def done() -> Job | None:
            job = self.job(job_id)
            return job if job.status in statuses else None

        try:
            return wait_for(done, timeout_s=timeout_s, what=f"job {job_id} in {sorted(statuses)}")
        except AssertionError as exc:
            job = self.job(job_id)
            raise AssertionError(
                f"{exc}; job is {job.status}, error={job.error}, events={self.events(job_id)}"
            ) from None

    def close(self) -> None:
        self.engine.dispose()


def migrated_sqlite(path: Path) -> str:
    from service.storage.migrate import upgrade

    url = f"sqlite:///{path}"
    engine = make_engine(url, settings=Settings(database_url=url))
    upgrade(engine)
    engine.dispose()
    return url


class Proc:
    """A CLI subprocess in its own process group, with its output in a log file."""

    def __init__(self, args: list[str], env: Mapping[str, str], log_path: Path) -> None:
        self.log_path = log_path
        self._log = log_path.open("ab")
        self.popen = subprocess.Popen(
            [*cli(), *args],
            env={**os.environ, **env},
            stdout=self._log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )

    def kill(self) -> None:
        """SIGKILL, as a crash would (only this process, not its group: the Ray it started survives)."""
        self.popen.send_signal(signal.SIGKILL)
        self.popen.wait(10)

    def stop(self, timeout_s: float = 30.0) -> None:
        if self.popen.poll() is None:
            self.popen.terminate()
            try:
                self.popen.wait(timeout_s)
            except subprocess.TimeoutExpired:
                self.popen.kill()
                self.popen.wait(10)
        self._log.close()

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")[-5000:]


def dispatcher_env(
    db_url: str,
    data_dir: Path,
    ray_env: Mapping[str, str],
    *,
    lease_s: float = 5.0,
    dashboard_url: str | None = None,
) -> dict[str, str]:
    env = {
        **ray_env,
        "SCHEDSEARCH_DATABASE_URL": db_url,
        "SCHEDSEARCH_DATA_DIR": str(data_dir),
        "SCHEDSEARCH_LEASE_SECONDS": str(lease_s),
        "SCHEDSEARCH_LOG_LEVEL": "info",
    }
    if dashboard_url:
        env["SCHEDSEARCH_RAY_DASHBOARD_URL"] = dashboard_url
    return env


def start_dispatcher(cluster: Cluster, db: Db, tmp_path: Path, name: str, lease_s: float = 5.0) -> Proc:
    """A ``schedsearch dispatcher`` process on ``cluster``, polling every 0.5 s, logging to ``<name>.log``."""
    env = dispatcher_env(
        db.url, tmp_path / "data", cluster.env(), lease_s=lease_s, dashboard_url=cluster.dashboard_url
    )
    return Proc(["dispatcher", "--poll", "0.5"], env, tmp_path / f"{name}.log")


def assert_each_trial_once(db: Db, job_id: str) -> None:
    """Every trial key appears once and each trial's epochs are 1..n (no gaps, no repeats)."""
    trials = db.trials(job_id)
    keys = [t.trial_key for t in trials]
    assert len(keys) == len(set(keys)), keys
    for trial in trials:
        epochs = [m.epoch for m in db.metrics(trial.id)]
        assert epochs == list(range(1, len(epochs) + 1)), (trial.trial_key, epochs)


def ray_job_info(cluster: Cluster, submission_id: str) -> dict[str, Any]:
    """A Ray Job as the dashboard's REST API reports it (status, driver_info, message)."""
    import httpx

    response = httpx.get(
        f"{cluster.dashboard_url}/api/jobs/{submission_id}",
        headers={"Authorization": f"Bearer {cluster.token}"},
        timeout=10,
    )
    response.raise_for_status()
    return dict(response.json())


def stop_ray_job(cluster: Cluster, submission_id: str) -> None:
    """Stop a Ray Job through the dashboard's REST API, as its Jobs tab and `ray job stop` do. Plain HTTP with
    the token: Ray's SDK reads RAY_AUTH_MODE once per process, and other tests in the session may have
    imported it with auth off."""
    import httpx

    response = httpx.post(
        f"{cluster.dashboard_url}/api/jobs/{submission_id}/stop",
        headers={"Authorization": f"Bearer {cluster.token}"},
        timeout=10,
    )
    response.raise_for_status()
    assert response.json().get("stopped") is True, response.text
