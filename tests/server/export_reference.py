"""The exports as they were built before they were streamed (service/export.py at 7ac5968), whole in memory: the
reference the streamed exports are compared with byte for byte (test_export_streaming.py). Unchanged but for
`now`, the moment written into the file (the ODM's creation time, the zip members' times), a parameter here so
that both builds can be given the same one (and given to locks.export_info, which reads the clock itself)."""

from __future__ import annotations

import csv
import datetime as dt
import io
import json
import re
import time
import zipfile
from typing import Any
from collections.abc import Iterable

import odmlib.odm_1_3_2.model as ODM
from sqlalchemy import select
from sqlalchemy.orm import Session

from stroketrial.clinical import VARIABLES
from stroketrial.clinical.assessments import ASSESSMENTS
from stroketrial.protocol.model import DoseEscalation
from stroketrial.store.models import (AdverseEvent, Allocation, AuditEvent, DltAssessment, EscalationAssignment,
                                     Patient, SeriousAdverseEvent, Unblinding, VisitRecord)
from stroketrial.service import envelopes, locks
from stroketrial.service.accounts import Actor
from stroketrial.service import audit_trail
from stroketrial.service.blinding import sees_arm_counts
from stroketrial.service.consent import export_flags
from stroketrial.service.patients import aware
from stroketrial.service.trials import get_trial, protocol_in_force

def _rows(session: Session, actor: Actor, trial_id: str):
    _trial, protocol = get_trial(session, actor, trial_id)
    rows = session.execute(select(Patient, Allocation).outerjoin(Allocation, Allocation.patient_id == Patient.id)
                           .where(Patient.trial_id == trial_id).order_by(Patient.id)).all()
    return protocol, [(p, a) for p, a in rows if actor.can_see_site(p.site_code)]


def tables(session: Session, actor: Actor, trial_id: str) -> dict[str, list[dict[str, Any]]]:
    """Every form of the trial as a list of rows (the same content as the CSV files)."""
    actor.require("exporting trial data")
    protocol, rows = _rows(session, actor, trial_id)
    show_arm = sees_arm_counts(actor.role, protocol)  # a table of arms is counts per arm
    out: dict[str, list[dict[str, Any]]] = {"screening": [], "eligibility": [], "randomization": []}
    ids = {p.id: p.code for p, _ in rows}
    withdrawn = export_flags(session, protocol, list(ids))  # consent withdrawals, flagged on the screening row
    for p, a in rows:
        data = json.loads(p.data_json)
        attestations = data.pop("attestations", {})
        data.pop("patient_id", None)
        data.pop("site", None)
        out["screening"].append({"patient_id": p.code, "site": p.site_code, "status": p.status,
                                 "registered_at": aware(p.created_at).isoformat(),
                                 "protocol_version": p.protocol_version or 1, **data,
                                 **{f"attest_{k}": v for k, v in attestations.items()}})
        out["screening"][-1].update(withdrawn.get(p.id, {}))
        for c in json.loads(p.screening_json)["criteria"]:
            out["eligibility"].append({"patient_id": p.code, "criterion": c["id"], "kind": c["kind"],
                                       "status": c["status"], "excludes": c.get("excludes", False),
                                       "reason": c["reason"]})
        if a is not None:
            row = {"patient_id": p.code, "site": p.site_code, "sequence": a.sequence,
                   "randomized_at": aware(a.created_at).isoformat(), "kit": a.kit or "",
                   # a sealed emergency envelope's allocation (service/envelopes.py), reported apart below too
                   "emergency_envelope": json.loads(a.record_json).get("envelope") or ""}
            if show_arm:
                row["arm"] = a.arm
            out["randomization"].append(row)
    # A form kept for one arm (an infusion record) tells the arm by being there: not for those who may not see arms.
    one_arm_forms = {v.id for v in protocol.visits if v.arms is not None and not show_arm}
    for visit in protocol.visits:
        if visit.id not in one_arm_forms:
            out[f"visit_{visit.id}"] = []
    visit_rows: Iterable[VisitRecord] = session.execute(
        select(VisitRecord).where(VisitRecord.patient_id.in_(list(ids))).order_by(VisitRecord.patient_id)
    ).scalars() if ids else []
    for v in visit_rows:
        if v.visit_id in one_arm_forms:
            continue
        out.setdefault(f"visit_{v.visit_id}", []).append({"patient_id": ids[v.patient_id], "visit_date": v.visit_date,
                                                          **json.loads(v.values_json)})
    out["sae"] = [{"patient_id": ids[s.patient_id], "sae_id": s.id, "reported_by": s.created_by,
                   **json.loads(s.data_json)}
                  for s in (session.execute(select(SeriousAdverseEvent).where(
                      SeriousAdverseEvent.patient_id.in_(list(ids)))).scalars() if ids else [])]
    # The non-serious AE log (service/adverse_events.py), one row per event: the analysis counts it by this name.
    out["adverse_event"] = [{"patient_id": ids[e.patient_id], "ae_id": e.id, "recorded_by": e.created_by,
                             **json.loads(e.data_json)}
                            for e in (session.execute(select(AdverseEvent).where(
                                AdverseEvent.patient_id.in_(list(ids))).order_by(AdverseEvent.id)).scalars()
                                if ids else [])]
    if protocol.emergency_randomization is not None:  # the fallback allocations, apart for the statistician
        out["emergency_envelopes"] = envelopes.export_rows(session, trial_id, show_arm, ids)
    if protocol.dose_escalation is not None:
        out["escalation"] = _escalation_rows(session, protocol.dose_escalation, ids)
    if actor.role in ("dsmb", "admin"):
        out["unblinding"] = [{"patient_id": ids[u.patient_id], "at": aware(u.created_at).isoformat(),
                              "by": u.created_by, "reason": u.reason}
                             for u in (session.execute(select(Unblinding).where(
                                 Unblinding.patient_id.in_(list(ids)))).scalars() if ids else [])]
    return out


