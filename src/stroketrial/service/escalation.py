"""A dose-escalation trial on the platform: enrolment into the open cohort, DLT assessments, and the safety
review committee's signed confirmation of each decision. Each operation is one transaction with its audit
event; the escalation's state is computed from the stored rows by dosing.escalation.live, never stored.

Enrolment writes the patient's Allocation (the trial's one arm) beside the cohort and level, so the dose
sheet, visits and SAEs work as they do after randomization. It runs inside `Database.write()`, which holds
the audit-head lock: two enrolments cannot both take the last place in a cohort.
"""

from __future__ import annotations

import datetime as dt
import json
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from .. import i18n
from ..dosing.escalation.decisions import EscalationInputError
from ..dosing.escalation.live import (Confirmation, EnrolledPatient, EnrolmentClosed, EscalationState,
                                      check_confirmation, escalation_state, observation_ends)
from ..protocol import Protocol
from ..protocol.model import DoseEscalation
from ..randomization import Allocation as AllocationRecord
from ..store import record
from ..store.models import Allocation, DltAssessment, EscalationAssignment, EscalationDecision, Patient
from .accounts import Actor
from .consent import require_consent
from .errors import Conflict, Invalid, Unauthorized
from .patients import MAX_REASON, aware, find_patient
from .randomize import MAX_KEY, require_eligible, screen_at_server_time
from .signatures import Signature
from .trials import get_trial, patient_protocol

PHASE_TEXT = {"escalation": "dose escalation", "expansion": "dose expansion"}


def escalation_of(protocol: Protocol, trial_id: str) -> DoseEscalation:
    if protocol.dose_escalation is None:
        raise Conflict(i18n.gettext("{trial} has no dose escalation ({design})").format(
            trial=trial_id, design=protocol.design.model.replace("_", " ")))
    return protocol.dose_escalation


def assignment_of(session: Session, patient: Patient) -> EscalationAssignment | None:
    return session.execute(select(EscalationAssignment).where(EscalationAssignment.patient_id == patient.id)
                           ).scalar_one_or_none()


def current_state(session: Session, trial_id: str, escalation: DoseEscalation,
                  now: dt.datetime | None = None) -> EscalationState:
    rows = session.execute(select(EscalationAssignment, Patient.code, DltAssessment.dlt)
                           .join(Patient, Patient.id == EscalationAssignment.patient_id)
                           .outerjoin(DltAssessment, DltAssessment.patient_id == EscalationAssignment.patient_id)
                           .where(EscalationAssignment.trial_id == trial_id)).all()
    patients = [EnrolledPatient(code, a.cohort, a.level, "expansion" if a.phase == "expansion" else "escalation",
                                aware(a.enrolled_at), dlt) for a, code, dlt in rows]
    decisions = session.execute(select(EscalationDecision).where(EscalationDecision.trial_id == trial_id)).scalars()
    confirmations = [Confirmation(d.after_cohort, "treat" if d.action == "treat" else "stop", d.level, d.mtd,
                                  d.deviation) for d in decisions]
    try:
        return escalation_state(escalation, patients, confirmations, now or dt.datetime.now(dt.UTC))
    except EscalationInputError as exc:  # pragma: no cover - only rows this module wrote are read
        raise Conflict(f"the stored escalation of {trial_id} is inconsistent: {exc}") from None


def escalation_view(session: Session, actor: Actor, trial_id: str) -> dict[str, Any]:
    """The escalation table: levels with their doses, cohorts with patients and DLTs, what is open, what waits,
    the decision awaiting the committee, and every confirmed decision with who signed it and why."""
    actor.require("reading safety data")
    _trial, protocol = get_trial(session, actor, trial_id)
    escalation = escalation_of(protocol, trial_id)
    state = current_state(session, trial_id, escalation)
    signed = list(session.execute(select(EscalationDecision).where(EscalationDecision.trial_id == trial_id)
                                  .order_by(EscalationDecision.after_cohort)).scalars())
    decided = max((d.after_cohort for d in signed), default=0)
    details = {code: _dlt_json(escalation, row) for row, code in session.execute(
        select(DltAssessment, Patient.code).join(Patient, Patient.id == DltAssessment.patient_id)
        .where(Patient.trial_id == trial_id)).all()}
    dose = {lv.level: lv.dose for lv in escalation.levels}
    body = state.to_json()
    for cohort in body["cohorts"]:
        cohort["dose"] = dose[cohort["level"]]
        for patient in cohort["patients"]:
            detail = details.get(patient["patient_id"])
            patient["dlt_assessment"] = {k: v for k, v in detail.items() if k != "stored"} if detail else None
            # once the committee has signed a decision that counted it, an assessment is the committee's matter
            patient["correctable"] = cohort["phase"] == "expansion" or cohort["cohort"] > decided
    return body | {
        "trial": trial_id, "design": escalation.design, "unit": escalation.unit,
        "levels": [{"level": lv.level, "dose": lv.dose} for lv in escalation.levels],
        "cohort_size": escalation.cohort_size, "expansion_size": escalation.expansion_size,
        "dlt_window_hours": escalation.dlt_window_hours,
        "dlt_definition": [d.model_dump() for d in escalation.dlt_definition],
        "review_role": escalation.review_role,
        "open_dose": dose.get(state.open_level or 0),
        "decisions": [_decision_json(d) for d in signed],
    }


