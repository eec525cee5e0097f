"""Sessions of the pages, kept on the server so they can be ended.

Signing in makes a random session id; the browser's cookie carries it and the database keeps only its
SHA-256 (`user_sessions`), with the user, when it began, when it was last seen, and when and why it
ended. Every page request looks the id up: a session signed out, ended by an admin (deactivation, a
password reset), of a deactivated user, idle for longer than the idle timeout, or older than the
absolute lifetime is refused at once, whatever cookie the browser still holds. Last-seen is written at
most once a minute, so a busy page costs a write a minute, not one a request (the idle timeout may
therefore end a session up to a minute early).
"""

from __future__ import annotations

import datetime as dt
import secrets

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from ..store import Database, record, rows_changed
from ..store.models import User, UserSession, utcnow
from . import accounts
from .accounts import Actor, hash_token
from .errors import Unauthorized

TOUCH_EVERY = dt.timedelta(minutes=1)


class SessionEnded(Unauthorized):
    """The page session is no longer valid; the message says why."""


def _aware(moment: dt.datetime) -> dt.datetime:
    # SQLite hands back naive datetimes; every time stored here is UTC.
    return moment if moment.tzinfo else moment.replace(tzinfo=dt.UTC)


def start(session: Session, user: User, now: dt.datetime | None = None) -> tuple[str, UserSession]:
    """A new session for the user (inside a write); returns the id for the cookie, shown nowhere else."""
    now = now or utcnow()
    token = secrets.token_urlsafe(32)
    row = UserSession(token_hash=hash_token(token), user_id=user.id, created_at=now, last_seen_at=now)
    session.add(row)
    session.flush()
    return token, row


def _end(session: Session, row_id: int, why: str, now: dt.datetime) -> bool:
    ending = (update(UserSession).where(UserSession.id == row_id, UserSession.ended_at.is_(None))
              .values(ended_at=now, ended_why=why))
    return bool(rows_changed(session, ending))


def end(session: Session, token: str, why: str = "signed_out", now: dt.datetime | None = None) -> bool:
    """End the session with this id (signing out), audited; False if it had ended already."""
    now = now or utcnow()
    row = session.execute(select(UserSession).where(UserSession.token_hash == hash_token(token))).scalar_one_or_none()
    if row is None or not _end(session, row.id, why, now):
        return False
    user = session.get(User, row.user_id)
    name = user.name if user else str(row.user_id)
    record(session, name if why == "signed_out" else "system", "sign_out", "user", name,
           after={"session": row.id, "why": why})
    return True


def end_for_user(session: Session, user_id: int, why: str, now: dt.datetime | None = None) -> int:
    """End every open session of a user (deactivation, password reset); the caller's audit event says so."""
    ending = (update(UserSession).where(UserSession.user_id == user_id, UserSession.ended_at.is_(None))
              .values(ended_at=now or utcnow(), ended_why=why))
    return rows_changed(session, ending)


def resolve(db: Database, token: str, idle: dt.timedelta, lifetime: dt.timedelta,
            now: dt.datetime | None = None) -> Actor:
    """The signed-in user behind a session id, or SessionEnded with the reason."""
    now = now or utcnow()
    with db.read() as session:
        row = session.execute(select(UserSession).where(UserSession.token_hash == hash_token(token))
                              ).scalar_one_or_none()
        user = session.get(User, row.user_id) if row is not None else None
        if row is None or user is None or row.ended_at is not None:
            raise SessionEnded("you are signed out; sign in again")
        if not user.active:
            raise SessionEnded("this account is deactivated; ask an administrator")
        created, seen = _aware(row.created_at), _aware(row.last_seen_at)
        ended: tuple[str, str] | None = None  # why (for the trail) and the message
        if now - created > lifetime:
            ended = "lifetime", (f"your session reached its {lifetime.total_seconds() / 3600:g}-hour limit; "
                                 "sign in again")
        elif now - seen > idle:
            ended = "idle", (f"your session expired after {idle.total_seconds() / 60:g} minutes without "
                             "activity; sign in again")
        actor = accounts._actor(session, user)
        row_id, name = row.id, user.name
    if ended is not None:
        why, message = ended
        with db.write() as session:
            if _end(session, row_id, why, now):
                record(session, "system", "sign_out", "user", name, after={"session": row_id, "why": why})
        raise SessionEnded(message)
    if now - seen >= TOUCH_EVERY:
        # Not audited: when a session was last seen is bookkeeping for the idle timeout, not a change to data.
        with db.bookkeeping() as session:
            session.execute(update(UserSession).where(UserSession.id == row_id, UserSession.ended_at.is_(None))
                            .values(last_seen_at=now))
    return actor
