"""Source data verification: the monitor marks a patient's form (or one field of it) as matching the source.

The mark keeps the SHA-256 of what was verified: the canonical JSON of the form (a visit's date and values, or the
screening data) or of the one field's value. A later change to the form clears the mark, saying who changed it,
when and why (`clear_changed`, called by `visits.record_visit` once the change is stored); a mark whose hash no
longer matches what is stored is shown as cleared even where no correction path cleared it. The monitor's list
shows, per patient and form, what is verified, what was cleared and waits to be verified again, and what was
never verified. Each mark and each clearing is one audit event.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
from collections.abc import Mapping
from typing import Any

from sqlalchemy import Row, select
from sqlalchemy.orm import Session

from .. import i18n
from ..clinical.assessments import ASSESSMENTS
from ..clinical.dictionary import VARIABLES
from ..protocol import Protocol
from ..store import canonical, record
from ..store.models import Allocation, Patient, SourceVerification, VisitRecord
from .accounts import Actor
from .blinding import sees_arm
from .errors import Invalid
from .patients import aware, find_patient
from .trials import get_trial

SCREENING = "screening"  # the screening form's name; every other form is a visit of the protocol
VISIT_DATE = "visit_date"


def digest(document: Any) -> str:
    return hashlib.sha256(canonical(document).encode("utf-8")).hexdigest()


def form_name(protocol: Protocol, form: str) -> str:
    """A form as people call it: the visit's name, or screening."""
    if form == SCREENING:
        return "Screening"
    return next((v.name for v in protocol.visits if v.id == form), form)


def field_label(protocol: Protocol, form: str, field: str | None) -> str:
    """A field's label: the dictionary's for screening, the follow-up dictionary's for a visit form."""
    if field is None:
        return "whole form"
    if field == VISIT_DATE:
        return "visit date"
    if form == SCREENING:
        variable = VARIABLES.get(field)
        return variable.label if variable is not None else field
    assessment = ASSESSMENTS.get(field)
    return assessment.label if assessment is not None else field


def forms_of(session: Session, actor: Actor, protocol: Protocol, patient: Patient | Row,
             allocation: Allocation | Row | None, visits: Mapping[str, VisitRecord | Row] | None = None,
             contents: bool = True) -> dict[str, Any]:
    """What is stored on each form of the patient this actor may see: screening, then each visit entered (a form
    kept for some arms only is left out for those who may not know the arm). `visits`: the patient's visit records
    by visit, when read already; without `contents`, the forms alone (each None), nothing parsed."""
    out: dict[str, Any] = {SCREENING: json.loads(patient.data_json) if contents else None}
    if allocation is None:
        return out
    if visits is None:
        visits = {r.visit_id: r for r in session.execute(select(VisitRecord).where(
            VisitRecord.patient_id == patient.id)).scalars()}
    for visit in protocol.visits:
        row = visits.get(visit.id)
        if row is None:
            continue
        if visit.arms is not None and not sees_arm(actor.role, protocol.design.masking):
            continue
        out[visit.id] = {VISIT_DATE: row.visit_date, "values": json.loads(row.values_json)} if contents else None
    return out


def _value(form: str, content: Any, field: str | None) -> Any:
    if field is None:
        return content
    if form == SCREENING:
        return content.get(field)
    return content[VISIT_DATE] if field == VISIT_DATE else content["values"].get(field)


def _allowed_fields(protocol: Protocol, form: str) -> list[str]:
    if form == SCREENING:
        return list(VARIABLES)
    visit = next(v for v in protocol.visits if v.id == form)
    return [VISIT_DATE, *visit.assessments]


def _mark_view(protocol: Protocol, mark: SourceVerification, current: str | None) -> dict[str, Any]:
    changed = mark.cleared_at is not None or current != mark.value_sha256
    return {"id": mark.id, "form": mark.form, "field": mark.field,
            "field_label": field_label(protocol, mark.form, mark.field),
            "status": "cleared" if changed else "verified", "verified_by": mark.verified_by,
            "verified_at": aware(mark.verified_at).isoformat(),
            "cleared_at": aware(mark.cleared_at).isoformat() if mark.cleared_at else None,
            "cleared_why": mark.cleared_why or ("changed since it was verified" if changed else None)}


