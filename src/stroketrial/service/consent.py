"""Informed consent: recorded, confirmed, renewed and withdrawn, each one transaction with its audit event.

Acute stroke makes consent hard: the patient is often aphasic or drowsy, so the protocol's `consent` section says
who may consent (the patient, a legally authorised representative, or deferred consent where an ethics committee
allows enrolment first) and on which approved form versions. The rules:

- A consent's route is one the protocol allows, its form version one the protocol approves, its time not in the
  future (read in the site's time zone, as every typed clock time: `clock.py`); obtained_by is the user recording
  it. A representative's consent names the signer and their relationship to the patient.
- Deferred consent is due for confirmation (by the patient or a representative) within the protocol's hours; a
  confirmation after the deadline is stored and flagged late. The site's to-do list shows the unconfirmed ones,
  overdue first.
- A re-consent on a newer approved form version is a new row; the consent it replaces points to it
  (`superseded_by`). A withdrawn consent is not renewed.
- A withdrawal records the patient's choice, each wider than the one before: `treatment` (stop study treatment,
  follow-up continues), `follow_up` (stop treatment and follow-up), `data_use` (also withdraw the use of their
  data, only where the protocol says the law allows it). A withdrawal may be widened, never narrowed or undone.
- Effects, enforced here and called from the operations they guard: randomization and enrolment need a current
  consent that is not withdrawn (`require_consent`); a recorded consent meets the protocol's consent criterion
  before randomization (`_meet_criterion`); visit data dated after a withdrawal of follow-up are refused
  (`refuse_visit_after_withdrawal`); the dose sheet is refused once treatment is withdrawn
  (`refuse_treatment_after_withdrawal`); the export's screening table flags withdrawals (`export_flags`).
- Registration with the consent attestation answered yes records a consent from it (`consent_from_attestation`):
  route patient, the current form version, at the time of registration, obtained by the registering user, marked
  in the trail as taken from the attestation. Without it, a patient registered before consent records existed, or
  attested by a later correction, would have no record to confirm or withdraw.
"""

from __future__ import annotations

import datetime as dt
import json
from typing import Any

from sqlalchemy import bindparam, select
from sqlalchemy.orm import Session

from .. import i18n
from ..clinical.record import ATTESTATIONS_KEY
from ..protocol import Protocol
from ..protocol.model import ConsentPolicy
from ..store import record
from ..store.models import Consent, Patient
from .accounts import Actor
from .clock import CLOCK_SKEW, as_utc, local_now, site_zone, utcnow
from .errors import Conflict, Invalid, NotFound
from .patients import MAX_REASON, allocation_of, aware, find_patient, update_screening
from .text import plain_text
from .trials import get_trial

ROUTES = ("patient", "representative", "deferred")
ROUTE_LABELS = {"patient": "the patient", "representative": "a legally authorised representative",
                "deferred": "deferred consent (enrolment first, confirmation later)"}
CONFIRMATION_ROUTES = ("patient", "representative")
# Each scope includes the ones before it: stopping follow-up stops treatment too.
SCOPES = ("treatment", "follow_up", "data_use")
SCOPE_LABELS = {"treatment": "stop study treatment only (follow-up continues)",
                "follow_up": "stop study treatment and follow-up",
                "data_use": "stop treatment and follow-up and withdraw the use of their data"}
STATUS_LABELS = {"given": "consent given", "awaiting_confirmation": "deferred: awaiting confirmation",
                 "overdue": "deferred: confirmation overdue", "confirmed": "deferred: confirmed",
                 "confirmed_late": "deferred: confirmed late", "withdrawn": "withdrawn",
                 "superseded": "replaced by a re-consent", "none": "no consent recorded"}
MAX_SIGNER = 120
MAX_RELATIONSHIP = 60


def policy_of(protocol: Protocol, trial_id: str) -> ConsentPolicy:
    if protocol.consent is None:
        raise Conflict(i18n.gettext("{trial}'s protocol has no consent section: consent is not recorded on the "
                                    "platform").format(trial=trial_id))
    return protocol.consent


