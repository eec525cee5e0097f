"""The investigator's electronic signature of a patient's records (21 CFR 11.50, 11.70, 11.200).

The investigator signs one form of a patient (a visit form, or `screening`) or the patient's whole casebook,
with a stated meaning (`MEANINGS`: review, approval, authorship), by entering their password again
(`signatures.sign`, throttled as sign-in). The signature keeps the SHA-256 of the canonical JSON of what was
signed (`content`), so it stays linked to exactly those data:

- a change made through the platform to signed data (a visit entered or corrected, screening corrected, an AE or SAE
  reported) invalidates each signature over them at once, visibly: `invalidated_at` and `invalidated_why` (which
  form, what was done, by whom, when), with an `invalidate_signature` event in the audit trail beside the change's
  own event (`after_change`, called by the write paths after the change is stored);
- reading a patient's signatures computes each valid one's content again: a hash that no longer matches with no
  invalidation recorded means the data were changed around the platform, and the signature is reported as such
  (state `mismatch`).

The casebook is the screening data, every visit form that is not kept for some arms, the AE log and the SAE
reports. A form kept for some arms (an infusion record) tells the arm by being there: it is signed on its own, by
an investigator who sees arms, and its signatures are listed only to users who see arms; a change to it never
touches the casebook's signature, whose state must tell a blinded reader nothing.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from .. import i18n
from ..protocol import Protocol, Visit
from ..store import canonical, record
from ..store.models import (AdverseEvent, Patient, RecordSignature, SaeReport, SeriousAdverseEvent, Trial,
                            VisitRecord)
from . import locks, patients as patient_records
from .accounts import Actor
from .blinding import sees_arm
from .errors import Conflict, Invalid, NotFound, Unauthorized
from .signatures import Signature
from .trials import get_trial, protocol_of

SIGNING = "signing a record"
READING = "reading record signatures"
CASEBOOK = "casebook"
MEANINGS = {
    "review": "I have reviewed the data of {what} and confirm that they are accurate and complete.",
    "approval": "As the investigator responsible for this patient, I approve the data of {what} as recorded.",
    "authorship": "I am the author of the data of {what}, and I confirm that they are accurate and complete.",
}
CASEBOOK_WORDS = "this patient's casebook (screening, every visit form and the SAE reports)"


def _aware(moment: dt.datetime) -> dt.datetime:
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=dt.UTC)


def _when(moment: dt.datetime) -> str:
    return _aware(moment).astimezone(dt.UTC).strftime("%Y-%m-%d %H:%M UTC")


def what_words(protocol: Protocol, form: str | None) -> str:
    if form is None:
        return CASEBOOK_WORDS
    if form == locks.SCREENING_FORM:
        return "this patient's screening form"
    visit = next((v for v in protocol.visits if v.id == form), None)
    return f"this patient's form {visit.name} ({form})" if visit else f"this patient's form {form}"


def meaning_text(protocol: Protocol, form: str | None, meaning: str) -> str:
    return MEANINGS[meaning].format(what=what_words(protocol, form))


def _meaning_code(protocol: Protocol, row: RecordSignature) -> str | None:
    return next((code for code in MEANINGS if meaning_text(protocol, row.form, code) == row.meaning), None)


def _arm_form(protocol: Protocol, form: str | None) -> Visit | None:
    """The visit of a form kept for some arms, else None."""
    return next((v for v in protocol.visits if v.id == form and v.arms is not None), None)


def content(session: Session, protocol: Protocol, patient: Patient, form: str | None) -> dict[str, Any]:
    """What a signature covers, as one JSON document: a form's recorded data, or the whole casebook."""
    head = {"trial": patient.trial_id, "patient_id": patient.code}
    if form == locks.SCREENING_FORM:
        return head | {"form": form, "data": json.loads(patient.data_json)}
    records = {r.visit_id: r for r in session.execute(select(VisitRecord).where(VisitRecord.patient_id == patient.id))
               .scalars()}
    if form is not None:
        r = records.get(form)
        return head | {"form": form, "visit_date": r.visit_date if r else None,
                       "values": json.loads(r.values_json) if r else None}
    kept_for_arms = {v.id for v in protocol.visits if v.arms is not None}
    visits = {vid: {"visit_date": r.visit_date, "values": json.loads(r.values_json)} for vid, r in records.items()
              if vid not in kept_for_arms}
    # the site's SAE reports, initial and follow-up (the sponsor's assessment is not the site's casebook)
    saes = [{"id": s.id, **json.loads(s.data_json), "reports": [[r.kind, json.loads(r.data_json)] for r in reports]}
            for s, reports in _sae_reports(session, patient)]
    aes = [{"id": a.id, **json.loads(a.data_json)} for a in session.execute(
        select(AdverseEvent).where(AdverseEvent.patient_id == patient.id).order_by(AdverseEvent.id)).scalars()]
    return head | {"form": CASEBOOK, "screening": json.loads(patient.data_json), "visits": visits, "saes": saes,
                   "adverse_events": aes}


