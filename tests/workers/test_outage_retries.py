"""The retry policy of the workers through a database outage (pure logic, no database: faults are raised
by the work function, sleeping is recorded)."""

from __future__ import annotations

import logging
from typing import Any

import pytest
from sqlalchemy.exc import OperationalError

from workers.outage import OutageLog, is_outage, with_retries


def _fault() -> OperationalError:
    return OperationalError("SELECT 1", {}, Exception("connection refused"))


def _wrapped() -> Exception:
    """What Optuna raises: its own error, caused by SQLAlchemy's."""
    import optuna

    try:
        try:
            raise _fault()
        except OperationalError as exc:
            raise optuna.exceptions.StorageInternalError("commit failed") from exc
    except Exception as outer:
        return outer


@pytest.mark.parametrize(
    ("exc", "expected"),
    [
        (_fault(), True),  # the database is unreachable
        (_wrapped(), True),  # the same, wrapped by Optuna
        (ValueError("a bug"), False),  # anything else ends the work at once
    ],
)
def test_is_outage(exc: Exception, expected: bool) -> None:
    assert is_outage(exc) is expected


def test_retries_back_off_until_the_database_answers(caplog: Any) -> None:
    failures = [_wrapped(), _fault(), _fault()]
    waits: list[float] = []

    def work() -> str:
        if failures:
            raise failures.pop(0)
        return "done"

    outage = OutageLog(logging.getLogger("test.outage"), prefix="job j: ")
    with caplog.at_level(logging.INFO, logger="test.outage"):
        assert with_retries(work, window_s=60, outage=outage, sleep=waits.append) == "done"
    assert waits == [0.25, 0.5, 1.0]
    assert [r.getMessage()[:45] for r in caplog.records] == [
        "job j: the database is unavailable (Operation",
        "job j: the database is back after 0.0 s"[:45],
    ]


def test_another_error_is_not_retried() -> None:
    calls = []

    def work() -> None:
        calls.append(1)
        raise ValueError("a bug")

    with pytest.raises(ValueError):
        with_retries(
            work, window_s=60, outage=OutageLog(logging.getLogger("test.outage")), sleep=lambda s: None
        )
    assert calls == [1]
