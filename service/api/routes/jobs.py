"""Jobs: submit, list, read, cancel, events."""

from __future__ import annotations

import hashlib
import json
import logging
from typing import Annotated, Any

from fastapi import APIRouter, Body, Query, Request, Response, status
from sqlalchemy import select

from service.api.deps import CurrentUser, SessionDep, SettingsDep, SubmittingUser, owner_filter
from service.api.examples import JOB_EXAMPLES
from service.api.openapi import NOT_FOUND, TOO_LARGE, error, ref
from service.api.params import IdempotencyKey, Offset
from service.api.schemas import EventPublic, JobPublic, JobsPublic
from service.api.strict import StrictJSONRoute
from service.errors import InvalidInput, QuotaExceeded
from service.jobspec import (
    ExpandedJob,
    JobSpec,
    check_cost,
    check_data_root,
    check_job_spec,
    count_trials,
    expand_job,
    theory_warnings,
)
from service.storage import repository as repo
from service.storage.models import Trial, User
from service.storage.states import JobStatus

# A 422 is a validation error list, or a per-job limit (ErrorPublic with limit and value).
INVALID_OR_OVER_LIMIT = {"anyOf": [ref("HTTPValidationError"), ref("ErrorPublic")]}

router = APIRouter(prefix="/v1/jobs", tags=["jobs"], route_class=StrictJSONRoute)
log = logging.getLogger(__name__)


