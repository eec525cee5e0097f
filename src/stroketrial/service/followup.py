"""After randomization: dose instructions, the visit schedule and its forms, SAEs, emergency unblinding,
and the DSMB's safety counts."""

from __future__ import annotations

import datetime as dt
import json
from typing import Any
from collections.abc import Mapping

from sqlalchemy import select
from sqlalchemy.orm import Session

from ..clinical.assessments import ASSESSMENTS, VisitDataError, parse_visit_values
from ..dosing import DoseError, dose_instructions
from ..store import canonical, record
from ..store.models import Allocation, Patient, SeriousAdverseEvent, Unblinding, VisitRecord
from .accounts import SITE_STAFF, Actor
from .blinding import sees_arm, sees_arm_counts
from .clock import local_now, site_zone
from .errors import Conflict, Invalid, NotFound
from .patients import MAX_REASON, allocation_of, aware, find_patient
from .text import plain_text
from .trials import get_trial

SAE_CRITERIA = ("death", "life_threatening", "hospitalization", "disability", "congenital_anomaly",
                "important_medical_event")
SAE_OUTCOMES = ("recovered", "recovering", "not_recovered", "recovered_with_sequelae", "fatal", "unknown")
SAE_RELATEDNESS = ("not_related", "unlikely", "possible", "probable", "definite")
MAX_SAE_TERM = 200
MAX_SAE_DESCRIPTION = 4000


def _randomized(session: Session, actor: Actor, trial_id: str, code: str):
    _trial, protocol = get_trial(session, actor, trial_id)
    patient = find_patient(session, actor, trial_id, code)
    allocation = allocation_of(session, patient)
    if allocation is None:
        raise Conflict(f"patient {code} is not randomized yet")
    return protocol, patient, allocation


# ---- dose ---------------------------------------------------------------------------------------
def dose(session: Session, actor: Actor, trial_id: str, code: str) -> dict[str, Any]:
    protocol, patient, allocation = _randomized(session, actor, trial_id, code)
    weight = json.loads(patient.data_json).get("weight_kg")
    blinded = not sees_arm(actor.role, protocol.design.masking)
    # In a double-blind trial kits look alike and hold the same volume: a blinded user is given the
    # experimental arm's instructions for "the study drug in kit N", whichever arm the kit holds.
    if blinded and not allocation.kit:
        # The protocol model refuses masking without kits; never fall back to showing one arm's dose.
        raise Conflict(f"{trial_id} is {protocol.design.masking.replace('_', ' ')} without blinded kits: the dose "
                       "sheet is for those who may see the arm")
    arm = next(a.id for a in protocol.arms if a.role == "experimental") if blinded else allocation.arm
    try:
        steps = dose_instructions(protocol, arm, weight, aware(allocation.created_at))
    except DoseError as exc:
        raise Invalid(str(exc), [{"field": "weight_kg", "value": weight, "message": str(exc)}]) from None
    out = []
    for s in steps:
        item = s.to_json()
        if blinded and allocation.kit and s.route != "procedure":  # the thrombectomy is no study drug
            item["name"] = f"study drug from kit {allocation.kit}"
            item.pop("intervention", None)
        out.append(item)
    body = {"patient_id": code, "weight_kg": weight, "sequence": allocation.sequence, "kit": allocation.kit,
            "administrations": out}
    if not blinded:
        body["arm"] = allocation.arm
    return body


# ---- visits ---------------------------------------------------------------------------------------
def _visit_window(visit, randomized_at: dt.datetime) -> tuple[dt.date, dt.date, dt.date]:
    target = (randomized_at + dt.timedelta(days=visit.day)).date()
    return (target - dt.timedelta(days=visit.window_before_days), target,
            target + dt.timedelta(days=visit.window_after_days))


