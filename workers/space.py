"""A job's trials as Tune configs: Optuna define-by-run, grid points and given points, each a trial spec.

Torch- and Ray-free, so it is unit-tested on its own. The distributions follow the one grammar of
``schedules.space`` (the Optuna suggestion of each kind is its ``Kind.suggest``); every point becomes the
job's trial spec (``service.jobspec.ExpandedJob.point``), so a Tune config is

    {"trial": <TrialSpec JSON>, "_key": trial key, "_kind": "search" | "baseline", "_name": name}

(``_key`` and ``_name`` only for given points: a searched trial's key is its Tune trial id). Optuna adds the
raw values it drew under their parameter names (below); they stay in the Optuna study, and ``trials.config``
stores ``config["trial"]`` only.

Optuna parameter names (what ``optuna-dashboard`` shows):

| space | names |
|---|---|
| one searchable candidate | ``batch_size.factor``, ``lr.lr_max``, ``optimizer.momentum`` |
| several | ``candidate`` (label ``"<i>:<bs family>/<lr family>"``), then ``<i>.batch_size.factor`` ... |

The family choice comes first so that TPE models each family's parameters separately (define-by-run makes
the later parameters conditional on it). Fully fixed candidates are not searched: like the baselines, they
run once as given points (``given_points``), unless the momentum is searched.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from schedules.space import distributions, fixed, grid_values, optuna_pick, resolve_dict
from service.jobspec import ExpandedJob, JobSpec, stored_trial_spec

#: The Tune config key that holds the trial spec JSON.
TRIAL = "trial"


@dataclass(frozen=True)
class GivenPoint:
    """A trial whose configuration is known up front: a baseline, a fixed candidate, a grid point or a trial
    restarted from the database. ``key`` is its stable key in the database (``trials.trial_key``), ``trial``
    its trial spec JSON."""

    key: str
    name: str
    kind: str  # "baseline" | "search"
    trial: dict[str, Any]

    @property
    def schedule(self) -> dict[str, Any]:
        return dict(self.trial.get("schedule") or {})

    @property
    def momentum(self) -> float | None:
        optimizer = self.trial.get("optimizer")
        return optimizer.get("momentum") if isinstance(optimizer, Mapping) else None

    def config(self) -> dict[str, Any]:
        return {TRIAL: self.trial, "_key": self.key, "_kind": self.kind, "_name": self.name}


@dataclass(frozen=True)
class JobSpace:
    """The searchable part of a job (``ExpandedJob.searched``) and its momentum, as Optuna define-by-run."""

    job: ExpandedJob

    @property
    def candidates(self) -> tuple[dict[str, Any], ...]:
        return self.job.searched

    @property
    def searchable(self) -> bool:
        return bool(self.candidates)

    def labels(self) -> list[str]:
        return [
            f"{i}:{c['batch_size'].get('family', '?')}/{c['lr'].get('family', '?')}"
            for i, c in enumerate(self.candidates)
        ]

    def __call__(self, trial: Any) -> dict[str, Any]:
        """The define-by-run function ``OptunaSearch(space=job_space)`` calls with an Optuna trial; returns
        the Tune config of the trial (its trial spec).

        A method of a frozen dataclass rather than a closure, so Tune can pickle the searcher."""
        labels = self.labels()
        if len(self.candidates) > 1:
            label = trial.suggest_categorical("candidate", labels)
            index = labels.index(label)
            prefix = f"{index}."
        else:
            index, prefix = 0, ""
        schedule = resolve_dict(self.candidates[index], optuna_pick(trial, prefix))
        momentum = resolve_dict(
            self.job.spec.optimizer.momentum, optuna_pick(trial), path="optimizer.momentum"
        )
        return {TRIAL: self.job.point(schedule, float(momentum)), "_kind": "search"}

    def grid(self, limit: int) -> list[GivenPoint]:
        """Every combination of the discrete distributions (choice, int), candidate by candidate, thinned
        evenly to at most ``limit`` points when larger. Continuous distributions are rejected at submission
        (``service.jobspec``); here they fall back to their bounds so the grid is still well defined."""
        momentum = self.job.spec.optimizer.momentum
        mom_values = grid_values(momentum) if isinstance(momentum, Mapping) else [momentum]
        points: list[tuple[dict[str, Any], float]] = []
        for candidate in self.candidates:
            dists = list(distributions(candidate))
            axes = [grid_values(dist) for _, dist in dists]
            for combo in itertools.product(*axes, mom_values):
                chosen = dict(zip([name for name, _ in dists], combo[:-1], strict=True))
                schedule = resolve_dict(candidate, fixed(chosen))
                points.append((schedule, float(combo[-1])))
        if limit < len(points):
            # Evenly spaced over the enumeration, so every candidate keeps a share of a thinned grid.
            step = len(points) / limit
            points = [points[math.floor(i * step)] for i in range(limit)]
        return [
            GivenPoint(key=f"grid:{i}", name=f"grid-{i}", kind="search", trial=self.job.point(s, m))
            for i, (s, m) in enumerate(points)
        ]


def given_points(job: ExpandedJob) -> list[GivenPoint]:
    """Baselines and fully fixed candidates (``ExpandedJob.given``), each run once at the job's fixed
    momentum (the center of a searched one: a fixed schedule has nothing to search)."""
    return [GivenPoint(key=s.key, name=s.name, kind=s.kind, trial=job.point(s.schedule)) for s in job.given]


def restarted_point(key: str, name: str, kind: str, config: Any, spec: JobSpec) -> GivenPoint:
    """An unfinished trial of an earlier driver, to run again with its key and its stored trial spec
    (``service.jobspec.stored_trial_spec``, which also reads rows of the older shape)."""
    return GivenPoint(key=key, name=name, kind=kind, trial=stored_trial_spec(config, spec))
