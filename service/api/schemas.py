"""Response models: a small family per entity (``JobPublic``, ``JobsPublic(data, count)``, ...)."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Annotated, Any

from pydantic import BaseModel, Field, WithJsonSchema, model_validator

from service.jobspec import JobSpec, StrictModel, stored_trial_spec
from service.storage.models import Job, Trial, TrialMetric


class ErrorPublic(BaseModel):
    """Body of every 4xx/5xx that is not a validation error; quota errors add ``limit`` and ``value``."""

    detail: str
    limit: str | None = None
    value: Any = None


class Progress(BaseModel):
    trials_total: int
    trials_finished: int
    sfo_spent: int
    sfo_budget: int | None = Field(description="budget.total_sfo of the job.")


class TrialPublic(BaseModel):
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

    @classmethod
    def of(cls, trial: Trial, *, spec: JobSpec | Mapping[str, Any] | None) -> TrialPublic:
        """The trial as the API shows it; ``spec`` (its job's, or the job's stored JSON) reads a row of the
        older shape as its trial spec (``service.jobspec.stored_trial_spec``)."""
        return cls(
            id=trial.id,
            job_id=trial.job_id,
            trial_key=trial.trial_key,
            kind=trial.kind,
            name=trial.name,
            status=trial.status,
            objective=trial.objective,
            sfo=trial.sfo,
            epochs=trial.epochs,
            config=stored_trial_spec(trial.config, spec),
            summary=trial.summary,
            node_id=trial.node_id,
            error=trial.error,
            created_at=trial.created_at,
            started_at=trial.started_at,
            finished_at=trial.finished_at,
        )


class TrialsPublic(BaseModel):
    data: list[TrialPublic]
    count: int = Field(description="Total matching trials before paging.")
    limit: int
    offset: int


class JobPublic(BaseModel):
    id: str
    name: str
    status: str
    objective: str
    owner: str
    progress: Progress
    best_trial: TrialPublic | None = None
    best_value: float | None
    warnings: list[Any] = Field(description="Theory-check findings for the job's fixed schedules.")
    error: str | None
    ray_dashboard_url: str | None = Field(description="Where to watch the job's trials, once known.")
    summary: dict[str, Any] | None
    spec: dict[str, Any]
    created_at: datetime
    updated_at: datetime
    started_at: datetime | None
    finished_at: datetime | None

    @classmethod
    def of(cls, job: Job, *, owner: str, best: Trial | None = None) -> JobPublic:
        budget = job.spec.get("budget", {}) if isinstance(job.spec, dict) else {}
        return cls(
            id=job.id,
            name=job.name,
            status=job.status,
            objective=job.objective,
            owner=owner,
            progress=Progress(
                trials_total=job.trials_total,
                trials_finished=job.trials_finished,
                sfo_spent=job.sfo_spent,
                sfo_budget=budget.get("total_sfo"),
            ),
            best_trial=TrialPublic.of(best, spec=job.spec) if best is not None else None,
            best_value=job.best_value,
            warnings=list(job.warnings or []),
            error=job.error,
            ray_dashboard_url=job.ray_dashboard_url,
            summary=job.summary,
            spec=job.spec,
            created_at=job.created_at,
            updated_at=job.updated_at,
            started_at=job.started_at,
            finished_at=job.finished_at,
        )


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
