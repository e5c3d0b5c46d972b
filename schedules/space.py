"""Search-space candidates and the one distribution grammar (docs/design.md, "Search space"). Torch-free.

A distribution is a one-key dict: ``{"uniform": [lo, hi]}``, ``{"loguniform": [lo, hi]}`` (lo > 0),
``{"int": [lo, hi]}`` or ``{"choice": [v, ...]}``. It may stand for any number of a schedule candidate
(names are dotted paths: ``batch_size.factor``, ``lr.base.lr0``, prefixed by the caller in multi-candidate
spaces) and for the job's momentum.

Every use of a distribution reads this module, and each kind is one class in :data:`KINDS` that says
everything about it: how its arguments are checked (``problem``), which values stand for its box in the
corner check (``corners``) and in the whole-budget check (``extremes``), an inner point (``midpoint``), the
value a fixed point takes (``center``), the Optuna suggestion (``suggest``), a random pick (``sample``), its
grid values (``grid``) and its JSON schema (``schema``). So **adding a distribution kind is a change to this
file only**: write a :class:`Kind` subclass and add it to ``KINDS``; the job spec's checks
(``service.jobspec``), the plan checks (``schedules.plancheck``), the Optuna space (``workers.space``) and
the OpenAPI document (``schedules.schema``) pick it up from there.

``validate`` is strict on purpose: every corner of the box (each distribution at its bounds, each choice
option) and a non-integral midpoint of each continuous range must be a valid schedule, so that a sampler
can never propose a schedule that fails to build. The schedule constraints are bounds, integrality and
orderings between two parameters (lr_max > lr0, w < W), so these points cover the whole box.
"""

from __future__ import annotations

import itertools
import math
import random
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any, ClassVar

from schedules.spec import Schedule, SpecError

#: Corner combinations checked at most; a larger space is rejected rather than validated partly.
MAX_CORNERS = 4096

Pick = Callable[[str, Mapping[str, Any]], Any]  # (dotted name, distribution dict) -> value


# ----------------------------------------------------------------------------------------------- the kinds


class Kind:
    """One distribution kind. ``args`` is the list under the kind's key, already checked by ``problem``
    (except in ``problem`` itself)."""

    name: ClassVar[str]
    #: Values between the bounds can be drawn: not on a grid, and its midpoint is checked too.
    continuous: ClassVar[bool] = False

    def problem(self, args: Any) -> str | None:
        """What is wrong with ``args`` (the message's requirement), or None."""
        if not isinstance(args, list | tuple) or len(args) != 2:
            return f"{self.name} needs [lo, hi]"
        lo, hi = args
        if not all(_finite_number(v) for v in (lo, hi)):
            return f"{self.name} bounds must be finite numbers"
        return None

    def corners(self, args: Sequence[Any]) -> list[Any]:
        """The values that stand for this distribution's edges in ``validate``."""
        return [args[0], args[1]]

    def corner_count(self, args: Any) -> int:
        """``len(corners(args))``, for arguments not checked yet (a cost estimate before any check)."""
        return 2

    def extremes(self, args: Sequence[Any]) -> list[Any]:
        """The lowest and the highest value (``schedules.plancheck``: overflow and underflow grow
        monotonically with each parameter, so they happen first there)."""
        return self.corners(args)

    def midpoint(self, args: Sequence[Any]) -> float | None:
        """A value strictly inside a continuous range that is not an integer, or None."""
        return None

    def center(self, args: Sequence[Any]) -> Any:
        """The value a fixed point takes from a searched distribution (baselines with a searched momentum)."""
        return (float(args[0]) + float(args[1])) / 2

    def suggest(self, trial: Any, name: str, args: Sequence[Any]) -> Any:
        """Optuna's define-by-run suggestion (``trial.suggest_*``)."""
        raise NotImplementedError

    def sample(self, rng: random.Random, args: Sequence[Any]) -> Any:
        """A random value (tests and local runs)."""
        raise NotImplementedError

    def grid(self, args: Sequence[Any]) -> list[Any] | None:
        """Every value, for grid search; None for a continuous kind (refused by the job spec's checks)."""
        return None

    def schema(self, value: Mapping[str, Any]) -> dict[str, Any] | None:
        """The JSON schema of this kind's list over values that satisfy ``value`` (a ``number`` or
        ``integer`` schema with its range), or None when the kind does not apply to such values."""
        return _pair(dict(value))


