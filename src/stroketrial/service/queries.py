"""Data queries: a question on one field of one form of a patient, raised by a monitor or a data manager (or
opened by an edit check the protocol declares: service/edit_checks.py), answered by the site, then closed or
re-opened by a monitor or data manager. Each step is one transaction with its audit event.

A form is a visit of the protocol (the field one of its assessments or its visit date) or the screening form
(a field of the data dictionary). The site answers with an explanation, or with a correction, which goes through
the form's own correction path (`visits.record_visit` with the answer as the reason; `patients.update_screening`
before randomization): checked, audited, re-running the edit checks and clearing source verification as any
correction does. Statuses: open -> answered -> closed; a closed or answered query may be re-opened (with a reason).

No view of a query holds an arm or anything computed from one. A query on a form the protocol keeps for some arms
(open-label trials only) is shown only to those who may see arms.
"""

from __future__ import annotations

import datetime as dt
import json
from collections import Counter, defaultdict
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from .. import i18n
from ..clinical.dictionary import VARIABLES
from ..protocol import Protocol
from ..store import record
from ..store.models import Allocation, DataQuery, Patient, VisitRecord
from . import patients, visits
from .accounts import Actor
from .blinding import sees_arm
from .edit_checks import OPEN_STATUSES, query_entity
from .errors import Conflict, Invalid, NotFound
from .patients import MAX_REASON, aware, find_patient
from .text import plain_text
from .trials import get_trial
from .verification import SCREENING, VISIT_DATE, field_label, form_name

MAX_QUERY_TEXT = 2000
MAX_ANSWER = MAX_REASON - 100  # the answer is a correction's reason, after "data query N: "
STATUSES = ("open", "answered", "closed")
ORIGINS = ("manual", "edit_check")
AGES = (("0-7 days", 7), ("8-30 days", 30), ("over 30 days", None))  # how long unresolved queries have been open


def _hidden(actor: Actor, protocol: Protocol, form: str) -> bool:
    """A form kept for some arms only tells the arm to whoever may not know it."""
    visit = next((v for v in protocol.visits if v.id == form), None)
    return visit is not None and visit.arms is not None and not sees_arm(actor.role, protocol.design.masking)


def _days_open(q: DataQuery, now: dt.datetime) -> int:
    end = aware(q.closed_at) if q.status == "closed" and q.closed_at else now
    return (end - aware(q.raised_at)).days


def query_view(protocol: Protocol, q: DataQuery, patient: Patient, now: dt.datetime | None = None) -> dict[str, Any]:
    """One query as people read it: the form's and field's labels beside their codes, and its age in days."""
    now = now or dt.datetime.now(dt.UTC)
    return {"id": q.id, "patient_id": patient.code, "site": patient.site_code, "form": q.form,
            "form_name": form_name(protocol, q.form), "field": q.field,
            "field_label": field_label(protocol, q.form, q.field), "text": q.text, "status": q.status,
            "origin": q.origin, "check_id": q.check_id, "raised_by": q.raised_by,
            "raised_at": aware(q.raised_at).isoformat(), "answer": q.answer, "answered_by": q.answered_by,
            "answered_at": aware(q.answered_at).isoformat() if q.answered_at else None,
            "closed_by": q.closed_by, "closed_at": aware(q.closed_at).isoformat() if q.closed_at else None,
            "reopened": q.reopened, "days_open": _days_open(q, now)}


def _forms(session: Session, actor: Actor, protocol: Protocol, patient: Patient) -> dict[str, list[str]]:
    """The forms of this patient a query may go on, each with its fields."""
    forms: dict[str, list[str]] = {SCREENING: list(VARIABLES)}
    allocation = session.execute(select(Allocation).where(Allocation.patient_id == patient.id)).scalar_one_or_none()
    if allocation is None:
        return forms
    for visit in protocol.visits:
        if visit.arms is not None and (allocation.arm not in visit.arms or _hidden(actor, protocol, visit.id)):
            continue
        forms[visit.id] = [VISIT_DATE, *visit.assessments]
    return forms


