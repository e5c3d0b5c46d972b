"""The job spec (``apiVersion: schedsearch/v1``): what a user submits to ``POST /v1/jobs``, and its expansion.

Free of HTTP imports. The shapes along a job's path (docs/design.md, "A job's path"):

- ``JobSpec``: the submitted document, validated once where it crosses into a process (the API's body, the
  driver's stored row);
- :class:`ExpandedJob` (:func:`expand_job`, once per process): the named fixed schedules (baselines with the
  paper's strategies scaled to the budget, fixed candidates), the searched candidates and the trial count,
  shared by the checks below, the driver (``workers.driver``) and the report (``service.report``);
- ``schedules.spec.TrialSpec``: one point (schedule, momentum, seed) of the job, built by
  :meth:`JobSpec.trial_spec`; its JSON is the Ray trial config's ``trial`` and exactly ``trials.config``;
  :func:`stored_trial_spec` is the one place that reads rows stored before (``{"schedule", "momentum",
  "params"}``).

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
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING, Annotated, Any, Literal

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

if TYPE_CHECKING:
    from schedules.spec import TrialSpec

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
        values = _momentum_values(value) if isinstance(value, dict) else [value]
        for v in values:
            if not _is_number(v) or not 0 <= v < 1:  # compared as is: float() overflows a huge int
                raise _err("momentum_range", f"optimizer.momentum must be in [0, 1), got {v!r}")
        return value

    @property
    def fixed_momentum(self) -> float:
        """The momentum of a trial that does not search it: the fixed value, or the center of a searched
        distribution (``schedules.space.center``; the baselines run there: a fixed schedule has nothing to
        search)."""
        from schedules.space import center

        return float(center(self.momentum))

    @model_validator(mode="after")
    def _sgd_has_no_momentum(self) -> OptimizerSpec:
        if self.name == "sgd" and self.momentum != 0:
            raise _err("sgd_momentum", f"optimizer.momentum must be 0 for sgd, got {self.momentum!r}")
        return self


def _momentum_values(value: Mapping[str, Any]) -> list[Any]:
    """The values at the edges of a searched momentum (``schedules.space`` grammar), or a pydantic error."""
    from schedules.space import corner_values
    from schedules.spec import SpecError

    try:
        return corner_values("optimizer.momentum", value)
    except SpecError as exc:
        raise _err("distribution", str(exc)) from None


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
    grad_norm_mode: Literal["clean", "faithful"] = Field(
        default="clean",
        description="How the full gradient norm is measured after each epoch: clean (no augmentation, the "
        "default) or faithful (augmented data, as the paper's code measures).",
    )

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
        data = self.model_dump(mode="json", by_alias=True)
        # Added after the stored form was fixed: left out at its default, so stored specs (and the
        # idempotency hash of a resubmission) keep their form.
        if data.get("grad_norm_mode") == "clean":
            del data["grad_norm_mode"]
        return data

    def trial_spec_json(self, schedule: Mapping[str, Any], *, momentum: float, seed: int) -> dict[str, Any]:
        """The JSON of :meth:`trial_spec`, assembled without building anything (never raises): the
        ``schedule`` dict is taken as it is."""
        return {
            "task": {"name": self.task.name, "options": dict(self.task.options)},
            "optimizer": {"name": self.optimizer.name, "momentum": momentum},
            "schedule": dict(schedule),
            "budget": {"max_epochs": self.budget.max_epochs, "max_sfo": self.budget.max_sfo},
            "target": {"grad_norm": self.target.grad_norm, "stop_at_target": self.target.stop_at_target},
            "seed": seed,
            "grad_norm_mode": self.grad_norm_mode,
        }

    def trial_spec(self, schedule: Mapping[str, Any], *, momentum: float, seed: int) -> TrialSpec:
        """The ``schedules.spec.TrialSpec`` of one point of this job: ``schedule`` (a schedule JSON) with
        ``momentum`` under training seed ``seed``, and the job's task, optimizer, budget (``max_epochs``,
        ``max_sfo``; ``total_sfo`` is the job's), target and grad-norm mode. Raises ``SpecError``."""
        from schedules.spec import TrialSpec

        return TrialSpec.from_json(self.trial_spec_json(schedule, momentum=float(momentum), seed=seed))


# ----------------------------------------------------------------------------------------------- expanded


