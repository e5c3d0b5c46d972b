"""Acceptance tests on a real two-node Ray cluster (head + worker on 127.0.0.1, token auth) with a real
``schedsearch dispatcher`` process and the real trainer on digits-mlp.

Jobs are inserted with the repository, as ``POST /v1/jobs`` does (the HTTP path is covered by test_e2e), so
a job can carry a baseline that only fails at training time.
"""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from service.storage import repository as repo
from service.storage.db import session_scope
from tests.support.cluster import Cluster
from tests.support.postgres import fresh_pg_database, pg_unavailable_reason
from tests.workers.helpers import (
    DIGITS_N_TRAIN,
    Db,
    Proc,
    assert_each_trial_once,
    job_spec,
    migrated_sqlite,
    ray_job_info,
    start_dispatcher,
    wait_for,
)
from workers import raycluster

pytestmark = [pytest.mark.ray, pytest.mark.slow]

TERMINAL = {"succeeded", "failed", "cancelled"}


# ----------------------------------------------------------------------------------- two nodes, a failure


@pytest.fixture(scope="module")
def two_node_job(ray_cluster: Cluster, tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Db, str]]:
    """One job on the two-node cluster (on PostgreSQL when it answers): two concurrent 1-CPU trials, so one
    runs on each node, and a baseline whose schedule only fails when the trainer parses it. Trials last a
    few seconds: with reused actors, much shorter ones can all finish on the first actor before the second
    one has started on a loaded machine."""
    tmp_path = tmp_path_factory.mktemp("two-node")
    spec = job_spec(
        baselines=[
            *job_spec()["baselines"],
            {
                "name": "broken",
                "batch_size": {"family": "constant", "b0": -4},
                "lr": {"family": "constant", "lr0": 0.5},
            },
        ],
        budget={"max_epochs": 30, "max_sfo": 30 * DIGITS_N_TRAIN},
        search={"num_trials": 3, "max_concurrent": 2},
    )
    with _database(tmp_path) as url:
        db = Db(url)
        job_id = db.create_job(spec)
        dispatcher = start_dispatcher(ray_cluster, db, tmp_path, "dispatcher")
        try:
            db.wait_status(job_id, TERMINAL, timeout_s=150)
        finally:
            dispatcher.stop()
        yield db, job_id
        db.close()


def _database(tmp_path: Path) -> Any:
    from contextlib import contextmanager

    @contextmanager
    def sqlite() -> Iterator[str]:
        yield migrated_sqlite(tmp_path / "schedsearch.db")

    if pg_unavailable_reason() is not None:
        return sqlite()

    @contextmanager
    def postgres() -> Iterator[str]:
        from service.settings import Settings
        from service.storage.db import make_engine
        from service.storage.migrate import upgrade

        with fresh_pg_database("schedsearch_workers") as url:
            engine = make_engine(url, settings=Settings(database_url=url))
            upgrade(engine)
            engine.dispose()
            yield url

    return postgres()


def test_trials_run_on_both_nodes(two_node_job: tuple[Db, str], ray_cluster: Cluster) -> None:
    db, job_id = two_node_job
    job = db.job(job_id)
    assert job.status == "succeeded", (job.error, db.events(job_id))
    trials = db.trials(job_id)
    nodes = {t.node_id for t in trials}
    assert None not in nodes
    assert nodes == set(ray_cluster.node_ids), nodes  # every trial's node recorded; both nodes used
    assert job.summary is not None and set(job.summary["nodes"]) == nodes


def test_failing_trial_is_failed_and_the_job_goes_on(two_node_job: tuple[Db, str]) -> None:
    db, job_id = two_node_job
    trials = {t.name: t for t in db.trials(job_id)}
    broken = trials["broken"]
    assert broken.status == "failed"
    assert broken.error is not None and "b0" in broken.error and "-4" in broken.error, broken.error
    others = [t for t in trials.values() if t.name != "broken"]
    assert len(others) == 4  # 3 searched + the good baseline
    assert {t.status for t in others} <= {"succeeded", "pruned", "diverged"}
    assert all(db.metrics(t.id) for t in others)
    assert_each_trial_once(db, job_id)
    job = db.job(job_id)
    assert job.status == "succeeded" and job.trials_finished == job.trials_total == 5
    assert job.summary is not None and job.summary["trials"].get("failed") == 1


# ----------------------------------------------------------------------------------- cancel


