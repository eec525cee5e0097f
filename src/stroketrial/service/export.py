"""A trial's data for analysis: CSV (one table per form), CDISC ODM 1.3.2 XML, and the audit trail as CSV.

Exports hold only the user's sites, and arms only for a user who may see them. The
ODM document is built with odmlib (CDISC ODM object model, maintained by S. Hume),
and the tests validate it against the ODM 1.3.2 XML Schema that odmlib ships.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
import json
import pickle
import re
import tempfile
import time
import xml.etree.ElementTree as ET
import zipfile
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import IO, Any

import odmlib.odm_1_3_2.model as ODM
from sqlalchemy import select
from sqlalchemy.orm import Session

from ..clinical import VARIABLES
from ..clinical.assessments import ASSESSMENTS
from ..protocol import Protocol
from ..protocol.model import DoseEscalation
from ..store.models import (AdverseEvent, Allocation, DltAssessment, EscalationAssignment, Patient,
                            SeriousAdverseEvent, Unblinding, VisitRecord)
from . import envelopes, locks
from .accounts import Actor
from .audit_trail import audit_stream
from .blinding import sees_arm_counts
from .consent import export_flags
from .patients import aware
from .trials import get_trial, protocol_in_force

CHUNK = 500  # patients read, turned into rows and written at a time
SPOOL_BYTES = 1 << 20  # a table's rows kept in memory up to this size, then in a temporary file
PIECE_BYTES = 1 << 20  # the zip handed on in pieces of about this size


@dataclass(frozen=True)
class _Scope:
    """What an export of one trial by one user covers: the patients at the user's sites (database id -> code, in
    order of registration), and whether arms are shown."""
    trial_id: str
    protocol: Protocol
    show_arm: bool
    codes: dict[int, str]
    chunk: int = CHUNK

    @property
    def one_arm_forms(self) -> set[str]:
        # A form kept for one arm (an infusion record) tells the arm by being there: not for those who may not see
        # arms.
        return {v.id for v in self.protocol.visits if v.arms is not None and not self.show_arm}

    def chunks(self) -> Iterator[list[int]]:
        ids = list(self.codes)
        for start in range(0, len(ids), self.chunk):
            yield ids[start:start + self.chunk]


def _scope(session: Session, actor: Actor, trial_id: str, chunk: int = CHUNK) -> _Scope:
    actor.require("exporting trial data")
    _trial, protocol = get_trial(session, actor, trial_id)
    rows = session.execute(select(Patient.id, Patient.code, Patient.site_code).where(Patient.trial_id == trial_id)
                           .order_by(Patient.id)).all()
    return _Scope(trial_id, protocol, sees_arm_counts(actor.role, protocol),  # a table of arms is counts per arm
                  {pid: code for pid, code, site in rows if actor.can_see_site(site)}, chunk)


def _patient_tables(session: Session, scope: _Scope, ids: list[int]) -> dict[str, list[dict[str, Any]]]:
    """The tables with a row or more per patient (screening, eligibility, randomization, a form per visit), for
    the patients `ids` (in order of registration): each table's rows in the table's order."""
    protocol, codes, one_arm_forms = scope.protocol, scope.codes, scope.one_arm_forms
    out: dict[str, list[dict[str, Any]]] = {"screening": [], "eligibility": [], "randomization": []}
    for visit in protocol.visits:
        if visit.id not in one_arm_forms:
            out[f"visit_{visit.id}"] = []
    if not ids:
        return out
    withdrawn = export_flags(session, protocol, ids)  # consent withdrawals, flagged on the screening row
    # Columns, not records: nothing of a chunk stays in the session's identity map once it is written.
    rows = session.execute(select(Patient.id, Patient.code, Patient.site_code, Patient.status, Patient.created_at,
                                  Patient.protocol_version, Patient.data_json, Patient.screening_json,
                                  Allocation.id.label("allocation"), Allocation.sequence,
                                  Allocation.created_at.label("randomized_at"), Allocation.kit,
                                  Allocation.record_json, Allocation.arm)
                           .outerjoin(Allocation, Allocation.patient_id == Patient.id)
                           .where(Patient.id.in_(ids)).order_by(Patient.id)).all()
    for p in rows:
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
        if p.allocation is not None:
            row = {"patient_id": p.code, "site": p.site_code, "sequence": p.sequence,
                   "randomized_at": aware(p.randomized_at).isoformat(), "kit": p.kit or "",
                   # a sealed emergency envelope's allocation (service/envelopes.py), reported apart below too
                   "emergency_envelope": json.loads(p.record_json).get("envelope") or ""}
            if scope.show_arm:
                row["arm"] = p.arm
            out["randomization"].append(row)
    for v in session.execute(select(VisitRecord.patient_id, VisitRecord.visit_id, VisitRecord.visit_date,
                                    VisitRecord.values_json).where(VisitRecord.patient_id.in_(ids))
                             .order_by(VisitRecord.patient_id, VisitRecord.id)):
        if v.visit_id in one_arm_forms:
            continue
        out.setdefault(f"visit_{v.visit_id}", []).append({"patient_id": codes[v.patient_id],
                                                          "visit_date": v.visit_date, **json.loads(v.values_json)})
    return out


def _event_tables(session: Session, actor: Actor, scope: _Scope) -> dict[str, list[dict[str, Any]]]:
    """The tables of events (SAEs, AEs, emergency envelopes, the escalation's enrolments, unblindings): a few rows
    per trial, read whole."""
    protocol, ids = scope.protocol, scope.codes
    out: dict[str, list[dict[str, Any]]] = {}
    out["sae"] = [{"patient_id": ids[s.patient_id], "sae_id": s.id, "reported_by": s.created_by,
                   **json.loads(s.data_json)}
                  for s in (session.execute(select(SeriousAdverseEvent).where(
                      SeriousAdverseEvent.patient_id.in_(list(ids)))
                      .order_by(SeriousAdverseEvent.patient_id, SeriousAdverseEvent.id)).scalars() if ids else [])]
    # The non-serious AE log (service/adverse_events.py), one row per event: the analysis counts it by this name.
    out["adverse_event"] = [{"patient_id": ids[e.patient_id], "ae_id": e.id, "recorded_by": e.created_by,
                             **json.loads(e.data_json)}
                            for e in (session.execute(select(AdverseEvent).where(
                                AdverseEvent.patient_id.in_(list(ids))).order_by(AdverseEvent.id)).scalars()
                                if ids else [])]
    if protocol.emergency_randomization is not None:  # the fallback allocations, apart for the statistician
        out["emergency_envelopes"] = envelopes.export_rows(session, scope.trial_id, scope.show_arm, ids)
    if protocol.dose_escalation is not None:
        out["escalation"] = _escalation_rows(session, protocol.dose_escalation, ids)
    if actor.role in ("dsmb", "admin"):
        out["unblinding"] = [{"patient_id": ids[u.patient_id], "at": aware(u.created_at).isoformat(),
                              "by": u.created_by, "reason": u.reason}
                             for u in (session.execute(select(Unblinding).where(
                                 Unblinding.patient_id.in_(list(ids))).order_by(Unblinding.id)).scalars()
                                 if ids else [])]
    return out


def _tables_in_chunks(session: Session, actor: Actor, scope: _Scope
                      ) -> Iterator[dict[str, list[dict[str, Any]]]]:
    """The export's tables a chunk of patients at a time (the first chunk names every table of the patients,
    empty or not), then the event tables whole; each table's rows, chunk after chunk, in the table's order."""
    yield _patient_tables(session, scope, [])
    for ids in scope.chunks():
        yield _patient_tables(session, scope, ids)
    yield _event_tables(session, actor, scope)


def tables(session: Session, actor: Actor, trial_id: str) -> dict[str, list[dict[str, Any]]]:
    """Every form of the trial as a list of rows (the same content as the CSV files)."""
    out: dict[str, list[dict[str, Any]]] = {}
    for part in _tables_in_chunks(session, actor, _scope(session, actor, trial_id)):
        for name, rows in part.items():
            out.setdefault(name, []).extend(rows)
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


def _cell(value: Any) -> Any:
    """A CSV cell. A text cell that a spreadsheet would run as a formula (it begins with =, +, -, @, a tab or a
    carriage return: "=HYPERLINK(...)" in an SAE term) is written with a leading ' so it opens as text (CSV
    injection); numbers stay numbers."""
    if isinstance(value, list):
        value = ";".join(map(str, value))
    if isinstance(value, str) and value[:1] in ("=", "+", "-", "@", "\t", "\r"):
        return "'" + value
    return value


def _csv_text(rows: Iterable[dict[str, Any]], columns: list[str], batch: int = 1000) -> Iterator[str]:
    """Rows as CSV under `columns` (a header of patient_id alone when there are none), `batch` rows at a time."""
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=columns or ["patient_id"], extrasaction="ignore")
    writer.writeheader()
    for n, r in enumerate(rows, 1):
        writer.writerow({k: _cell(v) for k, v in r.items()})
        if n % batch == 0:
            yield buffer.getvalue()
            buffer.seek(0)
            buffer.truncate()
    yield buffer.getvalue()


def _csv(rows: list[dict[str, Any]], columns: Iterable[str] | None = None) -> str:
    """Rows as CSV, the columns those of the rows in order of appearance unless given."""
    columns = list(columns) if columns is not None else list(dict.fromkeys(k for r in rows for k in r))
    return "".join(_csv_text(rows, columns))


class _ZipSink:
    """Where ZipFile writes the archive, handed on member by member: ZipFile seeks back only into the member it
    has just written (to put its size and checksum in its header), so a finished member never changes again and
    the archive's bytes are those of a whole archive written to a file."""

    def __init__(self) -> None:
        self._pending = bytearray()
        self._start = 0  # where the pending bytes begin in the archive
        self._at = 0

    def write(self, data: bytes) -> int:
        offset = self._at - self._start
        self._pending[offset:offset + len(data)] = data
        self._at += len(data)
        return len(data)

    def tell(self) -> int:
        return self._at

    def seek(self, position: int, whence: int = 0) -> int:
        if whence != 0 or position < self._start:
            raise OSError("only the member being written can be sought")
        self._at = position
        return position

    def flush(self) -> None:
        pass

    def close(self) -> None:
        pass

    @property
    def pending(self) -> int:
        return len(self._pending)

    def take(self) -> bytes:
        """The bytes written since the last take (call it between members)."""
        done = bytes(self._pending)
        self._start += len(done)
        self._pending.clear()
        return done


