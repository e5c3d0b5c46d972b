"""``workers/trainable.py``: the objective the searcher sees, epoch by epoch. No Ray cluster needed."""

from __future__ import annotations

import math

import pytest

from workers.trainable import ObjectiveTracker


@pytest.mark.parametrize(
    ("objective", "norms", "expected"),
    [
        ("sfo_to_target", [0.5, 0.05, 0.01], 200.0),  # reached at the second epoch (sfo 200)
        ("sfo_to_target", [0.5, 0.2], 2 * 1000 * (1 + math.log10(0.2 / 0.1))),  # penalty by the best norm
        ("sfo_to_target", [0.5, math.nan], 100 * 1000),  # diverged: far above any penalty
        ("final_grad_norm", [0.5, 0.2], 0.2),  # the current norm
    ],
)
def test_objective_tracker(objective: str, norms: list[float], expected: float) -> None:
    tracker = ObjectiveTracker(objective, target=0.1, cap_sfo=1000)
    value = math.nan
    for i, norm in enumerate(norms, start=1):
        value = tracker.update(
            {"sfo": 100 * i, "grad_norm": None if math.isnan(norm) else norm, "test_acc": 0.5}
        )
    assert value == pytest.approx(expected)


def test_penalty_orders_trials_by_closeness_to_the_target() -> None:
    close, far = ObjectiveTracker("sfo_to_target", 0.1, 1000), ObjectiveTracker("sfo_to_target", 0.1, 1000)
    assert close.update({"sfo": 100, "grad_norm": 0.15}) < far.update({"sfo": 100, "grad_norm": 0.9})
    assert close.value() > 1000  # above any SFO that reaches the target within the budget
