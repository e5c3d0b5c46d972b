"""The FastAPI application factory.

``create_app(settings)`` builds the engine lazily (no connection at import or creation), so importing this
module never touches the database, torch or ray.
"""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI
from fastapi_offline import FastAPIOffline

from service.api import errors, openapi
from service.api.inflight import InflightLimitMiddleware
from service.api.limits import BodyLimitMiddleware
from service.api.responses import SafeJSONResponse
from service.api.routes import health, jobs, results, schedules, tasks, trials
from service.api.telemetry import Telemetry, TelemetryMiddleware
from service.ratelimit import TokenBucket
from service.settings import Settings, get_settings
from service.storage.db import make_engine, make_session_factory

# Every /v1 route needs a token and reads the database.
AUTHED_RESPONSES: dict[int | str, dict[str, Any]] = {**openapi.UNAUTHORIZED, **openapi.UNAVAILABLE}

DESCRIPTION = """\
Search batch-size and learning-rate schedules for SGD with momentum (SHB/NSHB) and compare how many
stochastic gradients (SFO) each needs to reach a target full-gradient norm.

Authenticate with `Authorization: Bearer <token>` (`schedsearch token create --user NAME`).
"""


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or get_settings()
    # /docs and /redoc load Swagger UI and ReDoc from files of the installed fastapi-offline package (served
    # under /static-offline-docs), not from a CDN: the API docs work on a machine without internet. No online
    # validator badge either (Swagger UI would call validator.swagger.io).
    app = FastAPIOffline(
        title="schedsearch",
        version="1",
        description=DESCRIPTION,
        swagger_ui_parameters={"validatorUrl": None},
        default_response_class=SafeJSONResponse,
    )
    engine = make_engine(settings=settings)
    app.state.settings = settings
    app.state.engine = engine
    app.state.session_factory = make_session_factory(engine)
    app.state.submit_bucket = TokenBucket(
        rate_per_minute=settings.submit_rate_per_minute, burst=settings.submit_burst
    )
    app.state.telemetry = Telemetry()
    errors.install(app)  # every error status: domain errors, database down (503), renderable 422s
    openapi.install(app)  # the schedule schemas generated from the families
    for module in (jobs, trials, results, schedules, tasks):
        app.include_router(module.router, responses=AUTHED_RESPONSES)
    app.include_router(health.router)
    # Outermost last: the body limit runs before anything reads the body; telemetry sees every response.
    app.add_middleware(InflightLimitMiddleware, max_inflight=settings.max_inflight_requests)
    app.add_middleware(TelemetryMiddleware, telemetry=app.state.telemetry)
    app.add_middleware(BodyLimitMiddleware, max_bytes=settings.max_body_bytes)
    return app
