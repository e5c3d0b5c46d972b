"""Response models: a small family per entity (``JobPublic``, ``JobsPublic(data, count)``, ...).

The ``...Public`` models of stored rows read the ORM objects directly (``from_attributes``):
``JobPublic.model_validate(job)``, ``TrialPublic.model_validate(trial)`` (whose ``config`` is read as the
trial spec the trial ran, rows of the older shape included).
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    ModelWrapValidatorHandler,
    WithJsonSchema,
    model_validator,
)

from service.jobspec import StrictModel, stored_trial_spec
from service.storage.models import Trial, TrialMetric


class ErrorPublic(BaseModel):
    """Body of every 4xx/5xx that is not a validation error; quota errors add ``limit`` and ``value``."""

    detail: str
    limit: str | None = None
    value: Any = None


class Progress(BaseModel):
    model_config = ConfigDict(from_attributes=True)  # service.storage.models.JobProgress

    trials_total: int
    trials_finished: int
    sfo_spent: int
    sfo_budget: int | None = Field(description="budget.total_sfo of the job.")


class TrialPublic(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int
    job_id: str
    trial_key: str
    kind: str = Field(description="search or baseline")
    name: str | None
    status: str
    objective: float | None = Field(description="The job's objective read from this trial's summary.")
    sfo: int
    epochs: int
    config: dict[str, Any] = Field(
        description="The trial spec the trial ran (task, optimizer, schedule, budget, target, seed, "
        "grad_norm_mode): `schedsearch train FILE` reruns it alone."
    )
    summary: dict[str, Any] | None
    node_id: str | None
    error: str | None
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None

    @model_validator(mode="wrap")
    @classmethod
    def _config_as_trial_spec(cls, data: Any, handler: ModelWrapValidatorHandler[TrialPublic]) -> TrialPublic:
        """A stored row's ``config`` is shown as the trial spec it ran: a row of the older shape is read
        through its job's spec (``service.jobspec.stored_trial_spec``, the one place that reads old rows).
        ``trial.job`` is a many-to-one read from the session's identity map while the job is loaded (a
        listing's trials share one job: one query at most)."""
        trial = handler(data)
        if isinstance(data, Trial):
            trial.config = stored_trial_spec(data.config, data.job.spec)
        return trial


class TrialsPublic(BaseModel):
    data: list[TrialPublic]
    count: int = Field(description="Total matching trials before paging.")
    limit: int
    offset: int


class JobPublic(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: str
    name: str
    status: str
    objective: str
    owner: str = Field(validation_alias="owner_name")
    progress: Progress
    best_trial: TrialPublic | None = None
    best_value: float | None
    warnings: Annotated[list[Any], BeforeValidator(lambda v: v or [])] = Field(
        description="Theory-check findings for the job's fixed schedules."
    )
    error: str | None
    ray_dashboard_url: str | None = Field(description="Where to watch the job's trials, once known.")
    summary: dict[str, Any] | None
    spec: dict[str, Any]
    created_at: datetime
    updated_at: datetime
    started_at: datetime | None
    finished_at: datetime | None


class JobsPublic(BaseModel):
    data: list[JobPublic]
    count: int = Field(description="Total matching jobs before paging.")
    limit: int
    offset: int


class MetricsPublic(BaseModel):
    trial_id: int
    data: list[dict[str, Any]] = Field(
        description="Per-epoch records (schedules.metrics.EpochRecord), by epoch."
    )
    count: int

    @classmethod
    def of(cls, trial_id: int, metrics: list[TrialMetric]) -> MetricsPublic:
        return cls(trial_id=trial_id, data=[m.record for m in metrics], count=len(metrics))


class EventPublic(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    kind: str
    message: str
    data: dict[str, Any] | None
    created_at: datetime


class ScheduleCheckRequest(StrictModel):
    """A schedule and the settings that the theory check depends on (strict like a job spec: a boolean is
    not a momentum, 30.0 is the integer 30, an unknown key is a typo to report)."""

    schedule: Annotated[
        dict[str, Any], WithJsonSchema({"allOf": [{"$ref": "#/components/schemas/Schedule"}]})
    ] = Field(
        examples=[
            {
                "batch_size": {"family": "exp_growth", "b0": 8, "factor": 2.0, "interval": 3},
                "lr": {"family": "exp_growth", "lr0": 0.1, "lr_max": 0.5, "interval": 3},
            }
        ]
    )
    optimizer: str = Field(default="nshb", pattern="^(shb|nshb|sgd)$")
    momentum: float = Field(default=0.9, ge=0.0, lt=1.0)
    max_epochs: int = Field(default=30, ge=1, le=10_000)
    n_train: int | None = Field(
        default=None, ge=1, description="Training-set size (batches clip to it); default: CIFAR's 50,000."
    )

    @model_validator(mode="before")
    @classmethod
    def _bare_schedule(cls, data: Any) -> Any:
        # A bare schedule ({"batch_size": ..., "lr": ...}) is accepted as {"schedule": ...}.
        if isinstance(data, dict) and "schedule" not in data and "batch_size" in data:
            rest = {k: v for k, v in data.items() if k not in ("batch_size", "lr")}
            return {"schedule": {k: data[k] for k in ("batch_size", "lr") if k in data}, **rest}
        return data


class OptionPublic(BaseModel):
    """One task option (``schedules.tasks.definition.Option``)."""

    name: str
    type: str = Field(description="int, float, bool, str, or path (relative to the data root).")
    default: Any
    minimum: float | None = Field(description="Inclusive lower bound of an int or float option.")
    maximum: float | None = Field(description="Inclusive upper bound of an int or float option.")
    choices: list[Any] | None
    nullable: bool
    description: str


class TaskPublic(BaseModel):
    """An installed task as a job names it (``task.name``, ``task.options``)."""

    name: str
    description: str
    package: str | None = Field(description="The installed distribution that declares the task.")
    needs_data_root: bool = Field(description="Reads its data under the server's data root.")
    available: bool = Field(description="Whether a job may name it on this server now.")
    unavailable_reason: str | None
    options: list[OptionPublic]


class TasksPublic(BaseModel):
    data: list[TaskPublic]
    count: int
