"""A randomized patient's visits: the protocol's schedule with each visit's window and status, and the entry
(or the audited correction) of one visit's form. The window arithmetic is `protocol.visit_windows`."""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Mapping
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from ..clinical.assessments import ASSESSMENTS, VisitDataError, parse_visit_values
from ..protocol.visit_windows import visit_window
from ..store import canonical, record
from ..store.models import VisitRecord
from .accounts import Actor
from .clock import calendar_date
from .errors import Invalid, NotFound
from .patients import MAX_REASON, aware, randomized_patient
from .text import plain_text


def visits(session: Session, actor: Actor, trial_id: str, code: str, today: dt.date | None = None) -> dict[str, Any]:
    """The protocol's visits for this patient, each with its target date, window and status on `today` (UTC)."""
    protocol, patient, allocation = randomized_patient(session, actor, trial_id, code)
    today = today or dt.datetime.now(dt.UTC).date()
    randomized_at = aware(allocation.created_at)
    records = {r.visit_id: r for r in session.execute(select(VisitRecord).where(VisitRecord.patient_id == patient.id))
               .scalars()}
    out = []
    for visit in protocol.visits:
        window = visit_window(visit, randomized_at)
        done = records.get(visit.id)
        item: dict[str, Any] = {"visit": visit.id, "name": visit.name, "day": visit.day,
                                "target_date": window.target.isoformat(),
                                "window": [window.opens.isoformat(), window.closes.isoformat()],
                                "status": window.status(today, done=done is not None),
                                "assessments": visit.assessments}
        if done:
            item["visit_date"] = done.visit_date
            item["values"] = json.loads(done.values_json)
            item["in_window"] = window.contains(dt.date.fromisoformat(done.visit_date))
        out.append(item)
    return {"patient_id": code, "randomized_at": randomized_at.isoformat(), "visits": out}


def record_visit(session: Session, actor: Actor, trial_id: str, code: str, visit_id: str, visit_date: str,
                 values: Mapping[str, Any], reason: str | None = None) -> dict[str, Any]:
    """Enter (or, with a reason, correct) one visit's form."""
    actor.require("entering follow-up data")
    protocol, patient, allocation = randomized_patient(session, actor, trial_id, code)
    visit = next((v for v in protocol.visits if v.id == visit_id), None)
    if visit is None:
        raise NotFound(f"{trial_id} has no visit {visit_id!r} ({', '.join(v.id for v in protocol.visits)})")
    day = calendar_date(visit_date)
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


def assessment_dictionary() -> list[dict[str, Any]]:
    """The assessments a visit form may hold: key, label, kind and allowed values."""
    return [{"key": a.key, "label": a.label, "kind": a.kind, "allowed": a.allowed()} for a in ASSESSMENTS.values()]
