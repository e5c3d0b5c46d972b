"""The explicit registries of family names and the two parse functions.

Each family module declares its own registry next to its classes (``batch.BATCH_FAMILIES``,
``lr.LR_FAMILIES``: Seesaw parses its base with the LR one, so the registry of a module cannot import that
module back); this module is where the rest of the package reads them.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from schedules.families._base import BatchSchedule, LRSchedule, parse_family
from schedules.families.batch import BATCH_FAMILIES
from schedules.families.lr import LR_FAMILIES

__all__ = ["BATCH_FAMILIES", "LR_FAMILIES", "parse_batch", "parse_lr"]


def parse_batch(d: Mapping[str, Any], *, field: str = "batch_size") -> BatchSchedule:
    """A batch-size family from its JSON dict; SpecError names ``field.<param>`` on any problem."""
    out = parse_family(d, field, BATCH_FAMILIES, "batch-size")
    assert isinstance(out, BatchSchedule)
    return out


def parse_lr(d: Mapping[str, Any], *, field: str = "lr") -> LRSchedule:
    """An LR family from its JSON dict; SpecError names ``field.<param>`` on any problem."""
    out = parse_family(d, field, LR_FAMILIES, "learning-rate")
    assert isinstance(out, LRSchedule)
    return out
