"""Shared pieces of the schedule families: the error type, parameter checks and the two abstract bases.

A family is a frozen dataclass that validates itself in ``__post_init__``. Errors raised there name the
parameter alone (``factor``); ``parse_batch`` / ``parse_lr`` add the dotted prefix (``batch_size.factor``)
so that one family class serves the top level and nested places (Seesaw's ``lr.base``).
"""

from __future__ import annotations

import dataclasses
import math
import typing
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, ClassVar, Protocol

_MISSING = object()
_OMIT_AT_DEFAULT = "schedsearch_omit_at_default"


class SpecError(ValueError):
    """A schedule or trial spec that cannot work. ``field`` is a dotted path ("lr.lr_max"), ``value`` the
    offending value; the message says what is valid."""

    def __init__(self, field: str, value: Any, requirement: str) -> None:
        self.field = field
        self.value = value
        self.requirement = requirement
        leaf = field.rsplit(".", 1)[-1] if field else "value"
        shown = "" if value is _MISSING else f", got {leaf}={value!r}"
        super().__init__(f"{field} {requirement}{shown}")

    def with_prefix(self, prefix: str) -> SpecError:
        """The same error with ``prefix.`` in front of the field path."""
        if not prefix:
            return self
        field = f"{prefix}.{self.field}" if self.field else prefix
        return SpecError(field, self.value, self.requirement)


def missing_error(field: str, requirement: str) -> SpecError:
    """A SpecError for a required parameter that is absent (no ``got ...`` part)."""
    return SpecError(field, _MISSING, requirement)


class HorizonLike(Protocol):
    """What a family needs to know of the run: its length in epochs and the training-set size."""

    @property
    def epochs(self) -> int: ...

    @property
    def n_train(self) -> int: ...


def as_float(
    name: str,
    value: Any,
    *,
    family: str,
    gt: float | None = None,
    ge: float | None = None,
    lt: float | None = None,
    le: float | None = None,
) -> float:
    """``value`` as a finite float within the bounds, or a SpecError naming ``name`` and the valid range."""
    bounds = _describe(gt=gt, ge=ge, lt=lt, le=le)
    where = f" for {family}" if family else ""
    need = f"must be a finite number{(' ' + bounds) if bounds else ''}{where}"
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise SpecError(name, value, need)
    try:
        out = float(value)
    except OverflowError:  # an int with hundreds of digits (JSON allows any length)
        raise SpecError(name, _shorten(int(value)), need) from None
    if not math.isfinite(out):
        raise SpecError(name, value, need)
    if (
        (gt is not None and not out > gt)
        or (ge is not None and not out >= ge)
        or (lt is not None and not out < lt)
        or (le is not None and not out <= le)
    ):
        raise SpecError(name, value, f"must be {bounds}{where}")
    return out


def as_int(name: str, value: Any, *, family: str, ge: int | None = None, le: int | None = None) -> int:
    """``value`` as an int (an integral float such as 30.0 is accepted) within the bounds."""
    bounds = _describe(ge=ge, le=le)
    where = f" for {family}" if family else ""
    need = f"must be an integer{(' ' + bounds) if bounds else ''}{where}"
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise SpecError(name, value, need)
    if isinstance(value, float) and not (math.isfinite(value) and value.is_integer()):
        raise SpecError(name, value, need)
    out = int(value)
    if (ge is not None and out < ge) or (le is not None and out > le):
        raise SpecError(name, value, f"must be {bounds}{where}")
    return out


def _shorten(value: int) -> str:
    """A huge integer as its first digits and its length (the error message stays readable)."""
    digits = str(abs(value))
    return f"{'-' if value < 0 else ''}{digits[:12]}...({len(digits)} digits)"


def _describe(**bounds: float | None) -> str:
    ops = {"gt": ">", "ge": ">=", "lt": "<", "le": "<="}
    return " and ".join(f"{ops[k]} {_num(v)}" for k, v in bounds.items() if v is not None)


def _num(x: float) -> str:
    return str(int(x)) if float(x).is_integer() else repr(x)


Bound = float | str | None  # a number, or the name of an earlier parameter of the same family


