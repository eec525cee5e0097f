"""A dose-escalation trial's pages: the escalation table, enrolment into the open cohort (confirm, then submit
once), the investigator's DLT assessment, and the safety review committee's signed decision.

Every page calls `service.escalation`, as the API does (`web/api_escalation.py`), and decides nothing itself:
the cohorts, the open cohort, what waits and the rule's decision all come from `escalation_view`. This module
only puts the view's codes into words for the templates (`escalation_table`), and the trial and patient pages
use the same words (`escalation_table_for`).

    /trials/{trial}/escalation                        the table: levels x cohorts, what waits, the decisions
    /trials/{trial}/patients/{patient}/enrol          enrol an eligible patient into the open cohort
    /trials/{trial}/patients/{patient}/dlt            the investigator's DLT assessment (or its correction)
    /trials/{trial}/escalation/decision               the committee signs the pending decision, or departs from it
"""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Any
from zoneinfo import ZoneInfo

import anyio
from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from sqlalchemy import select
from sqlalchemy.orm import Session
from starlette.datastructures import FormData

from ... import InputError, i18n
from ...clinical import VARIABLES
from ...dosing.escalation.live import observation_ends
from ...protocol import Protocol
from ...service import escalation, signatures, trials
from ...service.throttle import TooManyAttempts
from ...service.accounts import Actor
from ...service.errors import Conflict, Forbidden, Invalid, ServiceError, Unauthorized
from ...store.models import Site
from ..csrf import check_csrf
from .auth import signed_in
from .base import common_zone, database, in_zone, render, site_zones
from .patients import KEY_FACTS, _shown, patient_context

router = APIRouter(include_in_schema=False)


def _(message: str) -> str:
    """Marks a message for the catalogs (locale/zh_Hans/management.po); it is translated where it is shown."""
    return message


PHASE_LABELS = {"escalation": _("Dose escalation"), "expansion": _("Dose expansion")}
STATUS_LABELS = {"enrolling": _("Enrolling"), "observing": _("Observing the cohort"),
                 "awaiting_confirmation": _("Waiting for the safety review committee"),
                 "expansion": _("Dose expansion"), "complete": _("Complete"), "stopped": _("Stopped")}
# A patient's DLT status: (badge class of app.css, the badge's words).
DLT_MARKS = {"dlt": ("ineligible", "DLT"), "no_dlt": ("eligible", _("no DLT")),
             "observing": ("visit-upcoming", _("observing")), "due": ("incomplete", _("assessment due"))}
# The words the escalation's state and the 3+3 rule come with (dosing/escalation: STATUS_TEXT, the rule's
# decisions), for the catalogs; the state's waiting lines are worded in the reader's language there.
ENGINE_WORDS = (
    _("enrolling"), _("cohort full: waiting for the DLT observation to end"),
    _("waiting for the safety review committee to confirm the decision"),
    _("expansion cohort enrolling at the MTD"), _("escalation and expansion complete"),
    _("stopped: no dose level is tolerated"),
    _("0/3 with a DLT: escalate to the next level"), _("1/3 with a DLT: treat 3 more patients at the same level"),
    _("at most 1/6 with a DLT: escalate to the next level"),
    _("2 or more patients with a DLT: stop; the level below is the MTD"),
    _("2 or more patients with a DLT at the first level: stop; no level is tolerated"),
    _("the top level is tolerated (0/3 or at most 1/6): it is the MTD"),
)


def when(moment: str | dt.datetime, zone: str | None = None) -> str:
    """A stored moment as the pages show them: to the minute, in the site's time zone (named)."""
    return in_zone(moment, zone)


def _dose(view: dict[str, Any], level: int | None) -> str:
    """A level's dose with as many decimals as the protocol's most precise level (0.40, not 0.4, beside 0.35)."""
    doses = {lv["level"]: lv["dose"] for lv in view["levels"]}
    dose = doses.get(level or 0)
    if dose is None:
        return ""
    decimals = max(len(f"{d:g}".partition(".")[2]) for d in doses.values())
    return f"{dose:.{decimals}f} {view['unit']}"


def decision_words(view: dict[str, Any], decision: dict[str, Any] | None) -> str:
    """A decision (the rule's or the committee's) in words, with the dose."""
    if not decision:
        return ""
    if decision["action"] == "treat":
        return i18n.gettext("treat the next cohort at level {level} ({dose})").format(
            level=decision["level"], dose=_dose(view, decision["level"]))
    if decision.get("mtd") is None:
        return i18n.gettext("stop escalation: no dose level is tolerated")
    return i18n.gettext("stop escalation: the MTD is level {level} ({dose})").format(
        level=decision["mtd"], dose=_dose(view, decision["mtd"]))