def _decision_json(d: EscalationDecision) -> dict[str, Any]:
    return {"after_cohort": d.after_cohort, "rule": json.loads(d.computed_json), "action": d.action,
            "level": d.level, "mtd": d.mtd, "deviation": d.deviation, "reason": d.reason,
            "signed_by": d.signed_by, "signed_at": aware(d.signed_at).isoformat()}


def enrol(session: Session, actor: Actor, trial_id: str, code: str, idempotency_key: str | None,
          cohort: int | None = None, level: int | None = None,
          now: dt.datetime | None = None) -> tuple[dict[str, Any], bool]:
    """Enrol an eligible patient into the open cohort at its level: (the enrolment, whether it was created now).
    `cohort` and `level`, when given, are what the caller expects (the page it read); another is refused."""
    actor.require("enrolling in a dose-escalation cohort")
    if not idempotency_key or not idempotency_key.strip() or len(idempotency_key) > MAX_KEY:
        raise Invalid(i18n.gettext("enrolment needs an Idempotency-Key header (1-200 characters, new for each "
                                   "request, the same when retrying)"),
                      [{"field": "Idempotency-Key", "value": idempotency_key,
                        "message": i18n.gettext("1-200 characters")}])
    _trial, protocol = get_trial(session, actor, trial_id)
    escalation = escalation_of(protocol, trial_id)
    patient = find_patient(session, actor, trial_id, code)
    previous = session.execute(select(EscalationAssignment).where(
        EscalationAssignment.trial_id == trial_id, EscalationAssignment.idempotency_key == idempotency_key)
    ).scalar_one_or_none()
    if previous is not None:
        if previous.patient_id != patient.id:
            raise Conflict(i18n.gettext("this Idempotency-Key was used for another patient; use a new key for each "
                                        "patient"))
        return _enrolment_json(protocol, escalation, previous, code), False
    if (existing := assignment_of(session, patient)) is not None:
        raise Conflict(i18n.gettext("patient {patient} was enrolled already (cohort {cohort}, level {level}); a "
                                    "patient is enrolled once").format(patient=code, cohort=existing.cohort,
                                                                       level=existing.level),
                       cohort=existing.cohort, level=existing.level)
    require_eligible(patient)
    require_consent(session, protocol, patient, "enrolled")
    moment = now or dt.datetime.now(dt.UTC)
    state = current_state(session, trial_id, escalation, moment)
    try:
        place = state.place(cohort, level)
    except EnrolmentClosed as exc:
        raise Conflict(str(exc), status=state.status, open_cohort=state.open_cohort,
                       open_level=state.open_level) from None
    if now is None:
        screen_at_server_time(session, actor, patient_protocol(session, trial_id, patient.protocol_version), patient)
    number, dose_level, phase = place
    arm = protocol.arms[0].id
    sequence = 1 + len(session.execute(select(Allocation.id).where(Allocation.trial_id == trial_id)).all())
    method = f"{escalation.design} {PHASE_TEXT[phase]}: cohort {number}, level {dose_level}"
    allocation = AllocationRecord(sequence=sequence, patient_id=code, arm=arm, slot=arm, method=method,
                                  site=patient.site_code)
    session.add(Allocation(trial_id=trial_id, patient_id=patient.id, sequence=sequence, arm=arm, kit=None,
                           record_json=allocation.model_dump_json(), idempotency_key=idempotency_key,
                           created_at=moment, created_by=actor.name))
    row = EscalationAssignment(trial_id=trial_id, patient_id=patient.id, cohort=number, level=dose_level,
                               phase=phase, enrolled_at=moment, idempotency_key=idempotency_key,
                               created_by=actor.name)
    session.add(row)
    session.flush()
    body = _enrolment_json(protocol, escalation, row, code)
    record(session, actor.name, "enrol_dose_cohort", "patient", f"{trial_id}/{code}", trial_id=trial_id,
           site=patient.site_code, after=body | {"allocation": json.loads(allocation.model_dump_json())})
    return body, True


