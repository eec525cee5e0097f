"""Downloads: a trial's data as CSV (zip) or CDISC ODM, and the audit trail as CSV, each as the user may see it."""

from __future__ import annotations

from collections.abc import Callable

from fastapi import APIRouter, Request
from fastapi.responses import Response
from sqlalchemy.orm import Session

from ...service import export
from ...service.accounts import Actor
from .auth import signed_in
from .base import database

router = APIRouter(include_in_schema=False)


def _download(request: Request, make: Callable[[Session, Actor], bytes | str], media_type: str,
              filename: str) -> Response:
    actor = signed_in(request)
    with database(request).read() as session:
        content = make(session, actor)
    return Response(content, media_type=media_type,
                    headers={"Content-Disposition": f'attachment; filename="{filename}"'})


@router.get("/trials/{trial}/export/csv")
def export_csv(request: Request, trial: str) -> Response:
    return _download(request, lambda session, actor: export.csv_zip(session, actor, trial), "application/zip",
                     f"{trial}-data.zip")


@router.get("/trials/{trial}/export/odm")
def export_odm(request: Request, trial: str) -> Response:
    return _download(request, lambda session, actor: export.odm_xml(session, actor, trial), "application/xml",
                     f"{trial}-odm.xml")


@router.get("/audit.csv")
def export_audit(request: Request) -> Response:
    return _download(request, export.audit_csv, "text/csv", "audit-trail.csv")