def _allowed(policy: ConsentPolicy) -> str:
    return ", ".join(f"{r} ({i18n.gettext(ROUTE_LABELS[r])})" for r in policy.routes)


def _scope(scope: str | None) -> str | None:
    return i18n.gettext(SCOPE_LABELS[scope]) if scope in SCOPE_LABELS else scope


def _route(route: str | None) -> str | None:
    return i18n.gettext(ROUTE_LABELS[route]) if route in ROUTE_LABELS else route


def _step(step: str) -> str:
    """The step refused without consent (`require_consent`), in the reader's language."""
    return {"randomized": i18n.gettext("randomized"), "enrolled": i18n.gettext("enrolled")}.get(step, step)


def _moment(session: Session, field: str, value: Any, site: str, now: dt.datetime) -> dt.datetime:
    """A typed clock time in UTC: read in the site's zone when it has none, never in the future."""
    zone = site_zone(session, site)
    moment: dt.datetime | None = value if isinstance(value, dt.datetime) else None
    if moment is None:
        try:
            moment = dt.datetime.fromisoformat(value) if isinstance(value, str) and len(value) >= 16 else None
        except ValueError:
            moment = None
        if moment is None:
            raise Invalid(i18n.gettext("{field} {value} is not a date and time (YYYY-MM-DDTHH:MM, the site's "
                                       "clock)").format(field=field, value=repr(value)),
                          [{"field": field, "value": value,
                            "message": i18n.gettext("a date and time, YYYY-MM-DDTHH:MM")}])
    utc = as_utc(moment, zone)
    if utc > now + CLOCK_SKEW:
        shown = local_now(zone, moment, now).isoformat(timespec="minutes")
        raise Invalid(i18n.gettext("{field} {value} is in the future: it is now {now} at this site ({zone})").format(
            field=field, value=moment.isoformat(timespec="minutes"), now=shown, zone=zone.key),
            [{"field": field, "value": str(value), "message": i18n.gettext("not in the future")}])
    return utc


def _signer(route: str, name: Any, relationship: Any, field: str = "signer") -> str | None:
    """A representative's name and relationship, stored as 'name (relationship)'; nothing for the patient."""
    if route != "representative":
        if name or relationship:
            raise Invalid(i18n.gettext("only a legally authorised representative's consent names a signer (route is "
                                       "{route})").format(route=route),
                          [{"field": f"{field}_name", "value": name,
                            "message": i18n.gettext("only for route representative")}])
        return None
    errors = [{"field": f"{field}_{part}", "value": value, "message": message}
              for part, value, message in (
                  ("name", name, i18n.gettext("required: the representative's name")),
                  ("relationship", relationship, i18n.gettext("required: the representative's relationship")))
              if not isinstance(value, str) or not value.strip()]
    if errors:
        raise Invalid(i18n.gettext("a legally authorised representative's consent names the signer and their "
                                   "relationship to the patient"), errors)
    return (f"{plain_text(f'{field}_name', name, MAX_SIGNER)} "
            f"({plain_text(f'{field}_relationship', relationship, MAX_RELATIONSHIP)})")


_CONSENTS = select(Consent).where(Consent.patient_id == bindparam("patient")).order_by(Consent.id)


def _rows(session: Session, patient: Patient) -> list[Consent]:
    # a statement built once (bound per call): every randomization asks
    return list(session.execute(_CONSENTS, {"patient": patient.id}).scalars())


def current_consent(session: Session, patient: Patient) -> Consent | None:
    """The patient's consent in force: the latest one no re-consent has replaced (withdrawn or not)."""
    rows = [r for r in _rows(session, patient) if r.superseded_by is None]
    return rows[-1] if rows else None


def _status(row: Consent, now: dt.datetime) -> str:
    if row.superseded_by is not None:
        return "superseded"
    if row.withdrawn_at is not None:
        return "withdrawn"
    if row.route != "deferred":
        return "given"
    if row.confirmed_at is not None:
        due = row.confirmation_due
        return "confirmed_late" if due is not None and aware(row.confirmed_at) > aware(due) else "confirmed"
    return "overdue" if row.confirmation_due is not None and now > aware(row.confirmation_due) else \
        "awaiting_confirmation"


