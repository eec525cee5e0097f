"""Randomization during the procedure: saving a patient before it, and the page at the angiography table.

The screening form's "Save before the procedure" posts here: the patient is registered with everything known
then and waits for the procedure. The procedure page asks only the protocol's during-procedure fields (big targets: a
stepper for the passes, toggle buttons for the devices, radio buttons for the eTICI), shows the verdict as they are
given, and randomizes with one press of "Randomize now" (service.procedure). The time of randomization is the
server's clock.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from ... import i18n
from ...clinical import VARIABLES
from ...clinical.record import ATTESTATIONS_KEY
from ...eligibility import ScreeningResult
from ...protocol import Protocol
from ...service import clock, patients, procedure, trials
from ...service.accounts import Actor
from ...service.errors import ServiceError
from ..csrf import check_csrf
from ..forms import (ATTEST_PREFIX, FormField, check_context, check_screening, form_values, in_words,
                     parse_screening_form, screen_context, screening_fields)
from .auth import signed_in
from .base import database, in_zone, render, templates
from .trials import posted_screening

router: APIRouter = APIRouter(include_in_schema=False)
# The screening page's button and the patient page's card (_procedure_*.html) ask these.
templates.env.globals["waiting_for_procedure"] = procedure.waiting_for_procedure
templates.env.globals["procedure_step_open"] = procedure.procedure_step_open


# ---- saving before the procedure (the screening form's second button) ----------------------------------------
@router.post("/trials/{trial}/screen/before-procedure", response_class=HTMLResponse)
async def save_before_procedure(request: Request, trial: str) -> Response:
    """Register the patient with what the form holds; the during-procedure fields may wait. A refusal shows the
    screening page again with every problem on its field."""
    posted = await posted_screening(request, trial)
    actor, form, code, site, protocol = posted.actor, posted.form, posted.code, posted.site, posted.protocol
    sites, fields, checked = posted.sites, posted.fields, posted.checked
    errors = dict(checked.errors)
    for f in checked.needed_to_randomize:
        errors.setdefault(f.name, i18n.gettext("required: randomization needs it"))
    if not code:
        errors = {"patient_id": i18n.gettext("give the patient's screening number"), **errors}
    if not errors:
        try:
            with database(request).write(trial) as session:
                procedure.register_before_procedure(session, actor, trial, code, site, checked.data,
                                                    checked.attestations)
            return RedirectResponse(f"/trials/{trial}/patients/{code}", status_code=303)
        except ServiceError as exc:
            errors.update({_form_name(e["field"]): in_words(e["message"]) for e in exc.errors}
                          or {"form": exc.message})
    return render(request, "screen.html", status=422, values=dict(form), errors=errors,
                  **check_context(checked), **screen_context(protocol, fields, actor, sites))


def _form_name(field: str) -> str:
    """A service's field name as the form calls it (an attestation is `attest_<criterion>`)."""
    prefix = ATTESTATIONS_KEY + "."
    return ATTEST_PREFIX + field.removeprefix(prefix) if field.startswith(prefix) else field


# ---- the procedure page ------------------------------------------------------------------------------------
def procedure_fields(protocol: Protocol) -> list[FormField]:
    """The during-procedure fields, in the protocol's order; the eTICI without a bare 2b where the trial does not
    accept it."""
    during = procedure.during_procedure(protocol)
    by_name = {f.name: f for f in screening_fields(protocol)}
    fields = []
    for name in during.fields:
        f = by_name[name]
        if f.kind == "grade" and not protocol.etici_2b_accepted:
            kept = [(c, label) for c, label in zip(f.choices, f.choice_labels, strict=True) if c != "2b"]
            f = FormField(f.name, f.label, f.kind, choices=tuple(c for c, _ in kept),
                          choice_labels=tuple(label for _, label in kept), help=f.help, used_by=f.used_by)
        fields.append(f)
    return fields


def toggles(protocol: Protocol, fields: list[FormField]) -> set[str]:
    """The yes/no fields shown as toggle buttons, off meaning no: what an inclusion criterion needs done (the
    devices tried). A flag that excludes (a haemorrhage) is always answered yes or no, never assumed."""
    needed = {name for c in protocol.inclusion for name in c.fields()}
    return {f.name for f in fields if f.kind == "flag" and f.name in needed}


