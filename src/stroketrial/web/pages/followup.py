"""Follow-up of a randomized patient: the dose sheet, visits, serious adverse events, emergency unblinding."""

from __future__ import annotations

import datetime as dt
import re
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from starlette.datastructures import FormData

from ... import i18n
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
    return render(request, "dose.html", protocol=protocol, p=view, sheet=sheet, arm=arm, routes=ROUTE_LABELS,
                  administrations=[_in_words(protocol, sheet.get("kit"), a) for a in sheet["administrations"]])


def route_name(route: str) -> str:
    names = {"intra_arterial": i18n.gettext("intra-arterial"), "intravenous": i18n.gettext("intravenous"),
             "procedure": i18n.gettext("procedure")}
    return names.get(route, ROUTE_LABELS.get(route, route))


def _in_words(protocol: Protocol, kit: str | None, item: dict[str, Any]) -> dict[str, Any]:
    """One administration of the dose sheet with its words in the reader's language: the protocol's (names,
    timings, diluents) through `protocol_text`, the platform's through the catalogs (the working lines and the
    label come worded so from dosing.instructions)."""
    steps = [step for i in protocol.interventions for step in i.steps]
    timing = {s.timing: i18n.protocol_text(s, "timing") for s in steps}
    diluents = {s.diluent: i18n.protocol_text(s, "diluent") for s in steps if s.diluent}
    reconstitutions = {s.reconstitution: i18n.protocol_text(s, "reconstitution") for s in steps if s.reconstitution}
    drug = {i.name: i18n.protocol_text(i, "name") for i in protocol.interventions}
    shown = dict(item)
    intervention = next((i for i in protocol.interventions if i.id == item.get("intervention")), None)
    if intervention is not None:
        shown["name"] = i18n.protocol_text(intervention, "name")
    elif kit:
        shown["name"] = i18n.gettext("study drug from kit {kit}").format(kit=kit)
    shown["route"] = route_name(item.get("route", ""))
    shown["timing"] = timing.get(item.get("timing", ""), item.get("timing", ""))
    if "diluent" in item:
        shown["diluent"] = diluents.get(item["diluent"], item["diluent"])
    if "reconstitution" in item:
        shown["reconstitution"] = reconstitutions.get(item["reconstitution"], item["reconstitution"])
    if "draw_up" in item:
        shown["draw_up"] = next((item["draw_up"].replace(name, words) for name, words in drug.items()
                                 if name in item["draw_up"]), item["draw_up"])
    return shown


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
    # `translate`: the dictionary's words (labels, help) through the catalogs; not the templates' `_`, whose
    # %-formatting breaks on a label holding "%" ("% BOLD signal change").
    return render(request, "visits.html", status=status, protocol=protocol, p=view, schedule=schedule, forms=forms,
                  reserved=reserved, entered=entered, saes=saes, errors=errors or {}, open_visit=open_visit,
                  values=values, checks=checks or [], today=dt.date.today().isoformat(), can_enter=can_enter,
                  can_report_sae=actor.may("reporting a serious adverse event"),
                  visit_names={v.id: i18n.protocol_text(v, "name") for v in protocol.visits},
                  mrs_grades=mrs_grades(), statuses=visit_statuses(), translate=i18n.gettext)


def mrs_grades() -> dict[int, str]:
    """Each grade of the modified Rankin Scale with its definition, as the visit form explains the mRS (the words
    of clinical.scales.MRS_GRADES, which a test holds equal; literal here so the catalogs' extraction finds them)."""
    return {0: i18n.gettext("no symptoms"),
            1: i18n.gettext("no significant disability: able to carry out all usual activities despite some "
                            "symptoms"),
            2: i18n.gettext("slight disability: able to look after own affairs without assistance, but unable to "
                            "carry out all previous activities"),
            3: i18n.gettext("moderate disability: requires some help, but able to walk unassisted"),
            4: i18n.gettext("moderately severe disability: unable to attend to own bodily needs without "
                            "assistance, and unable to walk unassisted"),
            5: i18n.gettext("severe disability: requires constant nursing care and attention, bedridden, "
                            "incontinent"),
            6: i18n.gettext("dead")}


def visit_statuses() -> dict[str, str]:
    """A visit's status (protocol.visit_windows) in words."""
    return {"done": i18n.gettext("done"), "overdue": i18n.gettext("overdue"), "due": i18n.gettext("due"),
            "upcoming": i18n.gettext("upcoming")}


@router.get("/trials/{trial}/patients/{patient}/visits", response_class=HTMLResponse)
def visits_page(request: Request, trial: str, patient: str) -> HTMLResponse:
    return _visits(request, trial, patient, open_visit=request.query_params.get("visit"))


def _visit_values(protocol: Protocol, visit: str, form: FormData) -> tuple[dict[str, Any], dict[str, str]]:
    scheduled = next((v for v in protocol.visits if v.id == visit), None)
    # Every assessment of the visit is read from the form: one this user may not record (a forged field)
    # reaches the service, which refuses it by name.
    fields = visit_fields(scheduled.assessments) if scheduled else []
    values, errors = parse_visit_form(fields, form)
    by_name = {f.name: f for f in fields}
    return values, {k: _refusal_in_words(f"{by_name[k].label}: {m}" if k in by_name else m, by_name.get(k))
                    for k, m in errors.items()}


