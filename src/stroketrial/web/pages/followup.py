"""Follow-up of a randomized patient: the dose sheet, visits, serious adverse events, emergency unblinding."""

from __future__ import annotations

import datetime as dt
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from ...dosing.instructions import ROUTE_LABELS
from ...service import dose_sheet, notifications, serious_adverse_events, trials, unblinding, visits
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
            open_visit: str | None = None, values: dict[str, Any] | None = None) -> HTMLResponse:
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
    can_enter = actor.may("entering follow-up data") or actor.may("recording blinded outcome assessments")
    return render(request, "visits.html", status=status, protocol=protocol, p=view, schedule=schedule, forms=forms,
                  reserved=reserved, saes=saes, errors=errors or {}, open_visit=open_visit, values=values,
                  today=dt.date.today().isoformat(), can_enter=can_enter,
                  can_report_sae=actor.may("reporting a serious adverse event"))


@router.get("/trials/{trial}/patients/{patient}/visits", response_class=HTMLResponse)
def visits_page(request: Request, trial: str, patient: str) -> HTMLResponse:
    return _visits(request, trial, patient, open_visit=request.query_params.get("visit"))


@router.post("/trials/{trial}/patients/{patient}/visits/{visit}", response_class=HTMLResponse)
async def visit_submit(request: Request, trial: str, patient: str, visit: str) -> Response:
    actor = signed_in(request)
    form = await request.form()
    check_csrf(request, form.get("csrf"))
    with database(request).read() as session:
        _, protocol = trials.get_trial(session, actor, trial)
    scheduled = next((v for v in protocol.visits if v.id == visit), None)
    # Every assessment of the visit is read from the form: one this user may not record (a forged field)
    # reaches the service, which refuses it by name.
    fields = visit_fields(scheduled.assessments) if scheduled else []
    values, errors = parse_visit_form(fields, form)
    status = 422
    if not errors:
        try:
            with database(request).write() as session:
                visits.record_visit(session, actor, trial, patient, visit, str(form.get("visit_date", "")),
                                    values, str(form.get("reason", "")) or None)
            return RedirectResponse(f"/trials/{trial}/patients/{patient}/visits#{visit}", status_code=303)
        except Forbidden as exc:
            status, errors = exc.status, {"form": exc.message}
        except ServiceError as exc:
            errors = {e["field"]: e["message"] for e in exc.errors} or {"form": exc.message}
    return _visits(request, trial, patient, status=status, errors=errors, open_visit=visit, values=dict(form))


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


@router.get("/trials/{trial}/patients/{patient}/unblind", response_class=HTMLResponse)
def unblind_page(request: Request, trial: str, patient: str) -> HTMLResponse:
    actor, protocol, view = patient_context(request, trial, patient)
    actor.require("emergency unblinding")
    return render(request, "unblind.html", protocol=protocol, p=view, revealed=None)


@router.post("/trials/{trial}/patients/{patient}/unblind", response_class=HTMLResponse)
async def unblind_submit(request: Request, trial: str, patient: str) -> HTMLResponse:
    actor = signed_in(request)
    form = await request.form()
    check_csrf(request, form.get("csrf"))
    with database(request).write() as session:
        revealed = unblinding.unblind(session, actor, trial, patient, str(form.get("reason", "")))
    notifications.deliver(database(request))  # after the commit: the DSMB and the admin are told
    _, protocol, view = patient_context(request, trial, patient)
    arm = next(a for a in protocol.arms if a.id == revealed["arm"])
    return render(request, "unblind.html", protocol=protocol, p=view, revealed=revealed, arm=arm)