def _sae_reports(session: Session, patient: Patient) -> list[tuple[SeriousAdverseEvent, list[SaeReport]]]:
    saes = session.execute(select(SeriousAdverseEvent).where(SeriousAdverseEvent.patient_id == patient.id)
                           .order_by(SeriousAdverseEvent.id)).scalars().all()
    reports = session.execute(select(SaeReport).where(SaeReport.sae_id.in_([s.id for s in saes]),
                                                      SaeReport.kind.in_(("initial", "follow_up")))
                              .order_by(SaeReport.id)).scalars().all() if saes else []
    return [(s, [r for r in reports if r.sae_id == s.id]) for s in saes]


def content_sha256(session: Session, protocol: Protocol, patient: Patient, form: str | None) -> str:
    return hashlib.sha256(canonical(content(session, protocol, patient, form)).encode("utf-8")).hexdigest()


def _signable_form(session: Session, actor: Actor, protocol: Protocol, patient: Patient, form: str) -> str:
    """A form the investigator may sign: screening or a visit form that is entered (404/409 otherwise)."""
    if form == locks.SCREENING_FORM:
        return form
    visit = next((v for v in protocol.visits if v.id == form), None)
    if visit is None:
        forms = ", ".join([locks.SCREENING_FORM, *(v.id for v in protocol.visits)])
        raise NotFound(i18n.gettext("{trial} has no form {form} to sign ({forms}; or the whole casebook)").format(
            trial=protocol.id, form=repr(form), forms=forms))
    if visit.arms is not None:
        allocation = patient_records.allocation_of(session, patient)
        if (not sees_arm(actor.role, protocol.design.masking) or allocation is None
                or allocation.arm not in visit.arms):
            raise NotFound(i18n.gettext("patient {patient} has no form {form} that you may sign").format(
                patient=patient.code, form=form))
    entered = session.execute(select(VisitRecord.id).where(VisitRecord.patient_id == patient.id,
                                                           VisitRecord.visit_id == form)).first()
    if entered is None:
        raise Conflict(i18n.gettext("form {form} of patient {patient} is not entered yet: there is nothing to "
                                    "sign").format(form=form, patient=patient.code))
    return form


def sign_record(session: Session, actor: Actor, trial_id: str, code: str, form: str | None, meaning: str | None,
                signature: Signature) -> dict[str, Any]:
    """The investigator signs a form of the patient (form: a visit id or `screening`) or, form None, the whole
    casebook, with the meaning stated; `signature` (signatures.sign: the password entered again) is the proof."""
    actor.require(SIGNING)
    if signature.name != actor.name:
        raise Unauthorized(i18n.gettext("the signature is {signer}'s, not {name}'s").format(signer=signature.name,
                                                                                         name=actor.name))
    _trial, protocol = get_trial(session, actor, trial_id)
    patient = patient_records.find_patient(session, actor, trial_id, code)
    if meaning not in MEANINGS:
        raise Invalid(i18n.gettext("the signature's meaning {meaning} is not one of {meanings}").format(
            meaning=repr(meaning), meanings=", ".join(MEANINGS)),
            [{"field": "meaning", "value": meaning,
              "message": i18n.gettext("one of {choices}").format(choices=", ".join(MEANINGS))}])
    form = None if form in (None, "", CASEBOOK) else _signable_form(session, actor, protocol, patient, str(form))
    row = RecordSignature(patient_id=patient.id, form=form, meaning=meaning_text(protocol, form, meaning),
                          content_sha256=content_sha256(session, protocol, patient, form), signed_by=actor.name,
                          signed_at=signature.at)
    session.add(row)
    session.flush()
    body = signature_json(protocol, row, code)
    record(session, actor.name, "sign_record", "record_signature", row.id, trial_id=trial_id,
           site=patient.site_code, after=body | {"content_sha256": row.content_sha256})
    return body


