"""``service/api/errors.py``: every domain error maps to its status in one place, and no route builds an error
answer by hand."""

from __future__ import annotations

import ast
import json
from pathlib import Path
from typing import Any

import pytest

from service.api.errors import domain_error_response
from service.errors import (
    Conflict,
    DomainError,
    InvalidInput,
    InvalidTransition,
    LeaseLost,
    NotFound,
    QuotaExceeded,
    RateLimited,
    Unauthorized,
)

ROUTES = Path(__file__).resolve().parents[3] / "service" / "api" / "routes"


@pytest.mark.parametrize(
    ("error", "status", "body", "headers"),
    [
        (NotFound("job 1 not found"), 404, {"detail": "job 1 not found"}, {}),
        (
            Unauthorized("missing bearer token"),
            401,
            {"detail": "missing bearer token"},
            {"www-authenticate": "Bearer"},
        ),
        (Conflict("key reused"), 409, {"detail": "key reused"}, {}),
        (
            InvalidTransition("job", "succeeded", "cancelling", ()),  # a Conflict
            409,
            {
                "detail": "job cannot go from succeeded to cancelling; allowed from succeeded: none "
                "(terminal state)"
            },
            {},
        ),
        (LeaseLost("not leased"), 409, {"detail": "not leased"}, {}),
        (  # retrying cannot help: the job can never fit
            QuotaExceeded("too many trials", limit="max_trials_per_job", value=5, retryable=False),
            422,
            {"detail": "too many trials", "limit": "max_trials_per_job", "value": 5},
            {},
        ),
        (
            QuotaExceeded("too many active jobs", limit="max_active_jobs_per_user", value=3, retryable=True),
            429,
            {"detail": "too many active jobs", "limit": "max_active_jobs_per_user", "value": 3},
            {},
        ),
        (  # Retry-After is whole seconds, at least 1
            RateLimited("slow down", limit="submit_rate_per_minute", value=60.0, retry_after=0.2),
            429,
            {"detail": "slow down", "limit": "submit_rate_per_minute", "value": 60.0},
            {"retry-after": "1"},
        ),
        (  # located problems, answered like a validation error of the body
            InvalidInput(
                [{"type": "schedule_spec", "loc": ("schedule", "lr", "lr0"), "msg": "lr.lr0 bad", "input": 0}]
            ),
            422,
            {
                "detail": [
                    {
                        "type": "schedule_spec",
                        "loc": ["body", "schedule", "lr", "lr0"],
                        "msg": "lr.lr0 bad",
                        "input": 0,
                    }
                ]
            },
            {},
        ),
    ],
)
def test_each_domain_error_has_its_status(
    error: DomainError, status: int, body: dict[str, Any], headers: dict[str, str]
) -> None:
    response = domain_error_response(error)
    assert (response.status_code, json.loads(bytes(response.body))) == (status, body)
    for name, value in headers.items():
        assert response.headers[name] == value


def test_no_route_builds_an_error_answer_by_hand() -> None:
    """Routes raise domain errors; only service.api.errors turns them (and validation errors) into answers."""
    for path in sorted(ROUTES.glob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom | ast.Import):
                names = {alias.name for alias in node.names}
                assert not names & {"RequestValidationError", "HTTPException", "ValidationError"}, path.name
