"""The dispatcher's recovery rules (``workers.recovery``), one table row per rule. No Ray, no database."""

from __future__ import annotations

import pytest

from service.storage.states import JobStatus
from workers.recovery import Action, Decision, Limits, Observed, on_claim, on_poll

RUNNING, CANCELLING = JobStatus.RUNNING, JobStatus.CANCELLING
LIMITS = Limits(max_attempts=3, cancel_grace_s=15.0, unreachable_limit=60)
SID = "schedsearch-job-1"


@pytest.mark.parametrize(
    ("job", "ray", "expected"),
    [
        (RUNNING, "RUNNING", Action.ADOPT),  # its driver survived the old dispatcher: watch it
        (CANCELLING, "PENDING", Action.ADOPT),  # the running driver honours the cancel itself
        (RUNNING, None, Action.SUBMIT),  # no Ray Job recorded, or the cluster forgot it
        (RUNNING, "FAILED", Action.SUBMIT),  # its driver died with the old dispatcher
        (JobStatus.QUEUED, None, Action.SUBMIT),  # a fresh job
        (CANCELLING, None, Action.FINISH_CANCEL),  # nothing runs: the cancel ends here
        (CANCELLING, "SUCCEEDED", Action.FINISH_CANCEL),
    ],
)
def test_a_claimed_job(job: JobStatus, ray: str | None, expected: Action) -> None:
    assert on_claim(job, ray) == expected


@pytest.mark.parametrize(
    ("seen", "expected"),
    [
        # the job is no longer ours to watch
        (Observed(None, "RUNNING", SID), Decision(Action.FORGET)),  # lease lost, or the job is gone
        (Observed(JobStatus.SUCCEEDED, "SUCCEEDED", SID), Decision(Action.FORGET)),  # the driver ended it
        (Observed(JobStatus.CANCELLED, None, SID), Decision(Action.FORGET)),
        # a driver that runs
        (Observed(RUNNING, "RUNNING", SID), Decision(Action.WAIT)),
        (Observed(RUNNING, "PENDING", SID), Decision(Action.WAIT)),
        # the Ray Job cannot be read: wait, up to the limit
        (Observed(RUNNING, None, SID, unreadable=1), Decision(Action.WAIT)),
        (Observed(RUNNING, None, SID, unreadable=59), Decision(Action.WAIT)),
        (
            Observed(RUNNING, None, SID, unreadable=60),  # then it counts as gone
            Decision(Action.SUBMIT, f"Ray Job {SID} ended as unknown; submitting the driver again"),
        ),
        # the driver is gone while the job is active
        (
            Observed(RUNNING, "FAILED", SID, drivers=1),
            Decision(Action.SUBMIT, f"Ray Job {SID} ended as FAILED; submitting the driver again"),
        ),
        (
            Observed(RUNNING, "SUCCEEDED", SID, drivers=2),  # ended without ending the job
            Decision(Action.SUBMIT, f"Ray Job {SID} ended as SUCCEEDED; submitting the driver again"),
        ),
        (
            Observed(RUNNING, None, SID, drivers=2),  # the cluster does not know it (a new head)
            Decision(Action.SUBMIT, f"Ray Job {SID} ended as unknown; submitting the driver again"),
        ),
        (
            Observed(RUNNING, "FAILED", SID, drivers=3),  # the third driver died too
            Decision(
                Action.FAIL,
                f"3 drivers failed; the last, Ray Job {SID} ended as FAILED (the dispatcher's log has "
                "Ray's message)",
            ),
        ),
        (
            Observed(RUNNING, "STOPPED", SID, drivers=3),  # stopped from outside: a cancel, not a failure
            Decision(Action.FINISH_CANCEL, f"cancelled: Ray Job {SID} was stopped"),
        ),
        (Observed(CANCELLING, "FAILED", SID), Decision(Action.FINISH_CANCEL, "cancelled")),
        (Observed(CANCELLING, None, SID, unreadable=60), Decision(Action.FINISH_CANCEL, "cancelled")),
        # a cancel the driver does not honour in time
        (Observed(CANCELLING, "RUNNING", SID, cancel_waited_s=5.0), Decision(Action.WAIT)),
        (Observed(CANCELLING, "RUNNING", SID, cancel_waited_s=16.0), Decision(Action.STOP_DRIVER)),
        (
            Observed(CANCELLING, "RUNNING", SID, cancel_waited_s=60.0, stop_sent=True),  # sent once
            Decision(Action.WAIT),
        ),
        (Observed(CANCELLING, "RUNNING", SID, cancel_waited_s=None), Decision(Action.WAIT)),
    ],
)
def test_a_watched_job(seen: Observed, expected: Decision) -> None:
    assert on_poll(seen, LIMITS) == expected