def short_words(decision: dict[str, Any] | None) -> str:
    """A decision in the few words a column of the table has room for."""
    if not decision:
        return ""
    if decision["action"] == "treat":
        return i18n.gettext("next: level {level}").format(level=decision["level"])
    if decision.get("mtd") is None:
        return i18n.gettext("stop: no MTD")
    return i18n.gettext("stop: MTD level {level}").format(level=decision["mtd"])


def _mark(protocol: Protocol, cohort: dict[str, Any], patient: dict[str, Any], zone: str | None = None
          ) -> dict[str, Any]:
    assert protocol.dose_escalation is not None
    code = patient["patient_id"]
    ends = observation_ends(protocol.dose_escalation, dt.datetime.fromisoformat(patient["enrolled_at"]))
    until = when(ends, zone)
    if patient["dlt"]:
        kind, detail = "dlt", ""
    elif code in cohort["observing"]:
        kind = "observing"
        detail = (i18n.gettext("no DLT so far; until {until}") if patient["dlt"] is False
                  else i18n.gettext("until {until}")).format(until=until)
    elif code in cohort["unassessed"]:
        kind = "due"
        detail = i18n.gettext("the observation ended {until}; the investigator's assessment is due").format(
            until=until)
    else:
        kind, detail = "no_dlt", ""
    badge, words = DLT_MARKS[kind]
    return {"kind": kind, "badge": badge, "words": i18n.gettext(words), "detail": detail, "until": until,
            "started": when(patient["enrolled_at"], zone),
            "until_short": _short(ends, zone)}


def _short(moment: dt.datetime, zone: str | None) -> str:
    local = moment.astimezone(ZoneInfo(zone or "UTC"))
    # "02 Dec 19:03 CST"; in Chinese the month by its number, as a Chinese calendar writes it: "12月02日 19:03 CST"
    shown = local.strftime("%m月%d日 %H:%M " if i18n.current() == i18n.CHINESE else "%d %b %H:%M ")
    return shown + (local.tzname() or zone or "UTC")


def escalation_table(session: Session, actor: Actor, trial: str, protocol: Protocol) -> dict[str, Any]:
    """`escalation_view` with words for the templates: each patient's DLT status, each cohort's phase and the
    committee's decision after it, the open cohort's column (also before anyone is enrolled in it), and the
    patients by code (`by_patient`)."""
    view = escalation.escalation_view(session, actor, trial)
    zones = {code: zone or "UTC" for code, zone in session.execute(select(Site.code, Site.timezone))}
    mine = common_zone(zones, actor.sites) if actor.sites else None
    cohorts = view["cohorts"]
    if view["open_cohort"] is not None and all(c["cohort"] != view["open_cohort"] for c in cohorts):
        cohorts.append({"cohort": view["open_cohort"], "level": view["open_level"], "phase": view["open_phase"],
                        "dose": view["open_dose"], "patients": [], "dlts": 0, "observing": [], "unassessed": [],
                        "decision": None, "confirmation": None, "capacity": view["free_places"],
                        "complete": False})
    signed = {d["after_cohort"]: d for d in view["decisions"]}
    by_patient: dict[str, dict[str, Any]] = {}
    for cohort in cohorts:
        cohort["phase_label"] = i18n.gettext(PHASE_LABELS[cohort["phase"]])
        cohort["dose_text"] = _dose(view, cohort["level"])
        cohort["is_open"] = cohort["cohort"] == view["open_cohort"]
        cohort["signed"] = signed.get(cohort["cohort"])
        cohort["signed_words"] = decision_words(view, cohort["signed"])
        cohort["signed_short"] = short_words(cohort["signed"])
        for patient in cohort["patients"]:
            patient["mark"] = _mark(protocol, cohort, patient, zones.get(patient.get("site") or "", mine))
            by_patient[patient["patient_id"]] = {"patient": patient, "cohort": cohort}
        cohort["counts"] = {kind: sum(1 for p in cohort["patients"] if p["mark"]["kind"] == kind)
                            for kind in DLT_MARKS}
    for decision in view["decisions"]:
        decision["words"] = decision_words(view, decision)
        decision["rule_words"] = decision_words(view, decision["rule"])
        decision["when"] = when(decision["signed_at"], mine)
    assert protocol.dose_escalation is not None
    texts = {d.id: i18n.protocol_text(d, "text") for d in protocol.dose_escalation.dlt_definition}
    return view | {"status_label": i18n.gettext(STATUS_LABELS[view["status"]]),
                   "status_text": i18n.gettext(view["status_text"]),
                   "dlt_definition": [d | {"text": texts.get(d["id"], d["text"])} for d in view["dlt_definition"]],
                   "open_dose_text": _dose(view, view["open_level"]),
                   "open_phase_label": i18n.gettext(PHASE_LABELS.get(view["open_phase"] or "", "")),
                   "pending_words": decision_words(view, view["pending"]), "mtd_text": _dose(view, view["mtd"]),
                   "by_patient": by_patient, "level_doses": {lv["level"]: _dose(view, lv["level"])
                                                             for lv in view["levels"]},
                   "tried": sorted({c["level"] for c in cohorts if c["phase"] == "escalation" and c["patients"]}),
                   "escalating": [c for c in cohorts if c["phase"] == "escalation"],
                   "expansion": next((c for c in cohorts if c["phase"] == "expansion"), None)}