def query_targets(session: Session, actor: Actor, trial_id: str, code: str) -> dict[str, list[str]]:
    """The forms of this patient a query may go on (screening, then the visits of the schedule), with their fields."""
    _trial, protocol = get_trial(session, actor, trial_id)
    return _forms(session, actor, protocol, find_patient(session, actor, trial_id, code))


def _status_words(status: str) -> str:
    words = {"open": i18n.gettext("open"), "answered": i18n.gettext("answered, awaiting review"),
             "closed": i18n.gettext("closed")}
    return words.get(status, status) if i18n.current() != i18n.ENGLISH else status


def _form_words(protocol: Protocol, form: str) -> str:
    visit = next((v for v in protocol.visits if v.id == form), None)
    return i18n.protocol_text(visit, "name") if visit is not None else i18n.gettext(form_name(protocol, form))


def raise_query(session: Session, actor: Actor, trial_id: str, code: str, form: str, field: str,
                text: str) -> dict[str, Any]:
    """A monitor or data manager raises a query on one field of one form of a patient."""
    actor.require("raising a data query")
    _trial, protocol = get_trial(session, actor, trial_id)
    patient = find_patient(session, actor, trial_id, code)
    forms = _forms(session, actor, protocol, patient)
    if form not in forms:
        visits_ = ", ".join(f for f in forms if f != SCREENING) or i18n.gettext("none before randomization")
        raise Invalid(i18n.gettext("patient {patient} has no form {form} a query may go on").format(
            patient=code, form=repr(form)), [{"field": "form", "value": form, "message": i18n.gettext(
                "{screening}, or a visit of the patient's schedule: {visits}").format(screening=SCREENING,
                                                                                        visits=visits_)}])
    if field not in forms[form]:
        allowed = i18n.gettext("a data-dictionary field") if form == SCREENING else ", ".join(forms[form])
        raise Invalid(i18n.gettext("{field} is not a field of the {form} form").format(
            field=repr(field), form=_form_words(protocol, form)),
            [{"field": "field", "value": field, "message": i18n.gettext("one of {choices}").format(choices=allowed)}])
    text = plain_text("text", text, MAX_QUERY_TEXT)
    query = DataQuery(trial_id=trial_id, patient_id=patient.id, form=form, field=field, text=text, status="open",
                      origin="manual", raised_by=actor.name, raised_at=dt.datetime.now(dt.UTC), reopened=0)
    session.add(query)
    session.flush()
    record(session, actor.name, "raise_query", "data_query", query_entity(trial_id, code, query.id),
           trial_id=trial_id, site=patient.site_code,
           after={"form": form, "field": field, "text": text, "origin": "manual", "status": "open"})
    return query_view(protocol, query, patient)


def _query(session: Session, actor: Actor, trial_id: str, query_id: int) -> tuple[Protocol, DataQuery, Patient]:
    _trial, protocol = get_trial(session, actor, trial_id)
    query = session.get(DataQuery, query_id)
    patient = session.get(Patient, query.patient_id) if query is not None and query.trial_id == trial_id else None
    if query is None or patient is None or not actor.can_see_site(patient.site_code) \
            or _hidden(actor, protocol, query.form):
        raise NotFound(i18n.gettext("no data query {query} in {trial} at your sites").format(query=query_id,
                                                                                          trial=trial_id))
    return protocol, query, patient


def answer_query(session: Session, actor: Actor, trial_id: str, query_id: int, answer: str, correct: bool = False,
                 value: Any = None) -> dict[str, Any]:
    """The site answers an open query: with an explanation, or (correct) with the field's corrected value, stored
    through the form's correction path with the answer as its reason."""
    actor.require("answering a data query")
    protocol, query, patient = _query(session, actor, trial_id, query_id)
    if query.status != "open":
        raise Conflict(i18n.gettext("data query {query} is {status}; only an open query is answered (a monitor or "
                                    "data manager re-opens it)").format(query=query_id,
                                                                        status=_status_words(query.status)))
    answer = plain_text("answer", answer, MAX_ANSWER)
    now = dt.datetime.now(dt.UTC)
    query.status, query.answer, query.answered_by, query.answered_at = "answered", answer, actor.name, now
    after: dict[str, Any] = {"status": "answered", "answer": answer}
    if correct:
        after["correction"] = {"form": query.form, "field": query.field, "value": value}
    record(session, actor.name, "answer_query", "data_query", query_entity(trial_id, patient.code, query.id),
           trial_id=trial_id, site=patient.site_code, before={"status": "open"}, after=after)
    if correct:
        _correct(session, actor, trial_id, protocol, patient, query, value, f"data query {query.id}: {answer}")
    return query_view(protocol, query, patient)


