"""Errors to HTTP, in one set of handlers (``install``): every status the API answers for an error is chosen
here, and no route builds an error response or a validation error by hand.

- domain errors (``service.errors``): ``NotFound`` 404, ``Unauthorized`` 401 with ``WWW-Authenticate``,
  ``Conflict`` 409 (``InvalidTransition``, ``LeaseLost``), ``QuotaExceeded`` 429 when retrying can help (with
  ``Retry-After`` for the rate limit) or 422 when the job can never fit, both with ``limit`` and ``value``;
  ``InvalidInput`` (a schedule that cannot work, a job spec's meaning checks) is a 422 shaped exactly like a
  validation error of the body, its ``loc`` under ``body``;
- a database that does not answer (``sqlalchemy.exc.OperationalError`` / ``InterfaceError`` /
  ``TimeoutError``: connection refused, server gone, pool exhausted, SQLite file unreachable) is a 503 with
  ``Retry-After`` and a body that says so, never a 500 with a stack trace. The message names the exception
  class only: driver messages can hold the database host, user or a password from a URL, which must not
  reach a client or the access log;
- a validation error can always be serialized: an offending input that is a non-finite float, text UTF-8
  cannot encode or an object JSON cannot show would make FastAPI's default handler fail and answer 500; here
  it is shown as a string (``"NaN"``, U+FFFD) or null;
- a body that is not strict JSON (``service.api.strict``) is a 422 listing where and why; a body FastAPI
  cannot decode at all is a 422 at ``loc ["body"]``, like malformed JSON.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Sequence
from typing import Any

from fastapi import FastAPI, Request
from fastapi.encoders import jsonable_encoder
from fastapi.exception_handlers import http_exception_handler
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from starlette.exceptions import HTTPException as StarletteHTTPException

from service.api.responses import SafeJSONResponse
from service.api.strict import InvalidBody
from service.errors import (
    Conflict,
    DomainError,
    InvalidInput,
    NotFound,
    QuotaExceeded,
    RateLimited,
    Unauthorized,
)
from service.storage.db import DATABASE_FAULTS

log = logging.getLogger("schedsearch.api.errors")

DB_UNAVAILABLE = "the database is unavailable; retry later"
RETRY_AFTER_S = 5
# FastAPI's detail when it cannot decode a request body (fastapi.routing).
UNPARSABLE_BODY = "There was an error parsing the body"


def domain_error_response(exc: DomainError) -> JSONResponse:
    """The status code and body for a domain error (``detail`` is the error's message)."""
    if isinstance(exc, InvalidInput):
        return validation_response([{**p, "loc": ("body", *p["loc"])} for p in exc.problems])
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


def named_non_finite(value: Any) -> Any:
    """``value`` with non-finite floats replaced by their names ("NaN", "Infinity", "-Infinity"), so an
    echoed input still says what was sent."""
    if isinstance(value, float) and not math.isfinite(value):
        return "NaN" if value != value else ("Infinity" if value > 0 else "-Infinity")
    if isinstance(value, dict):
        return {k: named_non_finite(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [named_non_finite(v) for v in value]
    return value


def _encodable(error: dict[str, Any]) -> dict[str, Any]:
    """The error with an ``input`` that JSON can show: a sentinel object (a spec error's "missing" value)
    becomes null instead of failing the whole response."""
    try:
        return dict(jsonable_encoder(error))
    except (TypeError, ValueError):
        return dict(jsonable_encoder({**error, "input": None}))


def validation_response(errors: Sequence[dict[str, Any]]) -> JSONResponse:
    """The 422 of a list of located problems (FastAPI's ``HTTPValidationError`` shape)."""
    detail = [_encodable(e) for e in errors]
    return SafeJSONResponse(status_code=422, content={"detail": named_non_finite(detail)})


async def _domain_error(_request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, DomainError)
    return domain_error_response(exc)


async def _database_unavailable(request: Request, exc: Exception) -> JSONResponse:
    # One line, no traceback and no driver message (it may carry connection details).
    log.warning("database unavailable on %s %s: %s", request.method, request.url.path, type(exc).__name__)
    return SafeJSONResponse(
        {"detail": DB_UNAVAILABLE, "error": type(exc).__name__},
        status_code=503,
        headers={"Retry-After": str(RETRY_AFTER_S)},
    )


async def _validation_error(_request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    errors = [dict(e) for e in exc.errors()]
    body = getattr(exc, "body", None)
    if isinstance(body, InvalidBody):
        # The body was refused before validation: its own problems replace pydantic's complaints about the
        # value that stood in for it; errors of the query, path and headers stay.
        errors = body.errors() + [e for e in errors if tuple(e.get("loc") or ("",))[:1] != ("body",)]
    return validation_response(errors)


async def _http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, StarletteHTTPException)
    if exc.status_code == 400 and exc.detail == UNPARSABLE_BODY:
        # A body that is not UTF-8 (or otherwise undecodable) is invalid input like malformed JSON: the same
        # documented 422 with loc ["body"], instead of an undocumented 400.
        return validation_response(
            [
                {
                    "type": "body_unreadable",
                    "loc": ["body"],
                    "msg": "the request body could not be decoded; send UTF-8 JSON",
                    "input": None,
                }
            ]
        )
    return await http_exception_handler(request, exc)


def install(app: FastAPI) -> None:
    """Register every error handler on ``app`` (called by ``create_app``)."""
    app.add_exception_handler(DomainError, _domain_error)
    for exc_type in DATABASE_FAULTS:
        app.add_exception_handler(exc_type, _database_unavailable)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(StarletteHTTPException, _http_error)
