"""A job's search space as Optuna define-by-run, grid points and given (fixed) points.

Torch- and Ray-free, so it is unit-tested on its own. A candidate is a schedule dict whose numeric
parameters may be distributions (docs/design.md, "Search space"); the optimizer's momentum may be one too.

Optuna parameter names (what ``optuna-dashboard`` shows):

| space | names |
|---|---|
| one searchable candidate | ``batch_size.factor``, ``lr.lr_max``, ``optimizer.momentum`` |
| several | ``candidate`` (label ``"<i>:<bs family>/<lr family>"``), then ``<i>.batch_size.factor`` ... |

The family choice comes first so that TPE models each family's parameters separately (define-by-run makes
the later parameters conditional on it). Fully fixed candidates are not searched: like the baselines, they
run once as given points (``fixed_points``).
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

DISTRIBUTIONS = ("uniform", "loguniform", "int", "choice")

Pick = Callable[[str, str, list[Any]], Any]  # (name, kind, args) -> value


def is_distribution(node: Any) -> bool:
    return isinstance(node, Mapping) and len(node) == 1 and next(iter(node)) in DISTRIBUTIONS


def distributions(node: Any, path: str = "") -> Iterator[tuple[str, str, list[Any]]]:
    """(dotted name, kind, args) of every distribution in ``node``, in document order."""
    if is_distribution(node):
        kind, args = next(iter(node.items()))
        yield path, kind, list(args)
    elif isinstance(node, Mapping):
        for key, child in node.items():
            yield from distributions(child, f"{path}.{key}" if path else str(key))


def resolve(node: Any, pick: Pick, path: str = "") -> Any:
    """A copy of ``node`` with every distribution replaced by ``pick(name, kind, args)``."""
    if is_distribution(node):
        kind, args = next(iter(node.items()))
        return pick(path, kind, list(args))
    if isinstance(node, Mapping):
        return {
            key: resolve(child, pick, f"{path}.{key}" if path else str(key)) for key, child in node.items()
        }
    return node


@dataclass(frozen=True)
class GivenPoint:
    """A trial whose configuration is known up front: a baseline, a fixed candidate or a grid point.

    ``key`` is the trial's stable key in the database (``trials.trial_key``)."""

    key: str
    name: str
    kind: str  # "baseline" | "search"
    schedule: dict[str, Any]
    momentum: float

    def config(self) -> dict[str, Any]:
        return {
            "schedule": self.schedule,
            "momentum": self.momentum,
            "_key": self.key,
            "_kind": self.kind,
            "_name": self.name,
        }


