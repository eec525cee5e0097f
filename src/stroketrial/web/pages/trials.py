"""The trials a user works on, one trial's patients, and screening a new patient (with live eligibility)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any
from zoneinfo import ZoneInfo

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from sqlalchemy.orm import Session

from ... import i18n
from ...service import clock, patients, trials
from ...protocol import Protocol
from ...service.accounts import Actor, sees_arm
from ...service.errors import ServiceError
from ...service.work_list import work_list
from ..csrf import check_csrf
from ..forms import (FormField, ScreeningCheck, check_context, check_screening, in_words,
                     require_randomization_fields, screening_fields)
from .auth import signed_in
from .base import database, render
from .escalation import escalation_table_for
from .screening_words import arm_words, screen_page_context, screening_words

router = APIRouter(include_in_schema=False)


@router.get("/", response_class=HTMLResponse)
def home(request: Request) -> HTMLResponse:
    actor = signed_in(request)
    with database(request).read() as session:
        listed = trials.list_trials(session, actor)
        for t in listed:
            t["title"] = i18n.protocol_text(trials.get_trial(session, actor, t["id"])[1], "title")
            t.update(patients.patient_counts(session, actor, t["id"]))
    return render(request, "home.html", trials=listed)


@router.get("/trials/{trial}", response_class=HTMLResponse)
def trial_page(request: Request, trial: str) -> HTMLResponse:
    actor = signed_in(request)
    with database(request).read() as session:
        _, protocol = trials.get_trial(session, actor, trial)
        rows = patients.list_patients(session, actor, trial)
        to_do = work_list(session, actor, trial)
    return render(request, "trial.html", protocol=protocol, patients=rows, can_screen=actor.may("screening"),
                  to_do=to_do, arm_words=arm_words(protocol),
                  shows_arm=sees_arm(actor.role, protocol.design.masking),
                  escalation=escalation_table_for(request, actor, trial, protocol))


def zone_of(session: Session, trial: str, site: str) -> ZoneInfo | None:
    return clock.site_zone(session, site) if site in trials.trial_sites(session, trial) else None


@router.get("/trials/{trial}/screen", response_class=HTMLResponse)
def screen_page(request: Request, trial: str) -> HTMLResponse:
    actor = signed_in(request)
    actor.require("screening")
    with database(request).read() as session:
        _, protocol = trials.get_trial(session, actor, trial)
        sites = trials.trial_sites(session, trial)
    return render(request, "screen.html", values={}, errors={}, result=None,
                  **screen_page_context(protocol, screening_fields(protocol), actor, sites))


@router.post("/trials/{trial}/screen/preview", response_class=HTMLResponse)
async def screen_preview(request: Request, trial: str) -> HTMLResponse:
    """The live eligibility panel: criteria met, not met or open, as the form fills in (nothing stored); a field
    with an invalid value is set aside and named, the rest screened."""
    actor = signed_in(request)
    form = await request.form()
    check_csrf(request, request.headers.get("X-CSRF-Token") or form.get("csrf"))
    with database(request).read() as session:
        _, protocol = trials.get_trial(session, actor, trial)
        zone = zone_of(session, trial, str(form.get("site", "")))
    fields = screening_fields(protocol)
    checked = check_screening(protocol, fields, form, zone)
    return render(request, "_eligibility.html", errors=checked.errors, labels=screening_words(protocol, fields),
                  protocol=protocol, **check_context(checked))


@dataclass(frozen=True)
class PostedScreening:
    """A screening form posted by a signed-in user (its CSRF token checked), read against the trial's protocol."""

    actor: Actor
    form: Any
    code: str
    site: str
    protocol: Protocol
    sites: list[str]
    fields: list[FormField]
    checked: ScreeningCheck


async def posted_screening(request: Request, trial: str) -> PostedScreening:
    """The screening form and the procedure's "save before" both post the whole screening form: read it once."""
    actor = signed_in(request)
    form = await request.form()
    check_csrf(request, form.get("csrf"))
    code, site = str(form.get("patient_id", "")).strip(), str(form.get("site", ""))
    with database(request).read() as session:
        _, protocol = trials.get_trial(session, actor, trial)
        sites = trials.trial_sites(session, trial)
        zone = zone_of(session, trial, site)
    fields = screening_fields(protocol)
    return PostedScreening(actor, form, code, site, protocol, sites, fields,
                           check_screening(protocol, fields, form, zone))


@router.post("/trials/{trial}/screen", response_class=HTMLResponse)
async def screen_submit(request: Request, trial: str) -> Response:
    posted = await posted_screening(request, trial)
    actor, form, code, site, protocol = posted.actor, posted.form, posted.code, posted.site, posted.protocol
    sites, fields, checked = posted.sites, posted.fields, posted.checked
    require_randomization_fields(checked)
    errors = dict(checked.errors)
    if not code:
        errors = {"patient_id": i18n.gettext("give the patient's screening number"), **errors}
    if not errors:
        try:
            with database(request).write(trial) as session:
                patients.register(session, actor, trial, code, site, checked.data, checked.attestations)
            return RedirectResponse(f"/trials/{trial}/patients/{code}", status_code=303)
        except ServiceError as exc:
            errors.update({e["field"]: in_words(e["message"]) for e in exc.errors} or {"form": exc.message})
    return render(request, "screen.html", status=422, values=dict(form), errors=errors,
                  **check_context(checked), **screen_page_context(protocol, fields, actor, sites))