def _request_hash(spec: JobSpec) -> str:
    canonical = json.dumps(spec.to_json(), sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()


def _check_limits(job: ExpandedJob, trials: int, settings: SettingsDep) -> JobSpec:
    """Per-job quotas (422: the job can never fit) and the default total SFO budget. Cheap: run before any
    check of the job's schedules, including the limit on what those checks may cost."""
    spec = job.spec
    if trials > settings.max_trials_per_job:
        raise QuotaExceeded(
            f"the job has {trials} trials (search.num_trials + baselines) but max_trials_per_job="
            f"{settings.max_trials_per_job}",
            limit="max_trials_per_job",
            value=settings.max_trials_per_job,
            retryable=False,
        )
    for field, value in (("max_sfo", spec.budget.max_sfo), ("total_sfo", spec.budget.total_sfo)):
        # max_sfo too: an open-ended job's total becomes max_sfo_per_job below, and max_sfo > total_sfo
        # would make the stored spec contradict itself (the driver could not read it).
        if value is not None and value > settings.max_sfo_per_job:
            raise QuotaExceeded(
                f"budget.{field}={value} exceeds max_sfo_per_job={settings.max_sfo_per_job}",
                limit="max_sfo_per_job",
                value=settings.max_sfo_per_job,
                retryable=False,
            )
    fixed, searched = check_cost(job)
    epochs = spec.budget.max_epochs
    cost = epochs * (fixed + 2 * searched)
    if cost > settings.max_check_schedule_epochs:
        raise QuotaExceeded(
            f"the job needs {cost} schedule-epochs of checks before it can be stored (budget.max_epochs="
            f"{epochs} x ({fixed} fixed schedules + 2 x {searched} searched candidates)), more than "
            f"max_check_schedule_epochs={settings.max_check_schedule_epochs}; use fewer epochs, baselines or "
            "candidates",
            limit="max_check_schedule_epochs",
            value=settings.max_check_schedule_epochs,
            retryable=False,
        )
    if spec.budget.total_sfo is None:
        # An open-ended job is capped by the server's limit, written into the stored spec.
        return spec.model_copy(
            update={"budget": spec.budget.model_copy(update={"total_sfo": settings.max_sfo_per_job})}
        )
    return spec


@router.post(
    "",
    status_code=status.HTTP_202_ACCEPTED,
    response_model=JobPublic,
    responses={
        200: {
            "model": JobPublic,
            "description": "Replay of an earlier request with the same Idempotency-Key.",
        },
        409: error("Idempotency-Key reused with a different body."),
        **TOO_LARGE,
        422: {
            "description": "Invalid spec (a list naming each field), or a per-job limit exceeded.",
            "content": {"application/json": {"schema": INVALID_OR_OVER_LIMIT}},
        },
        429: error("Too many active jobs, or submitted too fast (Retry-After)."),
    },
)
def create_job(
    spec: Annotated[JobSpec, Body(openapi_examples=JOB_EXAMPLES)],
    request: Request,
    response: Response,
    session: SessionDep,
    user: SubmittingUser,
    settings: SettingsDep,
    idempotency_key: IdempotencyKey = None,
) -> JobPublic:
    """Queue a schedule-search job. Retries with the same ``Idempotency-Key`` and body return the same job.

    Order, cheapest first: the token and the submit rate limit (before the body is validated, so refused
    submissions count), the body's structure, an idempotent replay, the per-job limits (including what
    checking the job may cost), then the checks of its schedules, then the active-jobs quota with the insert.
    """
    request_hash = _request_hash(spec)
    if idempotency_key is not None:
        replay = repo.find_idempotent_job(
            session, owner_id=user.id, key=idempotency_key, request_hash=request_hash
        )
        if replay is not None:
            response.status_code = status.HTTP_200_OK
            return JobPublic.model_validate(replay)
    # The one expansion of this submission (cheap: names and the paper's four strategies); the quota, the
    # checks and the theory warnings all read it.
    expanded = expand_job(spec)
    trials = count_trials(expanded)
    stored = _check_limits(expanded, trials, settings)
    errors = check_data_root(spec, settings.data_root)
    if not errors:
        errors = check_job_spec(expanded)
    if errors:
        raise InvalidInput.from_details(errors)
    try:
        warnings: list[Any] = theory_warnings(expanded)
    except Exception as exc:  # the check is advisory: a bug in it must not block submissions
        log.exception("theory check failed for a submission of user %s", user.id)
        warnings = [{"schedule": None, "error": f"the theory check failed ({type(exc).__name__})"}]
    job, created = repo.create_job(
        session,
        owner_id=user.id,
        name=spec.name,
        spec=stored.to_json(),
        objective=spec.objective,
        trials_total=trials,
        warnings=warnings,
        idempotency_key=idempotency_key,
        request_hash=request_hash,
        max_active_jobs=settings.max_active_jobs_per_user,
    )
    session.commit()
    if not created:
        response.status_code = status.HTTP_200_OK
    return JobPublic.model_validate(job)


@router.get("", response_model=JobsPublic)
def list_jobs(
    session: SessionDep,
    user: CurrentUser,
    status_filter: Annotated[list[JobStatus] | None, Query(alias="status")] = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
    offset: Offset = 0,
) -> JobsPublic:
    """The caller's jobs (every job for admins), newest first."""
    jobs, total = repo.list_jobs(
        session, owner_id=owner_filter(user), status=status_filter, limit=limit, offset=offset
    )
    # Owners and best trials in two queries, kept referenced until the jobs are rendered: the session's
    # identity map holds rows weakly, and job.owner / job.best_trial read it instead of a query per job.
    loaded: list[Trial | User] = []
    best_ids = [j.best_trial_id for j in jobs if j.best_trial_id is not None]
    if best_ids:
        loaded += session.scalars(select(Trial).where(Trial.id.in_(best_ids)))
    owner_ids = {j.owner_id for j in jobs} - {user.id}
    if owner_ids:
        loaded += session.scalars(select(User).where(User.id.in_(owner_ids)))
    return JobsPublic(
        data=[JobPublic.model_validate(j) for j in jobs], count=total, limit=limit, offset=offset
    )


@router.get("/{job_id}", response_model=JobPublic, responses=NOT_FOUND)
def get_job(job_id: str, session: SessionDep, user: CurrentUser) -> JobPublic:
    """Status, progress (trials finished of total, SFO spent), best trial so far, Ray dashboard link."""
    return JobPublic.model_validate(repo.get_job(session, job_id=job_id, owner_id=owner_filter(user)))


@router.post(
    "/{job_id}/cancel",
    response_model=JobPublic,
    status_code=status.HTTP_202_ACCEPTED,
    responses={**NOT_FOUND, 409: error("The job has already finished (succeeded or failed).")},
)
def cancel_job(job_id: str, session: SessionDep, user: CurrentUser) -> JobPublic:
    """Queued jobs end at once; running ones go to ``cancelling`` until the dispatcher stops them."""
    job = repo.request_cancel(session, job_id=job_id, owner_id=owner_filter(user))
    session.commit()
    return JobPublic.model_validate(job)


@router.get("/{job_id}/events", response_model=list[EventPublic], responses=NOT_FOUND)
def job_events(
    job_id: str, session: SessionDep, user: CurrentUser, limit: Annotated[int, Query(ge=1, le=1000)] = 100
) -> list[EventPublic]:
    """The job's event log (submitted, claimed, status changes, ...)."""
    repo.get_job(session, job_id=job_id, owner_id=owner_filter(user))
    return [EventPublic.model_validate(e) for e in repo.list_job_events(session, job_id=job_id, limit=limit)]
