"""The service's domain errors, in one place: raised by the repositories, authentication, the rate limit, the
job spec checks and the routes, never as HTTP types.

``service.api.errors`` maps them to status codes in one set of handlers (as OSS Vizier maps its few domain
errors to transport codes in one function): ``NotFound`` 404, ``Unauthorized`` 401, ``Conflict`` (with
``InvalidTransition`` and ``LeaseLost``) 409, ``QuotaExceeded`` 429 or 422, ``InvalidInput`` 422 with the
location of each problem. Each message names the thing, the value and what is valid.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import Any

from schedules.spec import SpecError

#: Where a problem is in a request body: keys and list indices, outermost first.
Loc = tuple[str | int, ...]


class DomainError(Exception):
    """Base class; ``message`` is what the API returns as ``detail``."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class NotFound(DomainError, KeyError):
    """The object does not exist or the caller may not see it (both look the same to the caller)."""

    def __str__(self) -> str:  # KeyError would quote the message
        return self.message


class Conflict(DomainError):
    """The request contradicts the stored state (duplicate name, idempotency key reused with another body)."""


class InvalidTransition(Conflict):
    """A state change that the transition table in ``states.py`` does not allow."""

    def __init__(self, entity: str, current: str, target: str, allowed: tuple[str, ...]) -> None:
        allowed_text = ", ".join(allowed) if allowed else "none (terminal state)"
        super().__init__(
            f"{entity} cannot go from {current} to {target}; allowed from {current}: {allowed_text}"
        )
        self.entity = entity
        self.current = current
        self.target = target


class LeaseLost(Conflict):
    """A dispatcher tried to act on a job whose lease it no longer holds."""


class QuotaExceeded(DomainError):
    """A per-user or per-job limit from the settings; ``limit`` names the setting, ``value`` its value."""

    def __init__(self, message: str, *, limit: str, value: Any, retryable: bool) -> None:
        super().__init__(message)
        self.limit = limit
        self.value = value
        # Retryable quotas (active jobs, rate limit) are 429; a job that can never fit is 422.
        self.retryable = retryable


class RateLimited(QuotaExceeded):
    """Too many submissions in a short time; ``retry_after`` is in seconds."""

    def __init__(self, message: str, *, limit: str, value: Any, retry_after: float) -> None:
        super().__init__(message, limit=limit, value=value, retryable=True)
        self.retry_after = retry_after


class Unauthorized(DomainError):
    """No or an unknown bearer token."""


class InvalidInput(DomainError):
    """Input that is well formed but means nothing valid (a schedule that cannot work, a job whose task
    options are out of range). ``problems`` are pydantic-style error dicts ``{type, loc, msg, input}`` whose
    ``loc`` is relative to the request body; the API answers them as a 422 exactly like a validation error of
    the body's structure, so a client reads both the same way."""

    def __init__(self, problems: Sequence[Mapping[str, Any]]) -> None:
        if not problems:
            raise ValueError("InvalidInput needs at least one problem")
        self.problems = [dict(p) for p in problems]
        super().__init__("; ".join(str(p.get("msg", "")) for p in self.problems))

    @classmethod
    def from_details(cls, details: Sequence[Any]) -> InvalidInput:
        """From pydantic ``InitErrorDetails`` (what ``service.jobspec``'s meaning checks return), rendered
        by pydantic so the messages and types are those of a ``ValidationError``."""
        from pydantic import ValidationError

        rendered = ValidationError.from_exception_data("JobSpec", list(details)).errors(include_url=False)
        return cls([dict(e) for e in rendered])


def spec_problem(exc: SpecError, *, at: Loc = ()) -> dict[str, Any]:
    """A ``SpecError`` as one problem located under ``at``: its dotted ``field`` continues the loc, its
    message is kept as it is."""
    field = str(exc.field or "")
    loc: Loc = (*at, *(int(p) if p.isdigit() else p for p in field.split(".") if p))
    return {"type": "schedule_spec", "loc": loc, "msg": str(exc), "input": exc.value}


@contextmanager
def spec_errors_at(*at: str | int) -> Iterator[None]:
    """Inside the block a ``SpecError`` becomes an ``InvalidInput`` located under ``at`` in the request
    body (``with spec_errors_at("schedule"): Schedule.from_json(body.schedule)``); other errors pass."""
    try:
        yield
    except SpecError as exc:
        raise InvalidInput([spec_problem(exc, at=at)]) from exc
