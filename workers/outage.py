"""Database outages on the workers' side: one log line when one starts, one when it ends, and retries.

The dispatcher polls every second and the driver writes results all the time; without this, an outage of
half a minute printed a stack trace per poll and per write, and the first failed write ended the driver (its
running trials then started over under a new one). :func:`with_retries` runs one unit of work again, with
exponential backoff, while the database is unavailable (``DATABASE_FAULTS``: refused or dropped connections,
a pool timeout), for up to a time window; the units of work of ``workers.store`` are idempotent, so a retry
after an ambiguous failure changes nothing.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from typing import TypeVar

from service.storage.db import DATABASE_FAULTS

T = TypeVar("T")

#: First wait before a retry; doubled each time up to ``MAX_DELAY_S``.
FIRST_DELAY_S = 0.25
MAX_DELAY_S = 5.0


class OutageLog:
    """Logs ``<prefix>the database is unavailable (<error>); <waiting>`` once when an outage starts and
    ``<prefix>the database is back after <s> s`` once when it ends, however many failures come between."""

    def __init__(self, logger: logging.Logger, *, prefix: str = "", waiting: str = "waiting for it") -> None:
        self.logger = logger
        self.prefix = prefix
        self.waiting = waiting
        self._since: float | None = None
        self._lock = threading.Lock()

    @property
    def down(self) -> bool:
        return self._since is not None

    def failed(self, exc: BaseException) -> None:
        with self._lock:
            if self._since is not None:
                return
            self._since = time.monotonic()
        # The class name only: a driver's message can carry the database's host, user or a password.
        self.logger.warning(
            "%sthe database is unavailable (%s); %s", self.prefix, type(exc).__name__, self.waiting
        )

    def ok(self) -> None:
        with self._lock:
            if self._since is None:
                return
            down_s, self._since = time.monotonic() - self._since, None
        self.logger.warning("%sthe database is back after %.1f s", self.prefix, down_s)


def outage_cause(exc: BaseException) -> BaseException | None:
    """The database fault behind ``exc``: itself, or the cause of an error raised because of one (Optuna
    wraps SQLAlchemy's errors in its own ``StorageInternalError``); None for any other error."""
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        if isinstance(current, DATABASE_FAULTS):
            return current
        seen.add(id(current))
        current = current.__cause__ or current.__context__
    return None


def is_outage(exc: BaseException) -> bool:
    return outage_cause(exc) is not None


def with_retries(
    work: Callable[[], T],
    *,
    window_s: float,
    outage: OutageLog,
    sleep: Callable[[float], None] = time.sleep,
) -> T:
    """``work()``, run again while it fails with a database fault (``is_outage``), waiting 0.25 s, 0.5 s, ...
    (at most 5 s) between tries, for up to ``window_s`` seconds; then the last fault is raised. Other errors
    are raised at once."""
    deadline = time.monotonic() + window_s
    delay = FIRST_DELAY_S
    while True:
        try:
            result = work()
        except Exception as exc:
            cause = outage_cause(exc)
            if cause is None:
                raise
            outage.failed(cause)
            left = deadline - time.monotonic()
            if left <= 0:
                raise
            sleep(min(delay, left))
            delay = min(delay * 2, MAX_DELAY_S)
            continue
        outage.ok()
        return result
