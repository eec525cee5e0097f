"""Reconcile the data tables with the audit trail: replay the trail and name every row that differs.

The chain proves the trail was not edited; this proves the tables say what the trail says.
Someone with write access to the database can change `allocations.arm` without touching the
trail (and the pharmacist would then be shown another arm): that row is named here. So is a
patient, visit, SAE or unblinding that has no event, and an event whose row is gone.
"""

from __future__ import annotations

import hashlib
import json
from collections import Counter
from dataclasses import replace
from collections.abc import Callable
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from ..store import Checkpoint, Verification, canonical, verify
from ..store.models import (Allocation, AuditEvent, DltAssessment, EscalationAssignment, EscalationDecision, Patient,
                            RegistryPatient, SeriousAdverseEvent, Unblinding, VisitRecord)
from .escalation import assignment_row, decision_row, dlt_row
from .registry import IMPORT_ACTION

Key = tuple[str, ...]
Rows = dict[Key, dict[str, Any]]  # a table's rows as the trail would have them, by key


def _expected(session: Session) -> dict[str, dict[Key, Any]]:
    """What the trail says each table holds, by (trial, patient[, visit or SAE id])."""
    out: dict[str, dict[Key, Any]] = {"patient": {}, "allocation": {}, "visit": {}, "sae": {}, "escalation": {},
                                      "dlt": {}, "decision": {}}
    unblindings: Counter = Counter()
    actions = ("register", "update_screening", "set_randomization_time", "randomize", "enter_visit", "correct_visit",
               "report_sae", "emergency_unblinding", "enrol_dose_cohort", "record_dlt", "correct_dlt",
               "confirm_escalation", "deviate_escalation")
    for e in session.execute(select(AuditEvent).where(AuditEvent.action.in_(actions))
                             .order_by(AuditEvent.seq)).scalars():
        key = tuple(e.entity_id.split("/"))
        after: Any = json.loads(e.after_json) if e.after_json else None  # a JSON document
        if e.action == "register":
            out["patient"][key] = after["data"]
        elif e.action in ("update_screening", "set_randomization_time"):
            out["patient"][key] = after
        elif e.action == "randomize":
            out["allocation"][key] = after
        elif e.action in ("enter_visit", "correct_visit"):
            out["visit"][key] = after
        elif e.action == "report_sae":
            out["sae"][key] = after
        elif e.action == "enrol_dose_cohort":
            out["allocation"][key] = after["allocation"]
            out["escalation"][key] = {k: after[k] for k in ("cohort", "level", "phase", "enrolled_at")}
        elif e.action in ("record_dlt", "correct_dlt"):
            out["dlt"][key] = after["stored"]
        elif e.action in ("confirm_escalation", "deviate_escalation"):
            out["decision"][key] = {k: v for k, v in after.items() if k != "signature_meaning"}
        else:
            unblindings[key] += 1
    out["unblinding"] = dict(unblindings)
    return out


def _differing(recorded: dict[str, Any], expected: dict[str, Any]) -> list[str]:
    return sorted(k for k in set(recorded) | set(expected) if recorded.get(k) != expected.get(k))


