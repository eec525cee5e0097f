"""The trial's protocol versions on the pages: each version, when it came into force, what it changed (part by
part), how many patients were screened under it, and which is in force. Amendments are made with
`stroketrial admin amend-protocol`; this page shows them, as `GET /api/v1/trials/{trial}/protocol/versions` does.

    /trials/{trial}/protocol     the protocol's versions and amendments
"""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse

from ...service import amendments, trials
from .auth import signed_in
from .base import database, render
from .escalation import when

router: APIRouter = APIRouter(include_in_schema=False)


@router.get("/trials/{trial}/protocol", response_class=HTMLResponse)
def versions_page(request: Request, trial: str) -> HTMLResponse:
    actor = signed_in(request)
    with database(request).read() as session:
        _, protocol = trials.get_trial(session, actor, trial)
        versions = amendments.versions(session, actor, trial)
    for v in versions:
        v["when"] = when(v["effective_from"])
    return render(request, "protocol_versions.html", protocol=protocol, versions=list(reversed(versions)))
