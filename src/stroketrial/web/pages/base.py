"""What every page handler uses: the templates, `render`, and the application's database."""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any

from fastapi import Request
from fastapi.responses import HTMLResponse
from fastapi.templating import Jinja2Templates

from ...store import Database
from ..csrf import csrf_token

templates = Jinja2Templates(directory=str(Path(__file__).parent.parent / "templates"))


def render(request: Request, template: str, status: int = 200, **context: Any) -> HTMLResponse:
    """A page from its template, with the form token, the time and the signed-in user (when there is one)."""
    from .. import pages  # the session lifetime is read at each request (tests change it)

    context.setdefault("actor", getattr(request.state, "page_actor", None))
    return templates.TemplateResponse(request, template, {"csrf": csrf_token(request), "now": dt.datetime.now(),
                                                          "session_minutes": pages.SESSION_MINUTES, **context},
                                      status_code=status)


def database(request: Request) -> Database:
    db: Database = request.app.state.db
    return db
