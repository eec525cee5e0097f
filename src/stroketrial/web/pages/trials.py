"""The trials a user works on, one trial's patients, and screening a new patient (with live eligibility)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from starlette.datastructures import FormData

from ...clinical import PatientDataError, parse_patient
from ...eligibility import ScreeningInputError, ScreeningResult, screen
from ...protocol import Protocol
from ...service import patients, trials
from ...service.accounts import Actor, sees_arm
from ...service.errors import ServiceError
from ...service.work_list import work_list
from ..csrf import check_csrf
from ..forms import UNIT_SUFFIX, FormField, parse_screening_form, screening_fields
from .auth import signed_in
from .base import database, render
from .escalation import escalation_table_for

router = APIRouter(include_in_schema=False)


@router.get("/", response_class=HTMLResponse)
def home(request: Request) -> HTMLResponse:
    actor = signed_in(request)
    with database(request).read() as session:
        listed = trials.list_trials(session, actor)
        for t in listed:
            rows = patients.list_patients(session, actor, t["id"])
            t["registered"] = len(rows)
            t["randomized"] = sum(r["randomized"] for r in rows)
            t["awaiting"] = sum(r["status"] == "eligible" and not r["randomized"] for r in rows)
    return render(request, "home.html", trials=listed)


@router.get("/trials/{trial}", response_class=HTMLResponse)
def trial_page(request: Request, trial: str) -> HTMLResponse:
    actor = signed_in(request)
    with database(request).read() as session:
        _, protocol = trials.get_trial(session, actor, trial)
        rows = patients.list_patients(session, actor, trial)
        to_do = work_list(session, actor, trial)
    return render(request, "trial.html", protocol=protocol, patients=rows, can_screen=actor.may("screening"),
                  to_do=to_do,
                  shows_arm=sees_arm(actor.role, protocol.design.masking),
                  escalation=escalation_table_for(request, actor, trial, protocol))


def _screen_context(protocol: Protocol, actor: Actor, sites: list[str]) -> dict[str, Any]:
    return {"protocol": protocol, "fields": screening_fields(protocol), "unit_suffix": UNIT_SUFFIX,
            "attestations": [c for c in protocol.criteria if c.attestation is not None],
            "sites": [s for s in sites if actor.can_see_site(s)]}


@router.get("/trials/{trial}/screen", response_class=HTMLResponse)
def screen_page(request: Request, trial: str) -> HTMLResponse:
    actor = signed_in(request)
    actor.require("screening")
    with database(request).read() as session:
        _, protocol = trials.get_trial(session, actor, trial)
        sites = trials.trial_sites(session, trial)
    return render(request, "screen.html", values={}, errors={}, result=None,
                  **_screen_context(protocol, actor, sites))


def _preview(protocol: Protocol, fields: list[FormField],
             form: FormData) -> tuple[ScreeningResult | None, dict[str, str]]:
    attestation_ids = [c.id for c in protocol.criteria if c.attestation is not None]
    data, attestations, errors = parse_screening_form(fields, form, attestation_ids)
    if attestations:
        data["attestations"] = attestations
    try:
        return screen(protocol, parse_patient(data)), errors
    except (PatientDataError, ScreeningInputError) as exc:
        errors.update({e.field: e.message for e in exc.errors})
        return None, errors


@router.post("/trials/{trial}/screen/preview", response_class=HTMLResponse)
async def screen_preview(request: Request, trial: str) -> HTMLResponse:
    """The live eligibility panel: criteria met, not met or open, as the form fills in (nothing stored)."""
    actor = signed_in(request)
    form = await request.form()
    check_csrf(request, request.headers.get("X-CSRF-Token") or form.get("csrf"))
    with database(request).read() as session:
        _, protocol = trials.get_trial(session, actor, trial)
    result, errors = _preview(protocol, screening_fields(protocol), form)
    return render(request, "_eligibility.html", result=result, errors=errors)


@router.post("/trials/{trial}/screen", response_class=HTMLResponse)
async def screen_submit(request: Request, trial: str) -> Response:
    actor = signed_in(request)
    form = await request.form()
    check_csrf(request, form.get("csrf"))
    with database(request).read() as session:
        _, protocol = trials.get_trial(session, actor, trial)
        sites = trials.trial_sites(session, trial)
    fields = screening_fields(protocol)
    attestation_ids = [c.id for c in protocol.criteria if c.attestation is not None]
    data, attestations, errors = parse_screening_form(fields, form, attestation_ids)
    code, site = str(form.get("patient_id", "")).strip(), str(form.get("site", ""))
    if not code:
        errors["patient_id"] = "give the patient's screening number"
    if not errors:
        try:
            with database(request).write() as session:
                patients.register(session, actor, trial, code, site, data, attestations)
            return RedirectResponse(f"/trials/{trial}/patients/{code}", status_code=303)
        except ServiceError as exc:
            errors.update({e["field"]: e["message"] for e in exc.errors} or {"form": exc.message})
    result, _ = _preview(protocol, fields, form)
    return render(request, "screen.html", status=422, values=dict(form), errors=errors, result=result,
                  **_screen_context(protocol, actor, sites))