@dataclass(frozen=True)
class JobSpace:
    """The searchable part of a job: candidates with at least one distribution, plus the momentum."""

    candidates: tuple[dict[str, Any], ...]
    momentum: float | dict[str, Any]

    @classmethod
    def from_spec(cls, space: Sequence[Mapping[str, Any]], momentum: float | Mapping[str, Any]) -> JobSpace:
        searchable = tuple(dict(c) for c in space if any(True for _ in distributions(c)))
        if not searchable and is_distribution(momentum):
            # Only the momentum is searched: the fixed candidates become the searched schedules.
            searchable = tuple(dict(c) for c in space)
        mom: float | dict[str, Any] = dict(momentum) if isinstance(momentum, Mapping) else float(momentum)
        return cls(candidates=searchable, momentum=mom)

    @property
    def searchable(self) -> bool:
        return bool(self.candidates)

    def labels(self) -> list[str]:
        return [
            f"{i}:{c['batch_size'].get('family', '?')}/{c['lr'].get('family', '?')}"
            for i, c in enumerate(self.candidates)
        ]

    def __call__(self, trial: Any) -> dict[str, Any]:
        """The define-by-run function ``OptunaSearch(space=job_space)`` calls with an Optuna trial.

        A method of a frozen dataclass rather than a closure, so Tune can pickle the searcher."""
        labels = self.labels()
        if len(self.candidates) > 1:
            label = trial.suggest_categorical("candidate", labels)
            index = labels.index(label)
            prefix = f"{index}."
        else:
            index, prefix = 0, ""
        schedule = resolve(self.candidates[index], _optuna_pick(trial, prefix))
        momentum = resolve(self.momentum, _optuna_pick(trial, ""), "optimizer.momentum")
        return {"schedule": schedule, "momentum": float(momentum), "_kind": "search"}

    def grid(self, limit: int) -> list[GivenPoint]:
        """Every combination of the discrete distributions (choice, int), candidate by candidate, thinned
        evenly to at most ``limit`` points when larger. Continuous distributions are rejected at submission
        (``service.jobspec``); here they fall back to their bounds so the grid is still well defined."""
        points: list[tuple[dict[str, Any], float]] = []
        mom_values = _grid_values(self.momentum) if isinstance(self.momentum, dict) else [self.momentum]
        for candidate in self.candidates:
            dists = list(distributions(candidate))
            axes = [_grid_values({kind: args}) for _, kind, args in dists]
            for combo in itertools.product(*axes, mom_values):
                chosen = dict(zip([name for name, _, _ in dists], combo[:-1], strict=True))
                schedule = resolve(candidate, _lookup(chosen))
                points.append((schedule, float(combo[-1])))
        if limit < len(points):
            # Evenly spaced over the enumeration, so every candidate keeps a share of a thinned grid.
            step = len(points) / limit
            points = [points[math.floor(i * step)] for i in range(limit)]
        return [
            GivenPoint(key=f"grid:{i}", name=f"grid-{i}", kind="search", schedule=s, momentum=m)
            for i, (s, m) in enumerate(points)
        ]


def _grid_values(dist: Mapping[str, Any]) -> list[Any]:
    kind, args = next(iter(dist.items()))
    if kind == "choice":
        return list(args)
    if kind == "int":
        lo, hi = int(args[0]), int(args[1])
        return list(range(lo, hi + 1))
    return [args[0], args[1]]


def _lookup(chosen: Mapping[str, Any]) -> Pick:
    def pick(name: str, _kind: str, _args: list[Any]) -> Any:
        return chosen[name]

    return pick


def _optuna_pick(trial: Any, prefix: str) -> Pick:
    def pick(name: str, kind: str, args: list[Any]) -> Any:
        full = prefix + name
        if kind == "uniform":
            return trial.suggest_float(full, float(args[0]), float(args[1]))
        if kind == "loguniform":
            return trial.suggest_float(full, float(args[0]), float(args[1]), log=True)
        if kind == "int":
            return trial.suggest_int(full, int(args[0]), int(args[1]))
        if kind == "choice":
            return trial.suggest_categorical(full, list(args))
        raise ValueError(f"{full} has an unknown distribution {kind!r}; valid: {', '.join(DISTRIBUTIONS)}")

    return pick


def fixed_points(
    baselines: Sequence[tuple[str, Mapping[str, Any]]],
    space: Sequence[Mapping[str, Any]],
    momentum: float | Mapping[str, Any],
) -> list[GivenPoint]:
    """Baselines (named) and fully fixed candidates, each run once. With a searched momentum the baselines
    run at the middle of its range (a fixed schedule has nothing to search), and fixed candidates are
    searched instead (see ``JobSpace.from_spec``)."""
    if isinstance(momentum, Mapping):
        kind, args = next(iter(momentum.items()))
        mom = float(args[len(args) // 2]) if kind == "choice" else (float(args[0]) + float(args[1])) / 2
    else:
        mom = float(momentum)
    out = [
        GivenPoint(key=f"baseline:{name}", name=name, kind="baseline", schedule=dict(s), momentum=mom)
        for name, s in baselines
    ]
    if not is_distribution(momentum):
        for i, candidate in enumerate(space):
            if not any(True for _ in distributions(candidate)):
                out.append(
                    GivenPoint(
                        key=f"fixed:{i}",
                        name=f"space-{i}",
                        kind="search",
                        schedule=dict(candidate),
                        momentum=mom,
                    )
                )
    return out
