"""Follow-up of a randomized patient: the dose sheet, visits, serious adverse events, emergency unblinding."""

from __future__ import annotations

import datetime as dt
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from starlette.datastructures import FormData

from ...dosing.instructions import ROUTE_LABELS
from ...protocol import Protocol
from ...protocol.edit_checks import label, shown
from ...service import dose_sheet, edit_checks, notifications, serious_adverse_events, trials, unblinding, visits
from ...service.accounts import Actor
from ...service.blinding import sees_arm
from ...service.errors import Forbidden, ServiceError
from ..csrf import check_csrf
from ..forms import parse_visit_form, visit_fields
from .auth import signed_in
from .base import database, render
from .patients import patient_context

router = APIRouter(include_in_schema=False)


@router.get("/trials/{trial}/patients/{patient}/dose", response_class=HTMLResponse)
def dose_page(request: Request, trial: str, patient: str) -> HTMLResponse:
    actor, protocol, view = patient_context(request, trial, patient)
    actor.require("reading a dose sheet")
    with database(request).read() as session:
        sheet = dose_sheet.dose(session, actor, trial, patient)
    arm = next((a for a in protocol.arms if a.id == sheet.get("arm")), None)
    return render(request, "dose.html", protocol=protocol, p=view, sheet=sheet, arm=arm, routes=ROUTE_LABELS)


def _visits(request: Request, trial: str, patient: str, status: int = 200, errors: dict[str, str] | None = None,
            open_visit: str | None = None, values: dict[str, Any] | None = None,
            checks: list[dict[str, Any]] | None = None) -> HTMLResponse:
    actor, protocol, view = patient_context(request, trial, patient)
    with database(request).read() as session:
        schedule = visits.visits(session, actor, trial, patient)
        saes = (serious_adverse_events.list_saes(session, actor, trial, patient)
                if actor.may("reading safety data") else None)
    # Each form holds what this user records; assessments reserved for the blinded outcome assessor are shown
    # to site staff read-only (`assessor_only`), and the outcome assessor's schedule holds nothing else.
    forms = {v["visit"]: visit_fields([a for a in v["assessments"] if a not in v.get("assessor_only", [])])
             for v in schedule["visits"]}
    reserved = {v["visit"]: visit_fields(v.get("assessor_only", [])) for v in schedule["visits"]}
    entered = {v["visit"]: [(label(k), shown(k, x)) for k, x in v.get("values", {}).items()]
               for v in schedule["visits"]}
    can_enter = actor.may("entering follow-up data") or actor.may("recording blinded outcome assessments")
    return render(request, "visits.html", status=status, protocol=protocol, p=view, schedule=schedule, forms=forms,
                  reserved=reserved, entered=entered, saes=saes, errors=errors or {}, open_visit=open_visit,
                  values=values, checks=checks or [], today=dt.date.today().isoformat(), can_enter=can_enter,
                  can_report_sae=actor.may("reporting a serious adverse event"))


@router.get("/trials/{trial}/patients/{patient}/visits", response_class=HTMLResponse)
def visits_page(request: Request, trial: str, patient: str) -> HTMLResponse:
    return _visits(request, trial, patient, open_visit=request.query_params.get("visit"))


def _visit_values(protocol: Protocol, visit: str, form: FormData) -> tuple[dict[str, Any], dict[str, str]]:
    scheduled = next((v for v in protocol.visits if v.id == visit), None)
    # Every assessment of the visit is read from the form: one this user may not record (a forged field)
    # reaches the service, which refuses it by name.
    fields = visit_fields(scheduled.assessments) if scheduled else []
    values, errors = parse_visit_form(fields, form)
    labels = {f.name: f.label for f in fields}
    return values, {k: f"{labels.get(k, k)}: {m}" for k, m in errors.items()}


