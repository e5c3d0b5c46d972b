"""A job's report (best schedule against the baselines and the paper) and its plot."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query, Response

from service.api.deps import CurrentUser, SessionDep, owner_filter
from service.api.openapi import NOT_FOUND
from service.api.strict import StrictJSONRoute
from service.report import build_report
from service.storage import repository as repo

router = APIRouter(
    prefix="/v1/jobs/{job_id}", tags=["results"], route_class=StrictJSONRoute, responses=NOT_FOUND
)


@router.get("/report")
def job_report(job_id: str, session: SessionDep, user: CurrentUser) -> dict[str, Any]:
    """Best schedule vs baselines and the paper's strategies: SFO to target side by side, and the theory
    check of the best schedule. Available while the job runs (from the trials finished so far)."""
    job = repo.get_job(session, job_id=job_id, owner_id=owner_filter(user))
    return build_report(session, job)


@router.get("/plot.png", response_class=Response, responses={200: {"content": {"image/png": {}}}})
def job_plot(
    job_id: str,
    session: SessionDep,
    user: CurrentUser,
    top: Annotated[int, Query(ge=1, le=20, description="How many of the best searched trials to draw.")] = 3,
) -> Response:
    """Full gradient norm against SFO (log-log) for the best trials and the baselines."""
    from service.plot import render_job_plot

    job = repo.get_job(session, job_id=job_id, owner_id=owner_filter(user))
    return Response(content=render_job_plot(session, job, top=top), media_type="image/png")