def _iso(moment: dt.datetime | None) -> str | None:
    return aware(moment).isoformat() if moment is not None else None


def consent_json(row: Consent, now: dt.datetime | None = None) -> dict[str, Any]:
    status = _status(row, now or utcnow())
    return {"id": row.id, "route": row.route, "route_label": ROUTE_LABELS.get(row.route, row.route),
            "form_version": row.form_version, "consented_at": _iso(row.consented_at), "obtained_by": row.obtained_by,
            "signer": row.signer, "confirmation_due": _iso(row.confirmation_due),
            "confirmed_at": _iso(row.confirmed_at), "confirmed_route": row.confirmed_route,
            "confirmed_route_label": ROUTE_LABELS.get(row.confirmed_route or ""),
            "confirmed_by": row.confirmed_by, "late": status == "confirmed_late", "overdue": status == "overdue",
            "withdrawn_at": _iso(row.withdrawn_at), "withdrawal": row.withdrawal,
            "withdrawal_label": SCOPE_LABELS.get(row.withdrawal or ""),
            "withdrawal_reason": row.withdrawal_reason, "superseded_by": row.superseded_by,
            "status": status, "status_label": STATUS_LABELS[status]}


def stored_consent(row: Consent) -> dict[str, Any]:
    """What the trail keeps of a consent: its columns, no derived labels."""
    view = consent_json(row)
    return {k: view[k] for k in ("id", "route", "form_version", "consented_at", "obtained_by", "signer",
                                 "confirmation_due", "confirmed_at", "confirmed_route", "confirmed_by",
                                 "withdrawn_at", "withdrawal", "withdrawal_reason", "superseded_by")}


def _entity(trial_id: str, code: str, row: Consent) -> str:
    return f"{trial_id}/{code}/consent/{row.id}"


def _meet_criterion(session: Session, actor: Actor, trial_id: str, policy: ConsentPolicy, patient: Patient,
                    row: Consent) -> None:
    """Before randomization a consent record answers the protocol's consent criterion: the attestation becomes
    yes through the audited screening correction, so the patient is screened again (and may become eligible)."""
    if allocation_of(session, patient) is not None:
        return
    attestations = dict(json.loads(patient.data_json).get(ATTESTATIONS_KEY) or {})
    if attestations.get(policy.criterion) is True:
        return
    update_screening(session, actor, trial_id, patient.code, {ATTESTATIONS_KEY: {**attestations,
                                                                                policy.criterion: True}},
                     f"informed consent recorded (consent {row.id}: {ROUTE_LABELS[row.route]}, form "
                     f"{row.form_version})")


def record_consent(session: Session, actor: Actor, trial_id: str, code: str, route: Any, form_version: Any,
                   consented_at: Any, signer_name: Any = None, signer_relationship: Any = None,
                   now: dt.datetime | None = None) -> dict[str, Any]:
    """Record a consent, or a re-consent on a newer approved form version (the current consent is superseded)."""
    actor.require("recording consent")
    _trial, protocol = get_trial(session, actor, trial_id)
    policy = policy_of(protocol, trial_id)
    patient = find_patient(session, actor, trial_id, code)
    now = now or utcnow()
    errors = []
    if route not in policy.routes:
        errors.append({"field": "route", "value": route,
                       "message": i18n.gettext("{trial} allows consent by {routes}").format(
                           trial=trial_id, routes=_allowed(policy))})
    if form_version not in policy.form_versions:
        errors.append({"field": "form_version", "value": form_version,
                       "message": i18n.gettext("approved consent form versions of {trial}: {versions} (current: "
                                               "{current})").format(trial=trial_id,
                                                                    versions=", ".join(policy.form_versions),
                                                                    current=policy.current_form)})
    if errors:
        raise Invalid(i18n.gettext("consent refused: {problems}").format(
            problems="; ".join(f"{e['field']} {e['value']!r}: {e['message']}" for e in errors)), errors)
    moment = _moment(session, "consented_at", consented_at, patient.site_code, now)
    signer = _signer(str(route), signer_name, signer_relationship)
    current = current_consent(session, patient)
    if current is not None:
        _check_reconsent(policy, code, current, str(route), str(form_version), moment)
    hours = policy.deferred_confirmation_hours
    row = Consent(trial_id=trial_id, patient_id=patient.id, form_version=form_version, route=route,
                  consented_at=moment, obtained_by=actor.name, signer=signer,
                  confirmation_due=moment + dt.timedelta(hours=hours) if route == "deferred" and hours else None,
                  created_by=actor.name)
    session.add(row)
    session.flush()
    entity = _entity(trial_id, code, row)
    if current is None:
        record(session, actor.name, "record_consent", "consent", entity, trial_id=trial_id, site=patient.site_code,
               after=stored_consent(row))
    else:
        before = stored_consent(current)
        current.superseded_by = row.id
        record(session, actor.name, "reconsent", "consent", entity, trial_id=trial_id, site=patient.site_code,
               before=before, after={"new": stored_consent(row), "superseded": stored_consent(current)},
               reason=f"re-consent on form version {form_version} (was {before['form_version']})")
    _meet_criterion(session, actor, trial_id, policy, patient, row)
    return consent_json(row, now) | {"patient_id": code}