def _checks(request: Request, actor: Actor, trial: str, patient: str, visit: str, form: FormData,
            values: dict[str, Any], errors: dict[str, str]) -> list[dict[str, Any]]:
    """The findings on the form as it stands: the fields that could not be read, then the service's preview (its
    refusals as errors, the protocol's failing edit checks as warnings)."""
    with database(request).read() as session:
        findings = edit_checks.preview(session, actor, trial, patient, visit, str(form.get("visit_date", "")),
                                       values)
    typed = [{"severity": "error", "field": k, "label": None, "message": m, "check": None} for k, m in errors.items()]
    return typed + [f for f in findings if f["field"] not in errors]


def _confirmed(form: FormData, warnings: list[dict[str, Any]]) -> bool:
    """Whether the user confirmed every warning now shown (the very messages) and gave the reason."""
    shown_before = {str(m) for m in form.getlist("confirmed")}
    return (form.get("confirm") == "yes" and bool(str(form.get("confirm_reason", "")).strip())
            and all(w["message"] in shown_before for w in warnings))


@router.post("/trials/{trial}/patients/{patient}/visits/{visit}/check", response_class=HTMLResponse)
async def visit_check(request: Request, trial: str, patient: str, visit: str) -> HTMLResponse:
    """The edit checks as the form is filled (static/visits.js posts the form as a field is left): the errors
    that stop the save and the warnings to confirm with a reason; nothing stored."""
    actor = signed_in(request)
    form = await request.form()
    check_csrf(request, request.headers.get("X-CSRF-Token") or form.get("csrf"))
    with database(request).read() as session:
        _, protocol = trials.get_trial(session, actor, trial)
    values, errors = _visit_values(protocol, visit, form)
    return render(request, "_visit_checks.html", checks=_checks(request, actor, trial, patient, visit, form, values,
                                                                errors), values=dict(form), visit_id=visit)


@router.post("/trials/{trial}/patients/{patient}/visits/{visit}", response_class=HTMLResponse)
async def visit_submit(request: Request, trial: str, patient: str, visit: str) -> Response:
    """Save a visit's form. An error (a value that cannot be read, a date the platform refuses) is not saved; a
    warning of the protocol's edit checks is saved only once confirmed with a reason, which is audited. What was
    typed comes back on any refusal."""
    actor = signed_in(request)
    form = await request.form()
    check_csrf(request, form.get("csrf"))
    with database(request).read() as session:
        _, protocol = trials.get_trial(session, actor, trial)
    values, errors = _visit_values(protocol, visit, form)
    status, checks = 422, []
    try:
        checks = _checks(request, actor, trial, patient, visit, form, values, errors)
        warnings = [c for c in checks if c["severity"] == "warning"]
        if not any(c["severity"] == "error" for c in checks) and (not warnings or _confirmed(form, warnings)):
            with database(request).write() as session:
                visits.record_visit(session, actor, trial, patient, visit, str(form.get("visit_date", "")),
                                    values, str(form.get("reason", "")) or None)
                if warnings:
                    edit_checks.confirm_warnings(session, actor, trial, patient, visit,
                                                 str(form.get("confirm_reason", "")), warnings)
            return RedirectResponse(f"/trials/{trial}/patients/{patient}/visits#{visit}", status_code=303)
        errors = {c["field"]: c["message"] for c in checks if c["severity"] == "error"}
        if warnings and form.get("confirm") == "yes" and not str(form.get("confirm_reason", "")).strip():
            errors["confirm_reason"] = "give the reason the values are right"
    except Forbidden as exc:
        status, errors = exc.status, {"form": exc.message}
    except ServiceError as exc:
        errors = {e["field"]: e["message"] for e in exc.errors} or {"form": exc.message}
    return _visits(request, trial, patient, status=status, errors=errors, open_visit=visit, values=dict(form),
                   checks=checks)


@router.post("/trials/{trial}/patients/{patient}/sae", response_class=HTMLResponse)
async def sae_submit(request: Request, trial: str, patient: str) -> RedirectResponse:
    actor = signed_in(request)
    form = await request.form()
    check_csrf(request, form.get("csrf"))
    data: dict[str, Any] = {k: str(form.get(k, "")) for k in ("term", "onset_date", "outcome", "relatedness",
                                                               "description")}
    data["criteria"] = [str(c) for c in form.getlist("criteria")]
    with database(request).write() as session:
        serious_adverse_events.report_sae(session, actor, trial, patient, data)
    notifications.deliver(database(request))  # after the commit
    return RedirectResponse(f"/trials/{trial}/patients/{patient}/visits#saes", status_code=303)


