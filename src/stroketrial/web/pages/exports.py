"""Downloads: a trial's data as CSV (zip) or CDISC ODM, and the audit trail as CSV, each as the user may see it.

Each is streamed: the permission is checked before the answer starts, then the file is sent piece by piece as it
is read (service/export.py), in one read transaction that lasts as long as the download."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import ExitStack

from fastapi import APIRouter, Request
from fastapi.responses import StreamingResponse
from sqlalchemy.orm import Session

from ...service import export
from ...service.accounts import Actor
from .auth import signed_in
from .base import database

router = APIRouter(include_in_schema=False)


def _attachment(filename: str) -> dict[str, str]:
    return {"Content-Disposition": f'attachment; filename="{filename}"'}


def _streamed(request: Request, make: Callable[[Session, Actor], Iterator[bytes]], media_type: str,
              filename: str) -> StreamingResponse:
    actor = signed_in(request)
    with ExitStack() as stack:
        session = stack.enter_context(database(request).read())
        pieces = make(session, actor)  # a refusal is raised here, before the answer starts
        held = stack.pop_all()  # the session stays open while the pieces are sent

    def body() -> Iterator[bytes]:
        with held:
            yield from pieces

    return StreamingResponse(body(), media_type=media_type, headers=_attachment(filename))


@router.get("/trials/{trial}/export/csv")
def export_csv(request: Request, trial: str) -> StreamingResponse:
    return _streamed(request, lambda session, actor: export.csv_zip_stream(session, actor, trial),
                     "application/zip", f"{trial}-data.zip")


@router.get("/trials/{trial}/export/odm")
def export_odm(request: Request, trial: str) -> StreamingResponse:
    return _streamed(request, lambda session, actor: export.odm_xml_stream(session, actor, trial),
                     "application/xml", f"{trial}-odm.xml")


@router.get("/audit.csv")
def export_audit(request: Request) -> StreamingResponse:
    return _streamed(request, export.audit_csv_stream, "text/csv", "audit-trail.csv")