def _check_reconsent(policy: ConsentPolicy, code: str, current: Consent, route: str, form_version: str,
                     moment: dt.datetime) -> None:
    if current.withdrawn_at is not None:
        raise Conflict(i18n.gettext("patient {patient} withdrew consent {consent} on {day} ({scope}); a withdrawal is "
                                    "not undone by a new consent").format(
            patient=code, consent=current.id, day=aware(current.withdrawn_at).date(), scope=_scope(current.withdrawal)),
            consent=current.id)
    if route == "deferred":
        raise Invalid(i18n.gettext("patient {patient} has consent {consent} already: a re-consent is given by the "
                                   "patient or a legally authorised representative, not deferred").format(
            patient=code, consent=current.id),
            [{"field": "route", "value": route, "message": i18n.gettext("patient or representative for a re-consent")}])
    versions = policy.form_versions
    newer = versions[versions.index(current.form_version) + 1:] if current.form_version in versions else versions
    if form_version not in newer:
        raise Conflict(i18n.gettext("patient {patient} consented on form version {version} (consent {consent}); a "
                                    "re-consent is on a newer approved version ({newer})").format(
            patient=code, version=current.form_version, consent=current.id,
            newer=", ".join(newer) or i18n.gettext("none approved yet")), consent=current.id)
    if moment < aware(current.consented_at):
        raise Invalid(i18n.gettext("a re-consent cannot precede the consent it replaces ({when})").format(
            when=_iso(current.consented_at)), [{"field": "consented_at", "value": moment.isoformat(),
                                                "message": i18n.gettext("on or after {day}").format(
                                                    day=_iso(current.consented_at))}])


def _consent_row(session: Session, patient: Patient, consent_id: int, trial_id: str) -> Consent:
    row = session.get(Consent, consent_id)
    if row is None or row.patient_id != patient.id:
        raise NotFound(i18n.gettext("no consent {consent} of patient {patient} in {trial}").format(
            consent=consent_id, patient=patient.code, trial=trial_id))
    return row


