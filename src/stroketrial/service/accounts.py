"""Sites, users, roles and tokens; who may do what, and who may see an arm.

Passwords are hashed with Argon2 (argon2-cffi; service/passwords.py, which signing in uses through
service/signin.py). API tokens are 256-bit random
strings shown once; only their SHA-256 is stored, so a copied database yields no
usable token.
"""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass, field

from sqlalchemy import bindparam, select
from sqlalchemy.orm import Session

from .. import i18n
from ..i18n import LANGUAGES
from ..store import record
from ..store.models import ApiToken, Site, User, UserSite
from . import refusals
from .blinding import sees_arm
from .password_policy import check_password
from .roles import PERMISSIONS, RANDOMIZERS, ROLE_DESCRIPTIONS, ROLES, SITE_STAFF
from .clock import default_timezone, valid_timezone
from .errors import Conflict, Forbidden, Invalid, NotFound, Unauthorized
from .passwords import hash_password

__all__ = ["RANDOMIZERS", "ROLES", "ROLE_DESCRIPTIONS", "SITE_STAFF", "SYSTEM", "Actor", "sees_arm"]


@dataclass(frozen=True)
class Actor:
    name: str
    role: str
    sites: frozenset[str]
    language: str | None = field(default=None, compare=False)  # the user's own choice of language, if any

    @property
    def is_admin(self) -> bool:
        return self.role == "admin"

    def can_see_site(self, site: str) -> bool:
        return self.is_admin or site in self.sites

    def may(self, operation: str) -> bool:
        """Whether this user's role allows the operation (roles.PERMISSIONS)."""
        return self.role in PERMISSIONS[operation]

    def require(self, operation: str) -> None:
        """Refuse (403) an operation this user's role does not allow, naming who may."""
        if not self.may(operation):
            raise Forbidden(i18n.gettext("{operation} is for {roles}; {name} is {role}").format(
                operation=refusals.operation(operation), roles=refusals.roles(PERMISSIONS[operation]),
                name=self.name, role=refusals.role(self.role)))


SYSTEM = Actor("system", "admin", frozenset())


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def create_site(session: Session, actor: Actor, code: str, name: str | None = None,
                timezone: str | None = None) -> Site:
    """A site; its staff's clock times are read in its IANA time zone (default STROKETRIAL_TIMEZONE, else UTC)."""
    actor.require("creating a site")
    code = code.strip()
    if not code or len(code) > 40 or not all(ch.isalnum() or ch in "-_" for ch in code):
        raise Invalid(i18n.gettext("site code {code} is not allowed; use 1-40 letters, digits, '-' or '_'").format(
            code=repr(code)), [{"field": "site", "value": code,
                                "message": i18n.gettext("1-40 letters, digits, '-' or '_'")}])
    existing = session.get(Site, code)
    if existing is not None:
        return existing
    site = Site(code=code, name=name or code, timezone=valid_timezone(timezone or default_timezone()))
    session.add(site)
    record(session, actor.name, "create", "site", code, after={"code": code, "name": site.name,
                                                               "timezone": site.timezone})
    return site


def create_user(session: Session, actor: Actor, name: str, role: str, sites: list[str],
                password: str | None = None, language: str | None = None) -> tuple[User, str]:
    """A new user and their first API token (returned once, in clear); `language`: their pages' language."""
    actor.require("creating a user")
    check_language(language)
    if role not in ROLES:
        raise Invalid(i18n.gettext("role {role} is not one of {roles}").format(role=repr(role), roles=", ".join(ROLES)),
                      [{"field": "role", "value": role,
                        "message": i18n.gettext("one of {choices}").format(choices=", ".join(ROLES))}])
    name = name.strip()
    if not name or len(name) > 80:
        raise Invalid(i18n.gettext("a user name is 1-80 characters"),
                      [{"field": "name", "value": name, "message": i18n.gettext("1-80 chars")}])
    if role == "admin" and sites:
        raise Invalid(i18n.gettext("an admin sees every site; give no --site"),
                      [{"field": "site", "value": sites, "message": i18n.gettext("none for an admin")}])
    if role != "admin" and not sites:
        raise Invalid(i18n.gettext("a {role} works at one or more sites; give --site").format(role=refusals.role(role)),
                      [{"field": "site", "value": None, "message": i18n.gettext("at least one site")}])
    if session.execute(select(User).where(User.name == name)).scalar_one_or_none() is not None:
        raise Conflict(i18n.gettext("user {name} exists already").format(name=repr(name)))
    unknown = [s for s in sites if session.get(Site, s) is None]
    if unknown:
        raise NotFound(i18n.gettext("no site {sites}; create it first (stroketrial admin create-site)").format(
            sites=", ".join(unknown)))
    if password is not None:
        check_password(password, name)
    user = User(name=name, role=role, password_hash=hash_password(password) if password else None, active=True,
                language=language)
    session.add(user)
    session.flush()
    for site in sites:
        session.add(UserSite(user_id=user.id, site_code=site))
    token = issue_token(session, user)
    record(session, actor.name, "create", "user", name, after={"name": name, "role": role, "sites": sorted(sites),
                                                               **({"language": language} if language else {})})
    return user, token


def check_language(language: str | None) -> None:
    if language is not None and language not in LANGUAGES:
        allowed = ", ".join(f"{code} ({words})" for code, words in LANGUAGES.items())
        raise Invalid(i18n.gettext("language {language} is not offered; use one of {allowed}").format(
            language=repr(language), allowed=allowed), [{"field": "language", "value": language,
                                                         "message": i18n.gettext(
                "one of {choices}").format(choices=", ".join(LANGUAGES))}])


def set_language(session: Session, actor: Actor, language: str | None) -> str | None:
    """A user's own choice of language for their pages and emails (None: the browser's), audited."""
    check_language(language)
    user = session.execute(select(User).where(User.name == actor.name)).scalar_one_or_none()
    if user is None:
        raise NotFound(i18n.gettext("no user {name}").format(name=repr(actor.name)))
    if user.language != language:
        record(session, actor.name, "update", "user", actor.name, before={"language": user.language},
               after={"language": language}, reason="language chosen")
        user.language = language
    return language


def issue_token(session: Session, user: User) -> str:
    token = "st_" + secrets.token_urlsafe(32)
    session.add(ApiToken(user_id=user.id, token_hash=hash_token(token), revoked=False))
    return token


def _actor(session: Session, user: User) -> Actor:
    sites = session.execute(select(UserSite.site_code).where(UserSite.user_id == user.id)).scalars()
    return Actor(user.name, user.role, frozenset(sites), user.language)


# One query for the token, its user and the user's sites (a row per site), built once: every API call starts here.
_TOKEN_USER = (select(User.name, User.role, User.active, User.language, UserSite.site_code)
               .join(ApiToken, ApiToken.user_id == User.id).outerjoin(UserSite, UserSite.user_id == User.id)
               .where(ApiToken.token_hash == bindparam("token_hash"), ApiToken.revoked.is_(False)))


def actor_for_token(session: Session, token: str) -> Actor:
    rows = session.execute(_TOKEN_USER, {"token_hash": hash_token(token)}).all()
    if not rows or not rows[0].active:
        raise Unauthorized(i18n.gettext("the API token is unknown or revoked"))
    user = rows[0]
    return Actor(user.name, user.role, frozenset(r.site_code for r in rows if r.site_code is not None), user.language)


def actor_named(session: Session, name: str) -> Actor:
    user = session.execute(select(User).where(User.name == name)).scalar_one_or_none()
    if user is None:
        raise NotFound(i18n.gettext("no user {name}").format(name=repr(name)))
    return _actor(session, user)