def _enrolment_json(protocol: Protocol, escalation: DoseEscalation, row: EscalationAssignment,
                    code: str) -> dict[str, Any]:
    dose = {lv.level: lv.dose for lv in escalation.levels}[row.level]
    enrolled = aware(row.enrolled_at)
    return {"patient_id": code, "cohort": row.cohort, "level": row.level, "dose": dose, "unit": escalation.unit,
            "phase": row.phase, "arm": protocol.arms[0].id, "enrolled_at": enrolled.isoformat(),
            "dlt_observation_ends": observation_ends(escalation, enrolled).isoformat()}


def record_dlt(session: Session, actor: Actor, trial_id: str, code: str, dlt: bool, criterion: str | None,
               event: str | None, onset: str | None, reason: str | None = None) -> dict[str, Any]:
    """The investigator's DLT assessment of an enrolled patient: yes with the protocol's DLT it meets, the event
    and its onset date, or no. A correction needs a reason; the trail keeps before and after."""
    actor.require("recording a DLT assessment")
    _trial, protocol = get_trial(session, actor, trial_id)
    escalation = escalation_of(protocol, trial_id)
    patient = find_patient(session, actor, trial_id, code)
    assignment = assignment_of(session, patient)
    if assignment is None:
        raise Conflict(i18n.gettext("patient {patient} is not enrolled in a dose cohort").format(patient=code))
    values = _checked_dlt(escalation, dlt, criterion, event, onset, aware(assignment.enrolled_at))
    existing = session.execute(select(DltAssessment).where(DltAssessment.patient_id == patient.id)
                               ).scalar_one_or_none()
    before = None if existing is None else _dlt_json(escalation, existing)
    if existing is not None:
        if not reason or not reason.strip() or len(reason) > MAX_REASON:
            raise Invalid(i18n.gettext("{patient} has a DLT assessment already; a correction needs a reason (1-{most} "
                                       "characters)").format(patient=code, most=MAX_REASON),
                          [{"field": "reason", "value": reason, "message": i18n.gettext("required for a correction")}])
        decided = session.execute(select(EscalationDecision.after_cohort).where(
            EscalationDecision.trial_id == trial_id, EscalationDecision.after_cohort >= assignment.cohort)).first()
        if decided is not None and assignment.phase == "escalation":
            raise Conflict(i18n.gettext("the safety review committee has confirmed the decision after cohort {cohort}, "
                                        "which counted {patient}'s DLT assessment; a correction now is a matter for "
                                        "the committee (record it as an SAE or protocol deviation)").format(
                cohort=decided[0], patient=code))
    row = existing or DltAssessment(patient_id=patient.id, recorded_by=actor.name)
    row.dlt, row.criterion, row.event, row.onset = values
    row.recorded_at, row.recorded_by = dt.datetime.now(dt.UTC), actor.name
    session.add(row)
    session.flush()
    after = _dlt_json(escalation, row)
    record(session, actor.name, "record_dlt" if existing is None else "correct_dlt", "patient",
           f"{trial_id}/{code}", trial_id=trial_id, site=patient.site_code, before=before, after=after,
           reason=reason.strip() if reason else None)
    return after | {"patient_id": code}


def _checked_dlt(escalation: DoseEscalation, dlt: bool, criterion: str | None, event: str | None,
                 onset: str | None, enrolled: dt.datetime) -> tuple[bool, int | None, str | None, str | None]:
    ids = [d.id for d in escalation.dlt_definition]
    if not dlt:
        given = {k: v for k, v in (("criterion", criterion), ("event", event), ("onset", onset)) if v}
        if given:
            raise Invalid(i18n.gettext("no DLT: leave criterion, event and onset empty"),
                          [{"field": k, "value": v, "message": i18n.gettext("only with a DLT")}
                           for k, v in given.items()])
        return False, None, None, None
    problems = []
    if criterion not in ids:
        problems.append({"field": "criterion", "value": criterion,
                         "message": i18n.gettext("one of the protocol's DLTs: {ids}").format(ids=", ".join(ids))})
    if not event or not event.strip() or len(event) > MAX_REASON:
        problems.append({"field": "event", "value": event,
                         "message": i18n.gettext("the event, 1-{most} characters").format(most=MAX_REASON)})
    try:
        day = dt.date.fromisoformat(onset or "")
    except ValueError:
        problems.append({"field": "onset", "value": onset, "message": i18n.gettext("a date, YYYY-MM-DD")})
    else:
        window = escalation.dlt_definition[ids.index(criterion)] if criterion in ids else None
        last = (enrolled + dt.timedelta(hours=window.window_hours)).date() if window else None
        if day < enrolled.date() or (last is not None and day > last):
            problems.append({"field": "onset", "value": onset,
                             "message": i18n.gettext("within the DLT's window, {first} to {last}").format(
                                 first=enrolled.date(), last=last)})
    if problems:
        raise Invalid(i18n.gettext("the DLT assessment is not valid: {problems}").format(
            problems="; ".join(f"{p['field']}: {p['message']}" for p in problems)), problems)
    assert criterion is not None and event is not None
    return True, ids.index(criterion) + 1, event.strip(), onset