def confirm(session: Session, actor: Actor, trial_id: str, code: str, consent_id: int, route: Any,
            confirmed_at: Any, signer_name: Any = None, signer_relationship: Any = None,
            now: dt.datetime | None = None) -> dict[str, Any]:
    """Confirm a deferred consent, by the patient or a legally authorised representative; after the deadline it is
    stored and flagged late."""
    actor.require("confirming deferred consent")
    _trial, protocol = get_trial(session, actor, trial_id)
    policy_of(protocol, trial_id)
    patient = find_patient(session, actor, trial_id, code)
    row = _consent_row(session, patient, consent_id, trial_id)
    now = now or utcnow()
    if row.route != "deferred":
        raise Conflict(i18n.gettext("consent {consent} was given by {route}; only a deferred consent is "
                                    "confirmed").format(consent=row.id, route=_route(row.route)))
    if row.superseded_by is not None or row.withdrawn_at is not None:
        raise Conflict(i18n.gettext("consent {consent} is {status}; it is not confirmed").format(
            consent=row.id, status=i18n.gettext(STATUS_LABELS[_status(row, now)])))
    if row.confirmed_at is not None:
        raise Conflict(i18n.gettext("consent {consent} was confirmed already ({when}, by {route})").format(
            consent=row.id, when=_iso(row.confirmed_at), route=_route(row.confirmed_route)))
    if route not in CONFIRMATION_ROUTES:
        by = ", ".join(f"{r} ({i18n.gettext(ROUTE_LABELS[r])})" for r in CONFIRMATION_ROUTES)
        raise Invalid(i18n.gettext("a deferred consent is confirmed by {routes}, not {route}").format(
            routes=by, route=repr(route)),
            [{"field": "route", "value": route, "message": i18n.gettext("patient or representative")}])
    moment = _moment(session, "confirmed_at", confirmed_at, patient.site_code, now)
    if moment < aware(row.consented_at):
        raise Invalid(i18n.gettext("confirmed_at {value} is before the deferred consent ({when})").format(
            value=moment.isoformat(), when=_iso(row.consented_at)),
            [{"field": "confirmed_at", "value": str(confirmed_at),
              "message": i18n.gettext("on or after {day}").format(day=_iso(row.consented_at))}])
    signer = _signer(str(route), signer_name, signer_relationship)
    before = stored_consent(row)
    row.confirmed_at, row.confirmed_route, row.confirmed_by = moment, route, actor.name
    if signer is not None:
        row.signer = signer
    session.flush()
    view = consent_json(row, now)
    record(session, actor.name, "confirm_consent", "consent", _entity(trial_id, code, row), trial_id=trial_id,
           site=patient.site_code, before=before, after=stored_consent(row) | {"late": view["late"]})
    return view | {"patient_id": code}


def withdraw(session: Session, actor: Actor, trial_id: str, code: str, consent_id: int, scope: Any, reason: Any,
             withdrawn_at: Any = None, now: dt.datetime | None = None) -> dict[str, Any]:
    """Record the patient's withdrawal (or widen an earlier one) with its scope and reason."""
    actor.require("recording a consent withdrawal")
    _trial, protocol = get_trial(session, actor, trial_id)
    policy = policy_of(protocol, trial_id)
    patient = find_patient(session, actor, trial_id, code)
    row = _consent_row(session, patient, consent_id, trial_id)
    now = now or utcnow()
    offered = [s for s in SCOPES if s != "data_use" or policy.data_use_withdrawal]
    if scope not in offered:
        why = (i18n.gettext(" (withdrawal of data use is not offered: the protocol keeps data collected before a "
                            "withdrawal)") if scope == "data_use" else "")
        raise Invalid(i18n.gettext("withdrawal {scope} is not one {trial} offers{why}: {offered}").format(
            scope=repr(scope), trial=trial_id, why=why, offered="; ".join(f"{s} ({_scope(s)})" for s in offered)),
            [{"field": "scope", "value": scope,
              "message": i18n.gettext("one of {choices}").format(choices=", ".join(offered))}])
    reason = plain_text("reason", reason, MAX_REASON)
    if row.superseded_by is not None:
        raise Conflict(i18n.gettext("consent {consent} was replaced by consent {by}; a withdrawal is recorded on the "
                                    "consent in force").format(consent=row.id, by=row.superseded_by),
                       consent=row.superseded_by)
    if row.withdrawn_at is not None and SCOPES.index(scope) <= SCOPES.index(row.withdrawal or SCOPES[0]):
        raise Conflict(i18n.gettext("consent {consent} was withdrawn already on {day} ({scope}); a withdrawal may be "
                                    "widened, never narrowed or undone").format(
            consent=row.id, day=aware(row.withdrawn_at).date(), scope=_scope(row.withdrawal)))
    moment = now if withdrawn_at in (None, "") else _moment(session, "withdrawn_at", withdrawn_at,
                                                             patient.site_code, now)
    if moment < aware(row.consented_at):
        raise Invalid(i18n.gettext("withdrawn_at {value} is before the consent ({when})").format(
            value=moment.isoformat(), when=_iso(row.consented_at)),
            [{"field": "withdrawn_at", "value": str(withdrawn_at),
              "message": i18n.gettext("on or after {day}").format(day=_iso(row.consented_at))}])
    before = stored_consent(row)
    row.withdrawn_at, row.withdrawal, row.withdrawal_reason = moment, scope, reason
    session.flush()
    record(session, actor.name, "withdraw_consent", "consent", _entity(trial_id, code, row), trial_id=trial_id,
           site=patient.site_code, before=before, after=stored_consent(row), reason=reason)
    return consent_json(row, now) | {"patient_id": code}


