"""How the dispatcher recovers (or gives up) when the Ray side of a job goes away, with a real
``schedsearch dispatcher`` process, real Ray, a real SQLite database and the real trainer on digits-mlp:

- the local Ray head the dispatcher started itself dies mid-job: it starts a fresh head and resubmits;
- someone stops the job's Ray Job from outside (``ray job stop``, the dashboard's Jobs tab): a cancel;
- every driver of a job dies: the job fails after ``max_attempts`` (3) drivers, saying why.
"""

from __future__ import annotations

import os
import shutil
import signal
from pathlib import Path

import pytest

from tests.support.cluster import Cluster
from tests.workers.helpers import (
    DIGITS_N_TRAIN,
    Db,
    Proc,
    assert_each_trial_once,
    dispatcher_env,
    job_spec,
    ray_job_info,
    start_dispatcher,
    stop_ray_job,
    wait_for,
)
from workers import raycluster

pytestmark = [pytest.mark.ray, pytest.mark.slow]

TERMINAL = {"succeeded", "failed", "cancelled"}
# Trials of 200 epochs that no test here lets finish: the job is still running when the Ray side goes.
LONG = {"max_epochs": 200, "max_sfo": 200 * DIGITS_N_TRAIN}


def test_dead_local_head_is_replaced_and_the_job_still_succeeds(
    sqlite_db: Db, ray_token: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    db = sqlite_db
    # No SCHEDSEARCH_RAY_ADDRESS: the dispatcher starts (and owns) a local head, recorded in head.json.
    monkeypatch.delenv("SCHEDSEARCH_RAY_ADDRESS", raising=False)
    data_dir = tmp_path / "data"
    head_file = data_dir / "ray" / "head.json"
    spec = job_spec(budget={"max_epochs": 12, "max_sfo": 12 * DIGITS_N_TRAIN}, search={"num_trials": 3})
    job_id = db.create_job(spec)
    dispatcher = Proc(
        ["dispatcher", "--poll", "0.5"],
        dispatcher_env(db.url, data_dir, raycluster.auth_env(ray_token), lease_s=5.0),
        tmp_path / "dispatcher.log",
    )
    heads: list[raycluster.RayNode] = []
    try:
        wait_for(lambda: db.job(job_id).trials_finished >= 1, timeout_s=120, what="a finished trial")
        first = raycluster.load_node(head_file)
        assert first is not None, dispatcher.log()
        heads.append(first)
        finished_before = {t.trial_key: t.finished_at for t in db.trials(job_id) if t.finished_at is not None}
        lost_job = db.job(job_id)
        assert lost_job.status == "running", "the job ended before its head could be killed"
        raycluster.kill_node(first)  # SIGKILL to the head's whole process tree: driver and trials die too

        def new_head() -> raycluster.RayNode | None:
            node = raycluster.load_node(head_file)
            return node if node is not None and node.pgid != first.pgid else None

        heads.append(wait_for(new_head, timeout_s=60, what="the dispatcher to start a new local head"))
        job = db.wait_status(job_id, TERMINAL, timeout_s=150)
    finally:
        dispatcher.stop()
        last = raycluster.load_node(head_file)  # still there only when the head was left running
        heads += [last] if last is not None and last not in heads else []
        left_running = [node for node in heads if raycluster.is_running(node)]
        for node in heads:  # the dispatcher stops the head it runs; this is the safety net
            raycluster.stop_node(node)
            shutil.rmtree(node.temp_dir, ignore_errors=True)
    assert job.status == "succeeded", (job.error, db.events(job_id), dispatcher.log())
    assert not left_running and not head_file.exists(), (
        f"the dispatcher left its local Ray running: {left_running}"
    )
    events = db.events(job_id)
    kinds = [kind for kind, _ in events]
    # One driver lost with the head, resubmitted once: two submissions, two drivers that started.
    assert kinds.count("driver_lost") == 1 and kinds.count("driver_submitted") == 2, kinds
    assert any(k == "driver_lost" and str(lost_job.ray_job_id) in m for k, m in events), events
    assert kinds.count("driver_started") == 2, kinds
    trials = db.trials(job_id)
    assert len(trials) == job.trials_total == 4  # 3 searched + 1 baseline, each exactly once
    assert {t.status for t in trials} <= {"succeeded", "pruned", "diverged"}
    for trial in trials:  # trials that had finished on the dead head were not run again
        if trial.trial_key in finished_before:
            assert trial.finished_at == finished_before[trial.trial_key], trial.trial_key
    assert_each_trial_once(db, job_id)


def test_stopping_the_ray_job_from_outside_cancels_the_job(
    ray_cluster: Cluster, sqlite_db: Db, tmp_path: Path
) -> None:
    db = sqlite_db
    job_id = db.create_job(job_spec(budget=LONG))
    dispatcher = start_dispatcher(ray_cluster, db, tmp_path, "dispatcher")
    try:
        wait_for(lambda: db.trials(job_id), timeout_s=120, what="the experiment to start trials")
        submission = db.job(job_id).ray_job_id
        assert submission is not None
        # What `ray job stop` and the dashboard's Jobs tab do.
        stop_ray_job(ray_cluster, submission)
        job = db.wait_status(job_id, TERMINAL, timeout_s=60)
    finally:
        dispatcher.stop()
    assert job.status == "cancelled", (job.error, db.events(job_id), dispatcher.log())
    assert ray_job_info(ray_cluster, submission)["status"] == "STOPPED"
    events = db.events(job_id)
    # The dispatcher saw the Ray Job STOPPED and finished the cancel itself.
    assert ("status:cancelled", f"cancelled: Ray Job {submission} was stopped") in events, events
    kinds = [kind for kind, _ in events]
    assert kinds.count("driver_submitted") == 1, kinds  # a stop is not a dead driver: no resubmission
    assert "driver_lost" not in kinds, kinds
    trials = db.trials(job_id)
    assert trials and {t.status for t in trials} == {"cancelled"}, [(t.trial_key, t.status) for t in trials]
    assert_each_trial_once(db, job_id)


def test_a_job_whose_drivers_keep_dying_fails_after_three(
    ray_cluster: Cluster, sqlite_db: Db, tmp_path: Path
) -> None:
    db = sqlite_db
    job_id = db.create_job(job_spec(budget=LONG))
    dispatcher = start_dispatcher(ray_cluster, db, tmp_path, "dispatcher")
    killed: list[str] = []
    try:
        for n in range(1, 4):
            # Each new driver (a new Ray Job) is SIGKILLed as soon as it runs, as a crash would.
            def running_driver() -> tuple[str, int] | None:
                submission = db.job(job_id).ray_job_id
                if submission is None or submission in killed:
                    return None
                pid = (ray_job_info(ray_cluster, submission).get("driver_info") or {}).get("pid")
                return (submission, int(pid)) if pid else None

            submission, pid = wait_for(running_driver, timeout_s=60, what=f"driver {n} to run", every_s=0.2)
            os.kill(pid, signal.SIGKILL)
            killed.append(submission)
        job = db.wait_status(job_id, TERMINAL, timeout_s=60)
    finally:
        dispatcher.stop()
    assert job.status == "failed", (job.error, db.events(job_id), dispatcher.log())
    # The error says how many drivers failed and which Ray Job was the last, with Ray's reason.
    assert job.error is not None and "3 drivers failed" in job.error, job.error
    assert killed[-1] in job.error and "FAILED" in job.error, job.error
    events = db.events(job_id)
    lost = [message for kind, message in events if kind == "driver_lost"]
    assert len(lost) == 2 and all(s in m for s, m in zip(killed[:2], lost, strict=True)), (killed, lost)
    assert [kind for kind, _ in events].count("driver_submitted") == 3, events
    assert {t.status for t in db.trials(job_id)} <= {"cancelled"}  # nothing left running
