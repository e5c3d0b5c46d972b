"""Job objectives: which trial-summary field each one reads and whether lower is better.

Pure and tiny so that the storage layer (best-trial bookkeeping), the job spec and the report share it.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any, Literal

ObjectiveName = Literal["sfo_to_target", "final_grad_norm", "test_acc"]

# objective -> (field of schedules.metrics.TrialSummary, direction)
OBJECTIVES: dict[str, tuple[str, Literal["min", "max"]]] = {
    "sfo_to_target": ("sfo_to_target", "min"),
    "final_grad_norm": ("final_grad_norm", "min"),
    "test_acc": ("best_test_acc", "max"),
}


def objective_value(objective: str, summary: Mapping[str, Any] | None) -> float | None:
    """The objective read from a trial summary; None when missing or not finite (target never reached)."""
    if summary is None:
        return None
    field, _ = OBJECTIVES[objective]
    value = summary.get(field)
    if value is None:
        return None
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return number if math.isfinite(number) else None


def is_better(objective: str, candidate: float, incumbent: float | None) -> bool:
    if incumbent is None:
        return True
    return candidate > incumbent if OBJECTIVES[objective][1] == "max" else candidate < incumbent