def _correct(session: Session, actor: Actor, trial_id: str, protocol: Protocol, patient: Patient, query: DataQuery,
             value: Any, reason: str) -> None:
    if query.form == SCREENING:
        patients.update_screening(session, actor, trial_id, patient.code, {query.field: value}, reason)
        return
    visit = next(v for v in protocol.visits if v.id == query.form)
    row = session.execute(select(VisitRecord).where(VisitRecord.patient_id == patient.id,
                                                    VisitRecord.visit_id == visit.id)).scalar_one_or_none()
    if row is None:
        raise Conflict(i18n.gettext("{visit} of {patient} is not entered yet: enter the form on the visits page, then "
                                    "answer the query with an explanation").format(
            visit=i18n.protocol_text(visit, "name"), patient=patient.code))
    own = visits.recordable(actor, visit)
    values = {k: v for k, v in json.loads(row.values_json).items() if k in own}
    visit_date = row.visit_date
    if query.field == VISIT_DATE:
        if not isinstance(value, str):
            raise Invalid(i18n.gettext("the corrected visit date {value} is not a date (YYYY-MM-DD)").format(
                value=repr(value)), [{"field": "value", "value": value, "message": i18n.gettext("a date, YYYY-MM-DD")}])
        visit_date = value
    else:
        values[query.field] = value  # one the user may not record is refused by name, as on the form
    visits.record_visit(session, actor, trial_id, patient.code, visit.id, visit_date, values, reason)


def close_query(session: Session, actor: Actor, trial_id: str, query_id: int,
                note: str | None = None) -> dict[str, Any]:
    """A monitor or data manager closes a query (answered, or open: raised in error); the note is audited."""
    actor.require("closing a data query")
    protocol, query, patient = _query(session, actor, trial_id, query_id)
    if query.status == "closed":
        raise Conflict(i18n.gettext("data query {query} is closed already (by {user})").format(query=query_id,
                                                                                            user=query.closed_by))
    note = plain_text("note", note, MAX_REASON, required=False)
    before = query.status
    query.status, query.closed_by, query.closed_at = "closed", actor.name, dt.datetime.now(dt.UTC)
    record(session, actor.name, "close_query", "data_query", query_entity(trial_id, patient.code, query.id),
           trial_id=trial_id, site=patient.site_code, before={"status": before},
           after={"status": "closed", "closed_by": actor.name}, reason=note)
    return query_view(protocol, query, patient)


def reopen_query(session: Session, actor: Actor, trial_id: str, query_id: int, reason: str) -> dict[str, Any]:
    """A monitor or data manager re-opens an answered or closed query, saying why; the site answers it again."""
    actor.require("closing a data query")
    protocol, query, patient = _query(session, actor, trial_id, query_id)
    if query.status == "open":
        raise Conflict(i18n.gettext("data query {query} is open already").format(query=query_id))
    reason = plain_text("reason", reason, MAX_REASON)
    before = {"status": query.status, "answer": query.answer}
    now = dt.datetime.now(dt.UTC)
    query.text = f"{query.text}\n\nRe-opened by {actor.name} on {now:%Y-%m-%d}: {reason}"
    query.status, query.closed_by, query.closed_at = "open", None, None
    query.reopened = (query.reopened or 0) + 1
    record(session, actor.name, "reopen_query", "data_query", query_entity(trial_id, patient.code, query.id),
           trial_id=trial_id, site=patient.site_code, before=before, after={"status": "open", "text": query.text},
           reason=reason)
    return query_view(protocol, query, patient)


