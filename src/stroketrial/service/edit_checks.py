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

from sqlalchemy import select
from sqlalchemy.orm import Session

from ..protocol import Protocol, Visit
from ..protocol.edit_checks import CheckResult, run_checks
from ..store import record
from ..store.models import Allocation, DataQuery, Patient, VisitRecord
from .accounts import Actor
from .patients import aware

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
