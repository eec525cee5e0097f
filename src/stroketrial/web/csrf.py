"""The CSRF token of a page session: made once per session, carried by every form, checked on every post.

The token lives in the signed session cookie beside the session id (`pages/auth.py` renews it on signing
in); a form sends it back in its `csrf` field, the live eligibility panel in the X-CSRF-Token header.
"""

from __future__ import annotations

import hmac
import secrets

from fastapi import Request
from starlette.datastructures import UploadFile

from ..service.errors import Forbidden


def new_token() -> str:
    return secrets.token_urlsafe(24)


def csrf_token(request: Request) -> str:
    """This session's token, made on first use."""
    token = request.session.get("csrf")
    if not token:
        token = request.session["csrf"] = new_token()
    return str(token)


def check_csrf(request: Request, submitted: str | UploadFile | None) -> None:
    """Refuse a post whose token is missing, stale or not text (a file sent in the token's field)."""
    expected = request.session.get("csrf")
    if not expected or not isinstance(submitted, str) or not submitted \
            or not hmac.compare_digest(expected, submitted):
        raise Forbidden("the form's security token is missing or stale (CSRF check); reload the page and retry")