def _dlt_json(escalation: DoseEscalation, row: DltAssessment) -> dict[str, Any]:
    definition = escalation.dlt_definition[row.criterion - 1] if row.criterion else None
    return {"dlt": row.dlt, "criterion": definition.id if definition else None,
            "criterion_text": definition.text if definition else None, "event": row.event, "onset": row.onset,
            "recorded_by": row.recorded_by, "stored": dlt_row(row)}


def dlt_row(row: DltAssessment) -> dict[str, Any]:
    """The stored assessment as the audit trail keeps it, for reconcile.py."""
    return {"dlt": row.dlt, "criterion": row.criterion, "event": row.event, "onset": row.onset}


def assignment_row(row: EscalationAssignment) -> dict[str, Any]:
    """The stored cohort, level and phase as the audit trail keeps them, for reconcile.py."""
    return {"cohort": row.cohort, "level": row.level, "phase": row.phase,
            "enrolled_at": aware(row.enrolled_at).isoformat()}


def decision_row(row: EscalationDecision) -> dict[str, Any]:
    """The stored decision as the audit trail keeps it, for reconcile.py."""
    return _decision_json(row)


def confirm_decision(session: Session, actor: Actor, trial_id: str, after_cohort: int, action: str,
                     level: int | None, mtd: int | None, reason: str | None, signature: Signature) -> dict[str, Any]:
    """The committee member signs the decision after a cohort: the rule's, or a departure from it. `signature`
    (signatures.sign: the member's password entered again) is the electronic signature; the reason is required
    either way, and a departure is marked in the trail."""
    actor.require("confirming an escalation decision")
    _trial, protocol = get_trial(session, actor, trial_id)
    escalation = escalation_of(protocol, trial_id)
    if signature.name != actor.name:
        raise Unauthorized(i18n.gettext("the signature is {signer}'s, not {user}'s").format(signer=signature.name,
                                                                                           user=actor.name))
    if not reason or not reason.strip() or len(reason) > MAX_REASON:
        raise Invalid(i18n.gettext("the committee's reason is required (1-{most} characters)").format(most=MAX_REASON),
                      [{"field": "reason", "value": reason, "message": i18n.gettext("required")}])
    state = current_state(session, trial_id, escalation)
    if state.pending_after != after_cohort:
        waiting = (i18n.gettext("the decision after cohort {cohort} is waiting").format(cohort=state.pending_after)
                   if state.pending_after else i18n.gettext("no decision is waiting ({waiting})").format(
                       waiting="; ".join(state.waiting or (i18n.gettext("nothing to confirm"),))))
        raise Conflict(i18n.gettext("there is no decision after cohort {cohort} to confirm: {waiting}").format(
            cohort=after_cohort, waiting=waiting), pending_after_cohort=state.pending_after)
    try:
        confirmation = check_confirmation(escalation, state, action, level, mtd)
    except EnrolmentClosed as exc:  # pragma: no cover - pending_after was checked above
        raise Conflict(str(exc)) from None
    except EscalationInputError as exc:
        raise Invalid(str(exc), [{"field": "decision", "value": {"action": action, "level": level, "mtd": mtd},
                                  "message": str(exc)}]) from None
    assert state.pending is not None
    row = EscalationDecision(trial_id=trial_id, after_cohort=after_cohort, computed_json=json.dumps(
        state.pending.to_json(), sort_keys=True), action=confirmation.action, level=confirmation.level,
        mtd=confirmation.mtd, deviation=confirmation.deviation, reason=reason.strip(), signed_by=actor.name,
        signed_at=signature.at)
    session.add(row)
    session.flush()
    body = _decision_json(row)
    meaning = ("departure from the escalation rule" if confirmation.deviation
               else "confirmation of the escalation rule's decision")
    record(session, actor.name, "deviate_escalation" if confirmation.deviation else "confirm_escalation",
           "escalation", f"{trial_id}/after-cohort-{after_cohort}", trial_id=trial_id,
           after=body | {"signature_meaning": meaning}, reason=reason.strip())
    return body | {"signature_meaning": meaning}


def dose_level_of(session: Session, patient: Patient) -> int | None:
    assignment = assignment_of(session, patient)
    return assignment.level if assignment else None
