"""The language of each request, and the user's choice of it.

`LanguageMiddleware` sets the language (i18n.set_language) before any handler runs, from the browser's remembered
choice (the `stroketrial_lang` cookie) or its Accept-Language header; a signed-in user's own choice, stored with
the user, then takes precedence (`pages.auth.signed_in`). The JSON API is always in English. `POST /language` is the
menu at the top of every page: it stores the choice with the user when signed in, and in the cookie for this browser.
"""

from __future__ import annotations

from http.cookies import SimpleCookie

import anyio
from fastapi import APIRouter, Depends, Request
from fastapi.responses import RedirectResponse
from starlette.types import ASGIApp, Receive, Scope, Send

from .. import i18n
from ..service import accounts
from .csrf import check_csrf
from .uploads import close_posted_files

COOKIE = "stroketrial_lang"
router = APIRouter(include_in_schema=False, dependencies=[Depends(close_posted_files)])


class LanguageMiddleware:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and str(scope.get("path", "")).startswith("/api/"):
            # The API speaks English whatever the caller's browser asks for: its messages are read by programs and
            # quoted in logs, and a field's code is what a client needs (the pages show labels).
            i18n.set_language(i18n.ENGLISH)
        elif scope["type"] == "http":
            headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope.get("headers", [])}
            cookie = SimpleCookie()
            try:
                cookie.load(headers.get("cookie", ""))
            except Exception:  # a malformed Cookie header: the browser's languages decide
                cookie = SimpleCookie()
            remembered = cookie[COOKIE].value if COOKIE in cookie else None
            i18n.set_language(i18n.choose(None, remembered, headers.get("accept-language")))
        await self.app(scope, receive, send)


def _local(target: str) -> str:
    return target if target.startswith("/") and not target.startswith("//") else "/"


@router.post("/language")
async def choose_language(request: Request) -> RedirectResponse:
    """The language menu: `language` is one of i18n.LANGUAGES, or empty for the browser's own."""
    from .pages.auth import LoginRequired, page_actor
    from .pages.base import database

    form = await request.form()
    check_csrf(request, form.get("csrf"))
    language = str(form.get("language") or "") or None
    target = _local(str(form.get("next") or "/"))
    try:
        actor = page_actor(request)
    except LoginRequired:
        actor = None
    if actor is not None:
        def store() -> None:
            with database(request).write() as session:
                accounts.set_language(session, actor, language)

        await anyio.to_thread.run_sync(store)
    elif language is not None and language not in i18n.LANGUAGES:
        accounts.check_language(language)
    response = RedirectResponse(target, status_code=303)
    if language is None:
        response.delete_cookie(COOKIE)
    else:
        response.set_cookie(COOKIE, language, max_age=365 * 24 * 3600, samesite="strict", httponly=True)
    return response
