"""Liveness with a database check, and Prometheus metrics."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Request, Response
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from sqlalchemy import text

from service.api.deps import SessionDep
from service.api.responses import SafeJSONResponse
from service.api.strict import StrictJSONRoute
from service.api.telemetry import Telemetry
from service.auth import authenticate
from service.errors import Unauthorized
from service.storage import repository as repo
from service.storage.db import DATABASE_FAULTS

router = APIRouter(tags=["health"], route_class=StrictJSONRoute)
_optional_bearer = HTTPBearer(auto_error=False, description="An admin's token adds the job counts.")


@router.get("/healthz", responses={503: {"description": "The database does not answer."}})
def healthz(session: SessionDep) -> SafeJSONResponse:
    try:
        session.execute(text("SELECT 1"))
    except DATABASE_FAULTS as exc:  # the database does not answer: "not healthy", the reason in the body
        return SafeJSONResponse(
            {"status": "unavailable", "database": f"error: {type(exc).__name__}"}, status_code=503
        )
    return SafeJSONResponse({"status": "ok", "database": "ok"})


@router.get("/metrics", response_class=Response, include_in_schema=True)
def metrics(
    request: Request,
    session: SessionDep,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_optional_bearer)],
) -> Response:
    """Prometheus text format: request counts and latency by route for anyone; with an admin's bearer token
    also the jobs by status across all users."""
    telemetry: Telemetry = request.app.state.telemetry
    admin = False
    try:
        if credentials is not None:
            try:
                admin = authenticate(session, credentials.credentials).is_admin
            except Unauthorized:
                admin = False  # the endpoint is public: a bad token only means no job counts
        if admin:
            telemetry.set_jobs_by_status(repo.count_jobs_by_status(session))
    except DATABASE_FAULTS:  # metrics must still answer when the database is down
        telemetry.db_errors.inc()
        admin = False
    body, content_type = telemetry.render(admin=admin)
    return Response(content=body, media_type=content_type)