def _member(name: str, stamp: tuple[int, int, int, int, int, int]) -> zipfile.ZipInfo:
    """A deflated member as ZipFile.writestr(name, ...) makes one, dated `stamp`."""
    member = zipfile.ZipInfo(name, stamp)
    member.compress_type = zipfile.ZIP_DEFLATED
    member.external_attr = 0o600 << 16  # rw-------
    return member


def _spooled_rows(spool: IO[bytes]) -> Iterator[dict[str, Any]]:
    spool.seek(0)
    while True:
        try:
            yield pickle.load(spool)  # the export's own rows, written just before
        except EOFError:
            return


def csv_zip(session: Session, actor: Actor, trial_id: str, now: dt.datetime | None = None) -> bytes:
    """The trial's tables as CSV files in a zip archive, whole (`csv_zip_stream` hands it on piece by piece)."""
    return b"".join(csv_zip_stream(session, actor, trial_id, now))


def csv_zip_stream(session: Session, actor: Actor, trial_id: str, now: dt.datetime | None = None,
                   chunk: int = CHUNK) -> Iterator[bytes]:
    """The trial's tables as CSV files in a zip archive, as successive pieces of the archive. The permission is
    checked at once; the rows are then read a chunk of patients at a time, each table's rows kept in a file of its
    own (in memory while small) until its member is written, so the server's memory does not grow with the
    trial."""
    scope = _scope(session, actor, trial_id, chunk)
    return _zip_pieces(session, actor, scope, now or dt.datetime.now(dt.UTC))


