"""The trial's protocol versions on the pages: each version, when it came into force, what it changed (part by
part), how many patients were screened under it, and which is in force. Amendments are made with
`stroketrial admin amend-protocol`; this page shows them, as `GET /api/v1/trials/{trial}/protocol/versions` does.

    /trials/{trial}/protocol     the protocol's versions and amendments
"""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse

from ... import i18n
from ...protocol import Protocol
from ...protocol.amendments import AmendmentRefused, compare
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
        protocols = {v["version"]: trials.patient_protocol(session, trial, v["version"]) for v in versions}
    for v in versions:
        v["when"] = when(v["effective_from"])
        v["changes"] = _in_words(v.get("changes") or {}, protocols.get(v["version"] - 1), protocols[v["version"]])
    return render(request, "protocol_versions.html", protocol=protocol, versions=list(reversed(versions)))


def _in_words(stored: dict[str, list[str]], before: Protocol | None, after: Protocol) -> dict[str, list[str]]:
    """An amendment's changes in the reader's language: compared again from the two versions, part by part and
    line by line as catalog messages; the stored lines (the record) as they are should the comparison now say
    anything else."""
    as_stored = {i18n.gettext(part): lines for part, lines in stored.items()}
    if not stored or before is None:
        return as_stored
    try:
        changes = compare(before, after)
    except AmendmentRefused:  # pragma: no cover - a stored amendment was allowed
        return as_stored
    return changes.in_words() if changes.to_json() == stored else as_stored
