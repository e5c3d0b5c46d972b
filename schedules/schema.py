"""JSON schemas (OpenAPI 3.1 components) of schedules and search-space candidates, generated from the one
definition of each family (the dataclasses in ``schedules/families/``, their parameters declared with
``param``) and of each distribution (``schedules.space.distribution_schema``).

Torch-free and pure. ``components()`` returns name -> schema; references point at
``#/components/schemas/<name>``:

| component | what |
|---|---|
| ``ConstantBatch``, ``ExpGrowthBatch``, ..., ``ConstantLR``, ... | one family, fixed values (class name) |
| ``<family>Candidate`` | the same family in a search space: each number may be a distribution |
| ``BatchSchedule``, ``LRSchedule`` (and ``...Candidate``) | a discriminated union on ``family`` |
| ``SeesawBase`` (and ``...Candidate``) | the families Seesaw accepts as its base |
| ``Schedule``, ``ScheduleCandidate`` | ``{"batch_size": ..., "lr": ...}`` |

A schema can hold each parameter's own range, its type, which parameters exist and which are required; it
cannot hold a range that depends on another parameter (``lr_max > lr0``): those are in each parameter's
description and checked by the family, as is a budget-dependent limit (overflow within ``max_epochs``).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

from schedules.families._base import Family, ParamInfo, params_of
from schedules.families.registry import BATCH_FAMILIES, LR_FAMILIES
from schedules.space import distribution_schema

PREFIX = "#/components/schemas/"
_OPS = {"gt": ">", "ge": ">=", "lt": "<", "le": "<="}


def ref(name: str) -> dict[str, str]:
    return {"$ref": PREFIX + name}


def _implied(
    cls: type[Family], p: ParamInfo, lower: bool, seen: frozenset[str] = frozenset()
) -> tuple[float, bool] | None:
    """The tightest numeric (bound, strict) on one side of ``p`` that holds on its own: its own number, or
    for a bound on another parameter that parameter's own bound on the same side (``lr_max > lr0 > 0``
    gives ``> 0``, strict if either step is)."""
    found: list[tuple[float, bool]] = []
    for op, bound in p.bounds.items():
        if (op in ("gt", "ge")) != lower:
            continue
        strict = op in ("gt", "lt")
        if not isinstance(bound, str):
            found.append((float(bound), strict))
            continue
        other = next(q for q in params_of(cls) if q.name == bound)
        if other.name in seen:
            continue
        implied = _implied(cls, other, lower, seen | {p.name})
        if implied is not None:
            found.append((implied[0], implied[1] or strict))
    if not found:
        return None
    # The tightest: the largest lower bound (strict wins a tie), the smallest upper bound.
    return max(found, key=lambda b: (b[0], b[1])) if lower else min(found, key=lambda b: (b[0], not b[1]))


def number_schema(cls: type[Family], p: ParamInfo) -> dict[str, Any]:
    """The schema of one value of ``p``: its type and the range it has on its own."""
    integer = p.kind is int
    out: dict[str, Any] = {"type": "integer" if integer else "number"}
    low = _implied(cls, p, lower=True)
    if low is not None:
        value, strict = low
        if integer:
            out["minimum"] = math.floor(value) + 1 if strict else math.ceil(value)
        else:
            out["exclusiveMinimum" if strict else "minimum"] = value
    high = _implied(cls, p, lower=False)
    if high is not None:
        value, strict = high
        if integer:
            out["maximum"] = math.ceil(value) - 1 if strict else math.floor(value)
        else:
            out["exclusiveMaximum" if strict else "maximum"] = value
    return out


def _description(p: ParamInfo) -> str:
    relative = [f"{_OPS[op]} {bound}" for op, bound in p.bounds.items() if isinstance(bound, str)]
    text = p.doc
    if relative:
        text += f" Must be {' and '.join(relative)}."
    return text.strip()


def family_schema(cls: type[Family], *, candidate: bool, union: Mapping[str, str]) -> dict[str, Any]:
    """One family as a JSON object: ``family`` (a constant) and its parameters. With ``candidate`` each
    number may instead be a distribution of such numbers (``schedules.space``). ``union`` names the union a
    nested family parameter (Seesaw's base) refers to, by its metadata's ``families``."""
    properties: dict[str, Any] = {"family": {"const": cls.family, "type": "string"}}
    required = ["family"]
    for p in params_of(cls):
        schema: dict[str, Any]
        if p.choices is not None:
            schema = {"type": "string", "enum": list(p.choices)}
        elif p.kind in (int, float):
            value = number_schema(cls, p)
            schema = {"anyOf": [value, distribution_schema(value)]} if candidate else value
            if p.optional:
                schema = {"anyOf": [*schema.get("anyOf", [schema]), {"type": "null"}]}
        else:
            schema = ref(union["base" + ("Candidate" if candidate else "")])
        description = _description(p)
        if description:
            schema = {**schema, "description": description}
        if p.required:
            required.append(p.name)
        else:
            schema = {**schema, "default": p.default}
        properties[p.name] = schema
    doc = (cls.__doc__ or "").strip().splitlines()[0] if cls.__doc__ else cls.family
    return {
        "type": "object",
        "title": f"{cls.__name__}{'Candidate' if candidate else ''}",
        "description": doc,
        "properties": properties,
        "required": required,
        "additionalProperties": False,
    }


def _union(classes: Sequence[type[Family]], *, candidate: bool) -> dict[str, Any]:
    suffix = "Candidate" if candidate else ""
    return {
        "oneOf": [ref(c.__name__ + suffix) for c in classes],
        "discriminator": {
            "propertyName": "family",
            "mapping": {c.family: PREFIX + c.__name__ + suffix for c in classes},
        },
    }


def _seesaw_bases() -> tuple[str, ...]:
    for cls in LR_FAMILIES.values():
        for f in cls.__dataclass_fields__.values():  # type: ignore[attr-defined]
            if "families" in f.metadata:
                return tuple(f.metadata["families"])
    return ()


def components() -> dict[str, dict[str, Any]]:
    """Every schedule schema, by component name (see the module docstring)."""
    out: dict[str, dict[str, Any]] = {}
    union = {"base": "SeesawBase", "baseCandidate": "SeesawBaseCandidate"}
    for candidate in (False, True):
        suffix = "Candidate" if candidate else ""
        for cls in [*BATCH_FAMILIES.values(), *LR_FAMILIES.values()]:
            out[cls.__name__ + suffix] = family_schema(cls, candidate=candidate, union=union)
        out["BatchSchedule" + suffix] = _union(list(BATCH_FAMILIES.values()), candidate=candidate)
        out["LRSchedule" + suffix] = _union(list(LR_FAMILIES.values()), candidate=candidate)
        out["SeesawBase" + suffix] = _union(
            [LR_FAMILIES[name] for name in _seesaw_bases()], candidate=candidate
        )
        out["Schedule" + suffix] = {
            "type": "object",
            "title": "Schedule" + suffix,
            "description": "A batch-size family and a learning-rate family"
            + (" whose numbers may be distributions." if candidate else "."),
            "properties": {"batch_size": ref("BatchSchedule" + suffix), "lr": ref("LRSchedule" + suffix)},
            "required": ["batch_size", "lr"],
            "additionalProperties": False,
        }
    return out