def policy_json(policy: ConsentPolicy) -> dict[str, Any]:
    return {"routes": [{"route": r, "label": ROUTE_LABELS[r]} for r in policy.routes],
            "form_versions": list(policy.form_versions), "current_form": policy.current_form,
            "deferred_confirmation_hours": policy.deferred_confirmation_hours,
            "withdrawals": [{"scope": s, "label": SCOPE_LABELS[s]} for s in SCOPES
                            if s != "data_use" or policy.data_use_withdrawal],
            "text": policy.text, "deferred_text": policy.deferred_text, "assumption": policy.assumption}


def history(session: Session, actor: Actor, trial_id: str, code: str,
            now: dt.datetime | None = None) -> dict[str, Any]:
    """The patient's consents, oldest first, and the state now: the consent in force and its status."""
    actor.require("reading consent records")
    _trial, protocol = get_trial(session, actor, trial_id)
    policy = policy_of(protocol, trial_id)
    patient = find_patient(session, actor, trial_id, code)
    now = now or utcnow()
    rows = _rows(session, patient)
    current = next((r for r in reversed(rows) if r.superseded_by is None), None)
    status = _status(current, now) if current is not None else "none"
    return {"patient_id": code, "policy": policy_json(policy),
            "current": current.id if current is not None else None, "status": status,
            "status_label": STATUS_LABELS[status], "valid": current is not None and current.withdrawn_at is None,
            "consents": [consent_json(r, now) for r in rows]}


def pending(session: Session, actor: Actor, trial_id: str, now: dt.datetime | None = None) -> dict[str, Any]:
    """The sites' to-do list: deferred consents awaiting confirmation, the earliest deadline first, overdue flagged."""
    actor.require("reading consent records")
    _trial, protocol = get_trial(session, actor, trial_id)
    policy = policy_of(protocol, trial_id)
    now = now or utcnow()
    rows = session.execute(select(Consent, Patient.code, Patient.site_code)
                           .join(Patient, Patient.id == Consent.patient_id)
                           .where(Consent.trial_id == trial_id, Consent.route == "deferred",
                                  Consent.confirmed_at.is_(None), Consent.withdrawn_at.is_(None),
                                  Consent.superseded_by.is_(None))
                           .order_by(Consent.confirmation_due, Consent.id)).all()
    items = [consent_json(c, now) | {"patient_id": code, "site": site}
             for c, code, site in rows if actor.can_see_site(site)]
    return {"trial": trial_id, "deferred_confirmation_hours": policy.deferred_confirmation_hours,
            "pending": items, "overdue": sum(1 for i in items if i["overdue"])}


# ---- effects on the operations consent governs -------------------------------------------------------------------
def consent_from_attestation(session: Session, actor: Actor, protocol: Protocol, patient: Patient) -> None:
    """At registration, the consent attestation answered yes is recorded as a consent (route patient, the current
    form version, now, obtained by the registering user), marked in the trail as taken from the attestation."""
    policy = protocol.consent
    if policy is None or "patient" not in policy.routes:
        return
    attestations = json.loads(patient.data_json).get(ATTESTATIONS_KEY) or {}
    if attestations.get(policy.criterion) is not True or current_consent(session, patient) is not None:
        return
    moment = aware(patient.created_at) if patient.created_at is not None else utcnow()
    row = Consent(trial_id=patient.trial_id, patient_id=patient.id, form_version=policy.current_form, route="patient",
                  consented_at=moment, obtained_by=actor.name, created_by=actor.name)
    session.add(row)
    session.flush()
    record(session, actor.name, "record_consent", "consent", _entity(patient.trial_id, patient.code, row),
           trial_id=patient.trial_id, site=patient.site_code, after=stored_consent(row),
           reason=f"from the registration attestation {policy.criterion!r} (answered yes)")