# How the forms (web.forms) and the assessments (clinical.assessments) refuse a typed value: "<field label>: <the
# value> <why>; <what is allowed>". Said in the reader's language from its parts: the label and what is allowed
# are the dictionary's words (the field's help), the value as typed.
_REFUSAL = re.compile(r"(?:.*: )?(?P<value>'[^':]*'|[^\s:]+) (?P<why>is out of range|is not a number|"
                      r"is not a whole number|is not allowed|is not one of)[;]? .*")


def _refusal_in_words(message: str, field: Any, with_label: bool = True) -> str:
    if i18n.current() == i18n.ENGLISH or field is None:
        return message
    found = _REFUSAL.fullmatch(message)
    if found is None:
        return message
    value = found["value"]
    why = {"is out of range": i18n.gettext("{value} is out of range"),
           "is not a number": i18n.gettext("{value} is not a number"),
           "is not a whole number": i18n.gettext("{value} is not a whole number")}.get(
               found["why"], i18n.gettext("{value} is not one of the choices")).format(value=value)
    allowed = i18n.gettext("a whole number from 0 to 6") if field.name == "mrs" else i18n.gettext(field.help)
    if not with_label:
        return i18n.gettext("{why}; {allowed}").format(why=why, allowed=allowed)
    return i18n.gettext("{label}: {why}; {allowed}").format(label=i18n.gettext(field.label), why=why,
                                                             allowed=allowed)


def _visit_date_in_words(message: str) -> str:
    """The check service's refusals of a visit date (service.edit_checks.preview) in the reader's language."""
    if i18n.current() == i18n.ENGLISH:
        return message
    if message == "the visit date is not given":
        return i18n.gettext("the visit date is not given")
    if (found := re.fullmatch(r"the visit date (?P<day>\S+) is before randomization \((?P<randomized>\S+)\)",
                              message)):
        return i18n.gettext("the visit date {day} is before randomization ({randomized})").format(**found.groupdict())
    if (found := re.fullmatch(r"the visit date (?P<day>\S+) is in the future", message)):
        return i18n.gettext("the visit date {day} is in the future").format(**found.groupdict())
    if (found := re.fullmatch(r"the visit date (?P<day>.+) is not a date", message)):
        return i18n.gettext("the visit date {day} is not a date").format(**found.groupdict())
    return message  # a withdrawal's refusal: the consent service's words


def _checks(request: Request, actor: Actor, protocol: Protocol, patient: str, visit: str, form: FormData,
            values: dict[str, Any], errors: dict[str, str]) -> list[dict[str, Any]]:
    """The findings on the form as it stands: the fields that could not be read, then the service's preview (its
    refusals as errors, the protocol's failing edit checks as warnings). Each says `text` in the reader's
    language: a failing edit check in the protocol's words for it (`protocol_text`); its `message`, which the
    confirmation repeats back, stays as the service wrote it."""
    with database(request).read() as session:
        findings = edit_checks.preview(session, actor, protocol.id, patient, visit, str(form.get("visit_date", "")),
                                       values)
    typed = [{"severity": "error", "field": k, "label": None, "message": m, "check": None} for k, m in errors.items()]
    by_id = {c.id: c for c in protocol.edit_checks}
    scheduled = next((v for v in protocol.visits if v.id == visit), None)
    fields = {f.name: f for f in visit_fields(scheduled.assessments if scheduled else [])}

    def in_words(finding: dict[str, Any]) -> str:
        if finding["check"] in by_id and i18n.current() != i18n.ENGLISH:
            return i18n.protocol_text(by_id[finding["check"]], "text")
        if finding["field"] in errors:
            return str(finding["message"])  # said already (_visit_values)
        if finding["field"] == "visit_date":
            return _visit_date_in_words(finding["message"])
        return _refusal_in_words(finding["message"], fields.get(finding["field"]), with_label=False)

    return [{**f, "text": in_words(f)} for f in typed + [f for f in findings if f["field"] not in errors]]


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
    return render(request, "_visit_checks.html", checks=_checks(request, actor, protocol, patient, visit, form,
                                                                values, errors), values=dict(form), visit_id=visit,
                  translate=i18n.gettext)


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
        checks = _checks(request, actor, protocol, patient, visit, form, values, errors)
        warnings = [c for c in checks if c["severity"] == "warning"]
        if not any(c["severity"] == "error" for c in checks) and (not warnings or _confirmed(form, warnings)):
            with database(request).write(trial) as session:
                visits.record_visit(session, actor, trial, patient, visit, str(form.get("visit_date", "")),
                                    values, str(form.get("reason", "")) or None)
                if warnings:
                    edit_checks.confirm_warnings(session, actor, trial, patient, visit,
                                                 str(form.get("confirm_reason", "")), warnings)
            return RedirectResponse(f"/trials/{trial}/patients/{patient}/visits#{visit}", status_code=303)
        errors = {c["field"]: c["text"] for c in checks if c["severity"] == "error"}
        if warnings and form.get("confirm") == "yes" and not str(form.get("confirm_reason", "")).strip():
            errors["confirm_reason"] = i18n.gettext("give the reason the values are right")
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
    with database(request).write(trial) as session:
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
    return {a.id: i18n.protocol_text(a, "name") for a in protocol.arms}


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
    with database(request).write(trial) as session:
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
