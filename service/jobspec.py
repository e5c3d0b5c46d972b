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

import functools
import math
import os
import re
import typing
import unicodedata
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    WithJsonSchema,
    field_validator,
    model_validator,
)
from pydantic_core import InitErrorDetails, PydanticCustomError

from service import strictjson
from service.objectives import ObjectiveName

API_VERSION = "schedsearch/v1"
PAPER_SHORTHAND = "paper"
NAME_MAX = 200  # jobs.name is String(200)
#: A baseline's trial key is "baseline:<name>" in trials.trial_key (String(200)); names stay well below.
BASELINE_NAME_MAX = 100
#: Names the service gives: the paper's strategies ("paper", "paper-i", ...), unnamed baselines
#: ("baseline-<i>"), fixed space candidates ("space-<i>") and grid points ("grid-<i>").
RESERVED_NAME = re.compile(r"paper(-.*)?|(baseline|space|grid)-\d+", re.DOTALL)

Loc = tuple[str | int, ...]


def _err(kind: str, message: str) -> PydanticCustomError:
    """A pydantic error with a pre-formatted message (no template context, so braces stay literal)."""
    return PydanticCustomError(kind, message)


def _component(name: str) -> WithJsonSchema:
    """The field's OpenAPI schema is the component ``name`` of ``service.api.openapi`` (generated from the
    schedule families). Wrapped in allOf: pydantic resolves a bare $ref against its own definitions."""
    return WithJsonSchema({"allOf": [{"$ref": f"#/components/schemas/{name}"}]})


def _momentum_schema() -> dict[str, Any]:
    from schedules.space import distribution_schema

    value = {"type": "number", "minimum": 0, "exclusiveMaximum": 1}
    return {"anyOf": [value, distribution_schema(value)]}


class StrictModel(BaseModel):
    """The request models' base: unknown keys refused, no NaN, and strict types (see below)."""

    # allow_inf_nan=False: NaN/Infinity in a float field is a 422 naming the field, never a stored value
    # (PostgreSQL's JSON type rejects them, so a stored NaN would fail every later write of the job).
    # strict=True: a boolean is not a number (pydantic's lax mode reads `"momentum": false` as 0.0) and text
    # is not a number either; an int is still a valid float.
    model_config = ConfigDict(extra="forbid", allow_inf_nan=False, strict=True)

    @model_validator(mode="before")
    @classmethod
    def _integral_floats(cls, data: Any) -> Any:
        # Strict mode refuses 30.0 for an integer field; JSON Schema (the API's documented contract) and the
        # schedule families count it as the integer 30, so it is read as one.
        if not isinstance(data, dict):
            return data
        names = _integer_fields(cls)
        return {
            k: int(v) if k in names and isinstance(v, float) and math.isfinite(v) and v.is_integer() else v
            for k, v in data.items()
        }


class _Strict(StrictModel):
    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False, strict=True)


@functools.cache
def _integer_fields(model: type[BaseModel]) -> frozenset[str]:
    """Names and aliases of the fields typed ``int`` or ``int | None``."""
    out: set[str] = set()
    for name, field in model.model_fields.items():
        if field.annotation is int or set(typing.get_args(field.annotation)) == {int, type(None)}:
            out.update(n for n in (name, field.alias) if n)
    return frozenset(out)


#: Unicode categories a name may not contain: controls (incl. U+0085), format characters (U+202E and the
#: zero-width ones), surrogates, private use, unassigned, line and paragraph separators.
_HIDDEN_CATEGORIES = frozenset({"Cc", "Cf", "Cs", "Co", "Cn", "Zl", "Zp"})


@functools.cache
def name_pattern() -> str:
    """``name_problem``'s character rule as a JSON Schema pattern, generated from ``_HIDDEN_CATEGORIES``:
    the Basic Multilingual Plane's hidden characters as backslash-u ranges (what every regex dialect reads);
    hidden characters beyond it are refused by the check, not by the pattern."""
    ranges: list[list[int]] = []
    for code in range(0x10000):
        if unicodedata.category(chr(code)) in _HIDDEN_CATEGORIES:
            if ranges and ranges[-1][1] == code - 1:
                ranges[-1][1] = code
            else:
                ranges.append([code, code])
    parts = "".join(f"\\u{a:04x}" if a == b else f"\\u{a:04x}-\\u{b:04x}" for a, b in ranges)
    return f"^[^{parts}]+$"