@dataclass(frozen=True)
class Bounds:
    """A parameter's valid range: numbers, or names of parameters declared before it (``lr_max`` has
    ``gt="lr0"``). For an integer parameter ``gt`` / ``lt`` mean ``ge`` / ``le`` one step further."""

    gt: Bound = None
    ge: Bound = None
    lt: Bound = None
    le: Bound = None

    def items(self) -> list[tuple[str, float | str]]:
        return [
            (k, v)
            for k, v in (("gt", self.gt), ("ge", self.ge), ("lt", self.lt), ("le", self.le))
            if v is not None
        ]


def param(
    default: Any = dataclasses.MISSING,
    *,
    gt: Bound = None,
    ge: Bound = None,
    lt: Bound = None,
    le: Bound = None,
    choices: tuple[str, ...] | None = None,
    omit_default: bool = False,
    doc: str = "",
) -> Any:
    """A parameter of a family: its default, its valid range (numbers) or ``choices`` (a string parameter)
    and a short description. The family checks it in ``__post_init__`` (``Family._check_params``) and
    ``schedules.schema`` writes the same range into the API's JSON schema: one definition of each parameter.
    ``omit_default`` is for a parameter added after the JSON form was fixed: ``to_json`` leaves it out while
    it has its default, so every stored schedule keeps its JSON form."""
    metadata: dict[str, Any] = {"bounds": Bounds(gt=gt, ge=ge, lt=lt, le=le), "doc": doc}
    if choices is not None:
        metadata["choices"] = tuple(choices)
    if omit_default:
        metadata[_OMIT_AT_DEFAULT] = True
    return dataclasses.field(default=default, metadata=metadata)


@dataclass(frozen=True)
class ParamInfo:
    """A parameter as the checks and the schema see it."""

    name: str
    kind: type  # int or float; for ``base`` the LR family type
    optional: bool  # None is a valid value (``int | None``)
    required: bool  # no default
    default: Any
    bounds: Bounds
    doc: str
    choices: tuple[str, ...] | None = None  # a string parameter's valid values


_PARAMS: dict[type, tuple[ParamInfo, ...]] = {}


def params_of(cls: type) -> tuple[ParamInfo, ...]:
    """The parameters of a family class, in declaration order (the order they are checked in). Cached: every
    schedule built checks its parameters, and reading type hints costs more than the checks."""
    if cls not in _PARAMS:
        _PARAMS[cls] = _read_params(cls)
    return _PARAMS[cls]


def _read_params(cls: type) -> tuple[ParamInfo, ...]:
    hints = typing.get_type_hints(cls)
    out = []
    for f in dataclasses.fields(cls):
        hint = hints[f.name]
        args = [a for a in typing.get_args(hint) if a is not type(None)]
        optional = type(None) in typing.get_args(hint)
        kind = args[0] if optional and args else hint
        out.append(
            ParamInfo(
                name=f.name,
                kind=kind,
                optional=optional,
                required=f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING,
                default=None if f.default is dataclasses.MISSING else f.default,
                bounds=f.metadata.get("bounds", Bounds()),
                doc=f.metadata.get("doc", ""),
                choices=f.metadata.get("choices"),
            )
        )
    return tuple(out)


def ceil_clean(x: float) -> int:
    """ceil that ignores float noise: 16.000000000000004 is 16, not 17 (stage values such as 8 * 2^k or the
    affine rescale are computed in floats)."""
    return math.ceil(x - 1e-9)


def stage_of(epoch: int, interval: int) -> int:
    return epoch // interval


