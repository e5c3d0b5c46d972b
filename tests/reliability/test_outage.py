"""A PostgreSQL outage seen by the workers' side: the dispatcher logs one line when it starts and one when it
ends (not a stack trace per poll), and the driver's writes wait for the database, with backoff, for up to the
lease, so a short outage neither loses results nor ends the driver. The Ray end to end of the same outage is
``tests/workers/test_outage.py``."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest
from sqlalchemy.exc import OperationalError

from service.settings import Settings
from service.storage import repository as repo
from service.storage.db import make_engine, make_session_factory, session_scope
from tests.support.postgres import set_pg_connections
from workers.store import JobStore, TrialUpdate

pytestmark = [pytest.mark.postgres, pytest.mark.slow]


@pytest.fixture
def outage(pg_outage_db: str) -> Iterator[tuple[str, Any]]:
    """(url, shut(seconds)): shut the database now and reopen it after ``seconds`` in the background."""
    database = pg_outage_db.rsplit("/", 1)[1]
    timers: list[threading.Timer] = []

    def shut(seconds: float) -> None:
        set_pg_connections(database, False)
        timer = threading.Timer(seconds, set_pg_connections, args=(database, True))
        timer.start()
        timers.append(timer)

    yield pg_outage_db, shut
    for timer in timers:
        timer.cancel()


def _job(url: str) -> str:
    engine = make_engine(url, settings=Settings(database_url=url))
    with session_scope(make_session_factory(engine)) as s:
        owner = repo.get_or_create_user(s, name="alice")
        job, _ = repo.create_job(
            s, owner_id=owner.id, name="j", spec={"name": "j"}, objective="sfo_to_target"
        )
        repo.upsert_trial(s, job_id=job.id, trial_key="t0", config={"schedule": {}})
        job_id = job.id
    engine.dispose()
    return job_id


def _lines(caplog: Any, logger: str) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.name == logger]


def test_a_driver_write_waits_out_a_short_outage_and_logs_it_once(
    outage: tuple[str, Any], caplog: Any
) -> None:
    url, shut = outage
    job_id = _job(url)
    store = JobStore.connect(Settings(database_url=url, lease_seconds=30), job_id)
    try:
        store.write([TrialUpdate(key="t0", records=[{"epoch": 1, "sfo": 8, "grad_norm": 0.5}])])
        with caplog.at_level(logging.INFO, logger="workers.store"):
            shut(3.0)
            started = time.monotonic()
            # Written during the outage: it must land once the database is back, not raise.
            store.write([TrialUpdate(key="t0", records=[{"epoch": 2, "sfo": 16, "grad_norm": 0.4}])])
            waited = time.monotonic() - started
        trials = store.trials()
    finally:
        store.close()
    assert waited >= 2.0  # it really waited for the database
    engine = make_engine(url, settings=Settings(database_url=url))
    with session_scope(make_session_factory(engine)) as s:
        epochs = [m.epoch for m in repo.list_metrics(s, trial_id=trials[0].id)]
    engine.dispose()
    assert epochs == [1, 2]
    lines = _lines(caplog, "workers.store")
    assert len(lines) == 2, lines
    assert lines[0].startswith(f"job {job_id}: the database is unavailable (OperationalError)")
    assert lines[1].startswith(f"job {job_id}: the database is back after ")
    assert not any(r.exc_info for r in caplog.records)  # no stack traces


def test_an_outage_longer_than_the_lease_ends_the_write(outage: tuple[str, Any]) -> None:
    url, shut = outage
    job_id = _job(url)
    store = JobStore.connect(Settings(database_url=url, lease_seconds=2), job_id)
    try:
        shut(30.0)
        started = time.monotonic()
        with pytest.raises(OperationalError):
            store.write([TrialUpdate(key="t0", records=[{"epoch": 1, "sfo": 8}])])
        assert 2.0 <= time.monotonic() - started < 15.0
    finally:
        store.close()


def test_the_dispatcher_logs_an_outage_once_when_it_starts_and_once_when_it_ends(
    outage: tuple[str, Any], tmp_path: Any, caplog: Any
) -> None:
    """The dispatcher's loop through a 4 s outage polling every 0.1 s: two lines, no stack trace. Ray is not
    involved (no job is queued), so the dispatcher's Ray client is never used."""
    from workers.dispatcher import Dispatcher

    url, shut = outage
    dispatcher = Dispatcher(Settings(database_url=url, data_dir=tmp_path), poll_s=0.1)
    dispatcher._client = object()  # no job to submit: the loop only claims (and finds nothing)
    stop = threading.Event()
    thread = threading.Thread(target=dispatcher.run, args=(stop,), daemon=True)
    with caplog.at_level(logging.INFO, logger="workers.dispatcher"):
        thread.start()
        time.sleep(0.5)
        shut(4.0)
        time.sleep(6.0)
        stop.set()
        thread.join(30)
    lines = [line for line in _lines(caplog, "workers.dispatcher") if "database" in line or "failed" in line]
    assert len(lines) == 2, lines
    assert lines[0] == "the database is unavailable (OperationalError); the dispatcher waits for it"
    assert lines[1].startswith("the database is back after ")
    assert not any(r.exc_info for r in caplog.records if r.name == "workers.dispatcher")


def test_the_drivers_optuna_search_waits_out_an_outage_too(outage: tuple[str, Any], caplog: Any) -> None:
    """The driver's Optuna study lives in the same database: asking it for a trial during an outage waits
    (through the store's retries, one pair of log lines) instead of ending the experiment. Optuna wraps the
    database error in its own StorageInternalError; the retry sees the cause."""
    import optuna

    from service.jobspec import JobSpec, expand_job
    from tests.workers.helpers import job_spec
    from workers.driver import _ensure_optuna_schema
    from workers.search import EnvironmentRDBStorage, TolerantOptunaSearch, optuna_storage_url
    from workers.space import JobSpace

    url, shut = outage
    job_id = _job(url)
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    _ensure_optuna_schema(url)
    store = JobStore.connect(Settings(database_url=url, lease_seconds=30), job_id)
    candidate = {
        "batch_size": {"family": "constant", "b0": {"choice": [8, 16]}},
        "lr": {"family": "constant", "lr0": 0.1},
    }
    space = JobSpace(expand_job(JobSpec.model_validate(job_spec(space=[candidate]))))
    searcher = TolerantOptunaSearch(
        retry=store.retrying,
        space=space,
        metric="objective",
        mode="min",
        sampler=optuna.samplers.RandomSampler(seed=0),
        storage=EnvironmentRDBStorage(optuna_storage_url(url), engine_kwargs={"pool_pre_ping": True}),
        study_name="s",
    )
    try:
        assert searcher.suggest("t0") is not None
        with caplog.at_level(logging.INFO, logger="workers.store"):
            shut(3.0)
            config = searcher.suggest("t1")  # during the outage
        assert config is not None and config["trial"]["schedule"]["batch_size"]["b0"] in (8, 16)
    finally:
        store.close()
    lines = _lines(caplog, "workers.store")
    assert len(lines) == 2 and "unavailable" in lines[0] and "is back after" in lines[1], lines
