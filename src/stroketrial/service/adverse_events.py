"""The non-serious adverse-event log of a randomized patient: record, correct (with a reason), list.

Each AE: the event in words (`term`), optionally coded the MedDRA way (`coded_term`, a preferred term, and its
`system_organ_class`) as free text: no licensed MedDRA dictionary ships with the platform, so the codes are not
checked against one; onset date, severity, relatedness to the study treatment, action taken with the study
treatment, and outcome (the SAE form's vocabulary). Every field is checked and every error named at once, with
the SAE form's checks (service/serious_adverse_events.py). A serious event goes on the SAE form instead.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Mapping
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from .. import i18n
from ..store import canonical, record
from ..store.models import AdverseEvent, Patient
from . import locks, record_signatures
from .accounts import Actor
from .errors import Invalid, NotFound
from .patients import MAX_REASON, aware, randomized_patient
from .serious_adverse_events import (MAX_CODED, MAX_SAE_TERM, SAE_OUTCOMES, SAE_RELATEDNESS, choice_errors,
                                     coded_errors, onset_errors, refuse, term_errors, unknown_field_errors)
from .text import plain_text

AE_SEVERITY = ("mild", "moderate", "severe")
AE_RELATEDNESS = SAE_RELATEDNESS
AE_ACTIONS = ("none", "dose_interrupted", "drug_withdrawn", "other")
AE_OUTCOMES = SAE_OUTCOMES
AE_FIELDS = ("term", "coded_term", "system_organ_class", "onset_date", "severity", "relatedness", "action_taken",
             "outcome")
AE_SEVERITY_LABELS = {"mild": "mild", "moderate": "moderate", "severe": "severe"}
AE_ACTION_LABELS = {"none": "none", "dose_interrupted": "dose interrupted", "drug_withdrawn": "drug withdrawn",
                    "other": "other action"}
AE_CHOICES = {"severity": AE_SEVERITY, "relatedness": AE_RELATEDNESS, "action_taken": AE_ACTIONS,
              "outcome": AE_OUTCOMES}


def _checked(session: Session, patient: Patient, data: Any) -> dict[str, Any]:
    if not isinstance(data, Mapping):
        raise Invalid(i18n.gettext("an adverse event is an object"),
                      [{"field": "adverse_event", "value": data, "message": i18n.gettext("an object")}])
    errors = [*term_errors(data), *coded_errors(data), *onset_errors(session, patient, data.get("onset_date")),
              *choice_errors(data, AE_CHOICES), *unknown_field_errors(data, AE_FIELDS,
                                                                      i18n.gettext("adverse event log"))]
    refuse(i18n.gettext("adverse event"), errors)
    document: dict[str, Any] = {k: data[k] for k in AE_FIELDS if data.get(k) not in (None, "")}
    for key, limit in (("term", MAX_SAE_TERM), ("coded_term", MAX_CODED), ("system_organ_class", MAX_CODED)):
        if key in document:
            document[key] = plain_text(key, document[key], limit)
    return document


def _view(row: AdverseEvent, code: str) -> dict[str, Any]:
    return {"id": row.id, "patient_id": code, "recorded_by": row.created_by,
            "recorded_at": aware(row.created_at).isoformat(timespec="seconds"),
            "corrected_by": row.updated_by,
            "corrected_at": aware(row.updated_at).isoformat(timespec="seconds") if row.updated_at else None,
            **json.loads(row.data_json)}


def record_ae(session: Session, actor: Actor, trial_id: str, code: str, data: Mapping[str, Any]) -> dict[str, Any]:
    actor.require("recording an adverse event")
    _protocol, patient, _ = randomized_patient(session, actor, trial_id, code)
    locks.refuse_if_locked(session, patient, locks.AE_FORM)
    document = _checked(session, patient, data)
    row = AdverseEvent(patient_id=patient.id, data_json=canonical(document), created_by=actor.name)
    session.add(row)
    session.flush()
    record(session, actor.name, "record_ae", "adverse_event", f"{trial_id}/{code}/{row.id}", trial_id=trial_id,
           site=patient.site_code, after=document)
    record_signatures.after_change(session, actor, patient, locks.AE_FORM)
    return _view(row, code)


def correct_ae(session: Session, actor: Actor, trial_id: str, code: str, ae_id: int, data: Mapping[str, Any],
               reason: Any) -> dict[str, Any]:
    """Replace a recorded AE's fields (all of them, checked as when recorded), with the reason for the change."""
    actor.require("recording an adverse event")
    _protocol, patient, _ = randomized_patient(session, actor, trial_id, code)
    row = session.get(AdverseEvent, ae_id)
    if row is None or row.patient_id != patient.id:
        raise NotFound(i18n.gettext("no adverse event {ae} of patient {patient} in {trial}").format(
            ae=ae_id, patient=code, trial=trial_id))
    locks.refuse_if_locked(session, patient, locks.AE_FORM)
    problems: list[dict[str, Any]] = []
    try:
        why = plain_text("reason", reason, MAX_REASON)
    except Invalid as exc:
        problems, why = exc.errors, ""
    try:
        document = _checked(session, patient, data)
    except Invalid as exc:
        refuse(i18n.gettext("adverse event correction"), [*exc.errors, *problems])
        raise
    refuse(i18n.gettext("adverse event correction"), problems)
    before = json.loads(row.data_json)
    row.data_json = canonical(document)
    row.updated_at, row.updated_by = dt.datetime.now(dt.UTC), actor.name
    session.flush()
    record(session, actor.name, "correct_ae", "adverse_event", f"{trial_id}/{code}/{row.id}", trial_id=trial_id,
           site=patient.site_code, before=before, after=document, reason=why)
    record_signatures.after_change(session, actor, patient, locks.AE_FORM)
    return _view(row, code)


def list_aes(session: Session, actor: Actor, trial_id: str, code: str) -> list[dict[str, Any]]:
    actor.require("reading safety data")
    _protocol, patient, _ = randomized_patient(session, actor, trial_id, code)
    rows = session.execute(select(AdverseEvent).where(AdverseEvent.patient_id == patient.id)
                           .order_by(AdverseEvent.id)).scalars()
    return [_view(r, code) for r in rows]