def _zip_pieces(session: Session, actor: Actor, scope: _Scope, now: dt.datetime) -> Iterator[bytes]:
    spools: dict[str, IO[bytes]] = {}
    columns: dict[str, dict[str, None]] = {}
    try:
        for part in _tables_in_chunks(session, actor, scope):
            for name, rows in part.items():
                if name not in spools:
                    spools[name] = tempfile.SpooledTemporaryFile(SPOOL_BYTES)  # noqa: SIM115 (closed below)
                seen = columns.setdefault(name, {})
                for row in rows:
                    seen.update(dict.fromkeys(row))
                    pickle.dump(row, spools[name], pickle.HIGHEST_PROTOCOL)
        stamp = time.localtime(now.timestamp())[:6]
        sink = _ZipSink()
        with zipfile.ZipFile(sink, "w", zipfile.ZIP_DEFLATED) as archive:
            for name, spool in spools.items():
                with archive.open(_member(f"{scope.trial_id}/{name}.csv", stamp), "w") as member:
                    for text in _csv_text(_spooled_rows(spool), list(columns[name])):
                        member.write(text.encode("utf-8"))
                if sink.pending >= PIECE_BYTES:  # small members go out together: each piece is a hop to a thread
                    yield sink.take()
            info = locks.export_info(session, scope.trial_id, actor.name, now)
            with archive.open(_member(f"{scope.trial_id}/export_info.csv", stamp), "w") as member:
                member.write(_csv(info).encode("utf-8"))
        yield sink.take()
    finally:
        for spool in spools.values():
            spool.close()


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


