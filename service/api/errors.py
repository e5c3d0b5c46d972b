"""Domain errors to HTTP, in one handler."""

from __future__ import annotations

import math
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

from service.api.responses import SafeJSONResponse
from service.storage.errors import (
    Conflict,
    DomainError,
    NotFound,
    QuotaExceeded,
    RateLimited,
    Unauthorized,
)


def domain_error_response(exc: DomainError) -> JSONResponse:
    """The status code and body for a domain error (``detail`` is the error's message)."""
    body: dict[str, Any] = {"detail": exc.message}
    headers: dict[str, str] = {}
    status = 400
    if isinstance(exc, NotFound):
        status = 404
    elif isinstance(exc, Unauthorized):
        status = 401
        headers["WWW-Authenticate"] = "Bearer"
    elif isinstance(exc, Conflict):  # includes InvalidTransition and LeaseLost
        status = 409
    elif isinstance(exc, QuotaExceeded):
        status = 429 if exc.retryable else 422
        body.update(limit=exc.limit, value=exc.value)
        if isinstance(exc, RateLimited):
            headers["Retry-After"] = str(max(1, math.ceil(exc.retry_after)))
    return SafeJSONResponse(body, status_code=status, headers=headers)


async def _handle(_request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, DomainError)
    return domain_error_response(exc)


def install(app: FastAPI) -> None:
    app.add_exception_handler(DomainError, _handle)
