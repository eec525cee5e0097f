"""Signing in to the pages: a lockout check, one Argon2 verification off the event loop, the outcome audited.

1. `prepare` (a read): refuse with TooManyAttempts, without hashing, when the name or the address is locked
   out (service/throttle.py); else fetch the user's hash, or none for a name that cannot sign in. The
   refusal is given after LOCKED_DELAY_SECONDS asleep (no thread, no CPU), so a loop of guesses that
   meets a lockout is slowed to one a second instead of flooding the server with cheap 429s.
2. `passwords.verify_off_loop`: one verification, against the dummy hash when there is no usable one, so an
   unknown name costs and answers exactly like a known name with a wrong password.
3. `fail` or `succeed` (a write): count and audit the failure (`login_failed`, `account_locked`), or start a
   server-side session (service/sessions.py), clear the name's failures and audit `sign_in`.

The steps that touch the database run in the default worker threads, the hash on its own limiter: the
event loop only awaits.
"""

from __future__ import annotations

from dataclasses import dataclass

import anyio
from sqlalchemy import select

from .. import i18n
from ..store import Database, record
from ..store.models import User
from . import passwords, sessions, throttle
from .errors import Unauthorized
from .throttle import Limits, TooManyAttempts

__all__ = ["Attempt", "TooManyAttempts", "fail", "prepare", "sign_in", "succeed"]

LOCKED_DELAY_SECONDS = 1.0


@dataclass(frozen=True)
class Attempt:
    name: str
    address: str
    user_id: int | None  # None: no such user, deactivated, or no password (verified against the dummy hash)
    password_hash: str | None


def prepare(db: Database, name: str, address: str, limits: Limits) -> Attempt:
    with db.read() as session:
        refusal = throttle.lockout(session, name, address, limits)
        if refusal is not None:
            raise refusal
        user = session.execute(select(User).where(User.name == name)).scalar_one_or_none()
        if user is None or not user.active or not user.password_hash:
            return Attempt(name, address, None, None)
        return Attempt(name, address, user.id, user.password_hash)


def fail(db: Database, attempt: Attempt, limits: Limits) -> None:
    with db.write() as session:
        throttle.record_failure(session, attempt.name, attempt.address, limits)


def succeed(db: Database, attempt: Attempt, replaces: str | None = None) -> str:
    """Start the session (ending the one this browser held, if any); returns the id for the cookie."""
    with db.write() as session:
        user = session.get(User, attempt.user_id)
        if user is None or not user.active:  # deactivated while the hash ran
            raise Unauthorized(i18n.gettext("unknown user or wrong password"))
        if replaces:
            sessions.end(session, replaces, "replaced")
        token, row = sessions.start(session, user)
        throttle.clear(session, user.name)
        record(session, user.name, "sign_in", "user", user.name, after={"session": row.id, "address": attempt.address})
    return token


async def sign_in(db: Database, name: str, password: str, address: str, replaces: str | None = None) -> str:
    """A new session id for the name and password, or TooManyAttempts (429) or Unauthorized (401)."""
    limits = Limits.from_env()
    try:
        attempt = await anyio.to_thread.run_sync(prepare, db, name, address, limits)
    except TooManyAttempts:
        await anyio.sleep(LOCKED_DELAY_SECONDS)
        raise
    if not await passwords.verify_off_loop(attempt.password_hash, password) or attempt.user_id is None:
        await anyio.to_thread.run_sync(fail, db, attempt, limits)
        raise Unauthorized(i18n.gettext("unknown user or wrong password"))
    return await anyio.to_thread.run_sync(succeed, db, attempt, replaces)