def _escalation_rows(session: Session, escalation: DoseEscalation, ids: dict[int, str]) -> list[dict[str, Any]]:
    """Each enrolled patient's cohort, dose level and phase, with the investigator's DLT assessment."""
    if not ids:
        return []
    dose = {lv.level: lv.dose for lv in escalation.levels}
    rows = session.execute(select(EscalationAssignment, DltAssessment)
                           .outerjoin(DltAssessment, DltAssessment.patient_id == EscalationAssignment.patient_id)
                           .where(EscalationAssignment.patient_id.in_(list(ids)))
                           .order_by(EscalationAssignment.cohort, EscalationAssignment.enrolled_at)).all()
    return [{"patient_id": ids[a.patient_id], "cohort": a.cohort, "dose_level": a.level, "dose": dose[a.level],
             "dose_unit": escalation.unit, "phase": a.phase, "enrolled_at": aware(a.enrolled_at).isoformat(),
             "dlt": "" if d is None else d.dlt,
             "dlt_criterion": escalation.dlt_definition[d.criterion - 1].id if d is not None and d.criterion else "",
             "dlt_event": d.event or "" if d is not None else ""} for a, d in rows]


def _csv(rows: list[dict[str, Any]], columns: Iterable[str] | None = None) -> str:
    """Rows as CSV. A text cell that a spreadsheet would run as a formula (it begins with =, +, -, @, a tab
    or a carriage return: "=HYPERLINK(...)" in an SAE term) is written with a leading ' so it opens as
    text (CSV injection); numbers stay numbers."""
    def cell(value: Any) -> Any:
        if isinstance(value, list):
            value = ";".join(map(str, value))
        if isinstance(value, str) and value[:1] in ("=", "+", "-", "@", "\t", "\r"):
            return "'" + value
        return value

    columns = list(columns) if columns is not None else list(dict.fromkeys(k for r in rows for k in r))
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=columns or ["patient_id"], extrasaction="ignore")
    writer.writeheader()
    for r in rows:
        writer.writerow({k: cell(v) for k, v in r.items()})
    return buffer.getvalue()


def _member(name: str, stamp: tuple) -> zipfile.ZipInfo:
    """The member writestr(name, ...) makes, but at `stamp` rather than the clock's time."""
    member = zipfile.ZipInfo(name, stamp)
    member.compress_type = zipfile.ZIP_DEFLATED
    member.external_attr = 0o600 << 16
    return member