def layout(fields: list[FormField], toggled: set[str]) -> list[tuple[FormField, list[FormField]]]:
    """Each field that is not a toggle, with the toggles shown after it: the devices right after the passes (the
    first number), or after the last field."""
    shown = [f for f in fields if f.name not in toggled]
    devices = [f for f in fields if f.name in toggled]
    after = next((f for f in shown if f.kind in ("integer", "number")), shown[-1] if shown else None)
    return [(f, devices if f is after else []) for f in shown]


def _form_data(protocol: Protocol, fields: list[FormField], form: Mapping[str, Any],
               submitted: bool = True) -> dict[str, Any]:
    """The form with each toggle read as yes (pressed) or, once submitted, no: while the nurse works down the page
    a toggle not yet pressed is not taken as "not tried" (the verdict would say ineligible at the first pass typed)."""
    values = {k: form.get(k) for k in form}
    for name in toggles(protocol, fields):
        values[name] = "yes" if form.get(name) == "yes" else ("no" if submitted else "")
    return values


def _check(protocol: Protocol, fields: list[FormField], stored: Mapping[str, Any], form: Mapping[str, Any],
           zone: Any) -> tuple[dict[str, Any], dict[str, bool], dict[str, str], ScreeningResult | None]:
    """(the fields given, the attestations given, errors by form name, the full screen of stored + given)."""
    during = procedure.during_procedure(protocol)
    data, attestations, errors = parse_screening_form(fields, form, list(during.attestations))
    merged: dict[str, Any] = {**form_values(screening_fields(protocol), stored, zone)}
    merged.update({k: v for k, v in form.items() if k in {f.name for f in fields} and v not in (None, "")})
    merged.update({ATTEST_PREFIX + k: ("yes" if v else "no") for k, v in attestations.items()})
    merged[clock.PLANNED_FIELD] = clock.local_now(zone, None).isoformat(timespec="minutes") if zone else ""
    checked = check_screening(protocol, screening_fields(protocol), merged, zone)
    errors.update({k: v for k, v in checked.errors.items() if k in form or k.removeprefix(ATTEST_PREFIX)
                   in during.attestations})
    return data, attestations, errors, checked.result


def verdict(protocol: Protocol, result: ScreeningResult | None) -> dict[str, Any]:
    """The verdict in a sentence (what the live region says) and the criteria behind it."""
    if result is None:
        return {"status": "incomplete", "summary": i18n.gettext("Fill in the procedure's fields"), "items": []}
    texts = {c.id: c for c in protocol.criteria}
    failing = [texts[c.id] for c in result.criteria if c.excludes and c.id in texts]
    open_ = [texts[c.id] for c in result.criteria
             if c.status in ("missing_data", "needs_attestation") and c.id in texts]
    if result.status == "eligible":
        return {"status": "eligible", "summary": i18n.gettext("Eligible: randomize now"), "items": []}
    if result.status == "ineligible":
        return {"status": "ineligible", "items": failing,
                "summary": i18n.ngettext("Not eligible: %(n)s criterion failed", "Not eligible: %(n)s criteria failed",
                                         len(failing)) % {"n": len(failing)}}
    return {"status": "incomplete", "items": open_,
            "summary": i18n.ngettext("%(n)s criterion still open", "%(n)s criteria still open",
                                     len(open_)) % {"n": len(open_)}}


def _page(request: Request, actor: Actor, protocol: Protocol, view: dict[str, Any], zone: Any, form: Mapping[str, Any],
          errors: dict[str, str], result: ScreeningResult | None, status: int = 200, notice: str | None = None,
          key: str | None = None) -> HTMLResponse:
    fields = procedure_fields(protocol)
    during = procedure.during_procedure(protocol)
    attestations = [c for c in protocol.criteria if c.id in during.attestations]
    puncture = view["data"].get("arterial_puncture")
    return render(request, "procedure.html", status=status, protocol=protocol, p=view, fields=fields,
                  toggles=toggles(protocol, fields), layout=layout(fields, toggles(protocol, fields)),
                  attestations=attestations, values=form, errors=errors,
                  verdict=verdict(protocol, result), key=key or str(uuid.uuid4()), notice=notice,
                  puncture=in_zone(puncture, zone.key, wall_clock=True) if puncture and zone else None,
                  now_at_site=in_zone(clock.utcnow().isoformat(), zone.key if zone else None),
                  before=[(VARIABLES[k].label, v) for k, v in _recorded(protocol, view["data"], zone)],
                  during=during)


