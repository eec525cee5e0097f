"""The FastAPI application: the JSON API and the pages, with errors that name the field."""

from __future__ import annotations

import logging
import math
import os
import secrets
from pathlib import Path
from urllib.parse import urlencode
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, RedirectResponse, Response
from fastapi.staticfiles import StaticFiles
from starlette.middleware.sessions import SessionMiddleware
from sqlalchemy import event
from sqlalchemy.exc import DataError, IntegrityError, OperationalError
from starlette.exceptions import HTTPException as StarletteHTTPException

from .. import __version__
from ..service.errors import ServiceError
from ..service.throttle import Limits
from ..service.text import refuse_unstorable_parameters
from ..store import Database
from . import language, pages, security
from .pages.auth import LoginRequired
from .pages.base import render
from .api import router
from . import api_escalation  # noqa: F401  (its routes join `router`)
from . import api_supply  # noqa: F401  (investigational product supply)
from . import api_safety  # noqa: F401  (its routes join `router`)
from . import api_data_management  # noqa: F401  (its routes join `router`)
from . import api_procedure  # noqa: F401  (randomization during the procedure)
from . import api_consent  # noqa: F401  (its routes join `router`)
from . import api_signatures_locks  # noqa: F401  (its routes join `router`)
from . import api_amendments  # noqa: F401  (its routes join `router`)
from . import api_interim  # noqa: F401  (the DSMB's interim analyses)
from . import api_envelopes  # noqa: F401  (its routes join `router`)

log = logging.getLogger("stroketrial.web")


def _field(loc: tuple) -> str:
    parts = [str(p) for p in loc if p not in ("body", "query", "path", "header")]
    return ".".join(parts) or "(request body)"


def _validation_errors(exc: RequestValidationError) -> list[dict[str, Any]]:
    out = []
    for err in exc.errors():
        field = _field(tuple(err.get("loc", ())))
        kind = err.get("type", "")
        if kind == "missing":
            message = f"{field} is required"
        elif kind == "extra_forbidden":
            message = f"{field} is not a field of this request"
        elif kind == "json_invalid":
            message = f"the request body is not valid JSON ({err.get('ctx', {}).get('error', 'syntax error')})"
        else:
            message = f"{field}: {err.get('msg', 'invalid')}"
        value = err.get("input")
        out.append({"field": field, "value": value if isinstance(value, (str, int, float, bool, type(None))) else None,
                    "message": message})
    return out