class Family:
    """Base of every family: the parameter checks, the JSON form and the parsing of a params dict.

    A family is a frozen dataclass whose numeric parameters are declared with :func:`param` (type and range);
    ``__post_init__`` checks them in declaration order and then runs ``_check`` for what a range cannot say
    (Seesaw's base, "lr_max or factor")."""

    family: ClassVar[str]

    def __post_init__(self) -> None:
        self._check_params()
        self._check()

    def _check(self) -> None:
        """Checks beyond each parameter's range; none by default."""

    def _check_params(self) -> None:
        for p in params_of(type(self)):
            if p.choices is not None:
                if getattr(self, p.name) not in p.choices:
                    raise SpecError(
                        p.name,
                        getattr(self, p.name),
                        f"must be one of {', '.join(p.choices)} for {self.family}",
                    )
                continue
            if p.kind not in (int, float):
                continue  # a nested family (Seesaw's base) is checked by _check
            value = getattr(self, p.name)
            if value is None and p.optional:
                continue
            limits = {
                op: getattr(self, bound) if isinstance(bound, str) else bound
                for op, bound in p.bounds.items()
            }
            if p.kind is int:
                # Integers: "> x" is ">= x + 1" and "< x" is "<= x - 1", said the way users count.
                if "gt" in limits:
                    limits["ge"] = math.floor(limits.pop("gt")) + 1
                if "lt" in limits:
                    limits["le"] = math.ceil(limits.pop("lt")) - 1
                whole = {op: int(v) for op, v in limits.items()}
                checked: float = as_int(p.name, value, family=self.family, **whole)
            else:
                checked = as_float(p.name, value, family=self.family, **limits)
            object.__setattr__(self, p.name, checked)

    def to_json(self) -> dict[str, Any]:
        """``{"family": ..., <every parameter>}``; a parameter declared with ``param(omit_default=True)`` is
        left out while it has its default, so adding one keeps every stored schedule's JSON form as it was."""
        out: dict[str, Any] = {"family": self.family}
        for f in dataclasses.fields(self):  # type: ignore[arg-type]
            value = getattr(self, f.name)
            if f.metadata.get(_OMIT_AT_DEFAULT) and value == f.default:
                continue
            out[f.name] = value.to_json() if isinstance(value, Family) else value
        return out

    @classmethod
    def from_params(cls, params: Mapping[str, Any]) -> Family:
        """Build from the JSON dict minus ``family``; unknown keys and missing required keys are SpecErrors
        with the bare parameter name as field (the caller prefixes it)."""
        fields = {f.name: f for f in dataclasses.fields(cls)}  # type: ignore[arg-type]
        for key in params:
            if key not in fields:
                raise SpecError(
                    str(key),
                    params[key],
                    f"is not a parameter of {cls.family} (valid: {', '.join(fields)})",
                )
        for name, f in fields.items():
            no_default = f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING
            if no_default and name not in params:
                raise missing_error(name, f"is required for {cls.family}")
        return cls(**params)


class BatchSchedule(Family):
    """Batch size per epoch. ``b0`` is the first batch size of every family."""

    b0: int

    def at(self, epoch: int, horizon: HorizonLike) -> int:
        """The batch size of epoch ``epoch`` (0-based), before Seesaw's multiplier and clipping to n_train."""
        raise NotImplementedError

    @property
    def is_adaptive(self) -> bool:
        """True when the trainer, not the epoch, moves the batch size (the ``adaptive`` family)."""
        return False


class LRSchedule(Family):
    """Learning rate as a pure function of the position in training. ``lr0`` is the first LR."""

    #: True when the value moves every step (t), False when it moves once per epoch.
    per_step: ClassVar[bool] = False
    #: True when the value needs T, the total number of steps, computed in advance from the batch plan.
    needs_total_steps: ClassVar[bool] = False

    lr0: float

    @property
    def first_lr(self) -> float:
        """The LR at step 0; a family that wraps another (``seesaw``) overrides it."""
        return self.lr0

    def at(
        self,
        *,
        epoch: int,
        step: int = 0,
        total_steps: int | None = None,
        horizon: HorizonLike,
    ) -> float:
        """LR at 0-based ``epoch`` and global ``step`` t; families that need T read ``total_steps``."""
        raise NotImplementedError

    def batch_multiplier(self, epoch: int, horizon: HorizonLike) -> float:
        """Factor on the batch size at ``epoch``; 1.0 except for Seesaw, which trades LR cuts for batch."""
        return 1.0


def parse_family(d: Any, field: str, registry: Mapping[str, type[Family]], kind: str) -> Family:
    """The family ``d["family"]`` of ``registry`` built from the rest of ``d``; SpecError names
    ``field.<param>`` on any problem (an unknown family lists the registry's names)."""
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