def csv_zip(session: Session, actor: Actor, trial_id: str, now: dt.datetime) -> bytes:
    buffer = io.BytesIO()
    stamp = time.localtime(now.timestamp())[:6]
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, rows in tables(session, actor, trial_id).items():
            archive.writestr(_member(f"{trial_id}/{name}.csv", stamp), _csv(rows))
        archive.writestr(_member(f"{trial_id}/export_info.csv", stamp),
                         _csv(locks.export_info(session, trial_id, actor.name, now)))
    return buffer.getvalue()


# ---- CDISC ODM 1.3.2 --------------------------------------------------------------------------------------
def _oid(*parts: str) -> str:
    return ".".join(re.sub(r"[^A-Za-z0-9_]", "_", p).upper() for p in parts)


def _odm_type(name: str) -> str:
    var = VARIABLES.get(name)
    kind = var.kind if var is not None else ASSESSMENTS[name].kind if name in ASSESSMENTS else "text"
    return {"integer": "integer", "score": "integer", "number": "float", "interval": "float", "flag": "boolean",
            "timestamp": "datetime"}.get(kind, "text")


def _value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, dict):
        return str(value.get("value"))
    return str(value)


REPEATING = ("sae", "eligibility", "adverse_event")  # tables with many rows per patient


def odm_xml(session: Session, actor: Actor, trial_id: str, now_: dt.datetime) -> bytes:
    """The trial's metadata (events, forms, items) and clinical data as one ODM 1.3.2 Snapshot."""
    data = tables(session, actor, trial_id)
    protocol, _ = _rows(session, actor, trial_id)
    study_oid = _oid("ST", protocol.id)
    version = protocol_in_force(session, get_trial(session, actor, trial_id)[0])[0]
    mdv_oid = _oid("MDV", protocol.id, str(version))
    forms: dict[str, list[str]] = {}  # form name -> item names, in order
    skip = {"patient_id", "sae_id", "ae_id"}
    for name, rows in data.items():
        forms[name] = [k for k in dict.fromkeys(k for r in rows for k in r) if k not in skip]
    item_defs, group_defs, form_defs, event_defs, event_refs = [], [], [], [], []
    seen_items: set[str] = set()
    for order, (name, items) in enumerate(forms.items(), 1):
        form_oid, group_oid = _oid("F", name), _oid("IG", name)
        refs = []
        for i, item in enumerate(items, 1):
            item_oid = _oid("IT", name, item)
            refs.append(ODM.ItemRef(ItemOID=item_oid, Mandatory="No", OrderNumber=i))
            if item_oid not in seen_items:
                seen_items.add(item_oid)
                item_defs.append(ODM.ItemDef(OID=item_oid, Name=item, DataType=_odm_type(item)))
        group_defs.append(ODM.ItemGroupDef(OID=group_oid, Name=name, Repeating="Yes" if name in REPEATING
                                           else "No", ItemRef=refs))
        form_defs.append(ODM.FormDef(OID=form_oid, Name=name, Repeating="No",
                                     ItemGroupRef=[ODM.ItemGroupRef(ItemGroupOID=group_oid, Mandatory="Yes")]))
        event_oid = _oid("SE", name)
        event_defs.append(ODM.StudyEventDef(OID=event_oid, Name=name, Repeating="No", Type="Scheduled",
                                            FormRef=[ODM.FormRef(FormOID=form_oid, Mandatory="No")]))
        event_refs.append(ODM.StudyEventRef(StudyEventOID=event_oid, OrderNumber=order, Mandatory="No"))
    mdv = ODM.MetaDataVersion(OID=mdv_oid, Name=f"{protocol.acronym} protocol version {version}, as exported by "
                                                f"stroketrial",
                              Protocol=ODM.Protocol(StudyEventRef=event_refs), StudyEventDef=event_defs,
                              FormDef=form_defs, ItemGroupDef=group_defs, ItemDef=item_defs)
    study = ODM.Study(OID=study_oid, GlobalVariables=ODM.GlobalVariables(
        StudyName=ODM.StudyName(_content=protocol.acronym),
        StudyDescription=ODM.StudyDescription(_content=protocol.title),
        ProtocolName=ODM.ProtocolName(_content=protocol.registry_id)), MetaDataVersion=[mdv])
    subjects: dict[str, ODM.SubjectData] = {}
    for name, rows in data.items():
        for repeat, row in enumerate(rows, 1):
            key = str(row["patient_id"])
            subject = subjects.setdefault(key, ODM.SubjectData(SubjectKey=key, StudyEventData=[]))
            values = [ODM.ItemData(ItemOID=_oid("IT", name, k), Value=_value(v)) for k, v in row.items()
                      if k not in skip and v not in (None, "")]
            group = ODM.ItemGroupData(ItemGroupOID=_oid("IG", name), ItemData=values)
            if name in REPEATING:
                group.ItemGroupRepeatKey = str(repeat)
            event = next((e for e in subject.StudyEventData if e.StudyEventOID == _oid("SE", name)), None)
            if event is None:
                event = ODM.StudyEventData(StudyEventOID=_oid("SE", name),
                                           FormData=[ODM.FormData(FormOID=_oid("F", name), ItemGroupData=[])])
                subject.StudyEventData.append(event)
            event.FormData[0].ItemGroupData.append(group)
    clinical = ODM.ClinicalData(StudyOID=study_oid, MetaDataVersionOID=mdv_oid, SubjectData=list(subjects.values()))
    now = now_.replace(microsecond=0).isoformat()
    root = ODM.ODM(FileOID=_oid("STROKETRIAL", protocol.id, now), FileType="Snapshot", Granularity="All",
                   CreationDateTime=now, ODMVersion="1.3.2", Originator="stroketrial", SourceSystem="stroketrial",
                   Study=[study], ClinicalData=[clinical])
    return root.to_xml_string(xml_declaration=True).encode("utf-8")