def json_safe(value: Any) -> Any:
    """Echoed input made printable as JSON: inf and nan (which JSON cannot hold) become text, and so do
    unpaired surrogates (which UTF-8 cannot encode), spelled as \\udXXX."""
    if isinstance(value, float) and not math.isfinite(value):
        return repr(value)
    if isinstance(value, str):
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            return value.encode("utf-8", "backslashreplace").decode("utf-8")
        return value
    if isinstance(value, dict):
        return {str(k): json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [json_safe(v) for v in value]
    return value


def app_from_environment() -> FastAPI:
    """The app for each of several worker processes (`stroketrial serve --workers N`): the database from
    STROKETRIAL_DB and its keystore from STROKETRIAL_KEYS, which the parent process set."""
    return create_app(Database())


def create_app(db: Database) -> FastAPI:
    app = FastAPI(title="stroketrial", version=__version__,
                  description="Acute ischemic stroke trials: screening, central randomization, follow-up, safety, "
                              "audit. Authenticate with `Authorization: Bearer TOKEN` "
                              "(`stroketrial admin create-user` prints one).")
    app.state.db = db
    app.include_router(router)
    app.include_router(pages.router)
    app.include_router(language.router)
    app.mount("/static", StaticFiles(directory=str(Path(__file__).parent / "static")), name="static")
    # Sessions are signed cookies; without STROKETRIAL_SECRET_KEY a random key is made at start, so a
    # restart signs everyone out (never a fixed key in the code).
    secret = os.environ.get("STROKETRIAL_SECRET_KEY") or secrets.token_urlsafe(32)
    app.add_middleware(language.LanguageMiddleware)  # each request's language, before any handler runs
    app.add_middleware(SessionMiddleware, secret_key=secret, session_cookie="stroketrial_session",
                       same_site="strict", https_only=os.environ.get("STROKETRIAL_HTTPS") == "1",
                       max_age=int(pages.SESSION_MINUTES * 60) * 16)
    # Added last, so outermost: an oversized body or a NUL in the URL is refused before the session
    # cookie is read or anything is parsed, and every answer (refusals included) gets the headers.
    app.add_middleware(security.RequestLimits, max_body=security.max_body_bytes())
    Limits.from_env()  # a malformed sign-in limit stops the server at start, naming the variable
    docs_paths = (app.docs_url, app.redoc_url, app.swagger_ui_oauth2_redirect_url)  # None where turned off
    policy = security.HeaderPolicy(https=os.environ.get("STROKETRIAL_HTTPS") == "1",
                                   relaxed_paths=[p for p in docs_paths if p is not None])
    app.add_middleware(security.SecurityHeaders, policy=policy)
    # The last line against text the database cannot hold (NUL, unpaired surrogates) from any field
    # not validated on the way in: refused as 422 before the driver sees it, on SQLite as on PostgreSQL.
    if not event.contains(db.engine, "before_cursor_execute", refuse_unstorable_parameters):
        event.listen(db.engine, "before_cursor_execute", refuse_unstorable_parameters)

    def is_page(request: Request) -> bool:
        return not request.url.path.startswith("/api/")

    @app.exception_handler(LoginRequired)
    async def login_required(_request: Request, exc: LoginRequired) -> Response:
        login = f"/login?{urlencode({'next': exc.next_url, 'message': exc.message})}"
        if exc.background:  # the page stays as it is, with what was typed; it shows this and a sign-in link
            return JSONResponse({"detail": exc.message or "you are signed out; sign in again",
                                 "session_ended": True, "login": login}, status_code=401)
        return RedirectResponse(login, status_code=303)

    @app.exception_handler(ServiceError)
    async def service_error(request: Request, exc: ServiceError):
        if is_page(request):
            return render(request, "error.html", status=exc.status, error=exc)
        return JSONResponse(json_safe(exc.to_json()), status_code=exc.status)

    @app.exception_handler(RequestValidationError)
    async def validation_error(_request: Request, exc: RequestValidationError):
        errors = _validation_errors(exc)
        return JSONResponse(json_safe({"detail": "; ".join(e["message"] for e in errors), "errors": errors}),
                            status_code=422)

    @app.exception_handler(IntegrityError)
    async def integrity_error(_request: Request, exc: IntegrityError):
        # Two requests racing to create the same thing: the database's unique constraints decide.
        return JSONResponse({"detail": "this conflicts with data recorded at the same moment; reload and retry"},
                            status_code=409)

    @app.exception_handler(DataError)
    async def data_error(_request: Request, exc: DataError):
        # A value the database refuses (PostgreSQL: too long for its column, NUL, out of range).
        log.warning("value refused by the database: %s", exc.orig)
        return JSONResponse({"detail": "a value in this request cannot be stored (too long, or a character or "
                                       "number the database cannot hold); nothing was stored"}, status_code=422)

    @app.exception_handler(OperationalError)
    async def operational_error(_request: Request, exc: OperationalError):
        log.warning("database unavailable: %s", exc)
        return JSONResponse({"detail": "the database is busy or unavailable; retry with the same Idempotency-Key"},
                            status_code=503, headers={"Retry-After": "1"})

    @app.exception_handler(Exception)
    async def unexpected(request: Request, exc: Exception):
        log.exception("unexpected error")
        # Starlette answers this one outside the middleware, so it adds the security headers itself.
        return JSONResponse({"detail": "internal error; nothing was stored by this request"}, status_code=500,
                            headers=policy.headers(request.url.path))

    @app.exception_handler(StarletteHTTPException)
    async def http_error(_request: Request, exc: StarletteHTTPException):
        return JSONResponse({"detail": exc.detail}, status_code=exc.status_code, headers=getattr(exc, "headers", None))

    return app
