"""The explicit registries of family names and the two parse functions."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from schedules.families._base import BatchSchedule, Family, LRSchedule, SpecError, missing_error
from schedules.families.batch import AdaptiveBatch, ConstantBatch, ExpGrowthBatch, LinearGrowthBatch
from schedules.families.lr import (
    ConstantLR,
    CosineLR,
    DiminishingLR,
    ExpGrowthLR,
    LinearLR,
    PolyLR,
    SeesawLR,
    StepDecayLR,
    WarmupConstLR,
    WarmupCosineLR,
)

BATCH_FAMILIES: dict[str, type[BatchSchedule]] = {
    cls.family: cls for cls in (ConstantBatch, ExpGrowthBatch, LinearGrowthBatch, AdaptiveBatch)
}
LR_FAMILIES: dict[str, type[LRSchedule]] = {
    cls.family: cls
    for cls in (
        ConstantLR,
        DiminishingLR,
        LinearLR,
        PolyLR,
        CosineLR,
        StepDecayLR,
        ExpGrowthLR,
        WarmupConstLR,
        WarmupCosineLR,
        SeesawLR,
    )
}


def _parse(d: Any, field: str, registry: Mapping[str, type[Family]], kind: str) -> Family:
    if not isinstance(d, Mapping):
        raise SpecError(field, d, f"must be a {kind} family dict such as {{'family': ..., <params>}}")
    if "family" not in d:
        raise missing_error(f"{field}.family", f"is required (one of {', '.join(registry)})")
    name = d["family"]
    if not isinstance(name, str) or name not in registry:
        raise SpecError(f"{field}.family", name, f"must be one of {', '.join(registry)}")
    params = {k: v for k, v in d.items() if k != "family"}
    try:
        return registry[name].from_params(params)
    except SpecError as exc:
        raise exc.with_prefix(field) from None


def parse_batch(d: Mapping[str, Any], *, field: str = "batch_size") -> BatchSchedule:
    """A batch-size family from its JSON dict; SpecError names ``field.<param>`` on any problem."""
    out = _parse(d, field, BATCH_FAMILIES, "batch-size")
    assert isinstance(out, BatchSchedule)
    return out


def parse_lr(d: Mapping[str, Any], *, field: str = "lr") -> LRSchedule:
    """An LR family from its JSON dict; SpecError names ``field.<param>`` on any problem."""
    out = _parse(d, field, LR_FAMILIES, "learning-rate")
    assert isinstance(out, LRSchedule)
    return out