def visits(session: Session, actor: Actor, trial_id: str, code: str, today: dt.date | None = None) -> dict[str, Any]:
    protocol, patient, allocation = _randomized(session, actor, trial_id, code)
    today = today or dt.datetime.now(dt.UTC).date()
    records = {r.visit_id: r for r in session.execute(select(VisitRecord).where(VisitRecord.patient_id == patient.id))
               .scalars()}
    out = []
    for visit in protocol.visits:
        opens, target, closes = _visit_window(visit, aware(allocation.created_at))
        done = records.get(visit.id)
        status = "done" if done else "overdue" if today > closes else "due" if today >= opens else "upcoming"
        item = {"visit": visit.id, "name": visit.name, "day": visit.day, "target_date": target.isoformat(),
                "window": [opens.isoformat(), closes.isoformat()], "status": status,
                "assessments": visit.assessments}
        if done:
            item["visit_date"] = done.visit_date
            item["values"] = json.loads(done.values_json)
            item["in_window"] = opens.isoformat() <= done.visit_date <= closes.isoformat()
        out.append(item)
    return {"patient_id": code, "randomized_at": aware(allocation.created_at).isoformat(), "visits": out}


def record_visit(session: Session, actor: Actor, trial_id: str, code: str, visit_id: str, visit_date: str,
                 values: Mapping[str, Any], reason: str | None = None) -> dict[str, Any]:
    """Enter (or, with a reason, correct) one visit's form."""
    actor.require(*SITE_STAFF, doing="entering follow-up data")
    protocol, patient, allocation = _randomized(session, actor, trial_id, code)
    visit = next((v for v in protocol.visits if v.id == visit_id), None)
    if visit is None:
        raise NotFound(f"{trial_id} has no visit {visit_id!r} ({', '.join(v.id for v in protocol.visits)})")
    try:
        day = dt.date.fromisoformat(visit_date) if isinstance(visit_date, str) else None
    except ValueError:
        day = None
    if day is None:
        raise Invalid(f"visit_date {visit_date!r} is not a date (YYYY-MM-DD)",
                      [{"field": "visit_date", "value": visit_date, "message": "a date, YYYY-MM-DD"}])
    randomized_on = aware(allocation.created_at).date()
    if day < randomized_on:
        raise Invalid(f"visit_date {visit_date} is before randomization ({randomized_on})",
                      [{"field": "visit_date", "value": visit_date, "message": f"on or after {randomized_on}"}])
    if day > dt.datetime.now(dt.UTC).date():
        raise Invalid(f"visit_date {visit_date} is in the future",
                      [{"field": "visit_date", "value": visit_date, "message": "today or earlier"}])
    try:
        parsed = parse_visit_values(visit.id, visit.assessments, values)
    except VisitDataError as exc:
        raise Invalid(f"visit {visit.id} data refused: {exc}",
                      [{"field": e.field, "value": e.value, "message": e.message} for e in exc.errors]) from None
    existing = session.execute(select(VisitRecord).where(VisitRecord.patient_id == patient.id,
                                                         VisitRecord.visit_id == visit.id)).scalar_one_or_none()
    after = {"visit_date": visit_date, "values": parsed}
    entity = f"{trial_id}/{code}/{visit.id}"
    if existing is None:
        session.add(VisitRecord(patient_id=patient.id, visit_id=visit.id, visit_date=visit_date,
                                values_json=canonical(parsed), updated_by=actor.name))
        record(session, actor.name, "enter_visit", "visit", entity, trial_id=trial_id, site=patient.site_code,
               after=after)
    else:
        if not reason or not reason.strip():
            raise Invalid(f"visit {visit.id} is entered already; a correction needs a reason",
                          [{"field": "reason", "value": reason, "message": "required to change recorded data"}])
        reason = plain_text("reason", reason, MAX_REASON)
        before = {"visit_date": existing.visit_date, "values": json.loads(existing.values_json)}
        existing.visit_date, existing.values_json = visit_date, canonical(parsed)
        existing.updated_by, existing.updated_at = actor.name, dt.datetime.now(dt.UTC)
        record(session, actor.name, "correct_visit", "visit", entity, trial_id=trial_id, site=patient.site_code,
               before=before, after=after,
               reason=reason.strip())
    return after | {"visit": visit.id, "patient_id": code}


# ---- serious adverse events --------------------------------------------------------------------------
def _text_errors(field: str, value: Any, max_length: int) -> list[dict[str, Any]]:
    try:
        plain_text(field, value, max_length)
    except Invalid as exc:
        return exc.errors
    return []


