"""Bearer tokens: created once, stored as sha256 digests, compared in constant time."""

from __future__ import annotations

import hashlib
import hmac
import secrets

from sqlalchemy.orm import Session

from service.errors import Unauthorized
from service.storage import repository as repo
from service.storage.models import User

TOKEN_PREFIX = "ss_"


def new_token() -> str:
    """A fresh random token (256 bits); shown to the user once and never stored."""
    return TOKEN_PREFIX + secrets.token_urlsafe(32)


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def create_token(session: Session, *, user_name: str, admin: bool | None = None) -> str:
    """Create (or reuse) the user and a new token for them; returns the plaintext token."""
    user = repo.get_or_create_user(session, name=user_name, is_admin=admin)
    token = new_token()
    repo.add_token(session, user_id=user.id, token_hash=hash_token(token), prefix=token[:12])
    return token


def authenticate(session: Session, token: str | None) -> User:
    """The user owning ``token``; ``Unauthorized`` when it is missing or unknown."""
    if not token:
        raise Unauthorized("missing bearer token; send 'Authorization: Bearer <token>'")
    digest = hash_token(token)
    row = repo.find_token(session, token_hash=digest)
    # The lookup is by digest; comparing again in constant time keeps timing independent of the match.
    if row is None or not hmac.compare_digest(row.token_hash, digest):
        raise Unauthorized("invalid or revoked bearer token")
    return row.user