def require_consent(session: Session, protocol: Protocol, patient: Patient, step: str) -> None:
    """409 when the protocol has a consent section and the patient has no consent in force, or withdrew it."""
    policy = protocol.consent
    if policy is None:
        return
    current = current_consent(session, patient)
    if current is None:
        raise Conflict(i18n.gettext("patient {patient} cannot be {step}: no informed consent is recorded (record the "
                                    "consent by {routes} first)").format(
            patient=patient.code, step=_step(step), routes=_allowed(policy)), missing="consent")
    if current.withdrawn_at is not None:
        raise Conflict(i18n.gettext("patient {patient} cannot be {step}: consent {consent} was withdrawn on {day} "
                                    "({scope})").format(
            patient=patient.code, step=_step(step), consent=current.id, day=aware(current.withdrawn_at).date(),
            scope=i18n.gettext(SCOPE_LABELS[current.withdrawal]) if current.withdrawal in SCOPE_LABELS else None),
            missing="consent", consent=current.id)


def _withdrawal(session: Session, patient: Patient, scopes: tuple[str, ...]) -> Consent | None:
    current = current_consent(session, patient)
    if current is None or current.withdrawn_at is None or current.withdrawal not in scopes:
        return None
    return current


def refuse_visit_after_withdrawal(session: Session, patient: Patient, visit_date: dt.date) -> None:
    """409 for visit data dated after the patient withdrew from follow-up; what was collected before stays."""
    row = _withdrawal(session, patient, ("follow_up", "data_use"))
    if row is None or row.withdrawn_at is None:
        return
    withdrawn_on = aware(row.withdrawn_at).astimezone(site_zone(session, patient.site_code)).date()
    if visit_date > withdrawn_on:
        raise Conflict(i18n.gettext("patient {patient} withdrew from follow-up on {day} (consent {consent}: {scope}; "
                                    "reason: {reason}); visit data dated after the withdrawal ({visit_date}) are not "
                                    "collected, data collected before are kept").format(
            patient=patient.code, day=withdrawn_on, consent=row.id, scope=_scope(row.withdrawal or "follow_up"),
            reason=row.withdrawal_reason, visit_date=visit_date),
                       withdrawal=row.withdrawal, withdrawn_at=_iso(row.withdrawn_at))


def refuse_treatment_after_withdrawal(session: Session, patient: Patient) -> None:
    """409 for the dose sheet of a patient who withdrew from study treatment."""
    row = _withdrawal(session, patient, SCOPES)
    if row is not None and row.withdrawn_at is not None:
        raise Conflict(i18n.gettext("patient {patient} withdrew from study treatment on {day} (consent {consent}: "
                                    "{scope}): no dose is given").format(
            patient=patient.code, day=aware(row.withdrawn_at).date(), consent=row.id,
            scope=_scope(row.withdrawal or "treatment")),
                       withdrawal=row.withdrawal, withdrawn_at=_iso(row.withdrawn_at))


def export_flags(session: Session, protocol: Protocol, patient_ids: list[int]) -> dict[int, dict[str, Any]]:
    """Per patient, the export's consent columns: whether consent was withdrawn, the scope and when."""
    if protocol.consent is None:
        return {}
    out: dict[int, dict[str, Any]] = {i: {"consent_withdrawn": False, "consent_withdrawal": "",
                                          "consent_withdrawn_at": ""} for i in patient_ids}
    if not patient_ids:
        return out
    rows = session.execute(select(Consent).where(Consent.patient_id.in_(patient_ids),
                                                 Consent.superseded_by.is_(None),
                                                 Consent.withdrawn_at.is_not(None))).scalars()
    for row in rows:
        out[row.patient_id] = {"consent_withdrawn": True, "consent_withdrawal": row.withdrawal or "",
                               "consent_withdrawn_at": _iso(row.withdrawn_at) or ""}
    return out