def test_cancel_stops_the_experiment_within_seconds(
    ray_cluster: Cluster, sqlite_db: Db, tmp_path: Path
) -> None:
    db = sqlite_db
    # Long trials (300 epochs each) that cannot finish before the cancel.
    spec = job_spec(budget={"max_epochs": 300, "max_sfo": 300 * DIGITS_N_TRAIN}, search={"num_trials": 4})
    job_id = db.create_job(spec)
    dispatcher = start_dispatcher(ray_cluster, db, tmp_path, "dispatcher")
    try:

        def some_metrics() -> bool:
            return any(db.metrics(t.id) for t in db.trials(job_id))

        wait_for(some_metrics, timeout_s=120, what="the first epochs in the database")
        with session_scope(db.factory) as s:
            repo.request_cancel(s, job_id=job_id)
        asked = time.monotonic()
        job = db.wait_status(job_id, TERMINAL, timeout_s=30)
        took = time.monotonic() - asked
    finally:
        dispatcher.stop()
    assert job.status == "cancelled", (job.error, db.events(job_id))
    assert took < 10, f"cancel took {took:.1f}s"
    trials = db.trials(job_id)
    assert trials and {t.status for t in trials} == {"cancelled"}, [(t.trial_key, t.status) for t in trials]
    assert any(db.metrics(t.id) for t in trials)  # what was measured before the cancel is kept
    assert_each_trial_once(db, job_id)


# ----------------------------------------------------------------------------------- recovery


def test_dispatcher_kill_then_driver_kill_the_job_still_succeeds(
    ray_cluster: Cluster, sqlite_db: Db, tmp_path: Path
) -> None:
    db = sqlite_db
    spec = job_spec(budget={"max_epochs": 20, "max_sfo": 20 * DIGITS_N_TRAIN}, search={"num_trials": 6})
    job_id = db.create_job(spec)
    first = start_dispatcher(ray_cluster, db, tmp_path, "dispatcher-1", lease_s=3.0)
    second: Proc | None = None
    try:
        wait_for(lambda: db.job(job_id).trials_finished >= 1, timeout_s=120, what="a finished trial")
        first.kill()  # SIGKILL mid-job: no lease release, no cleanup
        finished_before = {t.trial_key: t.finished_at for t in db.trials(job_id) if t.finished_at is not None}
        submission = db.job(job_id).ray_job_id
        assert submission is not None

        # A new dispatcher takes the job over once the lease expired and adopts the running Ray Job.
        second = start_dispatcher(ray_cluster, db, tmp_path, "dispatcher-2", lease_s=3.0)
        wait_for(
            lambda: any(k == "driver_adopted" for k, _ in db.events(job_id)),
            timeout_s=30,
            what="the new dispatcher to adopt the Ray Job",
        )

        # Then the driver dies too (as with the machine of a local Ray): a new driver restarts what is left.
        assert db.job(job_id).status == "running", "the job ended before the driver could be killed"
        pid = int(ray_job_info(ray_cluster, submission)["driver_info"]["pid"])
        os.kill(pid, signal.SIGKILL)
        job = db.wait_status(job_id, TERMINAL, timeout_s=150)
    finally:
        first.stop()
        if second is not None:
            second.stop()
    assert job.status == "succeeded", (job.error, db.events(job_id), second.log() if second else "")
    kinds = [kind for kind, _ in db.events(job_id)]
    assert kinds.count("driver_lost") == 1 and kinds.count("driver_started") == 2, kinds
    trials = db.trials(job_id)
    assert len(trials) == job.trials_total == 7  # 6 searched + 1 baseline, each exactly once
    assert {t.status for t in trials} <= {"succeeded", "pruned", "diverged"}
    # Trials that had finished before the kills were not run again.
    for trial in trials:
        if trial.trial_key in finished_before:
            assert trial.finished_at == finished_before[trial.trial_key], trial.trial_key
    assert_each_trial_once(db, job_id)


def test_losing_a_worker_node_mid_trial_retries_the_trial(
    ray_cluster: Cluster, sqlite_db: Db, tmp_path: Path
) -> None:
    db = sqlite_db
    before = set(ray_cluster.alive_node_ids())
    extra = raycluster.start_worker(ray_cluster.head, token=ray_cluster.token, num_cpus=1, name="victim")
    try:
        ids = ray_cluster.wait_for_nodes(len(before) + 1)
        (victim,) = set(ids) - before
        spec = job_spec(
            budget={"max_epochs": 40, "max_sfo": 40 * DIGITS_N_TRAIN},
            search={"num_trials": 2, "max_concurrent": 3},
        )
        job_id = db.create_job(spec)
        dispatcher = start_dispatcher(ray_cluster, db, tmp_path, "dispatcher")
        try:

            def trial_on_victim() -> str | None:
                for t in db.trials(job_id):
                    if t.node_id == victim and t.status == "running" and db.metrics(t.id):
                        return t.trial_key
                return None

            key = wait_for(trial_on_victim, timeout_s=120, what="a trial running on the extra node")
            raycluster.kill_node(extra)
            job = db.wait_status(job_id, TERMINAL, timeout_s=180)
        finally:
            dispatcher.stop()
    finally:
        raycluster.stop_node(extra)
    assert job.status == "succeeded", (job.error, db.events(job_id))
    trial = next(t for t in db.trials(job_id) if t.trial_key == key)
    assert trial.status == "succeeded", (trial.status, trial.error)
    assert trial.node_id != victim  # it finished on a surviving node
    assert any(kind == "trial_retry" for kind, _ in db.events(job_id))
    assert_each_trial_once(db, job_id)
