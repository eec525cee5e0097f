"""Protections every response and every request gets, as two small pure-ASGI middlewares.

`SecurityHeaders` adds the browser protections to every response: a Content-Security-Policy with no
inline script, no framing, no MIME sniffing, no referrer, `Cache-Control: no-store` on everything
but /static (pages, API answers and exports carry patient data), and HSTS behind HTTPS.

`RequestLimits` refuses, before anything parses the request: a body over the size limit (413, at once
on a Content-Length over it, or as soon as a streamed body passes it), and a NUL character in the
URL or a header (400), which no identifier or value may hold and PostgreSQL cannot store.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable
from typing import Any
from urllib.parse import unquote

Scope = dict[str, Any]

DEFAULT_MAX_BODY_BYTES = 1024 * 1024
MAX_BODY_ENV = "STROKETRIAL_MAX_BODY_BYTES"

PAGE_POLICY = ("default-src 'self'; script-src 'self'; img-src 'self' data:; style-src 'self' 'unsafe-inline'; "
               "frame-ancestors 'none'; base-uri 'none'; form-action 'self'; object-src 'none'")
# FastAPI's /docs (Swagger UI) and /redoc load their scripts and styles from a CDN and start them with
# an inline script. They carry no patient data (only the API's description; every call made from them
# needs a token), so they alone get this relaxed policy; framing stays forbidden.
DOCS_POLICY = ("default-src 'self'; script-src 'self' 'unsafe-inline' https://cdn.jsdelivr.net; "
               "style-src 'self' 'unsafe-inline' https://cdn.jsdelivr.net https://fonts.googleapis.com; "
               "font-src 'self' https://fonts.gstatic.com; img-src 'self' data: https://fastapi.tiangolo.com "
               "https://cdn.redoc.ly; worker-src 'self' blob:; frame-ancestors 'none'; base-uri 'none'; "
               "form-action 'self'; object-src 'none'")


def max_body_bytes() -> int:
    """The request body limit: STROKETRIAL_MAX_BODY_BYTES, or 1 MiB."""
    raw = os.environ.get(MAX_BODY_ENV, "").strip()
    if not raw:
        return DEFAULT_MAX_BODY_BYTES
    try:
        value = int(raw)
    except ValueError:
        value = 0
    if value < 1024:
        raise ValueError(f"{MAX_BODY_ENV}={raw!r} is not allowed: a whole number of bytes, at least 1024")
    return value


def _size(n: int) -> str:
    if n % (1024 * 1024) == 0:
        return f"{n:,} bytes ({n // (1024 * 1024)} MiB)"
    if n % 1024 == 0:
        return f"{n:,} bytes ({n // 1024} KiB)"
    return f"{n:,} bytes"


class HeaderPolicy:
    """Which headers a response to a path gets."""

    def __init__(self, https: bool = False, relaxed_paths: Iterable[str] = (), static_prefix: str = "/static/"):
        self.https = https
        self.relaxed_paths = frozenset(p for p in relaxed_paths if p)
        self.static_prefix = static_prefix

    def headers(self, path: str) -> dict[str, str]:
        out = {"content-security-policy": DOCS_POLICY if path in self.relaxed_paths else PAGE_POLICY,
               "x-frame-options": "DENY",
               "x-content-type-options": "nosniff",
               "referrer-policy": "no-referrer"}
        if not path.startswith(self.static_prefix):
            # Pages, API answers, exports and errors may all carry patient data: never kept by a browser
            # or a proxy. Only the stylesheet and the script may be cached.
            out["cache-control"] = "no-store"
        if self.https:
            out["strict-transport-security"] = "max-age=31536000"
        return out


class SecurityHeaders:
    def __init__(self, app, policy: HeaderPolicy):
        self.app, self.policy = app, policy

    async def __call__(self, scope: Scope, receive, send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        extra = self.policy.headers(scope.get("path", ""))

        async def send_with_headers(message) -> None:
            if message["type"] == "http.response.start":
                names = {name.encode("latin-1") for name in extra}
                headers = [(k, v) for k, v in message.get("headers", []) if k.lower() not in names]
                headers += [(k.encode("latin-1"), v.encode("latin-1")) for k, v in extra.items()]
                message = {**message, "headers": headers}
            await send(message)

        await self.app(scope, receive, send_with_headers)


async def _answer(send, status: int, detail: str, close: bool = False) -> None:
    body = json.dumps({"detail": detail}).encode("utf-8")
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode("ascii"))]
    if close:
        headers.append((b"connection", b"close"))
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


class RequestLimits:
    def __init__(self, app, max_body: int = DEFAULT_MAX_BODY_BYTES):
        self.app, self.max_body = app, max_body

    def _too_large(self) -> str:
        return (f"the request body is over this server's limit of {_size(self.max_body)}; "
                "nothing was read or stored")

    async def __call__(self, scope: Scope, receive, send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        if "\x00" in scope.get("path", "") or "\x00" in unquote(scope.get("query_string", b"").decode("latin-1")):
            await _answer(send, 400, "the URL holds a NUL (%00) character, which no identifier or value may contain")
            return
        length = None
        for name, value in scope.get("headers", []):
            if b"\x00" in value:
                await _answer(send, 400, f"the {name.decode('latin-1')} header holds a NUL (0x00) character, "
                                         "which no header may contain")
                return
            if name.lower() == b"content-length":
                try:
                    length = int(value)
                except ValueError:
                    await _answer(send, 400, f"Content-Length {value.decode('latin-1')!r} is not a number of bytes",
                                  close=True)
                    return
        if length is not None:
            if length > self.max_body:
                # Refused on the declared length alone: not one byte of the body is read.
                await _answer(send, 413, self._too_large(), close=True)
                return
            await self.app(scope, receive, send)
            return
        # No declared length (chunked, or no body): read the body here, counting as it streams,
        # and stop at the first chunk that passes the limit. What was read is handed on unchanged.
        chunks: list[bytes] = []
        total = 0
        pending: list[dict[str, Any]] = []
        while True:
            message = await receive()
            if message["type"] != "http.request":
                pending.append(message)
                break
            chunk = message.get("body", b"")
            total += len(chunk)
            if total > self.max_body:
                await _answer(send, 413, self._too_large().replace("nothing was read", "nothing was kept"),
                              close=True)
                return
            chunks.append(chunk)
            if not message.get("more_body", False):
                break
        pending.insert(0, {"type": "http.request", "body": b"".join(chunks), "more_body": False})

        async def replay():
            if pending:
                return pending.pop(0)
            return await receive()

        await self.app(scope, replay, send)