def audit_rows(session: Session, actor: Actor) -> tuple[list[dict[str, Any]], list[str]]:
    """The audit trail's rows as service/audit_trail.py built them at 20620a5, every event read whole at once."""
    actor.require("reading the audit trail")
    scope = audit_trail._Scope(session, actor)
    rows, redacted_any = [], False
    for e in session.execute(select(AuditEvent).order_by(AuditEvent.seq)).scalars():
        if not scope.admits(e):
            continue
        before, hidden_before = scope.document(e, e.before_json)
        after, hidden_after = scope.document(e, e.after_json)
        row = {"seq": e.seq, "at": e.at, "actor": e.actor, "action": e.action, "entity": e.entity,
               "entity_id": e.entity_id, "trial": e.trial_id or "", "site": scope.site_of(e) or "",
               "reason": e.reason or "", "before": before, "after": after,
               "prev_hash": e.prev_hash, "hash": e.hash}
        if hidden_before or hidden_after:
            row["reason"] = row["reason"] or audit_trail.WITHHELD
        redacted_any |= not scope.unredacted(e.trial_id) or hidden_before or hidden_after
        rows.append(row)
    columns = ["seq", "at", "actor", "action", "entity", "entity_id", "trial", "site", "reason", "before", "after"]
    if redacted_any:
        for row in rows:
            del row["prev_hash"], row["hash"]
        return rows, columns
    return rows, [*columns, "prev_hash", "hash"]


def audit_csv(session: Session, actor: Actor, chain_seq: bool = True) -> str:
    """The audit trail as the in-memory build wrote it at 20620a5, with (by default, for the admin, who sees the
    whole trail) each event's chain and number in it added after `seq`, as the export now writes it."""
    rows, columns = audit_rows(session, actor)
    if chain_seq and actor.is_admin:
        numbers = {seq: (chain or "platform", number) for seq, chain, number in
                   session.execute(select(AuditEvent.seq, AuditEvent.chain_id, AuditEvent.chain_seq)).all()}
        rows = [{"seq": r["seq"], "chain": numbers[r["seq"]][0], "chain_seq": numbers[r["seq"]][1], **r}
                for r in rows]
        columns = ["seq", "chain", "chain_seq", *columns[1:]]
    return _csv(rows, columns)
