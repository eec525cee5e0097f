"""The protocol's edit checks on the platform: after a visit form is entered or corrected (`visits.record_visit`),
each check the protocol declares for that form runs (`protocol.edit_checks`, pure), and

- a check that fails opens an automatic data query (origin edit_check, the check's id) on the field it names,
  unless one of that check on that form is open or answered, or a person closed one saying the same (the site
  confirmed the very values: a plausible outlier is not queried again until the values change);
- a check that passes closes its automatic query still open or answered, closed by "edit check".

Each opening or closing is audited in the transaction of the entry that caused it, under that user's name.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Mapping
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from ..protocol import Protocol, Visit
from ..clinical.assessments import VisitDataError, parse_visit_values
from .. import i18n
from ..protocol.edit_checks import VISIT_DATE, CheckResult, label, run_checks
from ..store import record
from ..store.models import Allocation, DataQuery, Patient, VisitRecord
from .accounts import Actor
from .blinding import readable_assessments
from .clock import calendar_date
from .errors import Conflict, Invalid, NotFound
from .patients import MAX_REASON, aware, randomized_patient
from .text import plain_text

EDIT_CHECK = "edit check"  # who raises and closes automatic queries (raised_by, closed_by)
OPEN_STATUSES = ("open", "answered")


def query_entity(trial_id: str, code: str, query_id: int) -> str:
    """A data query's entity id in the audit trail."""
    return f"{trial_id}/{code}/{query_id}"


def run_on_visit(session: Session, actor: Actor, protocol: Protocol, trial_id: str, patient: Patient,
                 allocation: Allocation, visit: Visit) -> None:
    """Run the protocol's edit checks on this patient's form of `visit` as now stored; open and close queries."""
    if not protocol.edit_checks:
        return
    row = session.execute(select(VisitRecord).where(VisitRecord.patient_id == patient.id,
                                                    VisitRecord.visit_id == visit.id)).scalar_one_or_none()
    if row is None:
        return
    results = run_checks(protocol.edit_checks, visit, dt.date.fromisoformat(row.visit_date),
                         json.loads(row.values_json), aware(allocation.created_at))
    if not results:
        return
    queries = list(session.execute(select(DataQuery).where(
        DataQuery.patient_id == patient.id, DataQuery.form == visit.id, DataQuery.origin == "edit_check")).scalars())
    for result in results:
        mine = [q for q in queries if q.check_id == result.check.id]
        pending = next((q for q in mine if q.status in OPEN_STATUSES), None)
        if result.passed and pending is not None:
            _close(session, actor, trial_id, patient, pending, result)
        elif not result.passed and pending is None and not any(
                q.closed_by != EDIT_CHECK and q.text == result.message for q in mine):
            _open(session, actor, trial_id, patient, visit, result)


def _open(session: Session, actor: Actor, trial_id: str, patient: Patient, visit: Visit, result: CheckResult) -> None:
    query = DataQuery(trial_id=trial_id, patient_id=patient.id, form=visit.id, field=result.field,
                      text=result.message, status="open", origin="edit_check", check_id=result.check.id,
                      raised_by=EDIT_CHECK, raised_at=dt.datetime.now(dt.UTC), reopened=0)
    session.add(query)
    session.flush()
    record(session, actor.name, "raise_query", "data_query", query_entity(trial_id, patient.code, query.id),
           trial_id=trial_id, site=patient.site_code,
           after={"form": visit.id, "field": result.field, "text": result.message, "origin": "edit_check",
                  "check": result.check.id, "status": "open"})


def _close(session: Session, actor: Actor, trial_id: str, patient: Patient, query: DataQuery,
           result: CheckResult) -> None:
    before = query.status
    query.status, query.closed_by, query.closed_at = "closed", EDIT_CHECK, dt.datetime.now(dt.UTC)
    record(session, actor.name, "close_query", "data_query", query_entity(trial_id, patient.code, query.id),
           trial_id=trial_id, site=patient.site_code, before={"status": before},
           after={"status": "closed", "closed_by": EDIT_CHECK, "check": result.check.id},
           reason=f"edit check {result.check.id} passes after the entry by {actor.name}")