SKIP = {"patient_id", "sae_id", "ae_id"}  # a row's keys that are not items (the subject, the event's own id)
PLACEHOLDER = "stroketrial-subjects-go-here"


def odm_xml(session: Session, actor: Actor, trial_id: str, now: dt.datetime | None = None) -> bytes:
    """The trial's ODM 1.3.2 Snapshot, whole (`odm_xml_stream` hands it on piece by piece)."""
    return b"".join(odm_xml_stream(session, actor, trial_id, now))


def odm_xml_stream(session: Session, actor: Actor, trial_id: str, now: dt.datetime | None = None,
                   chunk: int = CHUNK) -> Iterator[bytes]:
    """The trial's metadata (events, forms, items) and clinical data as one ODM 1.3.2 Snapshot, as successive
    pieces of the document. The permission is checked at once. The metadata need every form's items, so the
    patients are read twice, a chunk at a time: once for the items, once for the subjects, each subject written
    as soon as its chunk is read."""
    scope = _scope(session, actor, trial_id, chunk)
    return _odm_pieces(session, actor, scope, now or dt.datetime.now(dt.UTC))


def _odm_pieces(session: Session, actor: Actor, scope: _Scope, now: dt.datetime) -> Iterator[bytes]:
    items: dict[str, dict[str, None]] = {}  # form name -> its items, in order of appearance
    events = _event_tables(session, actor, scope)  # a few rows a trial: read once, kept
    for part in _tables_in_chunks(session, actor, scope):
        for name, rows in part.items():
            seen = items.setdefault(name, {})
            for row in rows:
                seen.update(dict.fromkeys(row))
    forms = {name: [k for k in keys if k not in SKIP] for name, keys in items.items()}
    head = _odm_document(session, actor, scope, forms, now, bool(scope.codes))
    if not scope.codes:  # no patient: no subject, the document as it is
        yield head.encode("utf-8")
        return
    before, after = head.split(f'<SubjectData SubjectKey="{PLACEHOLDER}" />')
    yield before.encode("utf-8")
    oids = _FormOids(forms)
    repeats = dict.fromkeys(REPEATING, 0)  # a repeating table's rows so far: its rows' ItemGroupRepeatKey
    by_subject: dict[str, dict[str, list[tuple[int, dict[str, Any]]]]] = {}
    for name, event_rows in events.items():
        for repeat, row in enumerate(event_rows, 1):
            by_subject.setdefault(str(row["patient_id"]), {}).setdefault(name, []).append((repeat, row))
    for ids in scope.chunks():
        subjects: dict[str, dict[str, list[tuple[int, dict[str, Any]]]]] = {}
        for name, rows in _patient_tables(session, scope, ids).items():
            for row in rows:
                repeats[name] = repeat = repeats.get(name, 0) + 1
                subjects.setdefault(str(row["patient_id"]), {}).setdefault(name, []).append((repeat, row))
        pieces = []
        for key, forms_of in subjects.items():
            for name, numbered in by_subject.pop(key, {}).items():
                forms_of.setdefault(name, []).extend(numbered)
            pieces.append(ET.tostring(_subject(key, forms_of, forms, oids), encoding="unicode"))
        yield "".join(pieces).encode("utf-8")
    yield after.encode("utf-8")