@dataclass(frozen=True)
class NamedSchedule:
    """A fixed schedule to run once (design.md): its name, its schedule JSON, its trial key
    (``baseline:<name>``, ``fixed:<i>``) and kind (``baseline``, or ``search`` for a fixed candidate)."""

    name: str
    schedule: dict[str, Any]
    key: str
    kind: str


@dataclass(frozen=True, eq=False)
class ExpandedJob:
    """A job spec expanded once per process (:func:`expand_job`): what the API's checks, the driver and the
    report read instead of expanding the spec again.

    - ``baselines``: ``"paper"`` expanded to every paper strategy scaled to ``budget.max_epochs``
      (``schedules.paper.paper_strategies``), a strategy's name to that strategy, a dict to itself (named
      ``baseline-<i>`` unless it has a ``name``); a strategy referred to twice runs once;
    - ``unknown_strategies``: (index, name) of baselines naming no paper strategy (``check_job_spec``
      refuses them);
    - ``fixed_candidates``: space candidates without a distribution, named ``space-<i>``;
    - ``searched``: the candidates the searcher draws from: those with a distribution, or every candidate
      when the momentum is searched (a fixed schedule then still has its momentum to search);
    - ``paper``: the paper's strategies for this budget, name -> schedule JSON (empty when the job names
      none).
    """

    spec: JobSpec
    baselines: tuple[NamedSchedule, ...]
    unknown_strategies: tuple[tuple[int, str], ...]
    fixed_candidates: tuple[NamedSchedule, ...]
    searched: tuple[dict[str, Any], ...]
    paper: Mapping[str, dict[str, Any]]

    @property
    def fixed_schedules(self) -> tuple[NamedSchedule, ...]:
        """Schedules with no distribution in them: baselines, then fully fixed candidates."""
        return self.baselines + self.fixed_candidates

    @property
    def given(self) -> tuple[NamedSchedule, ...]:
        """The fixed schedules that run once as given: the baselines, and the fixed candidates unless the
        momentum is searched (then they are searched)."""
        return self.baselines + (() if self.momentum_searched else self.fixed_candidates)

    @property
    def momentum_searched(self) -> bool:
        return isinstance(self.spec.optimizer.momentum, dict)

    @property
    def baseline_names(self) -> list[str]:
        """Every baseline name the job gives, an unknown strategy's too (it counts until it is refused)."""
        names = dict.fromkeys(b.name for b in self.baselines)
        names.update(dict.fromkeys(name for _, name in self.unknown_strategies))
        return list(names)

    @functools.cached_property
    def n_train(self) -> int | None:
        """n of the job's task from its definition here (``known_n_train``), looked up once."""
        return known_n_train(self.spec.task)

    def trial(self, schedule: Mapping[str, Any], momentum: float | None = None) -> TrialSpec:
        """The job's trial spec for ``schedule`` (``JobSpec.trial_spec``) under the job's seed
        (``search.seed``) with ``momentum``, by default the job's fixed momentum. Raises ``SpecError``."""
        spec = self.spec
        m = spec.optimizer.fixed_momentum if momentum is None else momentum
        return spec.trial_spec(schedule, momentum=m, seed=spec.search.seed)

    def point(self, schedule: Mapping[str, Any], momentum: float | None = None) -> dict[str, Any]:
        """The trial spec JSON of one point (what a Tune config carries and ``trials.config`` stores):
        ``trial(...).to_json()``. Should a point not build (the checks at submission make that a bug), its
        JSON is assembled as given, so that the one trial fails with the error's sentence on its worker
        instead of the searcher ending the job."""
        from schedules.spec import SpecError

        try:
            return self.trial(schedule, momentum).to_json()
        except SpecError:
            m = self.spec.optimizer.fixed_momentum if momentum is None else momentum
            return self.spec.trial_spec_json(schedule, momentum=m, seed=self.spec.search.seed)


