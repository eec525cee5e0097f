"""Patients on the platform: registered with their screening data, screened against the protocol."""

from __future__ import annotations

import datetime as dt
import json
from typing import Any
from collections.abc import Mapping
from zoneinfo import ZoneInfo

from sqlalchemy import Row, Select, and_, case, func, select
from sqlalchemy.orm import Session

from .. import i18n
from ..clinical import PatientDataError, parse_patient
from ..clinical.record import ATTESTATIONS_KEY
from ..eligibility import ScreeningInputError, screen
from ..protocol import Protocol
from ..store import canonical, record
from ..store.models import Allocation, Patient
from . import locks, record_signatures
from .accounts import Actor
from .blinding import sees_arm, sees_arm_counts, sees_kit
from .clock import future_times, site_zone
from .errors import Conflict, Forbidden, Invalid, NotFound
from .text import identifier, plain_text
from .trials import get_trial, patient_protocol, protocol_in_force, trial_sites

MAX_REASON = 2000  # characters of a correction or unblinding reason


def field_errors(exc: PatientDataError | ScreeningInputError) -> list[dict[str, Any]]:
    return [{"field": e.field, "value": e.value, "message": e.message} for e in exc.errors]


def validated_screening(protocol: Protocol, data: Mapping[str, Any], zone: ZoneInfo | None = None):
    """(patient, screening result); with the site's time zone, clock times in the future are refused."""
    if not isinstance(data, Mapping):
        raise Invalid(i18n.gettext("data must be an object of field: value"),
                      [{"field": "data", "value": data, "message": i18n.gettext("an object")}])
    try:
        patient = parse_patient(data)
        result = screen(protocol, patient)
    except (PatientDataError, ScreeningInputError) as exc:
        raise Invalid(i18n.gettext("screening data refused: {problems}").format(problems=exc),
                      field_errors(exc)) from None
    if zone is not None and (errors := future_times(patient.values, zone)):
        raise Invalid(i18n.gettext("screening data refused: {problems}").format(
            problems="; ".join(e["message"] for e in errors)), errors)
    return patient, result


