"""Job and trial states with every allowed transition in one place.

Job: queued -> running -> succeeded | failed; queued | running -> cancelling -> cancelled;
queued -> cancelled. Trial: pending -> running -> succeeded | failed | pruned | diverged | cancelled (pending
may also end directly, e.g. a trial that failed to start or was cancelled before it ran). Setting the
current state again is a no-op, so a replayed update from a worker is harmless.
"""

from __future__ import annotations

from enum import StrEnum

from service.errors import InvalidTransition


class JobStatus(StrEnum):
    QUEUED = "queued"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    CANCELLING = "cancelling"
    CANCELLED = "cancelled"


class TrialStatus(StrEnum):
    PENDING = "pending"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    PRUNED = "pruned"
    DIVERGED = "diverged"
    CANCELLED = "cancelled"


JOB_TRANSITIONS: dict[JobStatus, frozenset[JobStatus]] = {
    JobStatus.QUEUED: frozenset({JobStatus.RUNNING, JobStatus.CANCELLING, JobStatus.CANCELLED}),
    JobStatus.RUNNING: frozenset({JobStatus.SUCCEEDED, JobStatus.FAILED, JobStatus.CANCELLING}),
    JobStatus.CANCELLING: frozenset({JobStatus.CANCELLED}),
    JobStatus.SUCCEEDED: frozenset(),
    JobStatus.FAILED: frozenset(),
    JobStatus.CANCELLED: frozenset(),
}

_TRIAL_ENDS = frozenset(
    {
        TrialStatus.SUCCEEDED,
        TrialStatus.FAILED,
        TrialStatus.PRUNED,
        TrialStatus.DIVERGED,
        TrialStatus.CANCELLED,
    }
)
TRIAL_TRANSITIONS: dict[TrialStatus, frozenset[TrialStatus]] = {
    TrialStatus.PENDING: frozenset({TrialStatus.RUNNING}) | _TRIAL_ENDS,
    TrialStatus.RUNNING: _TRIAL_ENDS,
    **{end: frozenset() for end in _TRIAL_ENDS},
}

JOB_ACTIVE = frozenset({JobStatus.QUEUED, JobStatus.RUNNING, JobStatus.CANCELLING})
JOB_TERMINAL = frozenset(s for s, nxt in JOB_TRANSITIONS.items() if not nxt)
TRIAL_TERMINAL = _TRIAL_ENDS
# Jobs whose quota slot is taken (issue: "max queued+running jobs per user"); cancelling still runs.
JOB_COUNTS_AGAINST_QUOTA = JOB_ACTIVE


def check_job_transition(current: JobStatus | str, target: JobStatus | str) -> bool:
    """Return True if the status changes, False for a no-op; raise ``InvalidTransition`` if not allowed."""
    cur, tgt = JobStatus(current), JobStatus(target)
    if cur == tgt:
        return False
    allowed = JOB_TRANSITIONS[cur]
    if tgt not in allowed:
        raise InvalidTransition("job", cur.value, tgt.value, tuple(sorted(s.value for s in allowed)))
    return True


def check_trial_transition(current: TrialStatus | str, target: TrialStatus | str) -> bool:
    """Return True if the status changes, False for a no-op; raise ``InvalidTransition`` if not allowed."""
    cur, tgt = TrialStatus(current), TrialStatus(target)
    if cur == tgt:
        return False
    allowed = TRIAL_TRANSITIONS[cur]
    if tgt not in allowed:
        raise InvalidTransition("trial", cur.value, tgt.value, tuple(sorted(s.value for s in allowed)))
    return True