def reverified_why(verifier: str) -> str:
    """Why an earlier mark was cleared when its form or field is verified again (no event of its own: the new
    mark's `verify_source` event implies it, and reconcile.py replays it so)."""
    return f"changed since it was verified; verified again by {verifier}"


def verify_form(session: Session, actor: Actor, trial_id: str, code: str, form: str,
                field: str | None = None) -> dict[str, Any]:
    """Mark a form (field None) or one of its fields as verified against the source; answers with the mark."""
    actor.require("verifying source data")
    _trial, protocol = get_trial(session, actor, trial_id)
    patient = find_patient(session, actor, trial_id, code)
    allocation = session.execute(select(Allocation).where(Allocation.patient_id == patient.id)).scalar_one_or_none()
    forms = forms_of(session, actor, protocol, patient, allocation)
    if form not in forms:
        entered = ", ".join(forms)
        raise Invalid(i18n.gettext("patient {patient} has no form {form} to verify (entered: {entered})").format(
            patient=code, form=repr(form), entered=entered),
            [{"field": "form", "value": form, "message": i18n.gettext("one of {choices}").format(choices=entered)}])
    if field is not None and field not in _allowed_fields(protocol, form):
        visit = next((v for v in protocol.visits if v.id == form), None)
        raise Invalid(i18n.gettext("{field} is not a field of the {form} form").format(
            field=repr(field), form=i18n.protocol_text(visit, "name") if visit is not None
            else i18n.gettext(form_name(protocol, form))),
            [{"field": "field", "value": field,
              "message": i18n.gettext("one of {choices}, or none for the form").format(
                  choices=", ".join(_allowed_fields(protocol, form)))}])
    value_sha256 = digest(_value(form, forms[form], field))
    active = list(session.execute(select(SourceVerification).where(
        SourceVerification.patient_id == patient.id, SourceVerification.form == form,
        SourceVerification.field.is_(None) if field is None else SourceVerification.field == field,
        SourceVerification.cleared_at.is_(None))).scalars())
    same = next((m for m in active if m.value_sha256 == value_sha256), None)
    if same is not None:
        return _mark_view(protocol, same, value_sha256) | {"patient_id": code}  # verified already: nothing changes
    now = dt.datetime.now(dt.UTC)
    for old in active:  # a mark over values since changed by a path that did not clear it
        old.cleared_at, old.cleared_why = now, reverified_why(actor.name)
    mark = SourceVerification(patient_id=patient.id, form=form, field=field, value_sha256=value_sha256,
                              verified_by=actor.name, verified_at=now)
    session.add(mark)
    session.flush()
    record(session, actor.name, "verify_source", "source_verification", f"{trial_id}/{code}/{mark.id}",
           trial_id=trial_id, site=patient.site_code,
           after={"form": form, "field": field, "value_sha256": value_sha256})
    return _mark_view(protocol, mark, value_sha256) | {"patient_id": code}


def clear_changed(session: Session, actor: Actor, trial_id: str, patient: Patient, form: str,
                  reason: str | None) -> None:
    """After a change to a patient's form is stored: clear each mark on it whose verified value(s) changed."""
    marks = list(session.execute(select(SourceVerification).where(
        SourceVerification.patient_id == patient.id, SourceVerification.form == form,
        SourceVerification.cleared_at.is_(None))).scalars())
    if not marks:
        return
    if form == SCREENING:
        content: Any = json.loads(patient.data_json)
    else:
        row = session.execute(select(VisitRecord).where(VisitRecord.patient_id == patient.id,
                                                        VisitRecord.visit_id == form)).scalar_one()
        content = {VISIT_DATE: row.visit_date, "values": json.loads(row.values_json)}
    now = dt.datetime.now(dt.UTC)
    why = (f"changed by {actor.name} on {now:%Y-%m-%d %H:%M} UTC "
           f"({reason.strip() if reason and reason.strip() else 'entered without a correction reason'})")
    for mark in marks:
        if digest(_value(form, content, mark.field)) == mark.value_sha256:
            continue
        mark.cleared_at, mark.cleared_why = now, why
        record(session, actor.name, "clear_source_verification", "source_verification",
               f"{trial_id}/{patient.code}/{mark.id}", trial_id=trial_id, site=patient.site_code,
               before={"form": form, "field": mark.field, "value_sha256": mark.value_sha256},
               after={"cleared_why": why})