class Uniform(Kind):
    name = "uniform"
    continuous = True

    def problem(self, args: Any) -> str | None:
        problem = super().problem(args)
        if problem is None and not args[0] < args[1]:
            return f"{self.name} needs lo < hi"
        return problem

    def midpoint(self, args: Sequence[Any]) -> float | None:
        lo, hi = float(args[0]), float(args[1])
        mid = (lo + hi) / 2
        # nudged off an integer, or 3.0 would pass as the integer 3
        return math.nextafter(mid, hi) if mid.is_integer() else mid

    def suggest(self, trial: Any, name: str, args: Sequence[Any]) -> Any:
        return trial.suggest_float(name, float(args[0]), float(args[1]))

    def sample(self, rng: random.Random, args: Sequence[Any]) -> Any:
        return rng.uniform(float(args[0]), float(args[1]))

    def schema(self, value: Mapping[str, Any]) -> dict[str, Any] | None:
        # An integer parameter has no continuous kinds: validate refuses them (midpoints are not integers).
        return None if value.get("type") == "integer" else _pair(dict(value))


class LogUniform(Uniform):
    name = "loguniform"

    def problem(self, args: Any) -> str | None:
        problem = super().problem(args)
        if problem is None and args[0] <= 0:
            return "loguniform needs lo > 0"
        return problem

    def midpoint(self, args: Sequence[Any]) -> float | None:
        lo, hi = float(args[0]), float(args[1])
        mid = math.sqrt(lo * hi)
        return math.nextafter(mid, hi) if mid.is_integer() else mid

    def suggest(self, trial: Any, name: str, args: Sequence[Any]) -> Any:
        return trial.suggest_float(name, float(args[0]), float(args[1]), log=True)

    def sample(self, rng: random.Random, args: Sequence[Any]) -> Any:
        return math.exp(rng.uniform(math.log(args[0]), math.log(args[1])))

    def schema(self, value: Mapping[str, Any]) -> dict[str, Any] | None:
        if value.get("type") == "integer":
            return None
        positive = {k: v for k, v in value.items() if not (k == "minimum" and v <= 0)}
        if positive.get("minimum", 0) <= 0:
            positive["exclusiveMinimum"] = max(float(value.get("exclusiveMinimum", 0.0)), 0.0)
        return _pair(positive)


class Int(Kind):
    name = "int"

    def problem(self, args: Any) -> str | None:
        problem = super().problem(args)
        if problem is not None:
            return problem
        # 30.0 is the integer 30, as for an integer parameter (JSON Schema counts it as one too)
        if not all(float(v).is_integer() for v in args):
            return "int bounds must be integers"
        if args[0] > args[1]:
            return "int needs lo <= hi"
        return None

    def suggest(self, trial: Any, name: str, args: Sequence[Any]) -> Any:
        return trial.suggest_int(name, int(args[0]), int(args[1]))

    def sample(self, rng: random.Random, args: Sequence[Any]) -> Any:
        return rng.randint(int(args[0]), int(args[1]))

    def grid(self, args: Sequence[Any]) -> list[Any] | None:
        return list(range(int(args[0]), int(args[1]) + 1))

    def schema(self, value: Mapping[str, Any]) -> dict[str, Any] | None:
        return _pair({**value, "type": "integer"})


