"""Electronic signatures: the signer enters their password again at the moment of signing (21 CFR 11.200(a):
two components, the user name of the session and the password). A wrong password counts as a failed sign-in,
so guessing it at the signature is throttled and locks the account exactly as guessing it at sign-in does."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from sqlalchemy import select

from .. import i18n
from ..store import Database
from ..store.models import User
from . import passwords, throttle
from .accounts import Actor
from .errors import Unauthorized


@dataclass(frozen=True)
class Signature:
    """Proof that `name` entered their password at `at`; only `sign` makes one."""

    name: str
    at: dt.datetime


def sign(db: Database, actor: Actor, password: str | None, address: str) -> Signature:
    """Check the signer's password outside any write transaction (the hash takes a while); a failure is recorded
    in its own transaction, so refusing the signed operation does not roll it back."""
    limits = throttle.Limits.from_env()
    with db.read() as session:
        refusal = throttle.lockout(session, actor.name, address, limits)
        if refusal is not None:
            raise refusal
        user = session.execute(select(User).where(User.name == actor.name)).scalar_one_or_none()
        stored = user.password_hash if user is not None and user.active else None
    if not password or not passwords.verify(stored, password):
        with db.write() as session:
            throttle.record_failure(session, actor.name, address, limits)
        raise Unauthorized(i18n.gettext("the signature needs your password; it did not match"))
    return Signature(actor.name, dt.datetime.now(dt.UTC))