def verification_list(session: Session, actor: Actor, trial_id: str, code: str | None = None) -> dict[str, Any]:
    """Per patient (one, or all at the actor's sites) and form: verified, cleared (to verify again) or never
    verified, with each mark on a single field beside its form."""
    actor.require("reading source data verification")
    _trial, protocol = get_trial(session, actor, trial_id)
    # Columns, not records, for a trial's thousand patients and their visits; a form's content (JSON) is read only
    # for the patients with a mark, to check the mark against the data now.
    patients: list[Patient | Row]
    if code is not None:
        patients = [find_patient(session, actor, trial_id, code)]
        in_scope: Any = [patients[0].id]
    else:
        in_scope = select(Patient.id).where(Patient.trial_id == trial_id)
        patients = [p for p in session.execute(select(Patient.id, Patient.code, Patient.site_code)
                                               .where(Patient.trial_id == trial_id).order_by(Patient.id))
                    if actor.can_see_site(p.site_code)]
    allocations = {a.patient_id: a for a in session.execute(select(Allocation.patient_id)
                                                            .where(Allocation.patient_id.in_(in_scope)))}
    marks: dict[int, list[SourceVerification]] = {}
    for m in session.execute(select(SourceVerification).where(SourceVerification.patient_id.in_(in_scope))
                             .order_by(SourceVerification.id)).scalars():
        marks.setdefault(m.patient_id, []).append(m)
    visits: dict[int, dict[str, Any]] = {}
    for v in session.execute(select(VisitRecord.patient_id, VisitRecord.visit_id)
                             .where(VisitRecord.patient_id.in_(in_scope))):
        visits.setdefault(v.patient_id, {})[v.visit_id] = v
    # marked patients as a subquery: a large trial's ids are not sent as one parameter each
    marked = select(SourceVerification.patient_id).where(SourceVerification.patient_id.in_(in_scope))
    if marks and code is None:
        contents = {p.id: p for p in session.execute(select(Patient.id, Patient.code, Patient.site_code,
                                                            Patient.data_json).where(Patient.id.in_(marked)))}
        patients = [contents.get(p.id, p) for p in patients]
    if marks:
        for full in session.execute(select(VisitRecord.patient_id, VisitRecord.visit_id, VisitRecord.visit_date,
                                           VisitRecord.values_json).where(VisitRecord.patient_id.in_(marked))):
            # setdefault: a form entered since the list of visits was read (PostgreSQL reads each query afresh)
            visits.setdefault(full.patient_id, {})[full.visit_id] = full
    names = {SCREENING: form_name(protocol, SCREENING)} | {v.id: form_name(protocol, v.id) for v in protocol.visits}
    out = []
    counts = {"verified": 0, "cleared": 0, "never": 0}
    for patient in patients:
        # a form's content is read only to check a mark on it against the data now
        forms = forms_of(session, actor, protocol, patient, allocations.get(patient.id), visits.get(patient.id, {}),
                         contents=patient.id in marks)
        rows: list[dict[str, Any]]
        if patient.id not in marks:
            rows = [{"form": form, "form_name": names[form], "status": "never", "mark": None, "fields": []}
                    for form in forms]
            counts["never"] += len(rows)
            out.append({"patient_id": patient.code, "site": patient.site_code, "forms": rows})
            continue
        rows = []
        for form, content in forms.items():
            mine = [m for m in marks[patient.id] if m.form == form]
            latest = {}
            for m in mine:  # the latest mark per field (None: the whole form)
                latest[m.field] = m
            views = {f: _mark_view(protocol, m, digest(_value(form, content, f))) for f, m in latest.items()}
            whole = views.get(None)
            status = whole["status"] if whole else "never"
            counts[status] += 1
            rows.append({"form": form, "form_name": names[form], "status": status, "mark": whole,
                         "fields": [v for f, v in views.items() if f is not None]})
        out.append({"patient_id": patient.code, "site": patient.site_code, "forms": rows})
    return {"trial": trial_id, "patients": out, "counts": counts}