def preview(session: Session, actor: Actor, trial_id: str, code: str, visit_id: str, visit_date: str,
            values: Mapping[str, Any]) -> list[dict[str, Any]]:
    """What saving this form would meet, nothing stored: errors (the refusals of `visits.record_visit`: a date
    that is not one, before randomization or in the future, a value outside the dictionary's limits) and warnings
    (each edit check of the protocol that fails on the form as it would be stored). Each finding names its field,
    the field's label and the values in words. The form is checked together with the values recorded already that
    this user may read (the other party's part of a shared visit)."""
    from .visits import BLINDED_ENTRY, SITE_ENTRY, _refuse_others_assessments, recordable  # visits builds on this

    if not actor.may(BLINDED_ENTRY):
        actor.require(SITE_ENTRY)
    protocol, patient, allocation = randomized_patient(session, actor, trial_id, code)
    visit = next((v for v in protocol.visits if v.id == visit_id), None)
    if visit is None:
        raise NotFound(i18n.gettext("{trial} has no visit {visit} ({visits})").format(
            trial=trial_id, visit=repr(visit_id), visits=", ".join(v.id for v in protocol.visits)))
    # another party's assessment is refused (403, named) before any check, as saving refuses it
    _refuse_others_assessments(actor, trial_id, visit, recordable(actor, visit), values)
    findings: list[dict[str, Any]] = []
    randomized_at = aware(allocation.created_at)
    day = calendar_date(visit_date) if visit_date else None
    if day is None:
        findings.append(_finding("error", VISIT_DATE, f"the visit date {visit_date!r} is not a date"
                                 if visit_date else "the visit date is not given"))
    elif day < randomized_at.date():
        findings.append(_finding("error", VISIT_DATE, f"the visit date {day} is before randomization "
                                                      f"({randomized_at.date()})"))
    elif day > dt.datetime.now(dt.UTC).date():
        findings.append(_finding("error", VISIT_DATE, f"the visit date {day} is in the future"))
    else:
        from .consent import refuse_visit_after_withdrawal  # consent.py builds on the patient services

        try:  # a withdrawal from follow-up refuses the form whatever its values: said first, never a warning
            refuse_visit_after_withdrawal(session, patient, day)
        except Conflict as exc:
            findings.append(_finding("error", VISIT_DATE, exc.message))
    try:
        parsed = parse_visit_values(visit.id, visit.assessments, values)
    except VisitDataError as exc:
        # the label in the reader's language (the pages'; the API's is English)
        findings += [_finding("error", e.field, f"{i18n.gettext(label(e.field))}: {e.message}") for e in exc.errors]
        return findings
    if day is None or not protocol.edit_checks:
        return findings
    row = session.execute(select(VisitRecord).where(VisitRecord.patient_id == patient.id,
                                                    VisitRecord.visit_id == visit.id)).scalar_one_or_none()
    readable = readable_assessments(actor.role, visit)
    recorded = {k: v for k, v in (json.loads(row.values_json) if row else {}).items()
                if k in readable and k not in recordable(actor, visit)}
    for result in run_checks(protocol.edit_checks, visit, day, recorded | parsed, randomized_at):
        if not result.passed:
            findings.append(_finding("warning", result.field, _sentence(result.message), result.check.id))
    return findings


def _finding(severity: str, field: str, message: str, check: str | None = None) -> dict[str, Any]:
    return {"severity": severity, "field": field, "label": "Visit date" if field == VISIT_DATE else label(field),
            "message": message, "check": check}


def _sentence(message: str) -> str:
    return message[:1].upper() + message[1:] if message[1:2].islower() else message  # "mRS" stays


def confirm_warnings(session: Session, actor: Actor, trial_id: str, code: str, visit_id: str, reason: str,
                     warnings: list[dict[str, Any]]) -> None:
    """The user saved a form over the edit checks' warnings, confirming the values with a reason: audited on the
    visit (the checks and what they said), and each automatic query those checks opened on the form answered with
    the reason where the user's role answers queries. Run in the transaction of the entry, after it."""
    from .queries import answer_query  # here: queries builds on this module

    _protocol, patient, _allocation = randomized_patient(session, actor, trial_id, code)
    reason = plain_text("reason", reason, MAX_REASON).strip()
    if not reason:
        raise Invalid(i18n.gettext("saving over a warning needs the reason the values are right"),
                      [{"field": "confirm_reason", "value": reason,
                        "message": i18n.gettext("why the values are right")}])
    ids = [w["check"] for w in warnings if w.get("check")]
    record(session, actor.name, "confirm_edit_checks", "visit", f"{trial_id}/{code}/{visit_id}", trial_id=trial_id,
           site=patient.site_code, after={"checks": ids, "messages": [w["message"] for w in warnings]},
           reason=reason)
    if not actor.may("answering a data query"):
        return
    pending = session.execute(select(DataQuery).where(
        DataQuery.patient_id == patient.id, DataQuery.form == visit_id, DataQuery.origin == "edit_check",
        DataQuery.status == "open", DataQuery.check_id.in_(ids))).scalars().all()
    for query in pending:
        answer_query(session, actor, trial_id, query.id, f"confirmed at entry: {reason}")