def patient_queries(session: Session, actor: Actor, trial_id: str, code: str) -> list[dict[str, Any]]:
    """Every query on this patient's forms, oldest first."""
    actor.require("reading data queries")
    _trial, protocol = get_trial(session, actor, trial_id)
    patient = find_patient(session, actor, trial_id, code)
    rows = session.execute(select(DataQuery).where(DataQuery.patient_id == patient.id).order_by(DataQuery.id))
    now = dt.datetime.now(dt.UTC)
    return [query_view(protocol, q, patient, now) for q in rows.scalars() if not _hidden(actor, protocol, q.form)]


def _choice(name: str, value: str | None, allowed: tuple[str, ...] | list[str]) -> None:
    if value is not None and value not in allowed:
        raise Invalid(i18n.gettext("{name} {value} is not one of {choices}").format(
            name=name, value=repr(value), choices=", ".join(allowed)),
            [{"field": name, "value": value,
              "message": i18n.gettext("one of {choices}").format(choices=", ".join(allowed))}])


def trial_queries(session: Session, actor: Actor, trial_id: str, status: str | None = None, site: str | None = None,
                  form: str | None = None, origin: str | None = None) -> dict[str, Any]:
    """The trial's queries at the actor's sites, filtered, oldest first; with the unresolved ones (open or
    answered) counted by site and by how long they have been open."""
    actor.require("reading data queries")
    _trial, protocol = get_trial(session, actor, trial_id)
    _choice("status", status, STATUSES)
    _choice("origin", origin, ORIGINS)
    _choice("form", form, [SCREENING, *(v.id for v in protocol.visits)])
    rows = session.execute(select(DataQuery, Patient).join(Patient, Patient.id == DataQuery.patient_id)
                           .where(DataQuery.trial_id == trial_id).order_by(DataQuery.raised_at, DataQuery.id)).all()
    now = dt.datetime.now(dt.UTC)
    seen = [(q, p) for q, p in rows if actor.can_see_site(p.site_code) and not _hidden(actor, protocol, q.form)]
    listed = [query_view(protocol, q, p, now) for q, p in seen
              if (status is None or q.status == status) and (site is None or p.site_code == site)
              and (form is None or q.form == form) and (origin is None or q.origin == origin)]
    return {"trial": trial_id, "queries": listed, "summary": summary([(q, p.site_code) for q, p in seen], now)}


def summary(rows: list[tuple[DataQuery, str]], now: dt.datetime) -> dict[str, Any]:
    """Unresolved queries (open or answered) by site, with the oldest's age, and by age; `rows`: (query, its
    patient's site)."""
    by_site: dict[str, Counter] = defaultdict(Counter)
    oldest: dict[str, int] = {}
    by_age = {label: 0 for label, _ in AGES}
    for q, site in rows:
        if q.status not in OPEN_STATUSES:
            continue
        days = _days_open(q, now)
        by_site[site][q.status] += 1
        oldest[site] = max(oldest.get(site, 0), days)
        by_age[next(label for label, limit in AGES if limit is None or days <= limit)] += 1
    return {"open": sum(c["open"] for c in by_site.values()),
            "answered": sum(c["answered"] for c in by_site.values()),
            "by_site": [{"site": site, "open": c["open"], "answered": c["answered"], "oldest_days": oldest[site]}
                        for site, c in sorted(by_site.items())],
            "by_age": by_age}


def query_counts(session: Session, actor: Actor, trial_id: str) -> dict[str, Any] | None:
    """The dashboard's counts of unresolved queries at the actor's sites (None for a role that reads none)."""
    if not actor.may("reading data queries"):
        return None
    _trial, protocol = get_trial(session, actor, trial_id)
    rows = session.execute(select(DataQuery, Patient.site_code).join(Patient, Patient.id == DataQuery.patient_id)
                           .where(DataQuery.trial_id == trial_id, DataQuery.status.in_(OPEN_STATUSES))).all()
    return summary([(q, site) for q, site in rows
                    if actor.can_see_site(site) and not _hidden(actor, protocol, q.form)], dt.datetime.now(dt.UTC))
