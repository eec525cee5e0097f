"""Lockouts after repeated failed sign-ins, per user name and per client address.

A user name with STROKETRIAL_LOGIN_MAX_FAILURES (5) failures within STROKETRIAL_LOGIN_WINDOW_MINUTES (15),
or an address with STROKETRIAL_LOGIN_MAX_FAILURES_PER_ADDRESS (20), is refused without hashing until the
oldest of those failures leaves the window (429 with Retry-After). Names that exist and names that do not
are counted alike, so a lockout tells nothing about who has an account. The failures are rows in the
database (`login_failures`), so every server process sees them and a restart forgets none. A success clears
the name's failures; `stroketrial admin unlock-user` and `reset-password` clear them too.
"""

from __future__ import annotations

import datetime as dt
import math
import os
from dataclasses import dataclass

from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from .. import InputError
from ..store import record, rows_changed
from ..store.models import LoginFailure, utcnow
from .errors import ServiceError

NAME_LENGTH, ADDRESS_LENGTH = 80, 64
ANONYMOUS = "anonymous"  # the actor of a failed sign-in: nobody is known to have made it


class TooManyAttempts(ServiceError):
    status = 429

    def __init__(self, message: str, retry_after: int):
        super().__init__(message)
        self.retry_after = retry_after


@dataclass(frozen=True)
class Limits:
    per_name: int = 5
    per_address: int = 20
    window: dt.timedelta = dt.timedelta(minutes=15)

    @classmethod
    def from_env(cls) -> Limits:
        """Read at each attempt, so a changed environment needs no code (and tests can set it)."""
        def number(name: str, default: float, kind=int):
            raw = os.environ.get(name, "").strip()
            try:
                value = kind(raw) if raw else default
            except ValueError:
                value = 0
            if value <= 0:
                raise InputError(f"{name}={raw!r} is not allowed: a number above 0")
            return value

        return cls(per_name=number("STROKETRIAL_LOGIN_MAX_FAILURES", 5),
                   per_address=number("STROKETRIAL_LOGIN_MAX_FAILURES_PER_ADDRESS", 20),
                   window=dt.timedelta(minutes=number("STROKETRIAL_LOGIN_WINDOW_MINUTES", 15.0, float)))


def _aware(moment: dt.datetime) -> dt.datetime:
    # SQLite hands back naive datetimes; every time stored here is UTC.
    return moment if moment.tzinfo else moment.replace(tzinfo=dt.UTC)


def key(name: str) -> str:
    return name[:NAME_LENGTH]


def _recent(session: Session, column, value: str, limit: int, since: dt.datetime) -> list[dt.datetime]:
    rows = session.execute(select(LoginFailure.at).where(column == value, LoginFailure.at > since)
                           .order_by(LoginFailure.at.desc()).limit(limit)).scalars()
    return [_aware(at) for at in rows]


def _minutes(seconds: int) -> str:
    minutes = max(1, math.ceil(seconds / 60))
    return "1 minute" if minutes == 1 else f"{minutes} minutes"


def lockout(session: Session, name: str, address: str, limits: Limits,
            now: dt.datetime | None = None) -> TooManyAttempts | None:
    """The refusal to give this attempt, or None when it may be checked."""
    now = now or utcnow()
    since = now - limits.window
    refusals = []
    by_name = _recent(session, LoginFailure.user_name, key(name), limits.per_name, since)
    if len(by_name) >= limits.per_name:
        wait = math.ceil((by_name[-1] + limits.window - now).total_seconds())
        refusals.append(TooManyAttempts(
            f"Too many failed sign-ins for this user name: try again in {_minutes(wait)}, or ask an administrator "
            "to unlock it.", max(1, wait)))
    by_address = _recent(session, LoginFailure.address, address[:ADDRESS_LENGTH], limits.per_address, since)
    if len(by_address) >= limits.per_address:
        wait = math.ceil((by_address[-1] + limits.window - now).total_seconds())
        refusals.append(TooManyAttempts(
            f"Too many failed sign-ins from this address: try again in {_minutes(wait)}.", max(1, wait)))
    return max(refusals, key=lambda r: r.retry_after, default=None)


def record_failure(session: Session, name: str, address: str, limits: Limits, now: dt.datetime | None = None) -> None:
    """Count one failed sign-in (inside a write transaction), audited; a name or address reaching its limit
    is audited as locked. Rows older than the window are dropped as they stop counting."""
    now = now or utcnow()
    name, address = key(name), address[:ADDRESS_LENGTH]
    since = now - limits.window
    session.execute(delete(LoginFailure).where(LoginFailure.user_name == name, LoginFailure.at <= since))
    session.execute(delete(LoginFailure).where(LoginFailure.address == address, LoginFailure.at <= since))
    session.add(LoginFailure(user_name=name, address=address, at=now))
    session.flush()
    record(session, ANONYMOUS, "login_failed", "user", name, after={"address": address})
    window = limits.window.total_seconds() / 60
    for column, value, limit, action, entity in (
            (LoginFailure.user_name, name, limits.per_name, "account_locked", "user"),
            (LoginFailure.address, address, limits.per_address, "address_locked", "address")):
        recent = _recent(session, column, value, limit + 1, since)
        if len(recent) == limit:  # this failure reached the limit
            record(session, "system", action, entity, value,
                   after={"failures": limit, "window_minutes": window, "address": address,
                          "until": (recent[-1] + limits.window).isoformat(timespec="seconds")})


def clear(session: Session, name: str) -> int:
    """Forget the name's failures (a success, an unlock, a password reset); how many there were."""
    return rows_changed(session, delete(LoginFailure).where(LoginFailure.user_name == key(name)))
