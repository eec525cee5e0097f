"""A randomized patient's visits: the protocol's schedule with each visit's window and status, and the entry
(or the audited correction) of one visit's form. The window arithmetic is `protocol.visit_windows`.

A visit may reserve assessments for the blinded outcome assessor (`assessor_only` in the protocol: the 90-day
mRS of a PROBE trial). Then the outcome assessor records those and nothing else, site staff record the rest and
never those, and each party's entry leaves the other's values as they are. The visit has one date: a party
whose part is still empty enters its values on the date recorded without a reason; a different date, or a change
to its own recorded values, is a correction and needs one. The outcome assessor's schedule holds only the visits
with assessments reserved for it, and of those only its own values (`blinding.readable_assessments`).
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Mapping
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from .. import i18n
from ..clinical.assessments import ASSESSMENTS, VisitDataError, parse_visit_values
from ..protocol import Visit
from ..protocol.visit_windows import visit_window
from ..store import canonical, record
from ..store.models import VisitRecord
from . import locks, record_signatures, refusals
from . import edit_checks, safety_monitoring, verification
from .accounts import Actor
from .blinding import readable_assessments, sees_arm
from .clock import calendar_date
from .consent import refuse_visit_after_withdrawal
from .errors import Conflict, Forbidden, Invalid, NotFound
from .roles import PERMISSIONS
from .safety import watched_visits
from .patients import MAX_REASON, aware, randomized_patient
from .text import plain_text


SITE_ENTRY = "entering follow-up data"
BLINDED_ENTRY = "recording blinded outcome assessments"


def recordable(actor: Actor, visit: Visit) -> list[str]:
    """The assessments of this visit that this actor's role records: for the outcome assessor those the protocol
    reserves for the blinded assessor, for everyone else the others (all of them where nothing is reserved)."""
    if actor.may(BLINDED_ENTRY):
        return list(visit.assessor_only)
    return [a for a in visit.assessments if a not in visit.assessor_only]


def _done(actor: Actor, visit: Visit, record_: VisitRecord | None, values: Mapping[str, Any]) -> bool:
    """Whether the visit is done as far as this user goes: where assessments are reserved, when the user's own
    part holds a value (site staff are not asked for a correction's reason because the assessor entered first)."""
    if record_ is None:
        return False
    own = recordable(actor, visit) if visit.assessor_only else []
    return not own or any(k in values for k in own)


def visits(session: Session, actor: Actor, trial_id: str, code: str, today: dt.date | None = None) -> dict[str, Any]:
    """The protocol's visits for this patient, each with its target date, window and status on `today` (UTC).

    The outcome assessor gets only the visits with assessments reserved for it, with only those assessments and
    their values; the others get every visit, and the reserved assessments named under `assessor_only`."""
    protocol, patient, allocation = randomized_patient(session, actor, trial_id, code)
    today = today or dt.datetime.now(dt.UTC).date()
    randomized_at = aware(allocation.created_at)
    records = {r.visit_id: r for r in session.execute(select(VisitRecord).where(VisitRecord.patient_id == patient.id))
               .scalars()}
    blinded_assessor = actor.may(BLINDED_ENTRY)
    out = []
    for visit in protocol.visits:
        if blinded_assessor and not visit.assessor_only:
            continue
        if visit.arms is not None and (allocation.arm not in visit.arms
                                       or not sees_arm(actor.role, protocol.design.masking)):
            # a form kept for some arms (open-label trials only): shown neither for other arms' patients nor to
            # those who may not know the patient's arm (the blinded statistician), to whom it would tell the arm
            continue
        readable = readable_assessments(actor.role, visit)
        window = visit_window(visit, randomized_at)
        done = records.get(visit.id)
        values = json.loads(done.values_json) if done else {}
        if blinded_assessor:
            values = {k: v for k, v in values.items() if k in readable}
        item: dict[str, Any] = {"visit": visit.id, "name": visit.name, "day": visit.day,
                                "target_date": window.target.isoformat(),
                                "window": [window.opens.isoformat(), window.closes.isoformat()],
                                "status": window.status(today, done=_done(actor, visit, done, values)),
                                "assessments": readable}
        if visit.assessor_only and not blinded_assessor:
            item["assessor_only"] = list(visit.assessor_only)
        if done:
            item["visit_date"] = done.visit_date
            item["values"] = values
            item["in_window"] = window.contains(dt.date.fromisoformat(done.visit_date))
        out.append(item)
    return {"patient_id": code, "randomized_at": randomized_at.isoformat(), "visits": out}


def _refuse_others_assessments(actor: Actor, trial_id: str, visit: Visit, own: list[str], values: Any) -> None:
    """403 for an assessment of this visit that another role records (named, with the role that records it)."""
    if not own:
        who = i18n.gettext("the blinded outcome assessor") if actor.may(BLINDED_ENTRY) else i18n.gettext("site staff")
        raise Forbidden(i18n.gettext("visit {visit} of {trial} has nothing that {who} record ({name} is "
                                     "{role})").format(
            visit=visit.id, trial=trial_id, who=who, name=actor.name, role=refusals.role(actor.role)))
    if not isinstance(values, Mapping):
        return  # refused as malformed by parse_visit_values
    errors = []
    for key in values:
        if key in visit.assessments and key not in own:
            if key in visit.assessor_only:
                message = i18n.gettext("{assessment} at visit {visit} is recorded by the blinded outcome assessor "
                                       "({roles}), who does not know the arm").format(
                    assessment=key, visit=visit.id, roles=refusals.roles(PERMISSIONS[BLINDED_ENTRY]))
            else:
                message = i18n.gettext("{assessment} at visit {visit} is recorded by site staff ({roles}); the blinded "
                                       "outcome assessor records only {own}").format(
                    assessment=key, visit=visit.id, roles=refusals.roles(PERMISSIONS[SITE_ENTRY]), own=", ".join(own))
            errors.append({"field": key, "value": values[key], "message": message})
    if errors:
        raise Forbidden(i18n.gettext("{problems} ({name} is {role})").format(
            problems="; ".join(e["message"] for e in errors), name=actor.name, role=refusals.role(actor.role)), errors)


def record_visit(session: Session, actor: Actor, trial_id: str, code: str, visit_id: str, visit_date: str,
                 values: Mapping[str, Any], reason: str | None = None) -> dict[str, Any]:
    """Enter (or, with a reason, correct) one visit's form: the part of it this actor's role records."""
    if not actor.may(BLINDED_ENTRY):
        actor.require(SITE_ENTRY)
    protocol, patient, allocation = randomized_patient(session, actor, trial_id, code)
    locks.refuse_if_locked(session, patient, visit_id)
    visit = next((v for v in protocol.visits if v.id == visit_id), None)
    if visit is None:
        raise NotFound(i18n.gettext("{trial} has no visit {visit} ({visits})").format(
            trial=trial_id, visit=repr(visit_id), visits=", ".join(v.id for v in protocol.visits)))
    own = recordable(actor, visit)
    _refuse_others_assessments(actor, trial_id, visit, own, values)
    if visit.arms is not None and allocation.arm not in visit.arms:
        names = ", ".join(i18n.protocol_text(a, "name") for a in protocol.arms if a.id in visit.arms)
        raise Conflict(i18n.gettext("visit {visit} ({name}) is recorded for patients of {arms} only; {patient} is not "
                                    "one of them").format(visit=visit.id, name=i18n.protocol_text(visit, "name"),
                                                          arms=names, patient=code))
    day = calendar_date(visit_date)
    if day is None:
        raise Invalid(i18n.gettext("visit_date {value} is not a date (YYYY-MM-DD)").format(value=repr(visit_date)),
                      [{"field": "visit_date", "value": visit_date, "message": i18n.gettext("a date, YYYY-MM-DD")}])
    randomized_on = aware(allocation.created_at).date()
    if day < randomized_on:
        raise Invalid(i18n.gettext("visit_date {value} is before randomization ({day})").format(
            value=visit_date, day=randomized_on), [{"field": "visit_date", "value": visit_date,
                                                    "message": i18n.gettext("on or after {day}").format(
                                                        day=randomized_on)}])
    if day > dt.datetime.now(dt.UTC).date():
        raise Invalid(i18n.gettext("visit_date {value} is in the future").format(value=visit_date),
                      [{"field": "visit_date", "value": visit_date, "message": i18n.gettext("today or earlier")}])
    refuse_visit_after_withdrawal(session, patient, day)
    try:
        parsed = parse_visit_values(visit.id, visit.assessments, values)
    except VisitDataError as exc:
        raise Invalid(i18n.gettext("visit {visit} data refused: {problems}").format(visit=visit.id, problems=exc),
                      [{"field": e.field, "value": e.value, "message": e.message} for e in exc.errors]) from None
    existing = session.execute(select(VisitRecord).where(VisitRecord.patient_id == patient.id,
                                                         VisitRecord.visit_id == visit.id)).scalar_one_or_none()
    after: dict[str, Any] = {"visit_date": visit_date, "values": parsed}
    entity = f"{trial_id}/{code}/{visit.id}"
    if existing is None:
        session.add(VisitRecord(patient_id=patient.id, visit_id=visit.id, visit_date=visit_date,
                                values_json=canonical(parsed), updated_by=actor.name))
        record(session, actor.name, "enter_visit", "visit", entity, trial_id=trial_id, site=patient.site_code,
               after=after)
    elif visit.assessor_only:
        after = _enter_part(session, actor, existing, own, visit_date, parsed, reason, entity, trial_id,
                            patient.site_code)
    else:
        if not reason or not reason.strip():
            raise Invalid(i18n.gettext("visit {visit} is entered already; a correction needs a reason").format(
                visit=visit.id), [{"field": "reason", "value": reason,
                                   "message": i18n.gettext("required to change recorded data")}])
        reason = plain_text("reason", reason, MAX_REASON)
        before = {"visit_date": existing.visit_date, "values": json.loads(existing.values_json)}
        existing.visit_date, existing.values_json = visit_date, canonical(parsed)
        existing.updated_by, existing.updated_at = actor.name, dt.datetime.now(dt.UTC)
        record(session, actor.name, "correct_visit", "visit", entity, trial_id=trial_id, site=patient.site_code,
               before=before, after=after,
               reason=reason.strip())
    record_signatures.after_change(session, actor, patient, visit.id)
    verification.clear_changed(session, actor, trial_id, patient, visit.id, reason)  # source verification
    edit_checks.run_on_visit(session, actor, protocol, trial_id, patient, allocation, visit)  # automatic queries
    if visit.id in watched_visits(protocol):  # a death or an sICH on the form may cross a rule the DSMB watches
        safety_monitoring.check(session, trial_id)
    readable = readable_assessments(actor.role, visit)
    shown = {k: v for k, v in after["values"].items() if k in readable}
    return {"visit_date": after["visit_date"], "values": shown, "visit": visit.id, "patient_id": code}


def _enter_part(session: Session, actor: Actor, existing: VisitRecord, own: list[str], visit_date: str,
                parsed: dict[str, Any], reason: str | None, entity: str, trial_id: str, site: str) -> dict[str, Any]:
    """One party's part of a visit whose assessments are shared between site staff and the blinded outcome
    assessor: the other party's values stay as recorded. A first entry of the part, on the date recorded, needs
    no reason; a change to the part's recorded values or to the visit date is a correction and needs one."""
    recorded = json.loads(existing.values_json)
    merged = {k: v for k, v in recorded.items() if k not in own} | parsed
    correcting = any(k in recorded for k in own) or visit_date != existing.visit_date
    before = {"visit_date": existing.visit_date, "values": recorded}
    after: dict[str, Any] = {"visit_date": visit_date, "values": merged}
    if correcting:
        if not reason or not reason.strip():
            changed = i18n.gettext("its date") if not any(k in recorded for k in own) else ", ".join(own)
            raise Invalid(i18n.gettext("visit {visit} is entered already (on {day}); changing {changed} is a "
                                       "correction and needs a reason").format(
                              visit=existing.visit_id, day=existing.visit_date, changed=changed),
                          [{"field": "reason", "value": reason,
                            "message": i18n.gettext("required to change recorded data")}])
        reason = plain_text("reason", reason, MAX_REASON).strip()
    existing.visit_date, existing.values_json = visit_date, canonical(merged)
    existing.updated_by, existing.updated_at = actor.name, dt.datetime.now(dt.UTC)
    record(session, actor.name, "correct_visit" if correcting else "enter_visit", "visit", entity,
           trial_id=trial_id, site=site, before=before, after=after, reason=reason if correcting else None)
    return after


def assessment_dictionary() -> list[dict[str, Any]]:
    """The assessments a visit form may hold: key, label, kind and allowed values."""
    return [{"key": a.key, "label": a.label, "kind": a.kind, "allowed": a.allowed()} for a in ASSESSMENTS.values()]