def name_problem(value: str, *, max_length: int) -> str | None:
    """Why ``value`` cannot name a job or a baseline, or None: a name is shown in tables, logs and plots, so
    it must be visible text (not only whitespace), without characters that hide, reorder or break lines."""
    if not value.strip():
        return "must not be empty or only whitespace"
    if len(value) > max_length:
        return f"must be at most {max_length} characters, got {len(value)}"
    for i, char in enumerate(value):
        if unicodedata.category(char) in _HIDDEN_CATEGORIES:
            what = unicodedata.name(char, "a control or invisible character")
            return (
                f"must hold only visible characters and spaces, got U+{ord(char):04X} ({what}) at "
                f"position {i}"
            )
    return None


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

    @classmethod
    def __get_pydantic_json_schema__(cls, core_schema: Any, handler: Any) -> dict[str, Any]:
        # In the API's document a task is the component Task: a union on ``name`` whose members give each
        # installed task's options (generated from the definitions, ``service.api.openapi``).
        return {"allOf": [{"$ref": "#/components/schemas/Task"}]}


# ----------------------------------------------------------------------------------------------- the rest


class OptimizerSpec(_Strict):
    name: Literal["shb", "nshb", "sgd"] = Field(default="nshb", description="SHB, NSHB, or plain SGD.")
    momentum: Annotated[float | dict[str, Any], WithJsonSchema(_momentum_schema())] = Field(
        default=0.9,
        description="beta in [0, 1), fixed or a distribution such as {'uniform': [0.8, 0.95]}; 0 for sgd.",
    )

    @field_validator("momentum")
    @classmethod
    def _momentum_range(cls, value: float | dict[str, Any]) -> float | dict[str, Any]:
        values = _distribution_values(value, "optimizer.momentum") if isinstance(value, dict) else [value]
        for v in values:
            if not _is_number(v) or not 0 <= v < 1:  # compared as is: float() overflows a huge int
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
    batch_size: Annotated[dict[str, Any], _component("BatchScheduleCandidate")] = Field(
        examples=[{"family": "exp_growth", "b0": {"choice": [8, 16]}, "factor": 2.0, "interval": 3}]
    )
    lr: Annotated[dict[str, Any], _component("LRScheduleCandidate")] = Field(
        examples=[
            {"family": "warmup_const", "lr0": 0.1, "lr_max": 1.0, "warmup_epochs": 6, "warmup_interval": 2}
        ]
    )


class Budget(_Strict):
    max_epochs: int = Field(ge=1, le=10_000, description="Epochs per trial.")
    # le: 64-bit columns and floats hold them (the API refuses larger integers anywhere).
    max_sfo: int | None = Field(
        default=None,
        ge=1,
        le=strictjson.MAX_INT,
        description="Stochastic gradients per trial (None: no cap).",
    )
    total_sfo: int | None = Field(
        default=None, ge=1, le=strictjson.MAX_INT, description="Stochastic gradients for the whole job."
    )

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


# "Something to run" as a schema: searched trials need a space, a job without them needs baselines
# (JobSpec._something_to_run). num_trials defaults to 16, so a job that leaves it out needs a space.
_SOMETHING_TO_RUN: dict[str, Any] = {
    "anyOf": [
        {
            "required": ["space"],
            "properties": {
                "space": {"minItems": 1},
                "search": {"properties": {"num_trials": {"minimum": 1}}},
            },
        },
        {
            "required": ["search", "baselines"],
            "properties": {
                "search": {"required": ["num_trials"], "properties": {"num_trials": {"const": 0}}},
                "baselines": {"minItems": 1},
            },
        },
    ]
}


