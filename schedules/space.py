"""Search-space candidates: schedule dicts whose numeric parameters may be distributions (docs/design.md,
"Search space"). Torch-free.

A distribution is a one-key dict: ``{"uniform": [lo, hi]}``, ``{"loguniform": [lo, hi]}`` (lo > 0),
``{"int": [lo, hi]}`` or ``{"choice": [v, ...]}``. Names are dotted paths (``batch_size.factor``,
``lr.base.lr0``), prefixed by the caller in multi-candidate spaces.

``validate`` is strict on purpose: every corner of the box (each distribution at its bounds, each choice
option) and a non-integral midpoint of each continuous range must be a valid schedule, so that a sampler
can never propose a schedule that fails to build. The schedule constraints are bounds, integrality and
orderings between two parameters (lr_max > lr0, w < W), so these points cover the whole box.
"""

from __future__ import annotations

import itertools
import math
import random
from collections.abc import Callable, Iterator, Mapping
from typing import Any

from schedules.spec import Schedule, SpecError

DISTRIBUTIONS = ("uniform", "loguniform", "int", "choice")
#: Corner combinations checked at most; a larger space is rejected rather than validated partly.
MAX_CORNERS = 4096

Pick = Callable[[str, Mapping[str, Any]], Any]  # (dotted name, distribution dict) -> value


def is_distribution(node: Any) -> bool:
    return isinstance(node, Mapping) and len(node) == 1 and next(iter(node)) in DISTRIBUTIONS


def distributions(candidate: Any, path: str = "") -> Iterator[tuple[str, dict[str, Any]]]:
    """(dotted name, distribution) of every distribution in ``candidate``, in document order."""
    if is_distribution(candidate):
        yield path, dict(candidate)
    elif isinstance(candidate, Mapping):
        for key, child in candidate.items():
            yield from distributions(child, f"{path}.{key}" if path else str(key))


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


def check_distribution(name: str, dist: Mapping[str, Any]) -> None:
    """A SpecError naming ``name`` unless ``dist`` is a well-formed distribution."""
    kind, args = next(iter(dist.items()))
    if kind == "choice":
        if not isinstance(args, list | tuple) or not args:
            raise SpecError(name, dict(dist), "choice needs a non-empty list of values")
        return
    if not isinstance(args, list | tuple) or len(args) != 2:
        raise SpecError(name, dict(dist), f"{kind} needs [lo, hi]")
    lo, hi = args
    if not all(_finite_number(v) for v in (lo, hi)):
        raise SpecError(name, dict(dist), f"{kind} bounds must be finite numbers")
    # 30.0 is the integer 30, as for an integer parameter (JSON Schema counts it as one too)
    if kind == "int" and not all(float(v).is_integer() for v in (lo, hi)):
        raise SpecError(name, dict(dist), "int bounds must be integers")
    if kind == "int" and lo > hi:
        raise SpecError(name, dict(dist), "int needs lo <= hi")
    if kind != "int" and not lo < hi:
        raise SpecError(name, dict(dist), f"{kind} needs lo < hi")
    if kind == "loguniform" and lo <= 0:
        raise SpecError(name, dict(dist), "loguniform needs lo > 0")


def distribution_schema(value: Mapping[str, Any]) -> dict[str, Any]:
    """The JSON schema of a distribution over values that satisfy ``value`` (a ``number`` or ``integer``
    schema with its range), following the grammar :func:`check_distribution` enforces: ``choice`` a
    non-empty list of values, ``int`` two integers, and for a float parameter ``uniform`` and ``loguniform``
    two numbers (``loguniform`` above 0). An integer parameter has no continuous kinds: ``validate`` refuses
    them (their midpoints are not integers). ``lo < hi`` is the family's to check (a schema cannot)."""
    kinds: dict[str, Any] = {
        "choice": {"type": "array", "items": dict(value), "minItems": 1},
        "int": _pair({**value, "type": "integer"}),
    }
    if value.get("type") != "integer":
        kinds["uniform"] = _pair(dict(value))
        positive = {k: v for k, v in value.items() if not (k == "minimum" and v <= 0)}
        if positive.get("minimum", 0) <= 0:
            positive["exclusiveMinimum"] = max(float(value.get("exclusiveMinimum", 0.0)), 0.0)
        kinds["loguniform"] = _pair(positive)
    return {
        "oneOf": [
            {
                "type": "object",
                "title": f"{kind} distribution",
                "properties": {kind: schema},
                "required": [kind],
                "additionalProperties": False,
            }
            for kind, schema in kinds.items()
        ]
    }


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


def _corner_values(dist: Mapping[str, Any]) -> list[Any]:
    kind, args = next(iter(dist.items()))
    return list(args) if kind == "choice" else [args[0], args[1]]


def validate(candidate: Mapping[str, Any]) -> None:
    """Raise SpecError (field = dotted path) unless every schedule the candidate can give is valid."""
    if not isinstance(candidate, Mapping):
        raise SpecError("schedule", candidate, "must be an object with batch_size and lr")
    dists = list(distributions(candidate))
    for name, dist in dists:
        if name.endswith("family") or name in ("batch_size", "lr", "lr.base"):
            raise SpecError(name, dist, "must be fixed: search families by listing several candidates")
        check_distribution(name, dist)
    axes = [_corner_values(d) for _, d in dists]
    count = math.prod(len(a) for a in axes)
    if count > MAX_CORNERS:
        raise SpecError(
            "space", count, f"has too many corner combinations to validate (at most {MAX_CORNERS})"
        )
    names = [n for n, _ in dists]
    points = [dict(zip(names, combo, strict=True)) for combo in itertools.product(*axes)]
    # A continuous distribution also at its midpoint (others at their first corner): an integer parameter
    # (b0, interval) passes at integral bounds but not in between.
    first = {n: a[0] for n, a in zip(names, axes, strict=True)}
    for name, dist in dists:
        kind, args = next(iter(dist.items()))
        if kind in ("uniform", "loguniform"):
            lo, hi = float(args[0]), float(args[1])
            mid = (lo + hi) / 2 if kind == "uniform" else math.sqrt(lo * hi)
            # nudged off an integer, or 3.0 would pass as the integer 3
            points.append({**first, name: math.nextafter(mid, hi) if mid.is_integer() else mid})
    for chosen in points:
        try:
            resolve(candidate, _fixed(chosen))
        except SpecError as exc:
            if not chosen:
                raise
            at = ", ".join(f"{k}={v!r}" for k, v in chosen.items())
            raise SpecError(exc.field, exc.value, f"{exc.requirement} (with {at})") from None


def _fixed(chosen: Mapping[str, Any]) -> Pick:
    return lambda name, _dist: chosen[name]


def random_pick(rng: random.Random) -> Pick:
    """A sampler for tests and local runs: uniform over each distribution (log-uniform where asked)."""

    def pick(_name: str, dist: Mapping[str, Any]) -> Any:
        kind, args = next(iter(dist.items()))
        if kind == "choice":
            return rng.choice(list(args))
        if kind == "int":
            return rng.randint(int(args[0]), int(args[1]))
        if kind == "loguniform":
            return math.exp(rng.uniform(math.log(args[0]), math.log(args[1])))
        return rng.uniform(float(args[0]), float(args[1]))

    return pick