def escalation_table_for(request: Request, actor: Actor, trial: str, protocol: Protocol) -> dict[str, Any] | None:
    """The table for the trial and patient pages: None for a trial without dose escalation, or for a user who
    may not read safety data."""
    if protocol.dose_escalation is None or not actor.may("reading safety data"):
        return None
    with database(request).read() as session:
        return escalation_table(session, actor, trial, protocol)


def _number(form: FormData, name: str) -> int | None:
    """A whole number from a form field (None when empty); anything else is refused by name."""
    text = str(form.get(name) or "").strip()
    if not text:
        return None
    if not text.isdigit() or len(text) > 9:
        raise Invalid(i18n.gettext("{name} must be a whole number").format(name=name),
                      [{"field": name, "value": text, "message": i18n.gettext("a whole number")}])
    return int(text)


@router.get("/trials/{trial}/escalation", response_class=HTMLResponse)
def escalation_page(request: Request, trial: str) -> HTMLResponse:
    actor = signed_in(request)
    with database(request).read() as session:
        _, protocol = trials.get_trial(session, actor, trial)
        table = escalation_table(session, actor, trial, protocol)
    return render(request, "escalation.html", protocol=protocol, t=table)


def _facts(view: dict[str, Any], zone: str | None) -> list[tuple[str, str]]:
    """The key facts to check before enrolment, by their labels: 'occlusion site: MCA M2', 'weight: 70 kg'; a
    clock time in the site's time zone, named."""
    facts = []
    for name in KEY_FACTS:
        raw = view["data"].get(name)
        if raw is None:
            continue
        var = VARIABLES.get(name)
        if var is None:
            facts.append((name.replace("_", " "), str(raw)))
        elif var.kind == "timestamp":
            facts.append((var.label, _shown(name, raw, zone)))
        else:
            try:
                text = var.describe(var.parse(raw))
            except InputError:
                text = str(raw)
            facts.append((var.label, text.removeprefix(var.label).lstrip(" :")))
    return facts


def _enrol_form(request: Request, actor: Actor, protocol: Protocol, view: dict[str, Any], status: int = 200,
                message: str | None = None) -> HTMLResponse:
    table = escalation_table_for(request, actor, protocol.id, protocol)
    zone = site_zones(database(request)).get(view["site"])
    facts = _facts(view, zone)
    # Defect 8: the criteria that exclude the patient, or are still open, in the protocol's words.
    criteria = {c.id: c for c in protocol.criteria}
    excluded_by = [i18n.protocol_text(criteria[c], "text") if c in criteria else c for c in view["failing"]]
    still_needed = [i18n.protocol_text(criteria[c], "text") if c in criteria else c for c in view["outstanding"]]
    # A new key for each page shown: a double click or a resubmitted form sends it again and gets the first
    # enrolment back; the cohort and level shown go with it, so a page read before the escalation moved on is
    # refused rather than enrolling the patient somewhere else.
    return render(request, "escalation_enrol.html", status=status, protocol=protocol, p=view, t=table, facts=facts,
                  key=str(uuid.uuid4()), message=message, excluded_by=excluded_by,
                  still_needed=still_needed)


