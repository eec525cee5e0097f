"""One patient: the patient's page, randomization (confirm, then submit once) and the allocation."""

from __future__ import annotations

import uuid
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from ... import i18n
from ...clinical import VARIABLES
from ...protocol import Protocol
from ...service import clock, envelopes, patients, randomize, trials
from ...service.accounts import Actor, sees_arm
from ...service.errors import Invalid, ServiceError
from ..csrf import check_csrf
from ..forms import (ScreeningCheck, check_context, check_screening, form_values, in_words, missing_for_randomization,
                     require_randomization_fields, screening_fields)
from .auth import signed_in
from .base import database, in_zone, render, site_zones
from .screening_words import arm_words, screen_page_context, status_words

router = APIRouter(include_in_schema=False)

KEY_FACTS = ("age", "nihss", "aspects", "pc_aspects", "occlusion_site", "etici", "prestroke_mrs", "weight_kg",
             "last_known_well", "randomization")


def patient_context(request: Request, trial: str, patient: str) -> tuple[Actor, Protocol, dict[str, Any]]:
    """(the signed-in user, the trial's protocol, the patient as this user may see it)."""
    actor = signed_in(request)
    with database(request).read() as session:
        _, protocol = trials.get_trial(session, actor, trial)
        view = patients.get_patient(session, actor, trial, patient)
    return actor, protocol, view


def _shown(name: str, stored: Any, zone: str | None = None) -> str:
    """A stored value as people read it: a category's label, a lab in the unit it was entered in, yes or no, a clock
    time in the site's time zone."""
    if isinstance(stored, dict):
        return f"{stored.get('value')} {stored.get('unit')}"
    var = VARIABLES.get(name)
    if var is not None and var.kind == "timestamp" and stored:
        return in_zone(stored, zone, wall_clock=True)
    if var is not None and var.kind in ("category", "grade"):
        return next((i18n.gettext(m.label) for m in var.enum_scale() if m.value == stored), str(stored))
    if isinstance(stored, bool):
        return i18n.gettext("yes") if stored else i18n.gettext("no")
    unit = f" {var.unit}" if var is not None and var.unit and not isinstance(stored, str) else ""
    return f"{stored}{unit}"


def still_needed(protocol: Protocol, view: dict[str, Any]) -> list[str]:
    """What stands between a patient not yet randomized and randomization, in words: each open criterion's text and
    the label of each field randomization reads that the record lacks (whatever status was stored with it)."""
    missing = [i18n.gettext(f.label) for f in missing_for_randomization(protocol, view["data"])]
    texts = {c.id: i18n.protocol_text(c, "text") for c in protocol.criteria}
    open_criteria = [texts[c] for c in view["outstanding"] if c in texts]
    return missing + [t for t in open_criteria if t not in missing]


@router.get("/trials/{trial}/patients/{patient}", response_class=HTMLResponse)
def patient_page(request: Request, trial: str, patient: str) -> HTMLResponse:
    from .escalation import escalation_table_for  # here: escalation.py builds on this module
    from .followup import unblinding_link  # followup.py builds on this module too

    actor, protocol, view = patient_context(request, trial, patient)
    needed = [] if view["randomized"] else still_needed(protocol, view)
    texts = {c.id: i18n.protocol_text(c, "text") for c in protocol.criteria}
    return render(request, "patient.html", protocol=protocol, p=view, can_randomize=actor.may("randomizing"),
                  shows_arm=sees_arm(actor.role, protocol.design.masking),
                  randomizable=view["status"] == "eligible" and not missing_for_randomization(protocol, view["data"]),
                  still_needed=needed, excluded_by=[texts.get(c, c) for c in view["failing"]],
                  can_correct=not view["randomized"] and actor.may("correcting screening data"),
                  notice=request.session.pop(NOTICE, None), arm_words=arm_words(protocol),
                  escalation=escalation_table_for(request, actor, trial, protocol),
                  unblinded=unblinding_link(request, actor, trial, patient)
                  if view["randomized"] and not sees_arm(actor.role, protocol.design.masking) else None)


@router.get("/trials/{trial}/patients/{patient}/randomize", response_class=HTMLResponse)
def confirm_page(request: Request, trial: str, patient: str) -> Response:
    actor, protocol, view = patient_context(request, trial, patient)
    actor.require("randomizing")
    if view["randomized"]:
        return RedirectResponse(f"/trials/{trial}/patients/{patient}/allocation", status_code=303)
    if view["status"] != "eligible" or missing_for_randomization(protocol, view["data"]):
        return RedirectResponse(f"/trials/{trial}/patients/{patient}", status_code=303)  # it says what is missing
    zone = site_zones(database(request)).get(view["site"])
    facts = [(i18n.gettext(VARIABLES[k].label) if k in VARIABLES else k, _shown(k, view["data"][k], zone))
             for k in KEY_FACTS if k in view["data"]]
    # The key is made here, once per page: a double click or a resubmitted form sends it again
    # and gets the first answer back instead of a second randomization.
    with database(request).read() as session:  # the site's envelope procedure, should the link fail
        envelope = envelopes.procedure_for_patient(session, actor, trial, patient)
    return render(request, "confirm.html", protocol=protocol, p=view, facts=facts, key=str(uuid.uuid4()),
                  envelope=envelope)


