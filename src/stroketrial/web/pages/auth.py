"""Signing in and out of the pages, and the signed-in user of a page request.

Signing in (service/signin.py: lockouts, Argon2 off the event loop) starts a session kept on the server
(service/sessions.py); the signed cookie carries only its random id and the CSRF token. A session ends on
signing out, when an admin deactivates the user or resets the password, after `pages.SESSION_MINUTES`
without activity, and `pages.SESSION_MAX_HOURS` after it began.
"""

from __future__ import annotations

from urllib.parse import urlsplit

import datetime as dt

import anyio
from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse, Response

from ... import i18n
from ...service import accounts, passwords, sessions, signin
from ...service.accounts import Actor
from ...service.errors import Unauthorized
from .. import language, pages
from ..csrf import check_csrf, csrf_token, new_token
from .base import database, render

passwords.dummy_hash()  # made now, so the first unknown user name costs no more than any other
router = APIRouter(include_in_schema=False)


class LoginRequired(Exception):
    """No session, or one that has ended: the app answers a page with the sign-in page, and a page's background
    request (the live eligibility panel, a form check) with 401 and JSON the page understands (`app.py`)."""

    def __init__(self, next_url: str, message: str = "", background: bool = False):
        self.next_url, self.message, self.background = next_url, message, background


def is_background(request: Request) -> bool:
    """A page's own fetch, not a navigation: the browser says so (Sec-Fetch-Mode), and the pages' scripts send
    their CSRF token as a header, which no navigation does."""
    mode = request.headers.get("sec-fetch-mode")
    return (mode is not None and mode != "navigate") or "x-csrf-token" in request.headers


def return_to(request: Request) -> str:
    """Where to come back after signing in again: the page itself, or for a form's POST (which cannot be
    repeated by a redirect) the page the form was on, when the browser names it and it is ours."""
    if request.method == "GET":
        return str(request.url.path) + (f"?{request.url.query}" if request.url.query else "")
    referer = urlsplit(request.headers.get("referer", ""))
    if referer.netloc == request.url.netloc and referer.path.startswith("/") and referer.path != "/login":
        return referer.path + (f"?{referer.query}" if referer.query else "")
    return "/"


def page_actor(request: Request) -> Actor:
    """The user of this request's session, or LoginRequired (saying why a session ended)."""
    sid = request.session.get("sid")
    if not sid:
        raise LoginRequired(return_to(request), "sign in to continue", is_background(request))
    try:
        # The lifetimes are read from the package at each request, so that a change to them takes effect.
        return sessions.resolve(database(request), sid, idle=dt.timedelta(minutes=pages.SESSION_MINUTES),
                                lifetime=dt.timedelta(hours=pages.SESSION_MAX_HOURS))
    except sessions.SessionEnded as exc:
        request.session.clear()
        raise LoginRequired(return_to(request), exc.message, is_background(request)) from None


def signed_in(request: Request) -> Actor:
    """`page_actor`, kept on the request so that `render` (and an error page) names the user."""
    actor = page_actor(request)
    request.state.page_actor = actor
    if actor.language:  # the user's own choice of language wins over the browser's
        i18n.set_language(actor.language)
    return actor


@router.post("/session/keepalive")
def keepalive(request: Request) -> JSONResponse:
    """'Stay signed in' from the expiry warning: any signed-in request counts as activity (`sessions.resolve`)."""
    actor = signed_in(request)  # first: an ended session answers 401 (background), not a CSRF refusal
    check_csrf(request, request.headers.get("x-csrf-token"))
    return JSONResponse({"user": actor.name, "idle_minutes": pages.SESSION_MINUTES})


@router.get("/session/token")
def session_token(request: Request) -> JSONResponse:
    """The form token of the session now: a page kept open while its user signed in again in another tab takes
    it, so that what was typed there can still be saved."""
    actor = signed_in(request)
    return JSONResponse({"user": actor.name, "csrf": csrf_token(request)})


def login_message(message: str) -> str:
    """A sign-in page's message in the page's language: the messages of signing in and out, as the services and
    the sign-out redirect word them (another, with its numbers, stays as it is)."""
    known = {"signed out": i18n.gettext("signed out"),
             "sign in to continue": i18n.gettext("sign in to continue"),
             "unknown user or wrong password": i18n.gettext("unknown user or wrong password"),
             "you are signed out; sign in again": i18n.gettext("you are signed out; sign in again"),
             "this account is deactivated; ask an administrator":
                 i18n.gettext("this account is deactivated; ask an administrator")}
    return known.get(message, message)


@router.get("/login", response_class=HTMLResponse)
def login_page(request: Request, next: str = "/", message: str = "") -> HTMLResponse:
    return render(request, "login.html", next=next, message=login_message(message))


@router.post("/login")
async def login(request: Request) -> Response:
    form = await request.form()
    check_csrf(request, form.get("csrf"))
    name, password = str(form.get("name", "")), str(form.get("password", ""))
    target = str(form.get("next") or "/")
    if not target.startswith("/") or target.startswith("//"):
        target = "/"
    address = request.client.host if request.client else "unknown"
    try:
        sid = await signin.sign_in(database(request), name, password, address, replaces=request.session.get("sid"))
    except signin.TooManyAttempts as exc:
        response = render(request, "login.html", status=429, next=target, message=login_message(exc.message), name=name)
        response.headers["Retry-After"] = str(exc.retry_after)
        return response
    except Unauthorized as exc:
        return render(request, "login.html", status=401, next=target, message=login_message(exc.message), name=name)
    request.session.clear()
    request.session.update({"sid": sid, "csrf": new_token()})
    redirect = RedirectResponse(target, status_code=303)

    def own_language() -> str | None:
        with database(request).read() as session:
            return accounts.actor_named(session, name).language

    chosen = await anyio.to_thread.run_sync(own_language)
    if chosen:  # this browser remembers the user's language, for pages shown before the session is read
        redirect.set_cookie(language.COOKIE, chosen, max_age=365 * 24 * 3600, samesite="strict", httponly=True)
    return redirect


@router.post("/logout")
async def logout(request: Request) -> RedirectResponse:
    form = await request.form()
    check_csrf(request, form.get("csrf"))
    sid = request.session.get("sid")
    if sid:
        def end() -> None:
            with database(request).write() as session:
                sessions.end(session, sid, "signed_out")

        await anyio.to_thread.run_sync(end)
    request.session.clear()
    return RedirectResponse("/login?message=signed+out", status_code=303)