class _FormOids:
    """The OIDs of each form's event, form, item group and items."""

    def __init__(self, forms: dict[str, list[str]]):
        self.event = {name: _oid("SE", name) for name in forms}
        self.form = {name: _oid("F", name) for name in forms}
        self.group = {name: _oid("IG", name) for name in forms}
        self._items: dict[tuple[str, str], str] = {}

    def item(self, name: str, key: str) -> str:
        oid = self._items.get((name, key))
        if oid is None:
            oid = self._items[(name, key)] = _oid("IT", name, key)
        return oid


def _subject(key: str, rows_by_form: dict[str, list[tuple[int, dict[str, Any]]]], forms: dict[str, list[str]],
             oids: _FormOids) -> ET.Element:
    """One subject's SubjectData: an event per form that has rows, in the forms' order, each row an item group
    (numbered, in a repeating form, by its place in the whole table)."""
    subject = ET.Element("SubjectData", {"SubjectKey": key})
    for name in forms:
        rows = rows_by_form.get(name)
        if not rows:
            continue
        event = ET.SubElement(subject, "StudyEventData", {"StudyEventOID": oids.event[name]})
        form = ET.SubElement(event, "FormData", {"FormOID": oids.form[name]})
        for repeat, row in rows:
            group = ET.SubElement(form, "ItemGroupData", {"ItemGroupOID": oids.group[name]})
            for k, v in row.items():
                if k not in SKIP and v not in (None, ""):
                    ET.SubElement(group, "ItemData", {"ItemOID": oids.item(name, k), "Value": _value(v)})
            if name in REPEATING:
                group.set("ItemGroupRepeatKey", str(repeat))
    return subject


def _odm_document(session: Session, actor: Actor, scope: _Scope, forms: dict[str, list[str]], now: dt.datetime,
                  placeholder: bool) -> str:
    """The ODM document with its metadata, its clinical data one placeholder subject (or none)."""
    protocol = scope.protocol
    study_oid = _oid("ST", protocol.id)
    version = protocol_in_force(session, get_trial(session, actor, scope.trial_id)[0])[0]
    mdv_oid = _oid("MDV", protocol.id, str(version))
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
    subjects = [ODM.SubjectData(SubjectKey=PLACEHOLDER)] if placeholder else []
    clinical = ODM.ClinicalData(StudyOID=study_oid, MetaDataVersionOID=mdv_oid, SubjectData=subjects)
    stamp = now.astimezone(dt.UTC).replace(microsecond=0).isoformat()
    root = ODM.ODM(FileOID=_oid("STROKETRIAL", protocol.id, stamp), FileType="Snapshot", Granularity="All",
                   CreationDateTime=stamp, ODMVersion="1.3.2", Originator="stroketrial", SourceSystem="stroketrial",
                   Study=[study], ClinicalData=[clinical])
    return root.to_xml_string(xml_declaration=True)


def audit_csv(session: Session, actor: Actor) -> str:
    """The audit trail as this reader may see it (site scope, blinded projections; see audit_trail.py), whole."""
    return b"".join(audit_csv_stream(session, actor)).decode("utf-8")


def audit_csv_stream(session: Session, actor: Actor, chunk: int = 1000) -> Iterator[bytes]:
    """The audit trail as CSV in pieces of about PIECE_BYTES, read `chunk` events at a time. The permission is
    checked at once, before a piece is asked for."""
    rows, columns = audit_stream(session, actor, chunk)
    return _pieces(text.encode("utf-8") for text in _csv_text(rows, columns, batch=chunk))


def _pieces(parts: Iterable[bytes]) -> Iterator[bytes]:
    """Parts handed on together in pieces of about PIECE_BYTES (each piece of a streamed answer is a hop to a
    worker thread)."""
    pending = bytearray()
    for part in parts:
        pending += part
        if len(pending) >= PIECE_BYTES:
            yield bytes(pending)
            pending.clear()
    yield bytes(pending)