def unblinding_link(request: Request, actor: Actor, trial: str, patient: str) -> str | None:
    """The page of this investigator's recorded unblinding of the patient, once there is one (the patient page
    then offers it instead of the unblinding button); None otherwise."""
    if not actor.may("emergency unblinding"):
        return None
    with database(request).read() as session:
        past = unblinding.patient_unblindings(session, actor, trial, patient)
    mine = next((u for u in past if u["unblinded_by"] == actor.name), None)
    return None if mine is None else _result_url(trial, patient, mine["unblinding_id"])


def _result_url(trial: str, patient: str, unblinding_id: int) -> str:
    return f"/trials/{trial}/patients/{patient}/unblindings/{unblinding_id}"


def _arm_names(protocol: Protocol) -> dict[str, str]:
    return {a.id: a.name for a in protocol.arms}


@router.get("/trials/{trial}/patients/{patient}/unblind", response_class=HTMLResponse)
def unblind_page(request: Request, trial: str, patient: str) -> HTMLResponse:
    """The unblinding form, with the patient's past unblindings; once this investigator has unblinded the patient,
    a link to the recorded result instead of the form."""
    actor, protocol, view = patient_context(request, trial, patient)
    actor.require("emergency unblinding")
    with database(request).read() as session:
        past = unblinding.patient_unblindings(session, actor, trial, patient)
    mine = next((u for u in past if u["unblinded_by"] == actor.name), None)
    return render(request, "unblind.html", protocol=protocol, p=view, past=past, mine=mine,
                  arms=_arm_names(protocol))


@router.post("/trials/{trial}/patients/{patient}/unblind")
async def unblind_submit(request: Request, trial: str, patient: str) -> RedirectResponse:
    """Post/redirect/get: the unblinding is recorded once (a resubmitted form returns the record made) and the
    browser is sent to the recorded result, which a reload only reads."""
    actor = signed_in(request)
    form = await request.form()
    check_csrf(request, form.get("csrf"))
    with database(request).write() as session:
        revealed, new = unblinding.unblind_once(session, actor, trial, patient, str(form.get("reason", "")))
    if new:
        notifications.deliver(database(request))  # after the commit: the DSMB and the admin are told
    return RedirectResponse(_result_url(trial, patient, revealed["unblinding_id"]), status_code=303)


@router.get("/trials/{trial}/patients/{patient}/unblindings/{unblinding_id}", response_class=HTMLResponse)
def unblinding_result_page(request: Request, trial: str, patient: str, unblinding_id: int) -> HTMLResponse:
    """One recorded unblinding: who, when, why, and the arm and kit as the unblinding service shows them to this
    user (the arm to the investigator who unblinded and to the log's readers who see arms)."""
    actor, protocol, view = patient_context(request, trial, patient)
    with database(request).read() as session:
        shown = unblinding.unblinding_of(session, actor, trial, patient, unblinding_id)
        past = unblinding.patient_unblindings(session, actor, trial, patient)
    return render(request, "unblinding.html", protocol=protocol, p=view, u=shown, past=past,
                  arms=_arm_names(protocol))


@router.get("/trials/{trial}/unblindings", response_class=HTMLResponse)
def unblinding_log_page(request: Request, trial: str) -> HTMLResponse:
    """The trial's unblinding log for the DSMB and the admin (the arm only where the role sees arms)."""
    actor = signed_in(request)
    with database(request).read() as session:
        _, protocol = trials.get_trial(session, actor, trial)
        log = unblinding.unblindings(session, actor, trial)
    return render(request, "unblindings.html", protocol=protocol, log=log, arms=_arm_names(protocol),
                  shows_arm=sees_arm(actor.role, protocol.design.masking))