@router.post("/trials/{trial}/patients/{patient}/randomize")
async def randomize_submit(request: Request, trial: str, patient: str) -> RedirectResponse:
    actor = signed_in(request)
    form = await request.form()
    check_csrf(request, form.get("csrf"))
    if form.get("confirm") != "yes":
        raise Invalid(i18n.gettext("tick the box to confirm the eligibility facts"),
                      [{"field": "confirm", "value": None, "message": i18n.gettext("required")}])
    with database(request).write(trial) as session:
        randomize.randomize(session, actor, trial, patient, str(form.get("key", "")))
    return RedirectResponse(f"/trials/{trial}/patients/{patient}/allocation", status_code=303)


@router.get("/trials/{trial}/patients/{patient}/allocation", response_class=HTMLResponse)
def allocation_page(request: Request, trial: str, patient: str) -> Response:
    _, protocol, view = patient_context(request, trial, patient)
    if not view["randomized"]:
        return RedirectResponse(f"/trials/{trial}/patients/{patient}", status_code=303)
    arm = next((a for a in protocol.arms if a.id == view["randomization"].get("arm")), None)
    return render(request, "allocation.html", protocol=protocol, p=view, r=view["randomization"], arm=arm)


NOTICE = "patient_notice"



def _correction_page(request: Request, actor: Actor, protocol: Protocol, view: dict[str, Any], values: dict[str, Any],
                     checked: ScreeningCheck, errors: dict[str, str], status: int = 200) -> HTMLResponse:
    fields = screening_fields(protocol)
    return render(request, "screening_correct.html", status=status, p=view, values=values, errors=errors,
                  **check_context(checked), **screen_page_context(protocol, fields, actor, [view["site"]]))


@router.get("/trials/{trial}/patients/{patient}/screening", response_class=HTMLResponse)
def correction_page(request: Request, trial: str, patient: str) -> Response:
    """The screening data as stored, to correct with a reason (before randomization)."""
    actor, protocol, view = patient_context(request, trial, patient)
    actor.require("correcting screening data")
    if view["randomized"]:
        return RedirectResponse(f"/trials/{trial}/patients/{patient}", status_code=303)
    with database(request).read() as session:
        zone = clock.site_zone(session, view["site"])
    fields = screening_fields(protocol)
    values = {**form_values(fields, view["data"], zone), "site": view["site"]}
    checked = check_screening(protocol, fields, values, zone)
    return _correction_page(request, actor, protocol, view, values, checked, {})


@router.post("/trials/{trial}/patients/{patient}/screening", response_class=HTMLResponse)
async def correction_submit(request: Request, trial: str, patient: str) -> Response:
    """Correct the screening data: every field as the form now holds it (a blank one removed), re-screened; a refusal
    shows every problem at once and keeps what was typed."""
    actor, protocol, view = patient_context(request, trial, patient)
    form = await request.form()
    check_csrf(request, form.get("csrf"))
    actor.require("correcting screening data")
    with database(request).read() as session:
        zone = clock.site_zone(session, view["site"])
    fields = screening_fields(protocol)
    checked = check_screening(protocol, fields, form, zone)
    require_randomization_fields(checked)
    errors = dict(checked.errors)
    reason = str(form.get("reason", "") or "").strip()
    if not reason:
        errors["reason"] = i18n.gettext("say why the screening data change")
    if not errors:
        changes: dict[str, Any] = {f.name: checked.data.get(f.name) for f in fields}
        changes["attestations"] = checked.attestations or None
        try:
            with database(request).write(trial) as session:
                updated = patients.update_screening(session, actor, trial, patient, changes, reason)
            request.session[NOTICE] = i18n.gettext("Screening data corrected; the patient is {status}.").format(
                status=status_words().get(updated["status"], updated["status"]))
            return RedirectResponse(f"/trials/{trial}/patients/{patient}", status_code=303)
        except ServiceError as exc:
            errors.update({e["field"]: in_words(e["message"]) for e in exc.errors} or {"form": exc.message})
    values = {**dict(form), "site": view["site"]}
    return _correction_page(request, actor, protocol, view, values, checked, errors, status=422)