def reconcile(session: Session) -> list[str]:
    """One line per row that differs from the trail; an empty list when every table agrees."""
    expected = _expected(session)
    problems: list[str] = []
    codes = {p.id: (p.trial_id, p.code) for p in session.execute(select(Patient)).scalars()}

    def check(table: str, label: str, rows: Rows) -> None:
        trail = expected[table]
        for key, recorded in sorted(rows.items()):
            name = "/".join(key)
            if key not in trail:
                problems.append(f"{label} {name}: in the table but not in the audit trail (inserted unseen)")
            elif (fields := _differing(recorded, trail[key])):
                problems.append(f"{label} {name}: {', '.join(fields)} differ from the audit trail (changed unseen)")
        for key in sorted(set(trail) - set(rows)):
            problems.append(f"{label} {'/'.join(key)}: in the audit trail but not in the table (deleted unseen)")

    patients: Rows = {(p.trial_id, p.code): json.loads(p.data_json) for p in session.execute(select(Patient)).scalars()}
    check("patient", "patient", patients)
    allocations: Rows = {}
    for a in session.execute(select(Allocation)).scalars():
        record = json.loads(a.record_json)
        # The columns the platform reads (arm, kit, sequence) must agree with the record the trail holds.
        columns = {"arm": a.arm, "kit": a.kit, "sequence": a.sequence}
        allocations[codes.get(a.patient_id, ("?", f"patient row {a.patient_id}"))] = \
            {**record, **{f"column {k}": v for k, v in columns.items()}}
    expected["allocation"] = {k: {**v, **{f"column {c}": v.get(c) for c in ("arm", "kit", "sequence")}}
                              for k, v in expected["allocation"].items()}
    check("allocation", "allocation of", allocations)
    visits: Rows = {(*codes[v.patient_id], v.visit_id):
                    {"visit_date": v.visit_date, "values": json.loads(v.values_json)}
                    for v in session.execute(select(VisitRecord)).scalars() if v.patient_id in codes}
    check("visit", "visit", visits)
    saes: Rows = {(*codes[s.patient_id], str(s.id)): json.loads(s.data_json)
                  for s in session.execute(select(SeriousAdverseEvent)).scalars() if s.patient_id in codes}
    check("sae", "SAE", saes)
    _check_escalation(session, codes, check)
    problems += _registry_problems(session)
    counted: Counter = Counter(codes[u.patient_id] for u in session.execute(select(Unblinding)).scalars()
                               if u.patient_id in codes)
    for key in sorted(set(counted) | set(expected["unblinding"])):
        in_table, in_trail = counted.get(key, 0), expected["unblinding"].get(key, 0)
        if in_table != in_trail:
            problems.append(f"unblinding of {'/'.join(key)}: {in_table} in the table, {in_trail} in the audit trail")
    return problems


def _check_escalation(session: Session, codes: dict[int, tuple[str, str]], check: Callable[[str, str, Rows], None]
                      ) -> None:
    """A dose-escalation trial's cohorts and levels, DLT assessments and the committee's decisions."""
    check("escalation", "dose cohort of", {codes[a.patient_id]: assignment_row(a) for a in session.execute(
        select(EscalationAssignment)).scalars() if a.patient_id in codes})
    check("dlt", "DLT assessment of", {codes[d.patient_id]: dlt_row(d) for d in session.execute(
        select(DltAssessment)).scalars() if d.patient_id in codes})
    check("decision", "escalation decision", {(d.trial_id, f"after-cohort-{d.after_cohort}"): decision_row(d)
                                              for d in session.execute(select(EscalationDecision)).scalars()})


def _registry_problems(session: Session) -> list[str]:
    """Each imported registry file's stored rows against the digest its import event recorded."""
    imports = {e.entity_id: json.loads(e.after_json or "{}") for e in session.execute(
        select(AuditEvent).where(AuditEvent.action == IMPORT_ACTION)).scalars()}
    stored: dict[str, list[Any]] = {}
    for row in session.execute(select(RegistryPatient).order_by(RegistryPatient.id)).scalars():
        stored.setdefault(row.source_sha256, []).append(json.loads(row.data_json))
    problems = []
    for sha256 in sorted(set(imports) | set(stored)):
        rows, event = stored.get(sha256, []), imports.get(sha256)
        if event is None:
            problems.append(f"registry rows from file {sha256[:12]}: in the table but not in the audit trail "
                            "(inserted unseen)")
        elif hashlib.sha256(canonical(rows).encode("utf-8")).hexdigest() != event.get("data_sha256"):
            problems.append(f"registry file {event.get('file', sha256[:12])}: its {len(rows)} rows differ from the "
                            f"{event.get('rows')} the audit trail recorded (changed unseen)")
    return problems


def check_trail(session: Session, checkpoints: tuple[Checkpoint, ...] = ()) -> Verification:
    """The chain, the checkpoints (the log beside the key and any given) and the tables, in one answer."""
    chain = verify(session, checkpoints)
    problems = tuple(reconcile(session))
    if not problems:
        return chain
    message = chain.message if not chain.ok else f"{len(problems)} rows differ from the audit trail"
    return replace(chain, ok=False, message=message, problems=problems)
