"""Users and their API tokens (only a token's sha256 digest is stored)."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from service.errors import Conflict
from service.storage.models import ApiToken, User


def create_user(session: Session, *, name: str, is_admin: bool = False) -> User:
    """Create a user; ``Conflict`` if the name is taken."""
    if session.scalar(select(User).where(User.name == name)) is not None:
        raise Conflict(f"user {name!r} already exists")
    user = User(name=name, is_admin=is_admin)
    session.add(user)
    session.flush()
    return user


def get_or_create_user(session: Session, *, name: str, is_admin: bool | None = None) -> User:
    """The user called ``name``, created if missing; ``is_admin`` (when given) is applied to it."""
    user = session.scalar(select(User).where(User.name == name))
    if user is None:
        user = User(name=name, is_admin=bool(is_admin))
        session.add(user)
    elif is_admin is not None:
        user.is_admin = is_admin
    session.flush()
    return user


def add_token(session: Session, *, user_id: int, token_hash: str, prefix: str) -> ApiToken:
    """Store a token's sha256 hex digest (the plaintext never reaches the database)."""
    token = ApiToken(user_id=user_id, token_hash=token_hash, prefix=prefix)
    session.add(token)
    session.flush()
    return token


def find_token(session: Session, *, token_hash: str) -> ApiToken | None:
    """The unrevoked token with this digest, with its user loaded; None if unknown."""
    return session.scalar(
        select(ApiToken).where(ApiToken.token_hash == token_hash, ApiToken.revoked_at.is_(None))
    )
