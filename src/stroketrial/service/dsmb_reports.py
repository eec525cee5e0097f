"""The DSMB's reports from the live database: the closed report (by arm: the DSMB and the unblinded statistician)
and the open report (arms pooled: the steering committee and blinded roles), generated, kept and downloaded.

A closed report reads the data as the generating user's unblinded export; an open report reads them as a blinded
reader's export would be (no arm, no kit, no form kept for one arm), so the open report is computed from nothing
hidden, whoever generates it. Each generated report is kept as HTML and PDF with the SHA-256 of the data snapshot
it read and of each file, and audited; a report is never regenerated in place.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
from typing import Any

import pandas as pd
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from .. import i18n
from ..analysis.platform_dataset import dataset_from_tables
from ..protocol import Protocol
from ..report import dsmb
from ..report.dsmb_html import Snapshot, dsmb_document
from ..store import record
from ..store.models import AdverseEvent, DsmbReportFile, InterimLook, Patient, Unblinding
from . import export, interim_analyses, locks, refusals, safety, safety_monitoring
from .accounts import Actor
from .blinding import sees_arm
from .errors import Forbidden, Invalid, NotFound
from .patients import aware
from .serious_adverse_events import RELATED
from .trials import get_trial

KINDS = ("closed", "open")
GENERATING = {"closed": "generating a closed DSMB report", "open": "generating an open DSMB report"}
READING = {"closed": "reading closed DSMB reports", "open": "reading open DSMB reports"}
FORMATS = {"html": "text/html; charset=utf-8", "pdf": "application/pdf"}
# What the audit trail shows of a closed report to a reader who may not see arms (audit_trail.py).
OPEN_KEYS = ("number", "kind", "look", "patients")
_ = i18n.gettext


def may_read(actor: Actor, protocol: Protocol, kind: str) -> bool:
    if not actor.may(READING[kind]):
        return False
    return kind == "open" or sees_arm(actor.role, protocol.design.masking)


def _require(actor: Actor, protocol: Protocol, operation: str, kind: str) -> None:
    actor.require(operation)
    if kind == "closed" and not sees_arm(actor.role, protocol.design.masking):
        raise Forbidden(_("closed DSMB reports are for those who see arms: {name} ({role}) does not see arms in "
                          "{acronym}").format(name=actor.name, role=refusals.role(actor.role),
                                              acronym=protocol.acronym))


def _kind(kind: str) -> str:
    if kind not in KINDS:
        raise Invalid(_("report kind {kind} is not one of closed, open").format(kind=repr(kind)),
                      [{"field": "kind", "value": kind, "message": _("closed or open")}])
    return kind


def _frames(session: Session, actor: Actor, protocol: Protocol, closed: bool
            ) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """The analysis dataset, the patients' safety record, the SAEs and the AEs, as this report may read them."""
    tables = {name: pd.DataFrame(rows) for name, rows in export.tables(session, actor, protocol.id).items()}
    if not closed:  # as a blinded reader's export: no arm, no kit, no form kept for one arm
        one_arm = {f"visit_{v.id}" for v in protocol.visits if v.arms is not None}
        tables = {name: t.drop(columns=[c for c in dsmb.ARM_COLUMNS if c in t.columns])
                  for name, t in tables.items() if name not in one_arm}
    data = dataset_from_tables(tables, protocol, f"{protocol.acronym} database", pooled=not closed)
    people = safety.patient_safety(session, protocol, protocol.id, actor.can_see_site)
    patients = pd.DataFrame([{"patient_id": p.code, "site": p.site, **({"arm": p.arm} if closed else {}),
                              "randomized_on": p.randomized_on, "last_seen": p.last_seen, "death_on": p.death_on,
                              "sich_on": p.sich_on} for p in people],
                            columns=["patient_id", "site", *(["arm"] if closed else []), "randomized_on",
                                     "last_seen", "death_on", "sich_on"])
    arm_of = {p.code: p.arm for p in people}
    saes = pd.DataFrame([{"patient_id": p.code, "site": p.site, **({"arm": p.arm} if closed else {}),
                          **{k: v for k, v in s.items() if k in dsmb.LISTING or k == "sae_id"},
                          "related": s.get("relatedness") in RELATED}
                         for p in people for s in p.saes])
    codes = {pid: code for pid, code in session.execute(
        select(Patient.id, Patient.code).where(Patient.trial_id == protocol.id)).all()}
    sites = {p.code: p.site for p in people}
    aes = pd.DataFrame([{"patient_id": codes[e.patient_id], "site": sites[codes[e.patient_id]],
                         **({"arm": arm_of[codes[e.patient_id]]} if closed else {}),
                         **{k: v for k, v in json.loads(e.data_json).items() if k in dsmb.LISTING}}
                        for e in session.execute(select(AdverseEvent).where(
                            AdverseEvent.patient_id.in_(list(codes))).order_by(AdverseEvent.id)).scalars()
                        if codes.get(e.patient_id) in sites])
    return data, patients, saes, aes


def _sha256(*frames: pd.DataFrame) -> str:
    digest = hashlib.sha256()
    for frame in frames:
        ordered = frame.reindex(sorted(frame.columns), axis=1)
        if "patient_id" in ordered.columns:
            ordered = ordered.sort_values([c for c in ("patient_id", "sae_id") if c in ordered.columns],
                                          kind="stable")
        digest.update(ordered.to_csv(index=False).encode("utf-8"))
    return digest.hexdigest()