def _onset_errors(session: Session, patient: Patient, onset: dt.date) -> list[dict[str, Any]]:
    """An onset after today (at the site) or before the patient can have been born."""
    today = local_now(site_zone(session, patient.site_code), None).date()
    if onset > today:
        return [{"field": "onset_date", "value": onset.isoformat(),
                 "message": f"{onset.isoformat()} is after today ({today.isoformat()} at this site)"}]
    age = json.loads(patient.data_json).get("age")
    if isinstance(age, int):
        registered = aware(patient.created_at).date()
        born_after = registered.replace(year=registered.year - age - 1, day=min(registered.day, 28))
        if onset < born_after:
            return [{"field": "onset_date", "value": onset.isoformat(),
                     "message": f"{onset.isoformat()} is before the patient was born (aged {age} at screening on "
                                f"{registered.isoformat()})"}]
    return []


def report_sae(session: Session, actor: Actor, trial_id: str, code: str, data: Mapping[str, Any]) -> dict[str, Any]:
    actor.require(*SITE_STAFF, doing="reporting a serious adverse event")
    _protocol, patient, _allocation = _randomized(session, actor, trial_id, code)
    if not isinstance(data, Mapping):
        raise Invalid("an SAE report is an object", [{"field": "sae", "value": data, "message": "an object"}])
    errors = []
    term = data.get("term")
    if not isinstance(term, str) or not term.strip():
        errors.append({"field": "term", "value": term, "message": "the event, in words (e.g. 'pneumonia')"})
    else:
        errors.extend(_text_errors("term", term, MAX_SAE_TERM))
    description = data.get("description")
    if description is not None and description != "":
        errors.extend(_text_errors("description", description, MAX_SAE_DESCRIPTION))
    onset = data.get("onset_date")
    try:
        onset_day = dt.date.fromisoformat(onset) if isinstance(onset, str) else None
    except ValueError:
        onset_day = None
    if onset_day is None:
        errors.append({"field": "onset_date", "value": onset, "message": "a date, YYYY-MM-DD"})
    else:
        errors.extend(_onset_errors(session, patient, onset_day))
    criteria = data.get("criteria")
    if not isinstance(criteria, list) or not criteria or any(c not in SAE_CRITERIA for c in criteria):
        errors.append({"field": "criteria", "value": criteria,
                       "message": f"one or more of {', '.join(SAE_CRITERIA)}"})
    for key, allowed in (("outcome", SAE_OUTCOMES), ("relatedness", SAE_RELATEDNESS)):
        if data.get(key) not in allowed:
            errors.append({"field": key, "value": data.get(key), "message": f"one of {', '.join(allowed)}"})
    unknown = sorted(set(data) - {"term", "onset_date", "criteria", "outcome", "relatedness", "description"})
    for key in unknown:
        errors.append({"field": key, "value": data[key], "message": "not a field of the SAE form"})
    if errors:
        raise Invalid("SAE report refused: " + "; ".join(f"{e['field']}: {e['message']}" for e in errors), errors)
    document = {k: data[k] for k in ("term", "onset_date", "criteria", "outcome", "relatedness")}
    document["term"] = term.strip()
    document["description"] = plain_text("description", description, MAX_SAE_DESCRIPTION, required=False) or ""
    row = SeriousAdverseEvent(patient_id=patient.id, data_json=canonical(document), created_by=actor.name)
    session.add(row)
    session.flush()
    record(session, actor.name, "report_sae", "sae", f"{trial_id}/{code}/{row.id}", trial_id=trial_id,
           site=patient.site_code, after=document)
    return {"id": row.id, "patient_id": code, **document}


def list_saes(session: Session, actor: Actor, trial_id: str, code: str) -> list[dict[str, Any]]:
    _protocol, patient, _ = _randomized(session, actor, trial_id, code)
    rows = session.execute(select(SeriousAdverseEvent).where(SeriousAdverseEvent.patient_id == patient.id)
                           .order_by(SeriousAdverseEvent.id)).scalars()
    return [{"id": r.id, "patient_id": code, "reported_by": r.created_by, **json.loads(r.data_json)} for r in rows]


