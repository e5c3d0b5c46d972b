"""The transition tables: one row per rule."""

from __future__ import annotations

import pytest

from service.errors import InvalidTransition
from service.storage.states import check_job_transition, check_trial_transition


@pytest.mark.parametrize(
    ("current", "target", "changes"),
    [
        ("queued", "running", True),  # a dispatcher claimed it
        ("queued", "cancelled", True),  # cancelled before it ran
        ("running", "succeeded", True),  # finished
        ("running", "failed", True),  # the driver failed
        ("running", "cancelling", True),  # cancel asked while running
        ("cancelling", "cancelled", True),  # the dispatcher stopped it
        ("running", "running", False),  # replayed update: no-op
    ],
)
def test_allowed_job_transitions(current: str, target: str, changes: bool) -> None:
    assert check_job_transition(current, target) is changes


@pytest.mark.parametrize(
    ("current", "target", "message"),
    [
        (
            "succeeded",
            "running",
            "job cannot go from succeeded to running; allowed from succeeded: none (terminal state)",
        ),
        (
            "queued",
            "succeeded",
            "job cannot go from queued to succeeded; allowed from queued: cancelled, cancelling, running",
        ),
        (
            "cancelling",
            "running",
            "job cannot go from cancelling to running; allowed from cancelling: cancelled",
        ),
    ],
)
def test_refused_job_transitions(current: str, target: str, message: str) -> None:
    with pytest.raises(InvalidTransition) as info:
        check_job_transition(current, target)
    assert str(info.value) == message


@pytest.mark.parametrize(
    ("current", "target", "allowed"),
    [
        ("pending", "running", True),  # started
        ("pending", "cancelled", True),  # job cancelled before the trial ran
        ("running", "pruned", True),  # ASHA stopped it
        ("running", "diverged", True),  # non-finite loss
        ("pruned", "running", False),  # terminal
        ("succeeded", "failed", False),  # terminal
    ],
)
def test_trial_transitions(current: str, target: str, allowed: bool) -> None:
    if allowed:
        assert check_trial_transition(current, target) is True
    else:
        with pytest.raises(InvalidTransition):
            check_trial_transition(current, target)