@router.get("/trials/{trial}/patients/{patient}/enrol", response_class=HTMLResponse)
def enrol_page(request: Request, trial: str, patient: str) -> Response:
    actor, protocol, view = patient_context(request, trial, patient)
    actor.require("enrolling in a dose-escalation cohort")
    escalation.escalation_of(protocol, trial)
    if view["randomized"]:
        return RedirectResponse(f"/trials/{trial}/patients/{patient}", status_code=303)
    return _enrol_form(request, actor, protocol, view)


@router.post("/trials/{trial}/patients/{patient}/enrol", response_class=HTMLResponse)
async def enrol_submit(request: Request, trial: str, patient: str) -> Response:
    actor = signed_in(request)
    form = await request.form()
    check_csrf(request, form.get("csrf"))
    if form.get("confirm") != "yes":
        raise Invalid(i18n.gettext("tick the box to confirm the patient's facts"),
                      [{"field": "confirm", "value": None, "message": i18n.gettext("required")}])
    cohort, level = _number(form, "cohort"), _number(form, "level")
    try:
        with database(request).write(trial) as session:
            escalation.enrol(session, actor, trial, patient, str(form.get("key", "")), cohort, level)
    except Conflict as exc:
        actor, protocol, view = patient_context(request, trial, patient)
        return _enrol_form(request, actor, protocol, view, status=exc.status, message=exc.message)
    return RedirectResponse(f"/trials/{trial}/patients/{patient}", status_code=303)


def _dlt_form(request: Request, trial: str, patient: str, status: int = 200, errors: dict[str, str] | None = None,
              values: dict[str, str] | None = None) -> HTMLResponse:
    actor, protocol, view = patient_context(request, trial, patient)
    actor.require("recording a DLT assessment")
    dose_escalation = escalation.escalation_of(protocol, trial)
    table = escalation_table_for(request, actor, trial, protocol)
    enrolled = table["by_patient"].get(patient) if table else None
    if table is None or enrolled is None:
        raise Conflict(i18n.gettext("patient {patient} is not enrolled in a dose cohort").format(patient=patient))
    start = dt.datetime.fromisoformat(enrolled["patient"]["enrolled_at"]).astimezone(dt.UTC)
    definitions = dose_escalation.dlt_definition
    last = {d.id: (start + dt.timedelta(hours=d.window_hours)).date().isoformat() for d in definitions}
    windows = [{"id": d.id, "text": i18n.protocol_text(d, "text"), "hours": d.window_hours, "last": last[d.id]}
               for d in definitions]
    recorded = enrolled["patient"].get("dlt_assessment")
    if values is None and recorded:  # a correction starts from what is recorded
        values = {"dlt": "yes" if recorded["dlt"] else "no", "criterion": recorded["criterion"] or "",
                  "event": recorded["event"] or "", "onset": recorded["onset"] or ""}
    return render(request, "dlt.html", status=status, protocol=protocol, p=view, t=table, cohort=enrolled["cohort"],
                  e=enrolled["patient"], windows=windows, first_day=start.date().isoformat(),
                  last_day=max(last.values()), errors=errors or {}, values=values or {},
                  correction=enrolled["patient"]["dlt"] is not None)


@router.get("/trials/{trial}/patients/{patient}/dlt", response_class=HTMLResponse)
def dlt_page(request: Request, trial: str, patient: str) -> HTMLResponse:
    return _dlt_form(request, trial, patient)


def _field_message(error: dict[str, Any]) -> str:
    # The service names the protocol's DLTs by their ids; the page lists them by their text.
    if error["field"] == "criterion":
        return i18n.gettext("choose the protocol's DLT that the event meets")
    if error["field"] == "onset" and not error.get("value"):
        return i18n.gettext("give the onset date")
    return str(error["message"])