# ---- emergency unblinding ---------------------------------------------------------------------------
def unblind(session: Session, actor: Actor, trial_id: str, code: str, reason: str | None) -> dict[str, Any]:
    """Reveal one patient's arm to the treating investigator in an emergency; always audited."""
    actor.require("investigator", doing="emergency unblinding")
    _protocol, patient, allocation = _randomized(session, actor, trial_id, code)
    if not isinstance(reason, str) or len(reason.strip()) < 10:
        raise Invalid("emergency unblinding needs the clinical reason (at least 10 characters)",
                      [{"field": "reason", "value": reason, "message": "the clinical reason, 10+ characters"}])
    reason = plain_text("reason", reason, MAX_REASON, min_length=10)
    row = Unblinding(patient_id=patient.id, reason=reason.strip(), created_by=actor.name)
    session.add(row)
    session.flush()
    record(session, actor.name, "emergency_unblinding", "patient", f"{trial_id}/{code}", trial_id=trial_id,
           site=patient.site_code,
           after={"sequence": allocation.sequence, "kit": allocation.kit}, reason=reason.strip())
    return {"patient_id": code, "sequence": allocation.sequence, "kit": allocation.kit, "arm": allocation.arm,
            "unblinded_by": actor.name, "reason": reason.strip()}


def unblindings(session: Session, actor: Actor, trial_id: str) -> list[dict[str, Any]]:
    actor.require("dsmb", "admin", doing="reading the unblinding log")
    _trial, protocol = get_trial(session, actor, trial_id)
    rows = session.execute(select(Unblinding, Patient, Allocation).join(Patient, Unblinding.patient_id == Patient.id)
                           .join(Allocation, Allocation.patient_id == Patient.id)
                           .where(Patient.trial_id == trial_id).order_by(Unblinding.id)).all()
    out = []
    for u, p, a in rows:
        if not actor.can_see_site(p.site_code):
            continue
        item = {"patient_id": p.code, "site": p.site_code, "sequence": a.sequence, "kit": a.kit,
                "unblinded_by": u.created_by, "at": aware(u.created_at).isoformat(), "reason": u.reason}
        if sees_arm(actor.role, protocol.design.masking):
            item["arm"] = a.arm
        out.append(item)
    return out


# ---- safety -------------------------------------------------------------------------------------------
def safety(session: Session, actor: Actor, trial_id: str) -> dict[str, Any]:
    """Deaths, sICH and SAEs: per arm for those who may see counts per arm (the DSMB), else pooled."""
    _trial, protocol = get_trial(session, actor, trial_id)
    rows = session.execute(select(Patient, Allocation).join(Allocation, Allocation.patient_id == Patient.id)
                           .where(Patient.trial_id == trial_id)).all()
    rows = [(p, a) for p, a in rows if actor.can_see_site(p.site_code)]
    by_arm = sees_arm_counts(actor.role, protocol)
    groups = [a.id for a in protocol.arms] if by_arm else ["all"]
    counts = {g: {"randomized": 0, "deaths": 0, "sich": 0, "patients_with_sae": 0, "saes": 0} for g in groups}
    ids = [p.id for p, _ in rows]
    visits_by = {}
    for v in session.execute(select(VisitRecord).where(VisitRecord.patient_id.in_(ids))).scalars() if ids else []:
        visits_by.setdefault(v.patient_id, []).append(json.loads(v.values_json))
    saes_by = {}
    for s in session.execute(select(SeriousAdverseEvent).where(SeriousAdverseEvent.patient_id.in_(ids))).scalars() \
            if ids else []:
        saes_by.setdefault(s.patient_id, []).append(json.loads(s.data_json))
    for p, a in rows:
        c = counts[a.arm if by_arm else "all"]
        values = visits_by.get(p.id, [])
        saes = saes_by.get(p.id, [])
        c["randomized"] += 1
        c["deaths"] += any(v.get("death") for v in values) or any(s["outcome"] == "fatal" for s in saes)
        c["sich"] += any(v.get("sich") for v in values)
        c["patients_with_sae"] += bool(saes)
        c["saes"] += len(saes)
    return {"trial": trial_id, "by_arm": by_arm, "groups": counts}


def assessment_dictionary() -> list[dict[str, Any]]:
    return [{"key": a.key, "label": a.label, "kind": a.kind, "allowed": a.allowed()} for a in ASSESSMENTS.values()]
