"""Liveness with a database check, and Prometheus metrics."""

from __future__ import annotations

from fastapi import APIRouter, Request, Response
from sqlalchemy import text

from service.api.deps import SessionDep
from service.api.responses import SafeJSONResponse
from service.api.strict import StrictJSONRoute
from service.api.telemetry import Telemetry
from service.storage import repository as repo

router = APIRouter(tags=["health"], route_class=StrictJSONRoute)


@router.get("/healthz", responses={503: {"description": "The database does not answer."}})
def healthz(session: SessionDep) -> SafeJSONResponse:
    try:
        session.execute(text("SELECT 1"))
    except Exception as exc:  # any database failure means "not healthy"; the reason goes into the body
        return SafeJSONResponse(
            {"status": "unavailable", "database": f"error: {type(exc).__name__}"}, status_code=503
        )
    return SafeJSONResponse({"status": "ok", "database": "ok"})


@router.get("/metrics", response_class=Response, include_in_schema=True)
def metrics(request: Request, session: SessionDep) -> Response:
    """Prometheus text format: request counts and latency by route, jobs by status."""
    telemetry: Telemetry = request.app.state.telemetry
    try:
        telemetry.set_jobs_by_status(repo.count_jobs_by_status(session))
    except Exception:  # metrics must still answer when the database is down
        telemetry.db_errors.inc()
    body, content_type = telemetry.render()
    return Response(content=body, media_type=content_type)
