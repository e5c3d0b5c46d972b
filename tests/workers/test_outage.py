"""A PostgreSQL outage in the middle of a running job, on a real Ray (local head, 2 CPUs) with a real
``schedsearch dispatcher``: the database refuses every connection for 8 s while trials train and report.

The driver's writes wait the outage out (``workers.store`` retries for up to the lease, 30 s here), so the
driver is not lost, no trial starts over, every epoch is stored once, and the job succeeds; the dispatcher
and the driver each log one line when the outage starts and one when it ends."""

from __future__ import annotations

import threading
from pathlib import Path

import httpx
import pytest

from tests.support.cluster import Cluster
from tests.support.postgres import set_pg_connections
from tests.workers.helpers import (
    DIGITS_N_TRAIN,
    Db,
    assert_each_trial_once,
    job_spec,
    start_dispatcher,
    wait_for,
)

pytestmark = [pytest.mark.ray, pytest.mark.slow, pytest.mark.postgres]

OUTAGE_S = 8.0
LEASE_S = 30.0


def test_a_driver_survives_an_outage_shorter_than_its_lease(
    local_ray: Cluster, pg_outage_db: str, tmp_path: Path
) -> None:
    database = pg_outage_db.rsplit("/", 1)[1]
    db = Db(pg_outage_db)
    epochs = 60  # trials of several seconds, so the outage falls while they run
    spec = job_spec(
        budget={"max_epochs": epochs, "max_sfo": epochs * DIGITS_N_TRAIN},
        search={"num_trials": 2, "max_concurrent": 2},
    )
    job_id = db.create_job(spec)
    dispatcher = start_dispatcher(local_ray, db, tmp_path, "dispatcher", lease_s=LEASE_S)
    reopen = threading.Timer(OUTAGE_S, set_pg_connections, args=(database, True))
    try:

        def training() -> bool:
            return any(db.metrics(t.id) for t in db.trials(job_id) if t.status == "running")

        wait_for(training, timeout_s=180, what="a trial to report epochs", every_s=0.2)
        set_pg_connections(database, False)
        reopen.start()
        reopen.join()
        job = db.wait_status(job_id, {"succeeded", "failed", "cancelled"}, timeout_s=300)
    finally:
        reopen.cancel()
        set_pg_connections(database, True)
        dispatcher.stop()
    log = dispatcher.log()
    events = db.events(job_id)
    assert job.status == "succeeded", (job.error, events, log)
    kinds = [kind for kind, _ in events]
    # One driver from start to end: not lost, not resubmitted, no trial retried or restarted.
    assert kinds.count("driver_submitted") == 1 and "driver_lost" not in kinds, events
    assert "trial_retry" not in kinds, events
    assert job.attempts == 1
    started = [message for kind, message in events if kind == "driver_started"]
    assert len(started) == 1 and started[0].endswith(", 0 restarted"), started
    assert_each_trial_once(db, job_id)
    assert all(len(db.metrics(t.id)) >= 1 for t in db.trials(job_id))
    # The dispatcher: one line when the outage starts, one when it ends, no stack trace.
    assert log.count("the database is unavailable (OperationalError); the dispatcher waits for it") == 1, log
    assert log.count("the database is back after") == 1, log
    assert "Traceback" not in log and "dispatcher step failed" not in log, log
    # The driver (its Ray Job's log): the same two lines, from the store that waited.
    assert job.ray_job_id is not None
    driver_log = httpx.get(
        f"{local_ray.dashboard_url}/api/jobs/{job.ray_job_id}/logs",
        headers={"Authorization": f"Bearer {local_ray.token}"},
        timeout=10,
    ).json()["logs"]
    assert driver_log.count(f"job {job_id}: the database is unavailable (OperationalError)") == 1, driver_log
    assert driver_log.count(f"job {job_id}: the database is back after") == 1, driver_log
    db.close()