class Choice(Kind):
    name = "choice"

    def problem(self, args: Any) -> str | None:
        if not isinstance(args, list | tuple) or not args:
            return "choice needs a non-empty list of values"
        return None

    def corners(self, args: Sequence[Any]) -> list[Any]:
        return list(args)

    def corner_count(self, args: Any) -> int:
        return max(len(args), 1) if isinstance(args, list | tuple) else 2

    def extremes(self, args: Sequence[Any]) -> list[Any]:
        numeric = [v for v in args if isinstance(v, int | float) and not isinstance(v, bool)]
        return [min(numeric), max(numeric)] if len(numeric) == len(args) else list(args)

    def center(self, args: Sequence[Any]) -> Any:
        return args[len(args) // 2]

    def suggest(self, trial: Any, name: str, args: Sequence[Any]) -> Any:
        return trial.suggest_categorical(name, list(args))

    def sample(self, rng: random.Random, args: Sequence[Any]) -> Any:
        return rng.choice(list(args))

    def grid(self, args: Sequence[Any]) -> list[Any] | None:
        return list(args)

    def schema(self, value: Mapping[str, Any]) -> dict[str, Any] | None:
        return {"type": "array", "items": dict(value), "minItems": 1}


#: Every distribution kind by its JSON key, in the order messages and schemas list them.
KINDS: dict[str, Kind] = {k.name: k for k in (Choice(), Int(), Uniform(), LogUniform())}


# ----------------------------------------------------------------------------------------------- reading


def is_distribution(node: Any) -> bool:
    return isinstance(node, Mapping) and len(node) == 1 and next(iter(node)) in KINDS


def kind_of(dist: Mapping[str, Any]) -> tuple[Kind, list[Any]]:
    """The kind of a distribution dict and its argument list."""
    key, args = next(iter(dist.items()))
    return KINDS[key], list(args)


def distribution_paths(
    candidate: Any, path: tuple[str, ...] = ()
) -> Iterator[tuple[tuple[str, ...], dict[str, Any]]]:
    """(path of keys, distribution) of every distribution in ``candidate``, in document order."""
    if is_distribution(candidate):
        yield path, dict(candidate)
    elif isinstance(candidate, Mapping):
        for key, child in candidate.items():
            yield from distribution_paths(child, (*path, key))


def distributions(candidate: Any, path: str = "") -> Iterator[tuple[str, dict[str, Any]]]:
    """(dotted name, distribution) of every distribution in ``candidate``, in document order."""
    for keys, dist in distribution_paths(candidate):
        yield ".".join(str(k) for k in ([path] if path else []) + list(keys)), dist


def discrete_kinds() -> list[str]:
    """The kinds a grid can enumerate (``Kind.continuous`` false)."""
    return [name for name, kind in KINDS.items() if not kind.continuous]


def is_searched(candidate: Any) -> bool:
    """True when ``candidate`` holds at least one distribution."""
    return any(True for _ in distributions(candidate))


def check_distribution(name: str, dist: Mapping[str, Any]) -> None:
    """A SpecError naming ``name`` unless ``dist`` is a well-formed distribution."""
    if not is_distribution(dist):
        raise SpecError(name, dict(dist), f"must be a number or one of {', '.join(KINDS)} as {{kind: [...]}}")
    key, args = next(iter(dist.items()))
    problem = KINDS[key].problem(args)
    if problem is not None:
        raise SpecError(name, dict(dist), problem)


def corner_values(name: str, dist: Mapping[str, Any]) -> list[Any]:
    """The values at the edges of a distribution (every choice, or both bounds), after
    :func:`check_distribution`: what a value-range check of a searched number looks at."""
    check_distribution(name, dist)
    kind, args = kind_of(dist)
    return kind.corners(args)


def center(value: Any) -> Any:
    """``value`` itself, or the value a fixed point takes from a distribution (``Kind.center``)."""
    if not is_distribution(value):
        return value
    kind, args = kind_of(value)
    return kind.center(args)


def resolve_dict(candidate: Any, pick: Pick, *, prefix: str = "", path: str = "") -> Any:
    """A copy of ``candidate`` with every distribution replaced by ``pick(prefix + name, distribution)``."""
    if is_distribution(candidate):
        return pick(prefix + path, dict(candidate))
    if isinstance(candidate, Mapping):
        return {
            key: resolve_dict(child, pick, prefix=prefix, path=f"{path}.{key}" if path else str(key))
            for key, child in candidate.items()
        }
    return candidate


def resolve(candidate: Mapping[str, Any], pick: Pick, *, prefix: str = "") -> Schedule:
    """The schedule ``pick`` chooses from ``candidate`` (Optuna's ``trial.suggest_*`` in workers)."""
    return Schedule.from_json(resolve_dict(candidate, pick, prefix=prefix))


def fixed(chosen: Mapping[str, Any]) -> Pick:
    """A pick that returns the value ``chosen`` holds for each name."""
    return lambda name, _dist: chosen[name]


# ----------------------------------------------------------------------------------------------- picks


def optuna_pick(trial: Any, prefix: str = "") -> Pick:
    """A pick that asks an Optuna trial (define-by-run), naming each parameter ``prefix + name``."""

    def pick(name: str, dist: Mapping[str, Any]) -> Any:
        kind, args = kind_of(dist)
        return kind.suggest(trial, prefix + name, args)

    return pick


def random_pick(rng: random.Random) -> Pick:
    """A sampler for tests and local runs: uniform over each distribution (log-uniform where asked)."""

    def pick(_name: str, dist: Mapping[str, Any]) -> Any:
        kind, args = kind_of(dist)
        return kind.sample(rng, args)

    return pick


def grid_values(dist: Mapping[str, Any]) -> list[Any]:
    """Every value of a discrete distribution; a continuous one (refused for grid search at submission)
    falls back to its bounds so that a grid is still defined."""
    kind, args = kind_of(dist)
    values = kind.grid(args)
    return kind.corners(args) if values is None else values


# ----------------------------------------------------------------------------------------------- the box


def _axes(dists: Sequence[tuple[str, Mapping[str, Any]]], *, extremes: bool) -> list[list[Any]]:
    out = []
    for _, dist in dists:
        kind, args = kind_of(dist)
        out.append(kind.extremes(args) if extremes else kind.corners(args))
    return out


def corner_count(candidate: Any, *, extremes: bool = False) -> int:
    """How many corners :func:`box_points` enumerates without a limit (cheap: nothing is built)."""
    return math.prod(len(a) for a in _axes(list(distributions(candidate)), extremes=extremes))


def box_points(
    candidate: Any, *, extremes: bool = False, max_points: int | None = None
) -> list[dict[str, Any]]:
    """The edges of a candidate's box as ``{dotted name: value}``, the one corner enumerator: every corner
    (each distribution at its ``corners``, or its ``extremes``) when there are at most ``max_points``, else
    all-low, all-high and each axis flipped from those two (the first ``max_points``, at least 2). A
    candidate without distributions has one point, ``{}``."""
    dists = list(distributions(candidate))
    names = [n for n, _ in dists]
    axes = _axes(dists, extremes=extremes)
    if max_points is None or math.prod(len(a) for a in axes) <= max_points:
        combos = [list(c) for c in itertools.product(*axes)]
    else:
        lo = [a[0] for a in axes]
        hi = [a[-1] for a in axes]
        combos = [lo, hi]
        for i in range(len(axes)):
            combos.append([*lo[:i], hi[i], *lo[i + 1 :]])
            combos.append([*hi[:i], lo[i], *hi[i + 1 :]])
        combos = combos[: max(2, max_points)]
    return [dict(zip(names, combo, strict=True)) for combo in combos]


def midpoints(candidate: Any) -> list[dict[str, Any]]:
    """For each continuous distribution, a point with it at its non-integral midpoint and every other
    distribution at its first corner: an integer parameter (b0, interval) passes at integral bounds but not
    in between."""
    dists = list(distributions(candidate))
    first = {n: a[0] for (n, _), a in zip(dists, _axes(dists, extremes=False), strict=True)}
    out = []
    for name, dist in dists:
        kind, args = kind_of(dist)
        mid = kind.midpoint(args)
        if mid is not None:
            out.append({**first, name: mid})
    return out


def validation_cost(candidate: Any) -> int:
    """Schedules :func:`validate` builds for ``candidate``: every corner plus one midpoint per continuous
    distribution. Cheap (nothing is built) and total: the distributions need not be checked yet."""
    corners, mids = 1, 0
    for _, dist in distributions(candidate):
        key, args = next(iter(dist.items()))
        corners *= KINDS[key].corner_count(args)
        mids += KINDS[key].continuous
    return corners + mids


def validate(candidate: Mapping[str, Any]) -> None:
    """Raise SpecError (field = dotted path) unless every schedule the candidate can give is valid."""
    if not isinstance(candidate, Mapping):
        raise SpecError("schedule", candidate, "must be an object with batch_size and lr")
    for name, dist in distributions(candidate):
        if name.endswith("family") or name in ("batch_size", "lr", "lr.base"):
            raise SpecError(name, dist, "must be fixed: search families by listing several candidates")
        check_distribution(name, dist)
    count = corner_count(candidate)
    if count > MAX_CORNERS:
        raise SpecError(
            "space", count, f"has too many corner combinations to validate (at most {MAX_CORNERS})"
        )
    for chosen in [*box_points(candidate), *midpoints(candidate)]:
        try:
            resolve(candidate, fixed(chosen))
        except SpecError as exc:
            if not chosen:
                raise
            at = ", ".join(f"{k}={v!r}" for k, v in chosen.items())
            raise SpecError(exc.field, exc.value, f"{exc.requirement} (with {at})") from None


# ----------------------------------------------------------------------------------------------- schema


def distribution_schema(value: Mapping[str, Any]) -> dict[str, Any]:
    """The JSON schema of a distribution over values that satisfy ``value`` (a ``number`` or ``integer``
    schema with its range): one option per kind that applies (``Kind.schema``). ``lo < hi`` is the kind's
    to check (a schema cannot)."""
    options = []
    for kind in KINDS.values():
        schema = kind.schema(value)
        if schema is not None:
            options.append(
                {
                    "type": "object",
                    "title": f"{kind.name} distribution",
                    "properties": {kind.name: schema},
                    "required": [kind.name],
                    "additionalProperties": False,
                }
            )
    return {"oneOf": options}


def _pair(item: Mapping[str, Any]) -> dict[str, Any]:
    return {"type": "array", "items": dict(item), "minItems": 2, "maxItems": 2}


def _finite_number(value: Any) -> bool:
    """A number a float can hold: not a bool, not NaN or infinite, not an int too large for a float."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return False
    try:
        return math.isfinite(value)
    except OverflowError:  # math.isfinite converts an int to a float
        return False
