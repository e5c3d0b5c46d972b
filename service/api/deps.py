"""FastAPI dependencies with ``Annotated`` aliases so route signatures stay short."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Annotated

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from sqlalchemy.orm import Session

from service.auth import authenticate
from service.ratelimit import TokenBucket
from service.settings import Settings
from service.storage.models import User

# auto_error=False: a missing header becomes our Unauthorized (401 + WWW-Authenticate), not FastAPI's 403.
_bearer = HTTPBearer(auto_error=False, description="A token from `schedsearch token create --user NAME`.")


def get_settings_dep(request: Request) -> Settings:
    settings: Settings = request.app.state.settings
    return settings


async def get_session(request: Request) -> AsyncIterator[Session]:
    """A session per request; routes that write call ``session.commit()`` themselves before returning.

    An async generator on purpose: FastAPI runs the teardown of a *sync* generator dependency in the worker
    thread pool, so under load a request holding a pooled connection waits for a free thread to give it back
    while every thread waits for a connection, a deadlock until the pool timeout (docs/benchmarks.md,
    service load). Here opening the session does no I/O (it connects lazily) and closing it only returns the
    connection to the pool, so both run on the event loop."""
    session: Session = request.app.state.session_factory()
    try:
        yield session
    except BaseException:
        session.rollback()
        raise
    finally:
        session.close()


SettingsDep = Annotated[Settings, Depends(get_settings_dep)]
SessionDep = Annotated[Session, Depends(get_session)]


def get_current_user(
    session: SessionDep, credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)]
) -> User:
    user = authenticate(session, credentials.credentials if credentials else None)
    # End the read transaction so the pooled connection goes back before the route waits for a worker
    # thread: holding it across that hop deadlocks (until the 30 s pool timeout) once more requests are in
    # flight than the pool has connections (docs/benchmarks.md, service load). expire_on_commit=False keeps
    # the user's loaded attributes.
    session.commit()
    return user


CurrentUser = Annotated[User, Depends(get_current_user)]


def take_submit_token(request: Request, user: CurrentUser) -> User:
    """The caller, charged one token of the submit rate limit (``RateLimited``, 429, when none is left).

    A dependency, so it runs after authentication and before FastAPI validates the body: every submission
    pays, whether it is stored, replayed or refused, and a flood of refused submissions cannot buy
    validation for free."""
    bucket: TokenBucket = request.app.state.submit_bucket
    bucket.take(str(user.id))
    return user


SubmittingUser = Annotated[User, Depends(take_submit_token)]


def owner_filter(user: User) -> int | None:
    """The owner id to filter by: None for admins (they see every job)."""
    return None if user.is_admin else user.id