def signature_json(protocol: Protocol, row: RecordSignature, code: str,
                   matches: bool | None = None) -> dict[str, Any]:
    """One signature as the API shows it. The hash itself is not shown (the audit trail keeps it)."""
    state = "invalidated" if row.invalidated_at is not None else "mismatch" if matches is False else "valid"
    body: dict[str, Any] = {
        "id": row.id, "patient_id": code, "form": row.form or CASEBOOK, "meaning": _meaning_code(protocol, row),
        "meaning_text": row.meaning, "signed_by": row.signed_by, "signed_at": _aware(row.signed_at).isoformat(),
        "state": state, "invalidated_at": _aware(row.invalidated_at).isoformat() if row.invalidated_at else None,
        "invalidated_why": row.invalidated_why}
    if state == "mismatch":
        body["problem"] = ("the signed data no longer match the signature, and no change through the platform "
                           "invalidated it: the data were changed around the platform (report it)")
    return body


def list_signatures(session: Session, actor: Actor, trial_id: str, code: str) -> list[dict[str, Any]]:
    """The patient's signatures, newest first, each with its state: valid (its content checked again now),
    invalidated (when and why), or mismatch (the content changed with no invalidation: an edit around the
    platform)."""
    actor.require(READING)
    _trial, protocol = get_trial(session, actor, trial_id)
    patient = patient_records.find_patient(session, actor, trial_id, code)
    rows = session.execute(select(RecordSignature).where(RecordSignature.patient_id == patient.id)
                           .order_by(RecordSignature.id.desc())).scalars().all()
    shows_arm_forms = sees_arm(actor.role, protocol.design.masking)
    hashes: dict[str | None, str] = {}
    out = []
    for row in rows:
        if _arm_form(protocol, row.form) is not None and not shows_arm_forms:
            continue
        matches = None
        if row.invalidated_at is None:
            if row.form not in hashes:
                hashes[row.form] = content_sha256(session, protocol, patient, row.form)
            matches = hashes[row.form] == row.content_sha256
        out.append(signature_json(protocol, row, code, matches))
    return out


def after_change(session: Session, actor: Actor, patient: Patient, form: str) -> None:
    """Called by a write path after it stored a change to `form` of the patient (a visit id, `screening` or
    `sae`): every valid signature over data that changed is invalidated, saying who changed what and when, and
    each invalidation is an event in the audit trail."""
    rows = session.execute(select(RecordSignature).where(RecordSignature.patient_id == patient.id,
                                                         RecordSignature.invalidated_at.is_(None))).scalars().all()
    if not rows:
        return
    trial = session.get(Trial, patient.trial_id)
    assert trial is not None
    protocol = protocol_of(trial)
    in_casebook = _arm_form(protocol, form) is None
    now = dt.datetime.now(dt.UTC)
    label = {locks.SAE_FORM: "the SAE reports", locks.AE_FORM: "the adverse event log"}.get(form, f"form {form}")
    hashes: dict[str | None, str] = {}
    for row in rows:
        if not (row.form == form or (row.form is None and in_casebook)):
            continue
        if row.form not in hashes:
            hashes[row.form] = content_sha256(session, protocol, patient, row.form)
        if hashes[row.form] == row.content_sha256:
            continue  # the change left what this signature covers as it was
        before = {"state": "valid", "signed_by": row.signed_by, "signed_at": _aware(row.signed_at).isoformat()}
        row.invalidated_at = now
        row.invalidated_why = (f"{label} of patient {patient.code} was changed by {actor.name} on {_when(now)}, "
                               f"after the signature of {row.signed_by} on {_when(row.signed_at)}")
        record(session, actor.name, "invalidate_signature", "record_signature", row.id, trial_id=patient.trial_id,
               site=patient.site_code, before=before,
               after={"state": "invalidated", "invalidated_at": now.isoformat(), "why": row.invalidated_why,
                      "form": row.form or CASEBOOK},
               reason=row.invalidated_why)
