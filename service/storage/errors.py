"""Domain errors raised by the storage layer and the job spec checks.

Repositories raise these and never import HTTP types; ``service.api.errors`` maps them to status codes in one
handler. Each message names the thing, the value and what is valid.
"""

from __future__ import annotations

from typing import Any


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
