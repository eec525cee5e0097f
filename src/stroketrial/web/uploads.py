"""The files a posted form brings are closed once its answer is sent.

A page handler reads its form with `await request.form()`; a multipart form's files are then held in temporary
files (SpooledTemporaryFile) that Starlette closes only when `Request.close()` is called, which neither Starlette
nor FastAPI does for a form the handler read itself. Unclosed, each upload (a kit list, or any file a client sends
in place of a field) kept its file open until the garbage collector found it. Every page router depends on this.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

from fastapi import Request


async def close_posted_files(request: Request) -> AsyncIterator[None]:
    """A FastAPI dependency (with yield): after the handler, close what the request's form opened, if it read one."""
    try:
        yield
    finally:
        await request.close()
