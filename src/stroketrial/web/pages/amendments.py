"""The trial's protocol versions on the pages: each version, when it came into force, what it changed (part by
part), how many patients were screened under it, and which is in force. Amendments are made with
`stroketrial admin amend-protocol`; this page shows them, as `GET /api/v1/trials/{trial}/protocol/versions` does.

    /trials/{trial}/protocol     the protocol's versions and amendments
"""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse

from ... import i18n
from ...service import amendments, trials
from ...wording import translated
from .auth import signed_in
from .base import database, render
from .escalation import when

router: APIRouter = APIRouter(include_in_schema=False)


def _(message: str) -> str:
    """Marks a message for the catalogs (locale/zh_Hans/management.po); it is translated where it is shown."""
    return message


# The parts of an amendment and its lines as protocol.amendments words them (ids and field names stay as they are).
PARTS = (_("eligibility"), _("visits and forms"), _("endpoints"), _("interventions and doses"), _("analysis plan"),
         _("dose escalation"), _("consent"), _("edit checks"), _("reference safety information"), _("other"))
LINES = (_("criterion {id} added"), _("criterion {id} removed"), _("criterion {id} changed ({fields})"),
         _("visit {id} added"), _("visit {id} removed"), _("visit {id} changed ({fields})"),
         _("endpoint {id} added"), _("endpoint {id} removed"), _("endpoint {id} changed ({fields})"),
         _("intervention {id} added"), _("intervention {id} removed"), _("intervention {id} changed ({fields})"),
         _("check {id} added"), _("check {id} removed"), _("check {id} changed ({fields})"),
         _("expected events changed"), _("{field} changed"))


@router.get("/trials/{trial}/protocol", response_class=HTMLResponse)
def versions_page(request: Request, trial: str) -> HTMLResponse:
    actor = signed_in(request)
    with database(request).read() as session:
        _, protocol = trials.get_trial(session, actor, trial)
        versions = amendments.versions(session, actor, trial)
    for v in versions:
        v["when"] = when(v["effective_from"])
        v["changes"] = {i18n.gettext(part): [translated(line, LINES) for line in lines]
                        for part, lines in (v.get("changes") or {}).items()}
    return render(request, "protocol_versions.html", protocol=protocol, versions=list(reversed(versions)))