@router.post("/trials/{trial}/patients/{patient}/dlt", response_class=HTMLResponse)
async def dlt_submit(request: Request, trial: str, patient: str) -> Response:
    actor = signed_in(request)
    form = await request.form()
    check_csrf(request, form.get("csrf"))
    values = {k: str(form.get(k) or "").strip() for k in ("dlt", "criterion", "event", "onset", "reason")}
    status, errors = 422, {}
    if values["dlt"] not in ("yes", "no"):
        errors["dlt"] = i18n.gettext("choose yes or no")
    else:
        yes = values["dlt"] == "yes"
        # With "no DLT" the DLT's fields, hidden on the page, are not sent on, whatever they held.
        criterion, event, onset = ((values["criterion"] or None, values["event"] or None, values["onset"] or None)
                                   if yes else (None, None, None))
        try:
            with database(request).write(trial) as session:
                saved = escalation.record_dlt(session, actor, trial, patient, yes, criterion, event, onset,
                                              values["reason"] or None)
            return RedirectResponse(f"/trials/{trial}/escalation?saved={saved['patient_id']}", status_code=303)
        except Forbidden:
            raise
        except Conflict as exc:
            status, errors = exc.status, {"form": exc.message}
        except ServiceError as exc:
            errors = {e["field"]: _field_message(e) for e in exc.errors} or {"form": exc.message}
    return _dlt_form(request, trial, patient, status=status, errors=errors, values=values)


def _decision_form(request: Request, trial: str, status: int = 200, errors: dict[str, str] | None = None,
                   values: dict[str, str] | None = None) -> HTMLResponse:
    actor = signed_in(request)
    actor.require("confirming an escalation decision")
    with database(request).read() as session:
        _, protocol = trials.get_trial(session, actor, trial)
        table = escalation_table(session, actor, trial, protocol)
    cohort = next((c for c in table["cohorts"] if c["cohort"] == table["pending_after_cohort"]), None)
    return render(request, "escalation_confirm.html", status=status, protocol=protocol, t=table, cohort=cohort,
                  errors=errors or {}, values=values or {})


@router.get("/trials/{trial}/escalation/decision", response_class=HTMLResponse)
def decision_page(request: Request, trial: str) -> HTMLResponse:
    return _decision_form(request, trial)


def _chosen(form: FormData) -> tuple[str, int | None, int | None]:
    """(action, level, mtd) of the decision chosen on the committee's form."""
    choice = form.get("choice")
    if choice == "rule":
        return str(form.get("rule_action") or ""), _number(form, "rule_level"), _number(form, "rule_mtd")
    if choice == "treat":
        return "treat", _number(form, "level"), None
    if choice == "stop":
        return "stop", None, None if form.get("mtd") == "none" else _number(form, "mtd")
    raise Invalid(i18n.gettext("choose the rule's decision or another one"),
                  [{"field": "decision", "value": choice,
                    "message": i18n.gettext("choose the rule's decision or another one")}])


@router.post("/trials/{trial}/escalation/decision", response_class=HTMLResponse)
async def decision_submit(request: Request, trial: str) -> Response:
    actor = signed_in(request)
    form = await request.form()
    check_csrf(request, form.get("csrf"))
    actor.require("confirming an escalation decision")
    values = {k: str(form.get(k) or "") for k in ("choice", "level", "mtd", "reason")}
    after = _number(form, "after_cohort") or 0

    def sign() -> None:
        action, level, mtd = _chosen(form)
        signature = signatures.sign(database(request), actor, str(form.get("password") or ""),
                                    request.client.host if request.client else "unknown")
        with database(request).write() as session:
            pending = escalation.escalation_view(session, actor, trial)
            rule = pending["pending"]
            if (form.get("choice") == "rule" and rule is not None and pending["pending_after_cohort"] == after
                    and (rule["action"], rule["level"], rule["mtd"]) != (action, level, mtd)):
                # A DLT corrected since the page was read changed the rule's decision: the member signs what the
                # rule says now, never what a stale page said it was.
                raise Conflict(i18n.gettext("the rule's decision after cohort {cohort} changed since this page was "
                                            "shown; it is now: {rule}. Review it again.").format(
                                                cohort=after, rule=i18n.gettext(rule["text"])))
            escalation.confirm_decision(session, actor, trial, after, action, level, mtd, values["reason"],
                                        signature)

    status, errors = 422, {}
    try:
        # The password is checked by Argon2, off the event loop (as signing in is).
        await anyio.to_thread.run_sync(sign)
        return RedirectResponse(f"/trials/{trial}/escalation", status_code=303)
    except Forbidden:
        raise
    except (Unauthorized, TooManyAttempts) as exc:  # a wrong password, or too many of them
        status, errors = exc.status, {"password": exc.message}
    except Conflict as exc:
        status, errors = exc.status, {"form": exc.message}
    except ServiceError as exc:
        errors = {e["field"]: str(e["message"]) for e in exc.errors} or {"form": exc.message}
    return _decision_form(request, trial, status=status, errors=errors, values=values)
