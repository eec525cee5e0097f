"""The DSMB's tables against the audit trail (reconcile.py calls this): each interim look, each DSMB decision and
each kept report as its event recorded it, and each report's HTML and PDF against the SHA-256 recorded when it was
generated, so that an archived report changed in the database is found."""

from __future__ import annotations

import hashlib
import json
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from ..store.models import AuditEvent, DsmbDecision, DsmbReportFile, InterimLook

# The columns each table's event records (`after`), by the event's entity.
LOOK_FIELDS = ("patients_observed", "information", "z", "recommendation", "data_sha256", "lock")
DECISION_FIELDS = ("decision", "reason")
REPORT_FIELDS = ("kind", "look", "patients", "data_sha256", "html_sha256", "pdf_sha256", "lock")


def _events(session: Session, entity: str) -> dict[str, dict[str, Any]]:
    """The latest event of each row of an entity, by its entity id (trial/number)."""
    return {e.entity_id: json.loads(e.after_json or "{}") for e in session.execute(
        select(AuditEvent).where(AuditEvent.entity == entity).order_by(AuditEvent.seq)).scalars()}


def _compare(label: str, rows: dict[str, dict[str, Any]], trail: dict[str, dict[str, Any]],
             fields: tuple[str, ...]) -> list[str]:
    problems = []
    for key in sorted(set(rows) | set(trail)):
        if key not in trail:
            problems.append(f"{label} {key}: in the table but not in the audit trail (inserted unseen)")
        elif key not in rows:
            problems.append(f"{label} {key}: in the audit trail but not in the table (deleted unseen)")
        elif differing := [f for f in fields if rows[key].get(f) != trail[key].get(f)]:
            problems.append(f"{label} {key}: {', '.join(differing)} differ from the audit trail (changed unseen)")
    return problems


def dsmb_problems(session: Session) -> list[str]:
    looks = {f"{r.trial_id}/{r.number}": r for r in session.execute(select(InterimLook)).scalars()}
    problems = _compare("interim look", {k: {"patients_observed": r.patients_observed, "information": r.information,
                                             "z": r.z, "recommendation": r.recommendation,
                                             "data_sha256": r.data_sha256, "lock": r.lock_id}
                                         for k, r in looks.items()}, _events(session, "interim_look"), LOOK_FIELDS)
    by_id = {r.id: k for k, r in looks.items()}
    decisions = {by_id.get(d.look_id, f"look row {d.look_id}"): {"decision": d.decision, "reason": d.reason}
                 for d in session.execute(select(DsmbDecision)).scalars()}
    problems += _compare("DSMB decision after look", decisions, _events(session, "dsmb_decision"), DECISION_FIELDS)
    reports: dict[str, dict[str, Any]] = {}
    for r in session.execute(select(DsmbReportFile)).scalars():
        key = f"{r.trial_id}/{r.number}"
        reports[key] = {"kind": r.kind, "look": r.look, "patients": r.patients, "data_sha256": r.data_sha256,
                        "html_sha256": r.html_sha256, "pdf_sha256": r.pdf_sha256, "lock": r.lock_id}
        if hashlib.sha256(r.html.encode("utf-8")).hexdigest() != r.html_sha256 or \
                hashlib.sha256(r.pdf).hexdigest() != r.pdf_sha256:
            problems.append(f"DSMB report {key}: its kept HTML or PDF is not the document generated (changed unseen)")
    problems += _compare("DSMB report", reports, _events(session, "dsmb_report"), REPORT_FIELDS)
    return problems