def register(session: Session, actor: Actor, trial_id: str, code: str, site: str, data: Mapping[str, Any],
             attestations: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """Register a patient with their screening data; answers with the eligibility result."""
    actor.require("registering a patient")
    _trial, protocol = get_trial(session, actor, trial_id)
    locks.refuse_if_locked(session, trial_id)  # no new patient while the whole trial is frozen or locked
    # Refused, not tidied: an id with a slash, a space or an invisible character could never be
    # reached again by URL or typed again at the bedside.
    code = identifier("patient_id", code, max_length=60)
    if site not in trial_sites(session, trial_id):
        raise Invalid(i18n.gettext("site {site} does not take part in {trial} ({sites})").format(
            site=repr(site), trial=trial_id, sites=", ".join(trial_sites(session, trial_id))),
            [{"field": "site", "value": site, "message": i18n.gettext("a site of this trial")}])
    if not actor.can_see_site(site):
        raise Forbidden(i18n.gettext("{name} does not work at site {site}").format(name=actor.name, site=site))
    if session.execute(select(Patient).where(Patient.trial_id == trial_id, Patient.code == code)).scalar_one_or_none():
        raise Conflict(i18n.gettext("patient {patient} is already registered in {trial}").format(patient=code,
                                                                                              trial=trial_id))
    document = {**dict(data), "patient_id": code, "site": site}
    if attestations:
        document[ATTESTATIONS_KEY] = dict(attestations)
    patient, result = validated_screening(protocol, document, site_zone(session, site))
    stored = patient.to_json()
    row = Patient(trial_id=trial_id, code=code, site_code=site, data_json=canonical(stored), status=result.status,
                  screening_json=canonical(result.to_json()), created_by=actor.name,
                  protocol_version=protocol_in_force(session, _trial)[0])
    session.add(row)
    session.flush()
    record(session, actor.name, "register", "patient", f"{trial_id}/{code}", trial_id=trial_id, site=site,
           after={"data": stored, "status": result.status})
    from .consent import consent_from_attestation  # consent.py builds on this module
    consent_from_attestation(session, actor, protocol, row)
    return patient_view(session, actor, protocol, row)


def update_screening(session: Session, actor: Actor, trial_id: str, code: str, changes: Mapping[str, Any],
                     reason: str | None) -> dict[str, Any]:
    """Correct screening data before randomization; the reason is required and audited."""
    actor.require("correcting screening data")
    get_trial(session, actor, trial_id)
    row = find_patient(session, actor, trial_id, code)
    locks.refuse_if_locked(session, row, locks.SCREENING_FORM)
    protocol = patient_protocol(session, trial_id, row.protocol_version)  # screened under it, corrected under it
    if not reason or not reason.strip():
        raise Invalid(i18n.gettext("a change to recorded data needs a reason"),
                      [{"field": "reason", "value": reason, "message": i18n.gettext("required")}])
    reason = plain_text("reason", reason, MAX_REASON)
    if allocation_of(session, row) is not None:
        raise Conflict(i18n.gettext("patient {patient} is randomized; screening data are locked: a monitor or data "
                                    "manager raises a data query on the field (POST /api/v1/trials/{trial}/patients/"
                                    "{patient}/queries with form screening, or the patient's Data queries page), which "
                                    "the site answers with an explanation").format(patient=code, trial=trial_id))
    if not isinstance(changes, Mapping):
        raise Invalid(i18n.gettext("changes must be an object of field: value"),
                      [{"field": "data", "value": changes, "message": i18n.gettext("an object")}])
    before = json.loads(row.data_json)
    after_document = {**before, **dict(changes), "patient_id": row.code, "site": row.site_code}
    after_document = {k: v for k, v in after_document.items() if v is not None}
    patient, result = validated_screening(protocol, after_document, site_zone(session, row.site_code))
    after = patient.to_json()
    row.data_json, row.status, row.screening_json = canonical(after), result.status, canonical(result.to_json())
    record(session, actor.name, "update_screening", "patient", f"{trial_id}/{code}", trial_id=trial_id,
           site=row.site_code,
           before=before, after=after, reason=reason.strip())
    record_signatures.after_change(session, actor, row, locks.SCREENING_FORM)
    return patient_view(session, actor, protocol, row)


def find_patient(session: Session, actor: Actor, trial_id: str, code: str) -> Patient:
    row = session.execute(select(Patient).where(Patient.trial_id == trial_id, Patient.code == code)
                          ).scalar_one_or_none()
    if row is None or not actor.can_see_site(row.site_code):
        raise patient_not_found(trial_id, code)
    return row


def patient_not_found(trial_id: str, code: str) -> NotFound:
    # The same answer whether the patient is elsewhere or absent: a site learns nothing of others.
    return NotFound(i18n.gettext("no patient {patient} in {trial} at your sites").format(patient=code, trial=trial_id))


def allocation_of(session: Session, row: Patient) -> Allocation | None:
    return session.execute(select(Allocation).where(Allocation.patient_id == row.id)).scalar_one_or_none()


def randomized_patient(session: Session, actor: Actor, trial_id: str,
                       code: str) -> tuple[Protocol, Patient, Allocation]:
    """The trial's protocol, a patient this actor may see, and the patient's allocation; Conflict before randomization.
    Everything after randomization (the dose sheet, visits, SAEs, unblinding) starts here."""
    _trial, protocol = get_trial(session, actor, trial_id)
    patient = find_patient(session, actor, trial_id, code)
    allocation = allocation_of(session, patient)
    if allocation is None:
        message = (i18n.gettext("patient {patient} is not randomized yet") if protocol.randomization is not None
                   else i18n.gettext("patient {patient} is not enrolled in a dose cohort yet"))
        raise Conflict(message.format(patient=code))
    return protocol, patient, allocation


def aware(moment: dt.datetime) -> dt.datetime:
    """SQLite returns stored UTC times without their zone; say it again."""
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=dt.UTC)


def visible_allocation_fields(actor: Actor, protocol: Protocol, in_list: bool = False) -> tuple[bool, bool]:
    """Whether this actor sees each allocation's kit, and its arm. In a list, arms are counts per arm in all but
    name: those who enrol patients in a trial whose next allocation depends on the counts see each arm on its
    patient's page (the treating team needs it), never in a list from which the margins could be rebuilt."""
    return (sees_kit(actor.role),
            sees_arm(actor.role, protocol.design.masking) and (not in_list or sees_arm_counts(actor.role, protocol)))


def allocation_view(actor: Actor, protocol: Protocol, allocation: Allocation | Row,
                    in_list: bool = False, visible: tuple[bool, bool] | None = None) -> dict[str, Any]:
    """One allocation as this actor may see it (`visible_allocation_fields`, worked out once for a list)."""
    kit, arm = visible or visible_allocation_fields(actor, protocol, in_list)
    view = {"sequence": allocation.sequence, "kit": allocation.kit,
            "randomized_at": aware(allocation.created_at).isoformat() if allocation.created_at else None,
            "randomized_by": allocation.created_by}
    if not kit:
        del view["kit"]  # dropped for every patient alike, kit or none, so its absence says nothing
    if arm:
        view["arm"] = allocation.arm
    return view


