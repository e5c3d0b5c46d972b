"""What users see of a failure (a job's or a trial's ``error``, an event): one sentence, never a traceback,
a file path or a database statement; the details go to the log with the job id.

The driver case runs the real ``workers.driver.run_job`` on both backends with a job whose stored spec the
driver cannot read: it fails before Ray is needed."""

from __future__ import annotations

import logging
from typing import Any

import pytest
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, sessionmaker

from schedules.spec import Schedule, SpecError
from service.settings import Settings
from service.storage import repository as repo
from service.storage.db import session_scope
from workers.failures import one_sentence, scrub


def _raise(exc: BaseException) -> BaseException:
    try:
        raise exc
    except BaseException as caught:
        return caught


def _spec_error() -> BaseException:
    try:
        Schedule.from_json(
            {"batch_size": {"family": "constant", "b0": -4}, "lr": {"family": "constant", "lr0": 1}}
        )
    except SpecError as exc:
        return exc
    raise AssertionError("the schedule should have been refused")


@pytest.mark.parametrize(
    ("exc", "expected"),
    [
        # our own errors say what is wrong, on one line
        (_spec_error(), "SpecError: batch_size.b0 must be >= 1 for constant, got b0=-4"),
        # a file path on the server is not shown
        (
            _raise(FileNotFoundError(2, "No such file or directory", "/srv/data/cifar-10/data_batch_1")),
            "FileNotFoundError: [Errno 2] No such file or directory: '<path>'",
        ),
        # a database error carries its statement and parameters: only its kind is shown
        (
            _raise(
                IntegrityError(
                    "INSERT INTO trials (name) VALUES (%(name)s)", {"name": "secret"}, Exception("x")
                )
            ),
            "IntegrityError from the database",
        ),
        # a multi-line message keeps its first line
        (_raise(RuntimeError('first line\n  File "/app/x.py", line 3\nmore')), "RuntimeError: first line"),
        (_raise(KeyError("task")), "KeyError: 'task'"),
        (_raise(ValueError()), "ValueError"),
    ],
)
def test_one_sentence(exc: BaseException, expected: str) -> None:
    assert one_sentence(exc) == expected


def test_scrub_keeps_the_last_line_of_a_traceback_without_paths() -> None:
    text = (
        "Traceback (most recent call last):\n"
        '  File "/home/ray/anaconda3/lib/python3.11/site-packages/ray/tune/x.py", line 9, in run\n'
        "    raise RuntimeError(...)\n"
        "RuntimeError: worker /tmp/ray/session_1/logs died\n"
    )
    assert scrub(text) == "RuntimeError: worker <path> died"
    assert scrub("x" * 1000) == "x" * 299 + "…"


BROKEN_SPECS = {
    # a spec of the wrong shape
    "wrong-shape": ({"name": "broken", "task": 3}, "ValidationError: 3 validation errors for JobSpec"),
    # a lone surrogate in a baseline name, stored before bodies were parsed strictly: it used to reach the
    # trial rows and fail the driver with UnicodeEncodeError at its first write
    "surrogate": (
        {
            "name": "broken",
            "task": {"name": "digits-mlp"},
            "baselines": [
                {
                    "name": "\ud800",
                    "batch_size": {"family": "constant", "b0": 8},
                    "lr": {"family": "constant", "lr0": 0.1},
                }
            ],
            "search": {"num_trials": 0},
            "budget": {"max_epochs": 2},
            "target": {"grad_norm": 0.1},
        },
        "ValidationError: 1 validation error for JobSpec",
    ),
}


@pytest.fixture(params=sorted(BROKEN_SPECS))
def broken_job(request: pytest.FixtureRequest, session_factory: sessionmaker[Session]) -> tuple[str, str]:
    """A queued job whose stored spec the driver cannot read (a row from before specs were checked), and the
    sentence its error must end up with."""
    spec, sentence = BROKEN_SPECS[request.param]
    with session_scope(session_factory) as s:
        owner = repo.get_or_create_user(s, name="alice")
        job, _ = repo.create_job(s, owner_id=owner.id, name="broken", spec=spec, objective="sfo_to_target")
        return job.id, sentence


def test_a_failed_driver_gives_one_sentence_and_logs_the_traceback(
    broken_job: tuple[str, str], settings: Settings, session_factory: sessionmaker[Session], caplog: Any
) -> None:
    from workers.driver import run_job

    job_id, sentence = broken_job
    with caplog.at_level(logging.ERROR, logger="workers.driver"):
        assert run_job(settings, job_id) == "failed"
    with session_scope(session_factory) as s:
        job = repo.get_job(s, job_id=job_id)
        error, events = job.error, [e.message for e in repo.list_job_events(s, job_id=job_id)]
    assert error == f"the job's driver failed: {sentence} (the driver's log for this job has the details)"
    assert all("\n" not in m and "Traceback" not in m for m in events), events
    logged = "\n".join(r.getMessage() + (r.exc_text or "") for r in caplog.records)
    assert job_id in logged
    assert any(r.exc_info for r in caplog.records)  # the traceback is in the log
