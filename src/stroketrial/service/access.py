"""Withdrawing access, and lifting a lockout: what `stroketrial admin` does when an account is at risk.

Each is an admin's act, audited, and takes effect at once: sessions end in the database, so a browser
signed in a moment ago is refused on its next request, and a deactivated user's API tokens are refused
on the next call (`accounts.actor_for_token` checks the user is active).
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from ..store import record
from ..store.models import ApiToken, User
from . import passwords, sessions, throttle
from .accounts import Actor, hash_token
from .errors import Invalid, NotFound


def _user(session: Session, name: str) -> User:
    user = session.execute(select(User).where(User.name == name)).scalar_one_or_none()
    if user is None:
        raise NotFound(f"no user {name!r}")
    return user


def deactivate_user(session: Session, actor: Actor, name: str) -> dict[str, Any]:
    """The user can no longer sign in; their sessions end and their API tokens are refused."""
    actor.require("deactivating a user")
    user = _user(session, name)
    was_active, user.active = user.active, False
    ended = sessions.end_for_user(session, user.id, "deactivated")
    record(session, actor.name, "deactivate", "user", name, before={"active": was_active},
           after={"active": False, "sessions_ended": ended})
    return {"user": name, "active": False, "sessions_ended": ended}


def revoke_tokens(session: Session, actor: Actor, name: str, token: str | None = None) -> dict[str, Any]:
    """Revoke one of the user's API tokens (given in clear), or all of them."""
    actor.require("revoking API tokens")
    user = _user(session, name)
    query = select(ApiToken).where(ApiToken.user_id == user.id)
    if token is not None:
        row = session.execute(query.where(ApiToken.token_hash == hash_token(token.strip()))).scalar_one_or_none()
        if row is None:
            raise NotFound(f"that token is not one of {name}'s tokens (nothing revoked)")
        rows = [] if row.revoked else [row]
    else:
        rows = list(session.execute(query.where(ApiToken.revoked.is_(False))).scalars())
    for row in rows:
        row.revoked = True
    record(session, actor.name, "revoke_token", "user", name, after={"tokens": sorted(r.id for r in rows)})
    return {"user": name, "tokens_revoked": len(rows)}


def reset_password(session: Session, actor: Actor, name: str, password: str) -> dict[str, Any]:
    """A new password for the pages: the user's sessions end and any lockout of the name is lifted."""
    actor.require("resetting a password")
    user = _user(session, name)
    if len(password) < 8:
        raise Invalid("a password has at least 8 characters", [{"field": "password", "value": "***",
                                                                 "message": "at least 8 characters"}])
    user.password_hash = passwords.hash_password(password)
    ended = sessions.end_for_user(session, user.id, "password_reset")
    cleared = throttle.clear(session, name)
    record(session, actor.name, "reset_password", "user", name,
           after={"sessions_ended": ended, "failures_cleared": cleared})
    return {"user": name, "sessions_ended": ended, "failures_cleared": cleared}


def unlock_user(session: Session, actor: Actor, name: str) -> dict[str, Any]:
    """Forget the name's failed sign-ins, so the user may try again at once."""
    actor.require("unlocking a user")
    user = _user(session, name)
    cleared = throttle.clear(session, user.name)
    record(session, actor.name, "unlock", "user", name, after={"failures_cleared": cleared})
    return {"user": name, "failures_cleared": cleared}