def expand_job(spec: JobSpec) -> ExpandedJob:
    """The job's expansion (see :class:`ExpandedJob`). Cheap: the paper's four strategies are built (no
    plan is evaluated) and nothing else; the checks of what it holds are ``check_job_spec``'s."""
    from schedules.space import is_searched

    paper = paper_baselines(spec) if any(isinstance(b, str) for b in spec.baselines) else {}
    baselines: dict[str, NamedSchedule] = {}
    unknown: list[tuple[int, str]] = []

    def add(name: str, schedule: dict[str, Any]) -> None:
        baselines.setdefault(name, NamedSchedule(name, schedule, key=f"baseline:{name}", kind="baseline"))

    for i, baseline in enumerate(spec.baselines):
        if baseline == PAPER_SHORTHAND:
            for name, schedule in paper.items():
                add(name, schedule)
        elif isinstance(baseline, str):
            if baseline in paper:
                add(baseline, paper[baseline])
            else:
                unknown.append((i, baseline))
        else:
            given = baseline.get("name")
            body = {k: v for k, v in baseline.items() if k != "name"}
            add(given if isinstance(given, str) and given else f"baseline-{i}", body)
    bodies = [c.model_dump() for c in spec.space]
    momentum_searched = isinstance(spec.optimizer.momentum, dict)
    return ExpandedJob(
        spec=spec,
        baselines=tuple(baselines.values()),
        unknown_strategies=tuple(unknown),
        fixed_candidates=tuple(
            NamedSchedule(f"space-{i}", body, key=f"fixed:{i}", kind="search")
            for i, body in enumerate(bodies)
            if not is_searched(body)
        ),
        searched=tuple(body for body in bodies if momentum_searched or is_searched(body)),
        paper=paper,
    )


def paper_baselines(spec: JobSpec) -> dict[str, dict[str, Any]]:
    """The paper's strategies scaled to the job's budget and optimizer, name -> schedule JSON."""
    from schedules.paper import paper_strategies

    strategies = paper_strategies(max_epochs=spec.budget.max_epochs, optimizer=spec.optimizer.name)
    return {name: schedule.to_json() for name, schedule in strategies.items()}


def stored_job_spec(data: Any) -> JobSpec | None:
    """A stored job spec read back for a view (report, trial list), or None when it no longer validates
    (written before a rule tightened, or by hand): a view must still answer."""
    try:
        return JobSpec.model_validate(data)
    except ValidationError:
        return None


#: The keys of a trial row stored before ``trials.config`` held the trial spec.
OLD_TRIAL_ROW_KEYS = frozenset({"schedule", "momentum", "params"})


def stored_trial_spec(config: Any, spec: JobSpec | Mapping[str, Any] | None) -> dict[str, Any]:
    """The trial spec JSON of a stored trial row (``trials.config``): the one place that reads rows of the
    older shape. Never raises.

    A row holds the trial spec its trial ran (``TrialSpec.to_json``) and comes back as it is. A row stored
    before holds ``{"schedule", "momentum", "params"}`` (``params``: the searcher's raw values) and comes
    back as the trial spec the job ran it with: ``spec.trial_spec_json`` of its schedule (as stored) and
    momentum (the job's fixed momentum when the row has none) under ``search.seed``. ``spec`` is the job's
    spec, or its stored JSON (validated here only for a row of the older shape); anything else, or any row
    when the spec is None or no longer validates, comes back as stored.
    """
    if not isinstance(config, Mapping):
        return {}
    row = dict(config)
    if spec is None or "schedule" not in row or not set(row) <= OLD_TRIAL_ROW_KEYS:
        return row
    job_spec = spec if isinstance(spec, JobSpec) else stored_job_spec(spec)
    if job_spec is None:
        return row
    stored: Any = row.get("momentum")
    momentum = float(stored) if _is_number(stored) else job_spec.optimizer.fixed_momentum
    schedule = row["schedule"] if isinstance(row["schedule"], Mapping) else {}
    return job_spec.trial_spec_json(schedule, momentum=momentum, seed=job_spec.search.seed)


# ----------------------------------------------------------------------------------------------- phase 2


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _spec_error_details(exc: Exception, prefix: Loc, default_field: str) -> InitErrorDetails:
    field = getattr(exc, "field", None) or default_field
    loc: Loc = (*prefix, *(int(p) if p.isdigit() else p for p in str(field).split(".") if p))
    value = getattr(exc, "value", None)
    # The input is echoed in the 422 body; keep it to plain JSON (a "missing" sentinel becomes null).
    plain = value if isinstance(value, int | float | str | bool | list | dict) or value is None else None
    return InitErrorDetails(type=_err("schedule_spec", str(exc)), loc=loc, input=plain)


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


def check_cost(job: ExpandedJob) -> tuple[int, int]:
    """(fixed schedules, searched candidates) that the checks of a submission evaluate over every epoch of
    ``budget.max_epochs``: each fixed one (baselines, the paper's strategies, fixed candidates) once or twice
    (whole-budget check and theory check), each searched candidate at two or more points. Cheap: nothing is
    built. The service refuses a job whose ``max_epochs x (fixed + 2 x searched)`` exceeds its
    ``max_check_schedule_epochs`` before running any check."""
    fixed = len(job.baseline_names) + len(job.fixed_candidates)
    return fixed, len(job.spec.space) - len(job.fixed_candidates)


