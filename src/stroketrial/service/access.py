"""Withdrawing access, and lifting a lockout: what `stroketrial admin` does when an account is at risk.

Each is an admin's act, audited, and takes effect at once: sessions end in the database, so a browser
signed in a moment ago is refused on its next request, and a deactivated user's API tokens are refused
on the next call (`accounts.actor_for_token` checks the user is active).
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from .. import i18n
from ..store import record
from ..store.models import ApiToken, Site, User, UserSite
from . import passwords, refusals, sessions, throttle
from .accounts import Actor, hash_token
from .roles import ROLES
from .errors import Invalid, NotFound
from .password_policy import check_password


def _user(session: Session, name: str) -> User:
    user = session.execute(select(User).where(User.name == name)).scalar_one_or_none()
    if user is None:
        raise NotFound(i18n.gettext("no user {name}").format(name=repr(name)))
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
            raise NotFound(i18n.gettext("that token is not one of {name}'s tokens (nothing revoked)").format(name=name))
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
    check_password(password, name)
    if user.password_hash and passwords.verify(user.password_hash, password):
        raise Invalid(i18n.gettext("the new password is the user's current one; choose another"),
                      [{"field": "password", "value": "***", "message": i18n.gettext("not the current password")}])
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


def change_role(session: Session, actor: Actor, name: str, role: str, reason: str) -> dict[str, Any]:
    """A user's new role, with the reason; their page sessions end so the new role applies at once (API tokens
    read the role at each request)."""
    actor.require("changing a user's role or sites")
    user = _user(session, name)
    if role not in ROLES:
        raise Invalid(i18n.gettext("role {role} is not one of {roles}").format(role=repr(role), roles=", ".join(ROLES)),
                      [{"field": "role", "value": role,
                        "message": i18n.gettext("one of {choices}").format(choices=", ".join(ROLES))}])
    if role == user.role:
        raise Invalid(i18n.gettext("{name} is {role} already").format(name=name, role=refusals.role(role)),
                      [{"field": "role", "value": role, "message": i18n.gettext("a different role")}])
    if (role == "admin") != (user.role == "admin"):
        # An admin has no sites and sees every site; a site role has sites: a change between them is a new account.
        raise Invalid(i18n.gettext("a change to or from admin changes what the user sees everywhere; create a new "
                                   "account"),
                      [{"field": "role", "value": role, "message": i18n.gettext("not to or from admin")}])
    reason = _reason(reason)
    before, user.role = user.role, role
    ended = sessions.end_for_user(session, user.id, "role_changed")
    record(session, actor.name, "change_role", "user", name, before={"role": before},
           after={"role": role, "sessions_ended": ended}, reason=reason)
    return {"user": name, "role": role, "was": before, "sessions_ended": ended}


def set_sites(session: Session, actor: Actor, name: str, sites: list[str], reason: str) -> dict[str, Any]:
    """The sites a (non-admin) user works at, with the reason; their page sessions end."""
    actor.require("changing a user's role or sites")
    user = _user(session, name)
    if user.role == "admin":
        raise Invalid(i18n.gettext("an admin sees every site; an admin has no sites to set"),
                      [{"field": "site", "value": sites, "message": i18n.gettext("none for an admin")}])
    if not sites:
        raise Invalid(i18n.gettext("a user works at one or more sites"),
                      [{"field": "site", "value": sites, "message": i18n.gettext("at least one site")}])
    unknown = sorted(s for s in set(sites) if session.get(Site, s) is None)
    if unknown:
        raise NotFound(i18n.gettext("no site {sites}; create it first (stroketrial admin create-site)").format(
            sites=", ".join(unknown)))
    reason = _reason(reason)
    rows = list(session.execute(select(UserSite).where(UserSite.user_id == user.id)).scalars())
    before = sorted(r.site_code for r in rows)
    for row in rows:
        session.delete(row)
    session.flush()
    for site in sorted(set(sites)):
        session.add(UserSite(user_id=user.id, site_code=site))
    ended = sessions.end_for_user(session, user.id, "sites_changed")
    record(session, actor.name, "set_sites", "user", name, before={"sites": before},
           after={"sites": sorted(set(sites)), "sessions_ended": ended}, reason=reason)
    return {"user": name, "sites": sorted(set(sites)), "was": before, "sessions_ended": ended}


def _reason(reason: str | None) -> str:
    if not reason or not reason.strip() or len(reason) > 2000:
        raise Invalid(i18n.gettext("a change to a user's access needs a reason (1-2000 characters)"),
                      [{"field": "reason", "value": reason, "message": i18n.gettext("required")}])
    return reason.strip()