def _unblinding_log(session: Session, actor: Actor, trial_id: str) -> list[dict[str, Any]]:
    rows = session.execute(select(Unblinding, Patient).join(Patient, Patient.id == Unblinding.patient_id)
                           .where(Patient.trial_id == trial_id).order_by(Unblinding.id)).all()
    return [{"patient": p.code, "at": aware(u.created_at).strftime("%Y-%m-%d %H:%M UTC"), "by": u.created_by,
             "reason": u.reason} for u, p in rows if actor.can_see_site(p.site_code)]


def _latest_look(session: Session, actor: Actor, protocol: Protocol, closed: bool) -> dict[str, Any] | None:
    if closed:
        looks = interim_analyses.list_looks(session, actor, protocol.id) if protocol.interim else []
        return looks[-1] if looks else None
    row = session.execute(select(InterimLook).where(InterimLook.trial_id == protocol.id)
                          .order_by(InterimLook.number.desc()).limit(1)).scalar_one_or_none()
    if row is None:
        return None
    total = protocol.interim.information_total if protocol.interim else None
    return {"look": row.number, "patients_observed": row.patients_observed, "information": row.information,
            "information_total": total}


def generate(session: Session, actor: Actor, trial_id: str, kind: str) -> dict[str, Any]:
    """Generate a closed or open report on the data as they are now; kept and audited. Returns its entry."""
    _trial, protocol = get_trial(session, actor, trial_id)
    closed = _kind(kind) == "closed"
    _require(actor, protocol, GENERATING[kind], kind)
    data, patients, saes, aes = _frames(session, actor, protocol, closed)
    now = dt.datetime.now(dt.UTC).replace(microsecond=0)
    build = dsmb.closed_report if closed else dsmb.open_report
    report = build(protocol, data, patients, saes, aes, now.date())
    lock = locks.trial_lock_in_force(session, trial_id)
    look = _latest_look(session, actor, protocol, closed)
    data_sha = _sha256(data, patients, saes, aes)
    snapshot = Snapshot(data_sha, "SHA-256 of the report's inputs as CSV (columns sorted, rows by patient): the "
                        "analysis dataset, each randomized patient's safety record, the SAEs and the AEs"
                        + ("" if closed else ", all without arms") + ".", now, actor.name,
                        f"{lock.level} #{lock.id} by {lock.locked_by} on {aware(lock.locked_at):%Y-%m-%d}: "
                        f"{lock.reason}" if lock is not None else None)
    monitoring = safety_monitoring.status(session, actor, trial_id) if closed else []
    document = dsmb_document(report, snapshot, look, monitoring,
                             _unblinding_log(session, actor, trial_id) if closed else [])
    from ..report.pdf import pdf_bytes

    pdf = pdf_bytes(document)
    number = (session.execute(select(func.max(DsmbReportFile.number)).where(DsmbReportFile.trial_id == trial_id))
              .scalar_one() or 0) + 1
    row = DsmbReportFile(trial_id=trial_id, number=number, kind=kind, look=look["look"] if look else None,
                         patients=report.n, data_sha256=data_sha, html=document,
                         html_sha256=hashlib.sha256(document.encode("utf-8")).hexdigest(), pdf=pdf,
                         pdf_sha256=hashlib.sha256(pdf).hexdigest(), lock_id=lock.id if lock else None,
                         generated_by=actor.name, generated_at=now)
    session.add(row)
    session.flush()
    record(session, actor.name, "generate", "dsmb_report", f"{trial_id}/{number}", trial_id=trial_id,
           after={"number": number, "kind": kind, "look": row.look, "patients": row.patients,
                  "data_sha256": data_sha, "html_sha256": row.html_sha256, "pdf_sha256": row.pdf_sha256,
                  "lock": row.lock_id})
    return _entry(row)


def _entry(row: DsmbReportFile) -> dict[str, Any]:
    return {"number": row.number, "kind": row.kind, "look": row.look, "patients": row.patients,
            "data_sha256": row.data_sha256, "html_sha256": row.html_sha256, "pdf_sha256": row.pdf_sha256,
            "lock": row.lock_id, "generated_by": row.generated_by,
            "generated_at": aware(row.generated_at).isoformat(timespec="seconds")}


def list_reports(session: Session, actor: Actor, trial_id: str) -> list[dict[str, Any]]:
    """The reports this user may read, newest first: closed ones only for those who see arms."""
    _trial, protocol = get_trial(session, actor, trial_id)
    readable = [k for k in KINDS if may_read(actor, protocol, k)]
    if not readable:
        actor.require(READING["open"])
    rows = session.execute(select(DsmbReportFile).where(DsmbReportFile.trial_id == trial_id,
                                                        DsmbReportFile.kind.in_(readable))
                           .order_by(DsmbReportFile.number.desc())).scalars()
    return [_entry(r) for r in rows]


def document(session: Session, actor: Actor, trial_id: str, number: int, fmt: str) -> tuple[bytes, str, str]:
    """A kept report's file: (content, media type, file name)."""
    _trial, protocol = get_trial(session, actor, trial_id)
    if fmt not in FORMATS:
        raise NotFound(_("a DSMB report is kept as html or pdf, not {format}").format(format=repr(fmt)))
    row = session.execute(select(DsmbReportFile).where(DsmbReportFile.trial_id == trial_id,
                                                       DsmbReportFile.number == number)).scalar_one_or_none()
    if row is None:
        actor.require(READING["open"])
        raise NotFound(_("{acronym} has no DSMB report {number}").format(acronym=protocol.acronym, number=number))
    _require(actor, protocol, READING[row.kind], row.kind)
    content = row.html.encode("utf-8") if fmt == "html" else row.pdf
    name = f"{protocol.acronym}-dsmb-{row.kind}-report-{row.number}.{fmt}"
    return content, FORMATS[fmt], name
