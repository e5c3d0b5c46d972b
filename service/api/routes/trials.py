"""Trials of a job and their per-epoch curves."""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, Query

from service.api.deps import CurrentUser, SessionDep, owner_filter
from service.api.openapi import NOT_FOUND
from service.api.params import Offset, TrialId
from service.api.schemas import MetricsPublic, TrialPublic, TrialsPublic
from service.api.strict import StrictJSONRoute
from service.storage import repository as repo
from service.storage.states import TrialStatus

router = APIRouter(
    prefix="/v1/jobs/{job_id}/trials", tags=["trials"], route_class=StrictJSONRoute, responses=NOT_FOUND
)


@router.get("", response_model=TrialsPublic)
def list_trials(
    job_id: str,
    session: SessionDep,
    user: CurrentUser,
    status_filter: Annotated[list[TrialStatus] | None, Query(alias="status")] = None,
    kind: Annotated[Literal["search", "baseline"] | None, Query()] = None,
    sort: Annotated[Literal["objective", "created", "sfo"], Query()] = "objective",
    order: Annotated[
        Literal["asc", "desc"] | None, Query(description="Default for objective: best first.")
    ] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    offset: Offset = 0,
) -> TrialsPublic:
    """Trials sorted by the job's objective (best first; trials without a value last) or by creation/SFO."""
    repo.get_job(session, job_id=job_id, owner_id=owner_filter(user))
    trials, total = repo.list_trials(
        session,
        job_id=job_id,
        status=status_filter,
        kind=kind,
        sort=sort,
        descending=None if order is None else order == "desc",
        limit=limit,
        offset=offset,
    )
    return TrialsPublic(
        data=[TrialPublic.model_validate(t) for t in trials], count=total, limit=limit, offset=offset
    )


@router.get("/{trial_id}", response_model=TrialPublic)
def get_trial(job_id: str, trial_id: TrialId, session: SessionDep, user: CurrentUser) -> TrialPublic:
    """One trial; its ``config`` is the trial spec it ran (``schedsearch train`` reruns it alone)."""
    repo.get_job(session, job_id=job_id, owner_id=owner_filter(user))
    return TrialPublic.model_validate(repo.get_trial(session, job_id=job_id, trial_id=trial_id))


@router.get("/{trial_id}/metrics", response_model=MetricsPublic)
def trial_metrics(job_id: str, trial_id: TrialId, session: SessionDep, user: CurrentUser) -> MetricsPublic:
    """The per-epoch curve: epoch, step, sfo, lr, batch_size, losses, grad_norm, test accuracy, wall time."""
    repo.get_job(session, job_id=job_id, owner_id=owner_filter(user))
    trial = repo.get_trial(session, job_id=job_id, trial_id=trial_id)
    return MetricsPublic.of(trial.id, repo.list_metrics(session, trial_id=trial.id))
