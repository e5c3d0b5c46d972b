"""The job spec (``apiVersion: schedsearch/v1``): what a user submits to ``POST /v1/jobs``.

Free of HTTP imports: the dispatcher in ``workers`` reads stored specs with ``JobSpec.model_validate`` and
expands baselines with :func:`expand_baselines`.

Validation has two phases, both reported as one pydantic ``ValidationError`` whose ``loc`` names the field:

1. structure (pydantic models below: types, ranges, unknown keys);
2. meaning (:func:`check_job_spec`): the task name and options against the task's one definition in the
   catalogue (``schedules.tasks``, torch-free), every space candidate and
   baseline through the ``schedules`` spec (a ``SpecError``'s dotted ``field`` becomes the rest of the loc),
   ``grid`` search only over discrete distributions, budget consistency.

:func:`parse_job_spec` runs both. The theory check of fixed schedules is :func:`theory_warnings`.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic_core import InitErrorDetails, PydanticCustomError

from service.objectives import ObjectiveName

API_VERSION = "schedsearch/v1"
DISTRIBUTION_KINDS = ("uniform", "loguniform", "int", "choice")
PAPER_SHORTHAND = "paper"

Loc = tuple[str | int, ...]


def _err(kind: str, message: str) -> PydanticCustomError:
    """A pydantic error with a pre-formatted message (no template context, so braces stay literal)."""
    return PydanticCustomError(kind, message)


class _Strict(BaseModel):
    # allow_inf_nan=False: NaN/Infinity in a float field is a 422 naming the field, never a stored value
    # (PostgreSQL's JSON type rejects them, so a stored NaN would fail every later write of the job).
    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)


# ----------------------------------------------------------------------------------------------- tasks


class TaskSpec(_Strict):
    """A task by catalogue name with its options. The name and options are checked against the task's one
    definition (``schedules.tasks``, torch-free) in phase 2, so a stored spec still parses where the task is
    not installed (the driver then fails the job with one sentence saying so)."""

    name: str = Field(
        min_length=1, max_length=200, description="A task from GET /v1/tasks.", examples=["digits-mlp"]
    )
    options: dict[str, Any] = Field(
        default_factory=dict, description="Task options (GET /v1/tasks lists each task's options)."
    )


# ----------------------------------------------------------------------------------------------- the rest


class OptimizerSpec(_Strict):
    name: Literal["shb", "nshb", "sgd"] = Field(default="nshb", description="SHB, NSHB, or plain SGD.")
    momentum: float | dict[str, Any] = Field(
        default=0.9,
        description="beta in [0, 1), fixed or a distribution such as {'uniform': [0.8, 0.95]}; 0 for sgd.",
    )

    @field_validator("momentum")
    @classmethod
    def _momentum_range(cls, value: float | dict[str, Any]) -> float | dict[str, Any]:
        values = _distribution_values(value, "optimizer.momentum") if isinstance(value, dict) else [value]
        for v in values:
            if not isinstance(v, int | float) or isinstance(v, bool) or not 0.0 <= float(v) < 1.0:
                raise _err("momentum_range", f"optimizer.momentum must be in [0, 1), got {v!r}")
        return value

    @model_validator(mode="after")
    def _sgd_has_no_momentum(self) -> OptimizerSpec:
        if self.name == "sgd" and self.momentum != 0:
            raise _err("sgd_momentum", f"optimizer.momentum must be 0 for sgd, got {self.momentum!r}")
        return self


class Candidate(_Strict):
    """A schedule whose numeric parameters may be distributions (design.md, "Search space")."""

    # Complete, valid values: the API docs show them, and a test submits each one in a job.
    batch_size: dict[str, Any] = Field(
        examples=[{"family": "exp_growth", "b0": {"choice": [8, 16]}, "factor": 2.0, "interval": 3}]
    )
    lr: dict[str, Any] = Field(
        examples=[
            {"family": "warmup_const", "lr0": 0.1, "lr_max": 1.0, "warmup_epochs": 6, "warmup_interval": 2}
        ]
    )


class Budget(_Strict):
    max_epochs: int = Field(ge=1, le=10_000, description="Epochs per trial.")
    max_sfo: int | None = Field(
        default=None, ge=1, description="Stochastic gradients per trial (None: no cap)."
    )
    total_sfo: int | None = Field(default=None, ge=1, description="Stochastic gradients for the whole job.")

    @model_validator(mode="after")
    def _per_trial_within_total(self) -> Budget:
        if self.max_sfo is not None and self.total_sfo is not None and self.max_sfo > self.total_sfo:
            raise _err(
                "budget_order",
                f"budget.max_sfo must be <= budget.total_sfo, got max_sfo={self.max_sfo} and "
                f"total_sfo={self.total_sfo}",
            )
        return self


class Target(_Strict):
    grad_norm: float = Field(gt=0, description="Full-gradient norm that counts as converged.")
    stop_at_target: bool = Field(default=False, description="End a trial when it reaches the target.")


class SearchSpec(_Strict):
    algorithm: Literal["tpe", "random", "grid"] = "tpe"
    num_trials: int = Field(
        default=16, ge=0, le=100_000, description="Searched trials (baselines come on top)."
    )
    max_concurrent: int = Field(default=2, ge=1, le=1024)
    seed: int = Field(default=0, ge=0, le=2**31 - 1)
    early_stopping: bool = Field(default=True, description="ASHA stops weak trials early.")


class Resources(_Strict):
    cpus: float = Field(default=1.0, gt=0, le=1024, description="CPUs per trial.")
    gpus: float = Field(default=0.0, ge=0, le=64, description="GPUs per trial; fractions share a GPU.")


class JobSpec(_Strict):
    """A schedule-search job."""

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True, allow_inf_nan=False)

    api_version: Literal["schedsearch/v1"] = Field(default="schedsearch/v1", alias="apiVersion")
    name: str = Field(min_length=1, max_length=200)
    task: TaskSpec
    optimizer: OptimizerSpec = Field(default_factory=OptimizerSpec)
    space: list[Candidate] = Field(default_factory=list, max_length=64)
    baselines: list[str | dict[str, Any]] = Field(
        default_factory=list,
        max_length=256,
        description="Fixed schedules run alongside: schedule dicts, 'paper' for all of the paper's "
        "strategies, or names of single paper strategies.",
    )
    budget: Budget
    target: Target
    objective: ObjectiveName = "sfo_to_target"
    search: SearchSpec = Field(default_factory=SearchSpec)
    resources: Resources = Field(default_factory=Resources)

    @model_validator(mode="after")
    def _something_to_run(self) -> JobSpec:
        if self.search.num_trials > 0 and not self.space:
            raise _err(
                "empty_space",
                "space must hold at least one candidate when search.num_trials > 0, "
                f"got num_trials={self.search.num_trials}",
            )
        if self.search.num_trials == 0 and not self.baselines:
            raise _err("nothing_to_run", "a job needs search.num_trials > 0 or at least one baseline")
        return self

    @field_validator("name")
    @classmethod
    def _printable_name(cls, value: str) -> str:
        if any(ord(c) < 32 or ord(c) == 127 for c in value):
            raise _err("name_characters", f"name must not contain control characters, got {value!r}")
        return value

    def to_json(self) -> dict[str, Any]:
        return self.model_dump(mode="json", by_alias=True)


# ----------------------------------------------------------------------------------------------- phase 2


@dataclass(frozen=True)
class NamedSchedule:
    """A fixed schedule to run as a baseline: its name and its schedule JSON (design.md)."""

    name: str
    schedule: dict[str, Any]


def _distribution_values(value: Mapping[str, Any], field: str) -> list[Any]:
    """The numbers a distribution can produce at its edges (bounds, or every choice)."""
    if len(value) != 1 or next(iter(value)) not in DISTRIBUTION_KINDS:
        raise _err(
            "distribution",
            f"{field} must be a number or one of {', '.join(DISTRIBUTION_KINDS)} as {{kind: [...]}}, "
            f"got {dict(value)!r}",
        )
    kind, args = next(iter(value.items()))
    if not isinstance(args, list) or not args or (kind != "choice" and len(args) != 2):
        need = "a non-empty list" if kind == "choice" else "[lo, hi]"
        raise _err("distribution", f"{field}.{kind} needs {need}, got {args!r}")
    if kind != "choice" and not args[0] < args[1]:
        raise _err("distribution", f"{field}.{kind} needs lo < hi, got {args!r}")
    return list(args)


def iter_distributions(node: Any, loc: Loc = ()) -> Iterator[tuple[Loc, str]]:
    """(loc, kind) of every distribution in a candidate."""
    if isinstance(node, Mapping):
        if len(node) == 1 and next(iter(node)) in DISTRIBUTION_KINDS:
            yield loc, next(iter(node))
            return
        for key, child in node.items():
            yield from iter_distributions(child, (*loc, key))


def _spec_error_details(exc: Exception, prefix: Loc, default_field: str) -> InitErrorDetails:
    field = getattr(exc, "field", None) or default_field
    loc: Loc = (*prefix, *(int(p) if p.isdigit() else p for p in str(field).split(".") if p))
    value = getattr(exc, "value", None)
    # The input is echoed in the 422 body; keep it to plain JSON (a "missing" sentinel becomes null).
    plain = value if isinstance(value, int | float | str | bool | list | dict) or value is None else None
    return InitErrorDetails(type=_err("schedule_spec", str(exc)), loc=loc, input=plain)


def paper_baselines(spec: JobSpec) -> dict[str, dict[str, Any]]:
    from schedules.paper import paper_strategies

    return _named_schedules(
        paper_strategies(max_epochs=spec.budget.max_epochs, optimizer=spec.optimizer.name)
    )


def _named_schedules(strategies: Any) -> dict[str, dict[str, Any]]:
    """Normalize what ``paper_strategies`` returns (a mapping or a list of named items) to name -> JSON."""
    items = (
        strategies.items()
        if isinstance(strategies, Mapping)
        else ((getattr(s, "name", None) or s["name"], getattr(s, "schedule", None) or s) for s in strategies)
    )
    out: dict[str, dict[str, Any]] = {}
    for name, schedule in items:
        out[str(name)] = schedule.to_json() if hasattr(schedule, "to_json") else dict(schedule)
    return out


def expand_baselines(spec: JobSpec) -> list[NamedSchedule]:
    """The job's baselines as named fixed schedules: ``"paper"`` expands to every paper strategy, a name to
    that strategy, a dict to itself (named ``baseline-<i>`` unless it has a ``name`` key). Duplicates by name
    are dropped, first wins."""
    if not spec.baselines:
        return []
    paper = paper_baselines(spec) if any(isinstance(b, str) for b in spec.baselines) else {}
    out: dict[str, NamedSchedule] = {}
    for i, baseline in enumerate(spec.baselines):
        if baseline == PAPER_SHORTHAND:
            for name, schedule in paper.items():
                out.setdefault(name, NamedSchedule(name, schedule))
        elif isinstance(baseline, str):
            out.setdefault(baseline, NamedSchedule(baseline, paper[baseline]))
        else:
            body = {k: v for k, v in baseline.items() if k != "name"}
            name = str(baseline.get("name") or f"baseline-{i}")
            out.setdefault(name, NamedSchedule(name, body))
    return list(out.values())


def check_job_spec(spec: JobSpec) -> list[InitErrorDetails]:
    """Meaning checks (phase 2); returns pydantic error details with the exact loc of each problem."""
    from schedules.space import validate as validate_candidate
    from schedules.spec import Schedule, SpecError

    errors: list[InitErrorDetails] = check_task(spec.task)
    for i, candidate in enumerate(spec.space):
        body = candidate.model_dump()
        try:
            validate_candidate(body)
        except SpecError as exc:
            errors.append(_spec_error_details(exc, ("space", i), "batch_size"))
        if spec.search.algorithm == "grid":
            for loc, kind in iter_distributions(body):
                if kind in ("uniform", "loguniform"):
                    dotted = ".".join(str(p) for p in loc)
                    errors.append(
                        InitErrorDetails(
                            type=_err(
                                "grid_distribution",
                                f"search.algorithm=grid needs choice or int distributions, got {kind} at "
                                f"space.{i}.{dotted}",
                            ),
                            loc=("space", i, *loc),
                            input=body,
                        )
                    )
    paper: dict[str, dict[str, Any]] | None = None
    for i, baseline in enumerate(spec.baselines):
        if isinstance(baseline, str):
            if baseline == PAPER_SHORTHAND:
                continue
            paper = paper if paper is not None else paper_baselines(spec)
            if baseline not in paper:
                errors.append(
                    InitErrorDetails(
                        type=_err(
                            "unknown_baseline",
                            f"baselines.{i} must be 'paper' or one of the paper's strategies "
                            f"({', '.join(sorted(paper))}), got {baseline!r}",
                        ),
                        loc=("baselines", i),
                        input=baseline,
                    )
                )
            continue
        try:
            Schedule.from_json({k: v for k, v in baseline.items() if k != "name"})
        except SpecError as exc:
            errors.append(_spec_error_details(exc, ("baselines", i), "batch_size"))
        except (TypeError, KeyError) as exc:
            errors.append(
                InitErrorDetails(
                    type=_err("schedule_spec", f"baselines.{i} is not a schedule: {exc}"),
                    loc=("baselines", i),
                    input=baseline,
                )
            )
    if not errors:
        errors.extend(check_budget_plans(spec))
    return errors


def check_task(task: TaskSpec) -> list[InitErrorDetails]:
    """The task's name against the installed catalogue and its options against the task's definition (one
    error naming ``task.name`` or ``task.options.<name>``, the value and what is valid)."""
    from schedules.spec import SpecError
    from schedules.tasks import get_definition

    try:
        get_definition(task.name).validate(task.options)
    except SpecError as exc:
        return [_spec_error_details(exc, (), "task")]
    return []


def check_data_root(spec: JobSpec, root: Path | None) -> list[InitErrorDetails]:
    """A task that reads files under the data root (``TaskDefinition.needs_data_root``) is refused when the
    server has none (``Settings.data_root``, the workers' ``SCHEDSEARCH_DATA_ROOT``): it could only fail on
    the workers. An explicit ``task.options.data_root`` must lie inside the server's root."""
    from schedules.spec import SpecError
    from schedules.tasks import get_definition

    try:
        needs_root = get_definition(spec.task.name).needs_data_root
    except SpecError:
        return []  # check_task reports the unknown task
    data_root = spec.task.options.get("data_root")
    if data_root is None and not (needs_root and root is None):
        return []
    if root is None and data_root is None:
        problem = (
            f"must name the folder of the data, but task {spec.task.name} reads its data under the server's "
            "data root and this server has none: set SCHEDSEARCH_DATA_ROOT on the API and the workers"
        )
    elif root is None:
        problem = "cannot be chosen by a job: the server has no SCHEDSEARCH_DATA_ROOT; leave it unset"
    elif not (
        str(data_root).startswith("/")  # the workers resolve a relative one against their cwd, not the root
        and PurePosixPath(os.path.normpath(str(data_root))).is_relative_to(os.path.normpath(root))
    ):
        problem = f"must be an absolute path inside the server's data root {root.as_posix()}"
    else:
        return []
    shown = "" if data_root is None else f", got {data_root!r}"
    return [
        InitErrorDetails(
            type=_err("data_root", f"task.options.data_root {problem}{shown}"),
            loc=("task", "options", "data_root"),
            input=None if data_root is None else str(data_root),
        )
    ]


def known_n_train(task: TaskSpec) -> int | None:
    """n for the task's options from its definition (no data loaded), or None when the definition cannot
    know it before loading, the task is not installed here or the options are invalid (a stored job whose
    task has since gone must still read)."""
    from schedules.spec import SpecError
    from schedules.tasks import get_definition

    try:
        return get_definition(task.name).training_size(task.options)
    except SpecError:
        return None


#: n_train of the plan check for a task whose size is known only once its data is loaded.
UNKNOWN_N_TRAIN = 2**31 - 1

#: Epoch evaluations the whole-budget check may spend on a job's search space (about a second of CPU).
PLAN_CHECK_EPOCHS = 300_000


def check_budget_plans(spec: JobSpec) -> list[InitErrorDetails]:
    """Every schedule the job can run gives finite, positive batch sizes and LRs over budget.max_epochs on the
    task's training set (``schedules.plancheck``): growth that overflows, an LR that underflows to 0, or
    b0 larger than the training set is a 422 now instead of a failed trial later."""
    from schedules.plancheck import check_candidate_plans, check_plans
    from schedules.spec import Horizon, Schedule, SpecError

    n_train = known_n_train(spec.task)
    # A task that knows its size only once loaded: check growth and LRs against a training set so large that
    # b0 <= n_train always holds (the trainer clips batches to the loaded n).
    horizon = Horizon(epochs=spec.budget.max_epochs, n_train=n_train or UNKNOWN_N_TRAIN)
    errors: list[InitErrorDetails] = []
    # Each point costs a few passes over max_epochs; the budget keeps a 64-candidate, 10,000-epoch job to a
    # few seconds (the smaller jobs get every corner checked).
    points = max(2, PLAN_CHECK_EPOCHS // (horizon.epochs * max(1, len(spec.space))))
    for i, candidate in enumerate(spec.space):
        try:
            check_candidate_plans(candidate.model_dump(), horizon, max_points=min(points, 32))
        except SpecError as exc:
            errors.append(_spec_error_details(exc, ("space", i), "batch_size"))
    for i, baseline in enumerate(spec.baselines):
        if isinstance(baseline, str):
            continue  # the paper's strategies are built for this budget
        name = baseline.get("name")
        if name is not None and not isinstance(name, str):
            errors.append(
                InitErrorDetails(
                    type=_err("baseline_name", f"baselines.{i}.name must be a string, got {name!r}"),
                    loc=("baselines", i, "name"),
                    input=None,
                )
            )
            continue
        try:
            check_plans(Schedule.from_json({k: v for k, v in baseline.items() if k != "name"}), horizon)
        except SpecError as exc:
            errors.append(_spec_error_details(exc, ("baselines", i), "batch_size"))
    return errors


def parse_job_spec(data: Mapping[str, Any]) -> JobSpec:
    """Validate a submitted job (both phases); raises ``pydantic.ValidationError`` naming each field."""
    spec = JobSpec.model_validate(data)
    errors = check_job_spec(spec)
    if errors:
        raise ValidationError.from_exception_data("JobSpec", errors)
    return spec


def fixed_schedules(spec: JobSpec) -> list[NamedSchedule]:
    """Schedules with no distribution in them: baselines, and space candidates that are fully fixed."""
    out = list(expand_baselines(spec))
    for i, candidate in enumerate(spec.space):
        body = candidate.model_dump()
        if not any(True for _ in iter_distributions(body)):
            out.append(NamedSchedule(f"space-{i}", body))
    return out


def theory_warnings(spec: JobSpec, schedules: Sequence[NamedSchedule] | None = None) -> list[dict[str, Any]]:
    """The theory check of every fixed schedule; one entry per schedule that has something to say."""
    from schedules.spec import Schedule
    from schedules.theory import check

    momentum = spec.optimizer.momentum if isinstance(spec.optimizer.momentum, float | int) else None
    out: list[dict[str, Any]] = []
    for named in schedules if schedules is not None else fixed_schedules(spec):
        report = check(
            Schedule.from_json(named.schedule),
            optimizer=spec.optimizer.name,
            momentum=momentum,
            max_epochs=spec.budget.max_epochs,
            n_train=known_n_train(spec.task),
        ).to_json()
        if report.get("warnings") or report.get("violations"):
            out.append({"schedule": named.name, **report})
    return out


def count_trials(spec: JobSpec) -> int:
    """Searched trials plus baselines: what the per-job trial quota limits."""
    return spec.search.num_trials + len(expand_baselines(spec))