def patient_view(session: Session, actor: Actor, protocol: Protocol, row: Patient,
                 allocation: Allocation | None = None, with_data: bool = True, look_up: bool = True) -> dict[str, Any]:
    if allocation is None and look_up:
        allocation = allocation_of(session, row)
    screening = json.loads(row.screening_json)
    view = _summary(actor, protocol, row, allocation, with_data, *_open_criteria(screening))
    if with_data:
        view["screening"] = screening
        view["data"] = json.loads(row.data_json)
    return view


def _summary(actor: Actor, protocol: Protocol, row: Patient | Row, allocation: Allocation | Row | None,
             with_data: bool, failing: list[str], outstanding: list[str],
             visible: tuple[bool, bool] | None = None) -> dict[str, Any]:
    return {"patient_id": row.code, "site": row.site_code, "status": row.status,
            "randomized": allocation is not None,
            "randomization": (allocation_view(actor, protocol, allocation, in_list=not with_data, visible=visible)
                              if allocation else None),
            "registered_at": aware(row.created_at).isoformat() if row.created_at else None,
            "failing": failing, "outstanding": outstanding}


def _open_criteria(screening: Mapping[str, Any]) -> tuple[list[str], list[str]]:
    """The criteria that exclude the patient, and those still waiting for data or an attestation."""
    criteria = screening["criteria"]
    return ([c["id"] for c in criteria if c.get("excludes")],
            [c["id"] for c in criteria if c["status"] in ("missing_data", "needs_attestation")])


def _listed(actor: Actor, trial_id: str) -> Select[Any]:
    """The trial's patients at the actor's sites, as the list's filter."""
    where = Patient.trial_id == trial_id
    return select(Patient.id).where(where if actor.is_admin else and_(where, Patient.site_code.in_(actor.sites)))


def count_patients(session: Session, actor: Actor, trial_id: str) -> int:
    """How many patients `list_patients` holds without a limit."""
    get_trial(session, actor, trial_id)
    return session.execute(select(func.count()).select_from(_listed(actor, trial_id).subquery())).scalar_one()


def list_patients(session: Session, actor: Actor, trial_id: str, limit: int | None = None,
                  offset: int = 0) -> list[dict[str, Any]]:
    """The trial's patients at the actor's sites, in order of registration (from the `offset`-th, at most `limit`):
    columns, not whole records. An eligible patient's stored screening result has no excluding and no open
    criterion (eligibility/screen.py gives "eligible" only then), so only the others' results are read and parsed."""
    _trial, protocol = get_trial(session, actor, trial_id)
    page = _listed(actor, trial_id).order_by(Patient.id).offset(offset).limit(limit).subquery()
    allocations = {r.patient_id: r for r in session.execute(
        select(Allocation.patient_id, Allocation.sequence, Allocation.kit, Allocation.created_at,
               Allocation.created_by, Allocation.arm).where(Allocation.patient_id.in_(select(page.c.id))))}
    screening = case((Patient.status == "eligible", None), else_=Patient.screening_json)
    rows = session.execute(select(Patient.id, Patient.code, Patient.site_code, Patient.status, Patient.created_at,
                                  screening.label("screening_json"))
                           .where(Patient.id.in_(select(page.c.id))).order_by(Patient.id))
    visible = visible_allocation_fields(actor, protocol, in_list=True)
    return [_summary(actor, protocol, row, allocations.get(row.id), False,
                     *(_open_criteria(json.loads(row.screening_json)) if row.screening_json else ([], [])),
                     visible=visible)
            for row in rows]


def patient_counts(session: Session, actor: Actor, trial_id: str) -> dict[str, int]:
    """Registered, randomized, and eligible awaiting randomization, at the actor's sites (the trials list)."""
    get_trial(session, actor, trial_id)
    rows = [(status, randomized) for site, status, randomized in session.execute(
        select(Patient.site_code, Patient.status, Allocation.id.is_not(None))
        .outerjoin(Allocation, Allocation.patient_id == Patient.id).where(Patient.trial_id == trial_id))
        if actor.can_see_site(site)]
    return {"registered": len(rows), "randomized": sum(bool(r) for _, r in rows),
            "awaiting": sum(status == "eligible" and not r for status, r in rows)}


def get_patient(session: Session, actor: Actor, trial_id: str, code: str) -> dict[str, Any]:
    _trial, protocol = get_trial(session, actor, trial_id)
    return patient_view(session, actor, protocol, find_patient(session, actor, trial_id, code))
