"""Serious adverse events: a site reports one for a randomized patient (checked field by field, every error at
once), and reads the patient's reports back."""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Mapping
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from ..store import canonical, record
from ..store.models import Patient, SeriousAdverseEvent
from .accounts import Actor
from .clock import calendar_date, local_now, site_zone
from .errors import Invalid
from .patients import aware, randomized_patient
from .text import plain_text

SAE_CRITERIA = ("death", "life_threatening", "hospitalization", "disability", "congenital_anomaly",
                "important_medical_event")
SAE_OUTCOMES = ("recovered", "recovering", "not_recovered", "recovered_with_sequelae", "fatal", "unknown")
SAE_RELATEDNESS = ("not_related", "unlikely", "possible", "probable", "definite")
MAX_SAE_TERM = 200
MAX_SAE_DESCRIPTION = 4000


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
    actor.require("reporting a serious adverse event")
    _protocol, patient, _allocation = randomized_patient(session, actor, trial_id, code)
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
    onset_day = calendar_date(onset)
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
    document["term"] = plain_text("term", term, MAX_SAE_TERM)  # checked above; stripped of surrounding space
    document["description"] = plain_text("description", description, MAX_SAE_DESCRIPTION, required=False) or ""
    row = SeriousAdverseEvent(patient_id=patient.id, data_json=canonical(document), created_by=actor.name)
    session.add(row)
    session.flush()
    record(session, actor.name, "report_sae", "sae", f"{trial_id}/{code}/{row.id}", trial_id=trial_id,
           site=patient.site_code, after=document)
    return {"id": row.id, "patient_id": code, **document}


def list_saes(session: Session, actor: Actor, trial_id: str, code: str) -> list[dict[str, Any]]:
    actor.require("reading safety data")  # an SAE narrative can name the treatment: never the outcome assessor's
    _protocol, patient, _ = randomized_patient(session, actor, trial_id, code)
    rows = session.execute(select(SeriousAdverseEvent).where(SeriousAdverseEvent.patient_id == patient.id)
                           .order_by(SeriousAdverseEvent.id)).scalars()
    return [{"id": r.id, "patient_id": code, "reported_by": r.created_by, **json.loads(r.data_json)} for r in rows]