class JobSpec(_Strict):
    """A schedule-search job."""

    model_config = ConfigDict(
        extra="forbid",
        frozen=True,
        populate_by_name=True,
        allow_inf_nan=False,
        strict=True,
        json_schema_extra=_SOMETHING_TO_RUN,
    )

    api_version: Literal["schedsearch/v1"] = Field(default="schedsearch/v1", alias="apiVersion")
    name: str = Field(
        min_length=1,
        max_length=NAME_MAX,
        description="Visible text: not only whitespace, no control, format or invisible characters.",
        json_schema_extra=lambda schema: schema.update(pattern=name_pattern()),
    )
    task: TaskSpec
    optimizer: OptimizerSpec = Field(default_factory=OptimizerSpec)
    space: list[Candidate] = Field(default_factory=list, max_length=64)
    baselines: list[Annotated[str | dict[str, Any], _component("Baseline")]] = Field(
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

    @model_validator(mode="before")
    @classmethod
    def _plain_json(cls, data: Any) -> Any:
        # The API checks this at its edge (service.api.strict) with the exact location; a spec from elsewhere
        # (a stored row, a file run locally) gets the same rule here.
        try:
            strictjson.check(data)
        except strictjson.StrictJSONError as exc:
            raise _err("json_value", f"the job spec is not plain JSON data: {exc}") from None
        return data

    @field_validator("name")
    @classmethod
    def _printable_name(cls, value: str) -> str:
        problem = name_problem(value, max_length=NAME_MAX)
        if problem:
            raise _err("name_characters", f"name {problem}, got {strictjson.escape_surrogates(value)!r}")
        return value

    def to_json(self) -> dict[str, Any]:
        return self.model_dump(mode="json", by_alias=True)


# ----------------------------------------------------------------------------------------------- phase 2


@dataclass(frozen=True)
class NamedSchedule:
    """A fixed schedule to run as a baseline: its name and its schedule JSON (design.md)."""

    name: str
    schedule: dict[str, Any]


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _distribution_values(value: Mapping[str, Any], field: str) -> list[Any]:
    """The numbers a distribution can produce at its edges (bounds, or every choice); the grammar is
    ``schedules.space``'s, the one every distribution of a job follows."""
    from schedules.space import DISTRIBUTIONS, check_distribution, is_distribution

    if not is_distribution(value):
        raise _err(
            "distribution",
            f"{field} must be a number or one of {', '.join(DISTRIBUTIONS)} as {{kind: [...]}}, "
            f"got {dict(value)!r}",
        )
    from schedules.spec import SpecError

    try:
        check_distribution(field, value)
    except SpecError as exc:
        raise _err("distribution", str(exc)) from None
    _, args = next(iter(value.items()))
    return list(args)


def iter_distributions(node: Any, loc: Loc = ()) -> Iterator[tuple[Loc, str]]:
    """(loc, kind) of every distribution in a candidate."""
    from schedules.space import is_distribution

    if isinstance(node, Mapping):
        if is_distribution(node):
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
    that strategy, a dict to itself (named ``baseline-<i>`` unless it has a ``name`` key). A paper strategy
    referred to twice runs once; dicts have names of their own (``check_baseline_names``)."""
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


def baseline_names(spec: JobSpec) -> list[str]:
    """The names ``expand_baselines`` gives, without building a schedule: cheap, so the trial quota can be
    checked before anything expensive. An unknown paper strategy counts as one (it is refused anyway)."""
    from schedules.paper import STRATEGY_NAMES

    names: dict[str, None] = {}
    for i, baseline in enumerate(spec.baselines):
        if baseline == PAPER_SHORTHAND:
            names.update(dict.fromkeys(STRATEGY_NAMES))
        elif isinstance(baseline, str):
            names[baseline] = None
        else:
            name = baseline.get("name")
            names[name if isinstance(name, str) and name else f"baseline-{i}"] = None
    return list(names)


def check_baseline_names(spec: JobSpec) -> list[InitErrorDetails]:
    """The ``name`` of every dict baseline: text a person can read (``name_problem``), not a name the service
    gives (``RESERVED_NAME``: it would be mistaken for a paper strategy or dropped as a duplicate), and not
    the name of another baseline of the job."""
    errors: list[InitErrorDetails] = []
    seen: dict[str, int] = {}
    for i, baseline in enumerate(spec.baselines):
        if isinstance(baseline, str) or "name" not in baseline:
            continue
        name = baseline["name"]
        field = f"baselines.{i}.name"
        if not isinstance(name, str):
            problem = f"{field} must be text, got {name!r}"
        elif (why := name_problem(name, max_length=BASELINE_NAME_MAX)) is not None:
            problem = f"{field} {why}, got {strictjson.escape_surrogates(name)!r}"
        elif RESERVED_NAME.fullmatch(name):
            problem = (
                f"{field} {name!r} is a name the service gives (paper, paper-..., baseline-<n>, space-<n>, "
                "grid-<n>: the paper's strategies, unnamed baselines, fixed candidates, grid points); choose "
                "another"
            )
        elif name in seen:
            problem = (
                f"{field} {name!r} is already the name of baselines.{seen[name]}; each baseline needs a name "
                "of its own (a second one would not run)"
            )
        else:
            seen[name] = i
            continue
        errors.append(
            InitErrorDetails(
                type=_err("baseline_name", problem),
                loc=("baselines", i, "name"),
                input=strictjson.escape_surrogates(name) if isinstance(name, str) else None,
            )
        )
    return errors


def check_cost(spec: JobSpec) -> tuple[int, int]:
    """(fixed schedules, searched candidates) that the checks of a submission evaluate over every epoch of
    ``budget.max_epochs``: each fixed one (baselines, the paper's strategies, fixed candidates) once or twice
    (whole-budget check and theory check), each searched candidate at two or more points. Cheap: nothing is
    built. The service refuses a job whose ``max_epochs x (fixed + 2 x searched)`` exceeds its
    ``max_check_schedule_epochs`` before running any check."""
    searched = sum(1 for c in spec.space if any(True for _ in iter_distributions(c.model_dump())))
    return len(baseline_names(spec)) + len(spec.space) - searched, searched


#: Corner schedules ``schedules.space.validate`` may build for a whole job (each costs a schedule build,
#: about 35 us): the same bound as one candidate's, for all candidates together.
MAX_SPACE_CORNERS = 4096


def _space_corners(spec: JobSpec) -> int:
    """Schedules ``validate`` builds for the space: every corner plus a midpoint per continuous range."""
    from schedules.space import distributions

    total = 0
    for candidate in spec.space:
        corners, midpoints = 1, 0
        for _, dist in distributions(candidate.model_dump()):
            kind, args = next(iter(dist.items()))
            corners *= max(len(args), 1) if kind == "choice" and isinstance(args, list) else 2
            midpoints += kind in ("uniform", "loguniform")
        total += corners + midpoints
    return total


def check_job_spec(spec: JobSpec) -> list[InitErrorDetails]:
    """Meaning checks (phase 2); returns pydantic error details with the exact loc of each problem.

    Cheap checks first (names, task options, paper strategy names, the size of the space), then the corner
    checks of the space, then, only when all of those pass, the whole-budget checks, the expensive part
    (see ``check_cost``)."""
    from schedules.space import validate as validate_candidate
    from schedules.spec import Schedule, SpecError

    errors: list[InitErrorDetails] = check_baseline_names(spec) + check_task(spec.task)
    paper: dict[str, dict[str, Any]] | None = None
    for i, baseline in enumerate(spec.baselines):
        if not isinstance(baseline, str) or baseline == PAPER_SHORTHAND:
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
    corners = _space_corners(spec)
    if corners > MAX_SPACE_CORNERS:
        errors.append(
            InitErrorDetails(
                type=_err(
                    "space_size",
                    f"space has {corners} corner schedules to validate over all its candidates, more than "
                    f"{MAX_SPACE_CORNERS}; use fewer choices or distributions",
                ),
                loc=("space",),
                input=None,
            )
        )
    if errors:
        return errors
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
    for i, baseline in enumerate(spec.baselines):
        if isinstance(baseline, str):
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
    """Searched trials plus baselines: what the per-job trial quota limits (cheap: builds no schedule)."""
    return spec.search.num_trials + len(baseline_names(spec))
