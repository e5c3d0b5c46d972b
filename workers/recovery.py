"""The dispatcher's recovery rules as pure functions: what to do with a job, given what was observed.

``workers.dispatcher`` observes (the job's row, its Ray Job's status, how often that status could not be
read, how many drivers it has submitted, when a cancel was asked) and carries out the :class:`Action` these
functions return; nothing here touches the database or Ray, so every rule is tested as a table
(``tests/workers/test_recovery.py``).

A claimed job (:func:`on_claim`):

| its recorded Ray Job | job status | action |
|---|---|---|
| still running | any | adopt it (watch, no new driver) |
| none, ended or unknown | cancelling | finish the cancel here |
| none, ended or unknown | otherwise | submit a driver |

A watched job, every poll (:func:`on_poll`), the first matching row wins:

| observed | action |
|---|---|
| the lease is lost, or the job ended (its driver finished it) | stop watching |
| the Ray Job cannot be read, fewer than ``unreachable_limit`` polls in a row | wait |
| the driver is gone (*): the job is cancelling | finish the cancel |
| the driver is gone: someone stopped its Ray Job (dashboard, ``ray job stop``) | finish the cancel |
| the driver is gone: fewer than ``max_attempts`` drivers were submitted | submit the driver again |
| the driver is gone: otherwise | fail the job |
| cancelling, the driver running ``cancel_grace_s`` after the cancel, no stop sent | stop the Ray Job |
| otherwise | nothing |

(*) its Ray Job ended, the cluster does not know it, or it stayed unreadable ``unreachable_limit`` polls.

The Ray Job's status is read before the job's row: a driver finishes the job before its Ray Job ends, so a
row read after an ended Ray Job already shows how the driver left the job (no second read is needed).
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from service.storage.states import JOB_TERMINAL, JobStatus

#: Ray Job statuses of a driver that is gone.
TERMINAL_RAY = frozenset({"SUCCEEDED", "FAILED", "STOPPED"})


class Action(StrEnum):
    ADOPT = "adopt"  # watch the Ray Job that is still running
    SUBMIT = "submit"  # submit a (first or further) driver
    WAIT = "wait"  # nothing to do this poll
    FORGET = "forget"  # stop watching the job
    FINISH_CANCEL = "finish_cancel"  # cancel the unfinished trials and end the job cancelled
    STOP_DRIVER = "stop_driver"  # stop the Ray Job of a driver that ignores the cancel
    FAIL = "fail"  # end the job failed: its drivers keep dying


@dataclass(frozen=True)
class Decision:
    action: Action
    #: For the job's owner: the cancel's message, or why the job fails / is resubmitted.
    message: str = ""


@dataclass(frozen=True)
class Limits:
    max_attempts: int = 3  # drivers per job before it fails
    cancel_grace_s: float = 15.0  # how long a driver may take to honour a cancel
    unreachable_limit: int = 60  # polls in a row an unreadable Ray Job is given before it counts as gone


@dataclass(frozen=True)
class Observed:
    """One poll of a watched job.

    ``job``: the job's status, None when the lease was lost or the job is gone; ``ray``: its Ray Job's
    status, None when the cluster does not know it (or it could not be read); ``unreadable``: polls in a
    row, this one included, whose read of the Ray Job failed (0: it was read); ``drivers``: drivers this
    dispatcher submitted for the job; ``cancel_waited_s``: seconds since the cancel was asked (None: none
    asked); ``stop_sent``: the Ray Job was already told to stop."""

    job: JobStatus | None
    ray: str | None
    submission_id: str
    unreadable: int = 0
    drivers: int = 1
    cancel_waited_s: float | None = None
    stop_sent: bool = False


def on_claim(job: JobStatus, ray: str | None) -> Action:
    """A job this dispatcher just claimed; ``ray`` is the status of the Ray Job recorded with it (None: none
    recorded, or the cluster does not know it)."""
    if ray is not None and ray not in TERMINAL_RAY:
        return Action.ADOPT
    if job == JobStatus.CANCELLING:
        return Action.FINISH_CANCEL
    return Action.SUBMIT


def on_poll(seen: Observed, limits: Limits) -> Decision:
    """What to do with a watched job after one poll (see the module's table)."""
    if seen.job is None or seen.job in JOB_TERMINAL:
        return Decision(Action.FORGET)
    unreadable = seen.unreadable > 0
    if unreadable and seen.unreadable < limits.unreachable_limit:
        return Decision(Action.WAIT)
    if unreadable or seen.ray is None or seen.ray in TERMINAL_RAY:
        return _driver_gone(seen, limits)
    if (
        seen.job == JobStatus.CANCELLING
        and not seen.stop_sent
        and (seen.cancel_waited_s or 0.0) > limits.cancel_grace_s
    ):
        return Decision(Action.STOP_DRIVER)
    return Decision(Action.WAIT)


def _driver_gone(seen: Observed, limits: Limits) -> Decision:
    """The Ray Job ended (or vanished) while the job is still active."""
    if seen.job == JobStatus.CANCELLING:
        return Decision(Action.FINISH_CANCEL, "cancelled")
    if seen.ray == "STOPPED":
        return Decision(Action.FINISH_CANCEL, f"cancelled: Ray Job {seen.submission_id} was stopped")
    ended = f"Ray Job {seen.submission_id} ended as {seen.ray or 'unknown'}"
    if seen.drivers < limits.max_attempts:
        return Decision(Action.SUBMIT, f"{ended}; submitting the driver again")
    return Decision(
        Action.FAIL,
        f"{seen.drivers} drivers failed; the last, {ended} (the dispatcher's log has Ray's message)",
    )