#: Corner schedules ``schedules.space.validate`` may build for a whole job (each costs a schedule build,
#: about 35 us): the same bound as one candidate's, for all candidates together.
MAX_SPACE_CORNERS = 4096


def check_job_spec(job: ExpandedJob) -> list[InitErrorDetails]:
    """Meaning checks (phase 2); returns pydantic error details with the exact loc of each problem.

    Cheap checks first (names, task options, paper strategy names, the size of the space), then the corner
    checks of the space, then, only when all of those pass, the whole-budget checks, the expensive part
    (see ``check_cost``)."""
    from schedules.space import KINDS, discrete_kinds, distribution_paths, validate, validation_cost
    from schedules.spec import Schedule, SpecError

    spec = job.spec
    errors: list[InitErrorDetails] = check_baseline_names(spec) + check_task(spec.task)
    for i, name in job.unknown_strategies:
        errors.append(
            InitErrorDetails(
                type=_err(
                    "unknown_baseline",
                    f"baselines.{i} must be 'paper' or one of the paper's strategies "
                    f"({', '.join(sorted(job.paper))}), got {name!r}",
                ),
                loc=("baselines", i),
                input=name,
            )
        )
    corners = sum(validation_cost(c.model_dump()) for c in spec.space)
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
            validate(body)
        except SpecError as exc:
            errors.append(_spec_error_details(exc, ("space", i), "batch_size"))
        if spec.search.algorithm == "grid":
            for keys, dist in distribution_paths(body):
                kind = next(iter(dist))
                if KINDS[kind].continuous:
                    errors.append(
                        InitErrorDetails(
                            type=_err(
                                "grid_distribution",
                                f"search.algorithm=grid needs {' or '.join(discrete_kinds())} distributions, "
                                f"got {kind} at space.{i}.{'.'.join(str(k) for k in keys)}",
                            ),
                            loc=("space", i, *keys),
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
        errors.extend(check_budget_plans(job))
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


def check_budget_plans(job: ExpandedJob) -> list[InitErrorDetails]:
    """Every schedule the job can run gives finite, positive batch sizes and LRs over budget.max_epochs on the
    task's training set (``schedules.plancheck``): growth that overflows, an LR that underflows to 0, or
    b0 larger than the training set is a 422 now instead of a failed trial later."""
    from schedules.plancheck import check_candidate_plans, check_plans
    from schedules.spec import Horizon, Schedule, SpecError

    spec = job.spec
    # A task that knows its size only once loaded: check growth and LRs against a training set so large that
    # b0 <= n_train always holds (the trainer clips batches to the loaded n).
    horizon = Horizon(epochs=spec.budget.max_epochs, n_train=job.n_train or UNKNOWN_N_TRAIN)
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


def parse_job(data: Mapping[str, Any]) -> ExpandedJob:
    """Validate a submitted job (both phases) and expand it; raises ``pydantic.ValidationError`` naming each
    field."""
    job = expand_job(JobSpec.model_validate(data))
    errors = check_job_spec(job)
    if errors:
        raise ValidationError.from_exception_data("JobSpec", errors)
    return job


def parse_job_spec(data: Mapping[str, Any]) -> JobSpec:
    """:func:`parse_job`'s job spec."""
    return parse_job(data).spec


def theory_warnings(job: ExpandedJob) -> list[dict[str, Any]]:
    """The theory check of every fixed schedule; one entry per schedule that has something to say."""
    from schedules.spec import Schedule
    from schedules.theory import check

    spec = job.spec
    momentum = spec.optimizer.momentum if isinstance(spec.optimizer.momentum, float | int) else None
    out: list[dict[str, Any]] = []
    for named in job.fixed_schedules:
        report = check(
            Schedule.from_json(named.schedule),
            optimizer=spec.optimizer.name,
            momentum=momentum,
            max_epochs=spec.budget.max_epochs,
            n_train=job.n_train,
        ).to_json()
        if report.get("warnings") or report.get("violations"):
            out.append({"schedule": named.name, **report})
    return out


def count_trials(job: ExpandedJob) -> int:
    """Searched trials plus baselines: what the per-job trial quota limits (cheap: builds no schedule)."""
    return job.spec.search.num_trials + len(job.baseline_names)
