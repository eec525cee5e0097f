"""Freezing and locking data: one form of a patient, a whole patient, or the whole trial.

A freeze and a lock both refuse every write to what they cover (409, naming the freeze or lock: its number, its
level, who set it, when and why). They differ in who releases them:

- a **freeze** (data cleaning: a patient's casebook frozen while queries are answered, a trial frozen before an
  interim analysis) is set and released by the data manager or the admin (`roles.DATA_MANAGERS`), with a reason;
- a **lock** (the database lock before the final analysis) is set by the data manager or the admin and released
  by the admin alone, with a reason.

The write paths ask `refuse_if_locked` first, inside their transaction: entering or correcting a visit form,
correcting screening data, recording or correcting a non-serious adverse event, and registering a patient
(refused while the whole trial is frozen or locked). Setting and releasing are audited (`freeze`, `lock`,
`release_freeze`, `unlock`).

A serious adverse event is the exception: the duty to report it within 24 hours of awareness (and a SUSAR within
7 or 15 days) does not end at database lock, so an SAE report or follow-up under a lock is accepted and marked
`received_under_lock` (`lock_over_safety_report`), in the audit trail and on the SAE, for the statistician to
reconcile against the locked data set.

The forms a lock may name: `screening`, `ae` (the non-serious AE log), `sae` (the patient's SAE reports: a lock
on them marks what arrives later, it does not refuse it) and the protocol's visit forms. A lock
on a form kept for some arms (an infusion record) tells the arm by being there: it is set only by a user who sees
arms, and listed only to them.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import ColumnElement, or_, select
from sqlalchemy.orm import Session

from .. import i18n
from ..protocol import Protocol
from ..store import record
from ..store.models import DataLock, Patient
from . import patients as patient_records, refusals
from .accounts import Actor
from .blinding import sees_arm
from .errors import Conflict, Forbidden, Invalid, NotFound
from .text import plain_text
from .trials import get_trial

LEVELS = ("freeze", "lock")
SCREENING_FORM, AE_FORM, SAE_FORM = "screening", "ae", "sae"
MAX_LOCK_REASON = 2000
SETTING = "freezing or locking data"
RELEASING = {"freeze": "releasing a freeze", "lock": "releasing a lock"}
READING = "reading data locks"
_WORDS = {"freeze": "frozen", "lock": "locked"}


def _state(level: str) -> str:
    return i18n.gettext("frozen") if level == "freeze" else i18n.gettext("locked")


def _aware(moment: dt.datetime) -> dt.datetime:
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=dt.UTC)


def _when(moment: dt.datetime) -> str:
    return _aware(moment).astimezone(dt.UTC).strftime("%Y-%m-%d %H:%M UTC")


def scope_words(lock: DataLock, patient_code: str | None) -> str:
    """What the lock covers, in words: 'the whole trial TRIAL', 'patient P1', 'form VISIT of patient P1'."""
    if lock.patient_id is None:
        return i18n.gettext("the whole trial {trial}").format(trial=lock.trial_id)
    if lock.form is None:
        return i18n.gettext("patient {patient}").format(patient=patient_code)
    return i18n.gettext("form {form} of patient {patient}").format(form=lock.form, patient=patient_code)


def describe(lock: DataLock, patient_code: str | None) -> str:
    """One sentence naming the lock: 'lock #3 of patient P1 by dm on 2025-01-02 10:00 UTC (reason: ...)'."""
    return i18n.gettext("{level} #{id} of {scope} by {user} on {when} (reason: {reason})").format(
        level=i18n.gettext(lock.level), id=lock.id, scope=scope_words(lock, patient_code), user=lock.locked_by,
        when=_when(lock.locked_at), reason=lock.reason)


def lock_json(lock: DataLock, patient_code: str | None) -> dict[str, Any]:
    with i18n.use(i18n.ENGLISH):  # kept in the audit trail and read by the API's clients
        scope = scope_words(lock, patient_code)
    return {"id": lock.id, "trial": lock.trial_id, "patient_id": patient_code, "form": lock.form,
            "level": lock.level, "scope": scope, "reason": lock.reason,
            "locked_by": lock.locked_by, "locked_at": _aware(lock.locked_at).isoformat(),
            "in_force": lock.released_at is None, "released_by": lock.released_by,
            "released_at": _aware(lock.released_at).isoformat() if lock.released_at else None,
            "release_reason": lock.release_reason}


def _in_force(session: Session, trial_id: str, patient: Patient | None, form: str | None) -> list[DataLock]:
    """The freezes and locks in force over a write: the trial's, the patient's, and the form's (form None: any
    form of the patient)."""
    covers: list[ColumnElement[bool]] = [DataLock.patient_id.is_(None)]
    if patient is not None and form is None:
        covers.append(DataLock.patient_id == patient.id)
    elif patient is not None:
        covers.append((DataLock.patient_id == patient.id) & or_(DataLock.form.is_(None), DataLock.form == form))
    query = (select(DataLock).where(DataLock.trial_id == trial_id, DataLock.released_at.is_(None), or_(*covers))
             .order_by(DataLock.id))
    return list(session.execute(query).scalars())


def refuse_if_locked(session: Session, target: Patient | str, form: str | None = None) -> None:
    """409 when a freeze or lock in force covers this write: to `form` of a patient (a visit id, `screening` or
    `sae`), or, given a trial id, to the trial (registration). The answer names the lock."""
    patient = target if isinstance(target, Patient) else None
    trial_id = target.trial_id if isinstance(target, Patient) else target
    found = _in_force(session, trial_id, patient, form)
    if not found:
        return
    lock = found[0]
    code = patient.code if patient is not None else None
    what = (i18n.gettext("{form} of patient {patient}").format(form=form, patient=code)
            if patient is not None and form else i18n.gettext("patient {patient}").format(patient=code)
            if patient is not None else i18n.gettext("trial {trial}").format(trial=trial_id))
    release = (i18n.gettext("the data manager may release the freeze") if lock.level == "freeze"
               else i18n.gettext("only the admin may release the lock"))
    raise Conflict(i18n.gettext("{what} cannot be changed: the data are {state} ({lock}); {release}").format(
        what=what, state=_state(lock.level), lock=describe(lock, code), release=release),
        lock=lock_json(lock, code))


def lock_over_safety_report(session: Session, patient: Patient) -> dict[str, Any] | None:
    """The freeze or lock in force over the patient's SAE reports (a lock before a freeze), as `lock_json`, or None.
    An SAE report is never refused for it (expedited reporting outlives the lock): the caller marks the report."""
    found = _in_force(session, patient.trial_id, patient, SAE_FORM)
    chosen = next((lk for lk in found if lk.level == "lock"), next(iter(found), None))
    return None if chosen is None else lock_json(chosen, patient.code) | {"described": describe(chosen, patient.code)}


def _form_of(session: Session, protocol: Protocol, actor: Actor, patient: Patient, form: str) -> str:
    """A form a lock may name, checked against the protocol (404 naming the forms there are)."""
    if form in (SCREENING_FORM, AE_FORM, SAE_FORM):
        return form
    visit = next((v for v in protocol.visits if v.id == form), None)
    if visit is None:
        forms = ", ".join([SCREENING_FORM, AE_FORM, SAE_FORM, *(v.id for v in protocol.visits)])
        raise NotFound(i18n.gettext("{trial} has no form {form} ({forms})").format(
            trial=protocol.id, form=repr(form), forms=forms))
    if visit.arms is not None:
        if not sees_arm(actor.role, protocol.design.masking):
            raise Forbidden(i18n.gettext("form {form} is kept for some arms; {name} ({role}) does not see arms").format(
                form=form, name=actor.name, role=refusals.role(actor.role)))
        allocation = patient_records.allocation_of(session, patient)
        if allocation is None or allocation.arm not in visit.arms:
            raise NotFound(i18n.gettext("form {form} is kept for patients of {arms}; {patient} is not one").format(
                form=form, arms=", ".join(visit.arms), patient=patient.code))
    return form


def lock(session: Session, actor: Actor, trial_id: str, level: str, reason: str | None,
         patient_code: str | None = None, form: str | None = None) -> dict[str, Any]:
    """Freeze or lock the whole trial, a patient, or one form of a patient; the reason is required."""
    actor.require(SETTING)
    _trial, protocol = get_trial(session, actor, trial_id)
    if level not in LEVELS:
        raise Invalid(i18n.gettext("level {level} is not one of {levels}").format(level=repr(level),
                                                                                  levels=", ".join(LEVELS)),
                      [{"field": "level", "value": level,
                        "message": i18n.gettext("one of {choices}").format(choices=", ".join(LEVELS))}])
    reason = plain_text("reason", reason, MAX_LOCK_REASON)
    if form and not patient_code:
        raise Invalid(i18n.gettext("a form is frozen or locked for one patient; name the patient"),
                      [{"field": "patient_id", "value": None, "message": i18n.gettext("required with a form")}])
    patient = patient_records.find_patient(session, actor, trial_id, patient_code) if patient_code else None
    if patient is not None and form:
        form = _form_of(session, protocol, actor, patient, form)
    same = session.execute(select(DataLock).where(
        DataLock.trial_id == trial_id, DataLock.released_at.is_(None),
        DataLock.patient_id.is_(None) if patient is None else DataLock.patient_id == patient.id,
        DataLock.form.is_(None) if not form else DataLock.form == form)).scalars().first()
    if same is not None:
        raise Conflict(i18n.gettext("{scope} is {state} already ({lock}); release it first to change its level").format(
            scope=scope_words(same, patient_code), state=_state(same.level),
            lock=describe(same, patient_code)), lock=lock_json(same, patient_code))
    row = DataLock(trial_id=trial_id, patient_id=patient.id if patient else None, form=form or None, level=level,
                   reason=reason, locked_by=actor.name, locked_at=dt.datetime.now(dt.UTC))
    session.add(row)
    session.flush()
    body = lock_json(row, patient_code)
    record(session, actor.name, level, "data_lock", row.id, trial_id=trial_id,
           site=patient.site_code if patient else None, after=body, reason=reason)
    return body


def release(session: Session, actor: Actor, trial_id: str, lock_id: int, reason: str | None) -> dict[str, Any]:
    """Release a freeze (the data manager or the admin) or a lock (the admin), with a reason."""
    get_trial(session, actor, trial_id)
    row = session.get(DataLock, lock_id) if 0 < lock_id < 2**31 else None  # (a number no column holds)
    patient = session.get(Patient, row.patient_id) if row is not None and row.patient_id is not None else None
    if row is None or row.trial_id != trial_id or (patient is not None and not actor.can_see_site(patient.site_code)):
        raise NotFound(i18n.gettext("{trial} has no freeze or lock #{id} at your sites").format(trial=trial_id,
                                                                                                id=lock_id))
    code = patient.code if patient else None
    actor.require(RELEASING[row.level])
    if row.released_at is not None:
        raise Conflict(i18n.gettext("{level} #{id} was released already by {user} on {when}").format(
            level=i18n.gettext(row.level), id=row.id, user=row.released_by, when=_when(row.released_at)),
            lock=lock_json(row, code))
    reason = plain_text("reason", reason, MAX_LOCK_REASON)
    before = lock_json(row, code)
    row.released_by, row.released_at, row.release_reason = actor.name, dt.datetime.now(dt.UTC), reason
    body = lock_json(row, code)
    record(session, actor.name, "release_freeze" if row.level == "freeze" else "unlock", "data_lock", row.id,
           trial_id=trial_id, site=patient.site_code if patient else None, before=before, after=body, reason=reason)
    return body


def _visible(protocol: Protocol, actor: Actor, lock: DataLock, patient: Patient | None) -> bool:
    if patient is not None and not actor.can_see_site(patient.site_code):
        return False
    if lock.form is None or sees_arm(actor.role, protocol.design.masking):
        return True
    return all(v.arms is None for v in protocol.visits if v.id == lock.form)


def list_locks(session: Session, actor: Actor, trial_id: str, patient_code: str | None = None,
               in_force_only: bool = False) -> list[dict[str, Any]]:
    """The trial's freezes and locks (of the user's sites), newest first; for one patient, those that cover it."""
    actor.require(READING)
    _trial, protocol = get_trial(session, actor, trial_id)
    query = select(DataLock, Patient).outerjoin(Patient, Patient.id == DataLock.patient_id) \
        .where(DataLock.trial_id == trial_id).order_by(DataLock.id.desc())
    if patient_code is not None:
        patient = patient_records.find_patient(session, actor, trial_id, patient_code)
        query = query.where(or_(DataLock.patient_id.is_(None), DataLock.patient_id == patient.id))
    if in_force_only:
        query = query.where(DataLock.released_at.is_(None))
    return [lock_json(lock, patient.code if patient else None) | {"covers": _covers(protocol, lock, patient)}
            for lock, patient in session.execute(query).all() if _visible(protocol, actor, lock, patient)]


FORM_NAMES = {SCREENING_FORM: "Screening", AE_FORM: "the adverse event log", SAE_FORM: "the SAE reports"}


def _covers(protocol: Protocol, lock: DataLock, patient: Patient | None) -> str:
    """What the lock covers as people say it: 'the whole trial', 'patient P1', 'Day 7 or discharge of P1'."""
    if patient is None:
        return "the whole trial"
    if lock.form is None:
        return f"patient {patient.code}"
    name = FORM_NAMES.get(lock.form) or next((v.name for v in protocol.visits if v.id == lock.form), lock.form)
    return f"{name} of patient {patient.code}"


def trial_lock_in_force(session: Session, trial_id: str) -> DataLock | None:
    """The whole-trial lock in force (else the whole-trial freeze), or None."""
    found = _in_force(session, trial_id, None, None)
    return next((lk for lk in found if lk.level == "lock"), next(iter(found), None))


def export_info(session: Session, trial_id: str, exported_by: str,
                now: dt.datetime | None = None) -> list[dict[str, Any]]:
    """The rows of an export's export_info.csv: when (`now`, the clock's time unless given) and by whom the export
    was made, and the trial's lock in force (`data_lock`: locked, frozen or not locked, with the lock's number, who
    set it, when and why)."""
    lock_ = trial_lock_in_force(session, trial_id)
    exported_at = (now or dt.datetime.now(dt.UTC)).astimezone(dt.UTC)
    rows: list[dict[str, Any]] = [{"field": "trial", "value": trial_id},
            {"field": "exported_at", "value": exported_at.isoformat(timespec="seconds")},
            {"field": "exported_by", "value": exported_by},
            {"field": "data_lock", "value": "not locked" if lock_ is None else _WORDS[lock_.level]}]
    if lock_ is not None:
        rows += [{"field": "lock_id", "value": lock_.id}, {"field": "locked_by", "value": lock_.locked_by},
                 {"field": "locked_at", "value": _aware(lock_.locked_at).isoformat(timespec="seconds")},
                 {"field": "lock_reason", "value": lock_.reason}]
    return rows


def lock_statement(info: dict[str, str] | None) -> str:
    """The report's title-page line from an export's export_info.csv: 'Data locked on DATE by NAME (lock #id)',
    or 'Data not locked: interim'."""
    if info is None:
        return "Data lock not stated: the export has no export_info.csv (made before the platform recorded locks)"
    state, day = info.get("data_lock"), str(info.get("locked_at", ""))[:10]
    if state == "locked":
        return f"Data locked on {day} by {info.get('locked_by')} (lock #{info.get('lock_id')})"
    if state == "frozen":
        return (f"Data not locked: interim (frozen on {day} by {info.get('locked_by')}, "
                f"freeze #{info.get('lock_id')})")
    return "Data not locked: interim"