def _recorded(protocol: Protocol, data: Mapping[str, Any], zone: Any) -> list[tuple[str, str]]:
    """A few facts recorded before the procedure, to check the patient on the table is the one on the page."""
    from .patients import KEY_FACTS, _shown

    during = set(procedure.during_procedure(protocol).fields)
    return [(k, _shown(k, data[k], zone.key if zone else None)) for k in KEY_FACTS
            if k in data and k not in during and k in VARIABLES and VARIABLES[k].kind != "timestamp"]


def _context(request: Request, trial: str, patient: str) -> tuple[Actor, Protocol, dict[str, Any], Any]:
    actor = signed_in(request)
    with database(request).read() as session:
        _, protocol = trials.get_trial(session, actor, trial)
        view = patients.get_patient(session, actor, trial, patient)
        zone = clock.site_zone(session, view["site"])
    procedure.during_procedure(protocol)
    return actor, protocol, view, zone


@router.get("/trials/{trial}/patients/{patient}/procedure", response_class=HTMLResponse)
def procedure_page(request: Request, trial: str, patient: str) -> Response:
    actor, protocol, view, zone = _context(request, trial, patient)
    actor.require("randomizing")
    if view["randomized"]:
        return RedirectResponse(f"/trials/{trial}/patients/{patient}/allocation", status_code=303)
    if not procedure.procedure_step_open(protocol, view):  # excluded before the procedure: the patient page says why
        return RedirectResponse(f"/trials/{trial}/patients/{patient}", status_code=303)
    fields = procedure_fields(protocol)
    values = form_values(fields, view["data"], zone)
    _, _, _, result = _check(protocol, fields, view["data"], values, zone)
    return _page(request, actor, protocol, view, zone, values, {}, result)


@router.post("/trials/{trial}/patients/{patient}/procedure/preview", response_class=HTMLResponse)
async def procedure_preview(request: Request, trial: str, patient: str) -> HTMLResponse:
    """The verdict as the fields are given (nothing stored)."""
    _actor, protocol, view, zone = _context(request, trial, patient)
    form = await request.form()
    check_csrf(request, request.headers.get("X-CSRF-Token") or form.get("csrf"))
    fields = procedure_fields(protocol)
    _, _, _, result = _check(protocol, fields, view["data"], _form_data(protocol, fields, form, submitted=False),
                             zone)
    return render(request, "_procedure_verdict.html", verdict=verdict(protocol, result))


@router.post("/trials/{trial}/patients/{patient}/procedure", response_class=HTMLResponse)
async def procedure_submit(request: Request, trial: str, patient: str) -> Response:
    """Record the procedure's fields and randomize when eligible; ineligible, the page says which criterion failed
    and nothing is randomized; a problem is said on its field and what was given is kept."""
    actor, protocol, view, zone = _context(request, trial, patient)
    form = await request.form()
    check_csrf(request, form.get("csrf"))
    fields = procedure_fields(protocol)
    values = _form_data(protocol, fields, form)
    data, attestations, errors, result = _check(protocol, fields, view["data"], values, zone)
    key = str(form.get("key", ""))
    if not errors:
        try:
            with database(request).write(trial) as session:
                done, _created = procedure.randomize_during_procedure(session, actor, trial, patient, data,
                                                                      attestations, key)
        except ServiceError as exc:
            errors.update({_form_name(e["field"]): in_words(e["message"]) for e in exc.errors}
                          or {"form": exc.message})
        else:
            if done["randomized"]:
                return RedirectResponse(f"/trials/{trial}/patients/{patient}/allocation", status_code=303)
            return _page(request, actor, protocol, done, zone, values, {}, result,
                         notice=i18n.gettext("Recorded. The patient is not eligible: nothing was randomized."))
    return _page(request, actor, protocol, view, zone, values, errors, result, status=422, key=key)
