"""Reconcile the data tables with the audit trail: replay the trail and name every row that differs.

The chain proves the trail was not edited; this proves the tables say what the trail says.
Someone with write access to the database can change `allocations.arm` without touching the
trail (and the pharmacist would then be shown another arm): that row is named here. So is a
patient, visit, SAE or unblinding that has no event, and an event whose row is gone.

The GCP workflow's tables are checked the same way (`_expected_gcp`, `_check_gcp`): consents, the AE log, the
SAE reports, data queries, source verification marks, record signatures, freezes and locks, protocol versions.
Their events carry what the site or monitor decided, not the server's clock readings around it: the times a
row keeps of its own (`created_at`, `updated_at`, `raised_at`, `answered_at`, `closed_at`, `verified_at`,
`cleared_at`) are not in the trail and are not compared; the times that are decisions (consented, signed,
locked, released, in force from) are.

Investigational product supply and the sealed emergency envelopes are checked the same way (`_expected_supply`,
`_check_supply`): kits, shipments, resupply requests and a site's own resupply levels; envelope sets and envelopes.
What their events do not carry is not compared, and each such field is named where the row is built.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import re
from collections import Counter, defaultdict
from dataclasses import replace
from collections.abc import Callable
from typing import Any

from sqlalchemy import or_, select
from sqlalchemy.orm import Session

from ..protocol import Protocol
from ..randomization.envelopes import envelope_label
from ..store import Checkpoint, Verification, canonical, verify
from ..store.models import (AdverseEvent, Allocation, AuditEvent, Consent, DataLock, DataQuery, DltAssessment,
                            Envelope, EnvelopeSet, EscalationAssignment, EscalationDecision, Patient, ProtocolVersion,
                            RecordSignature, RegistryPatient, ResupplyRequest, SaeReport, SeriousAdverseEvent,
                            SourceVerification, SupplyKit, SupplyShipment, SupplySiteLevels, Unblinding, VisitRecord)
from .consent import stored_consent
from .edit_checks import EDIT_CHECK
from .escalation import assignment_row, decision_row, dlt_row
from .locks import lock_json
from .patients import aware
from .reconcile_dsmb import dsmb_problems
from .record_signatures import CASEBOOK
from .registry import IMPORT_ACTION
from .verification import reverified_why

Key = tuple[str, ...]
Rows = dict[Key, dict[str, Any]]  # a table's rows as the trail would have them, by key


def _expected(session: Session) -> dict[str, dict[Key, Any]]:
    """What the trail says each table holds, by (trial, patient[, visit or SAE id])."""
    out: dict[str, dict[Key, Any]] = {"patient": {}, "allocation": {}, "visit": {}, "sae": {}, "escalation": {},
                                      "dlt": {}, "decision": {}}
    unblindings: Counter = Counter()
    actions = ("register", "update_screening", "set_randomization_time", "randomize", "enter_visit", "correct_visit",
               "report_sae", "emergency_unblinding", "enrol_dose_cohort", "record_dlt", "correct_dlt",
               "confirm_escalation", "deviate_escalation", "randomize_by_envelope")
    for e in session.execute(select(AuditEvent).where(AuditEvent.action.in_(actions))
                             .order_by(AuditEvent.seq)).scalars():
        key = tuple(e.entity_id.split("/"))
        after: Any = json.loads(e.after_json) if e.after_json else None  # a JSON document
        if e.action == "register":
            out["patient"][key] = after["data"]
        elif e.action in ("update_screening", "set_randomization_time"):
            out["patient"][key] = after
        elif e.action in ("randomize", "randomize_by_envelope"):  # (an envelope's: service/envelopes.py)
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
    expected = _expected(session) | _expected_gcp(session) | _expected_supply(session)
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
    _check_gcp(session, codes, expected, check)
    _check_supply(session, codes, expected, check)
    problems += _registry_problems(session)
    problems += dsmb_problems(session)
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


SAE_REPORT_KINDS = {"report_sae": "initial", "follow_up_sae": "follow_up", "assess_sae": "sponsor_assessment"}
CONSENT_TIMES = ("consented_at", "confirmation_due", "confirmed_at", "withdrawn_at")
LOCK_TIMES = ("locked_at", "released_at")


def _utc(moment: Any) -> str | None:
    """A time as UTC ISO text: the trail has it as the service wrote it, PostgreSQL returns it in the connection's
    zone and SQLite with none."""
    if moment is None:
        return None
    parsed = moment if isinstance(moment, dt.datetime) else dt.datetime.fromisoformat(moment)
    return aware(parsed).astimezone(dt.UTC).isoformat()


def _with_utc(row: dict[str, Any], keys: tuple[str, ...]) -> dict[str, Any]:
    return row | {k: _utc(row.get(k)) for k in keys}


class _GcpReplay:
    """The GCP workflow's events replayed in order, one method per table: what the trail says each row holds.
    `out["sae_report"]` holds each SAE's reports as a list (their events name the SAE, not the report row)."""

    def __init__(self) -> None:
        self.out: dict[str, dict[Key, Any]] = {t: {} for t in ("consent", "ae", "sae_report", "query", "sdv",
                                                               "signature", "lock", "protocol")}
        self.signed: dict[str, Key] = {}  # a signature's id -> its key (the invalidation does not name the patient)
        self.marks: defaultdict[tuple[Any, ...], list[Key]] = defaultdict(list)  # (trial, patient, form, field)

    def consent(self, e: AuditEvent, parts: Key, after: Any) -> None:
        trial, code = parts[0], parts[1]  # entity trial/code/consent/id
        if e.action == "reconsent":
            old = after["superseded"]
            self.out["consent"][(trial, code, str(old["id"]))] = _with_utc(old, CONSENT_TIMES) | {"trial": trial}
            after = after["new"]
        stored = {k: v for k, v in after.items() if k != "late"}  # (late: derived, for the reader)
        self.out["consent"][(trial, code, parts[-1])] = _with_utc(stored, CONSENT_TIMES) | {"trial": trial}

    def ae(self, e: AuditEvent, parts: Key, after: Any) -> None:
        corrected = e.action == "correct_ae"
        recorded_by = self.out["ae"].get(parts, {}).get("recorded_by") if corrected else e.actor
        self.out["ae"][parts] = {**after, "recorded_by": recorded_by, "corrected_by": e.actor if corrected else None}

    def sae_report(self, e: AuditEvent, parts: Key, after: Any) -> None:
        self.out["sae_report"].setdefault(parts, []).append({"kind": SAE_REPORT_KINDS[e.action],
                                                             "created_by": e.actor, **after})

    def query(self, e: AuditEvent, parts: Key, after: Any) -> None:
        if e.action == "raise_query":
            self.out["query"][parts] = {
                "trial": parts[0], "form": after["form"], "field": after["field"], "text": after["text"],
                "origin": after["origin"], "check_id": after.get("check"), "status": "open",
                "raised_by": EDIT_CHECK if after["origin"] == "edit_check" else e.actor, "answer": None,
                "answered_by": None, "closed_by": None, "reopened": 0}
            return
        query = self.out["query"].setdefault(parts, {})
        if e.action == "answer_query":
            query.update(status="answered", answer=after["answer"], answered_by=e.actor)
        elif e.action == "close_query":
            query.update(status="closed", closed_by=after["closed_by"])
        else:
            query.update(status="open", text=after["text"], closed_by=None, reopened=query.get("reopened", 0) + 1)

    def sdv(self, e: AuditEvent, parts: Key, after: Any) -> None:
        if e.action == "clear_source_verification":
            self.out["sdv"].setdefault(parts, {}).update(cleared=True, cleared_why=after["cleared_why"])
            return
        scope = (parts[0], parts[1], after["form"], after["field"])
        for key in self.marks[scope]:  # verifying again clears the marks still standing (verification.verify_form)
            if not self.out["sdv"][key].get("cleared"):
                self.out["sdv"][key].update(cleared=True, cleared_why=reverified_why(e.actor))
        self.marks[scope].append(parts)
        self.out["sdv"][parts] = {"form": after["form"], "field": after["field"],
                                  "value_sha256": after["value_sha256"], "verified_by": e.actor, "cleared": False,
                                  "cleared_why": None}

    def signature(self, e: AuditEvent, parts: Key, after: Any) -> None:
        if e.action == "invalidate_signature":
            key = self.signed.get(e.entity_id, (str(e.trial_id), "?", e.entity_id))
            self.out["signature"].setdefault(key, {}).update(invalidated_at=_utc(after["invalidated_at"]),
                                                             invalidated_why=after["why"])
            return
        key = self.signed[e.entity_id] = (str(e.trial_id), after["patient_id"], e.entity_id)
        self.out["signature"][key] = {"form": after["form"], "meaning": after["meaning_text"],
                                      "content_sha256": after["content_sha256"], "signed_by": after["signed_by"],
                                      "signed_at": _utc(after["signed_at"]), "invalidated_at": None,
                                      "invalidated_why": None}

    def lock(self, e: AuditEvent, parts: Key, after: Any) -> None:
        self.out["lock"][(str(e.trial_id), e.entity_id)] = _with_utc(after, LOCK_TIMES)

    def protocol(self, e: AuditEvent, parts: Key, after: Any) -> None:
        """An amendment: version 2 onwards (version 1 is the trial's own protocol_json, not a row here)."""
        self.out["protocol"][(after["trial"], f"version-{after['version']}")] = {
            "effective_from": _utc(after["effective_from"]), "changes": after["changes"],
            "protocol_sha256": after["protocol_sha256"], "created_by": e.actor}


_REPLAY: dict[str, Callable[[_GcpReplay, AuditEvent, Key, Any], None]] = {
    **dict.fromkeys(("record_consent", "reconsent", "confirm_consent", "withdraw_consent"), _GcpReplay.consent),
    **dict.fromkeys(("record_ae", "correct_ae"), _GcpReplay.ae),
    **dict.fromkeys(SAE_REPORT_KINDS, _GcpReplay.sae_report),
    **dict.fromkeys(("raise_query", "answer_query", "close_query", "reopen_query"), _GcpReplay.query),
    **dict.fromkeys(("verify_source", "clear_source_verification"), _GcpReplay.sdv),
    **dict.fromkeys(("sign_record", "invalidate_signature"), _GcpReplay.signature),
    **dict.fromkeys(("freeze", "lock", "release_freeze", "unlock"), _GcpReplay.lock),
    "amend_protocol": _GcpReplay.protocol,
}


def _expected_gcp(session: Session) -> dict[str, dict[Key, Any]]:
    """What the trail says the GCP workflow's tables hold (`_check_gcp` compares)."""
    replay = _GcpReplay()
    for e in session.execute(select(AuditEvent).where(AuditEvent.action.in_(_REPLAY))
                             .order_by(AuditEvent.seq)).scalars():
        _REPLAY[e.action](replay, e, tuple(e.entity_id.split("/")), json.loads(e.after_json or "{}"))
    return replay.out


def _check_gcp(session: Session, codes: dict[int, tuple[str, str]], expected: dict[str, dict[Key, Any]],
               check: Callable[[str, str, Rows], None]) -> None:
    """Consents, the AE log, SAE reports, data queries, source verification, record signatures, freezes and locks,
    protocol versions: each row against the trail's last word on it."""
    check("consent", "consent", {(*codes[c.patient_id], str(c.id)):
                                 _with_utc(stored_consent(c), CONSENT_TIMES) | {"trial": c.trial_id}
                                 for c in session.execute(select(Consent)).scalars() if c.patient_id in codes})
    check("ae", "adverse event", {(*codes[a.patient_id], str(a.id)):
                                  {**json.loads(a.data_json), "recorded_by": a.created_by, "corrected_by": a.updated_by}
                                  for a in session.execute(select(AdverseEvent)).scalars() if a.patient_id in codes})
    _check_sae_reports(session, codes, expected, check)
    check("query", "data query", {(*codes[q.patient_id], str(q.id)): {
        "trial": q.trial_id, "form": q.form, "field": q.field, "text": q.text, "origin": q.origin,
        "check_id": q.check_id, "status": q.status, "raised_by": q.raised_by, "answer": q.answer,
        "answered_by": q.answered_by, "closed_by": q.closed_by, "reopened": q.reopened}
        for q in session.execute(select(DataQuery)).scalars() if q.patient_id in codes})
    check("sdv", "source verification", {(*codes[m.patient_id], str(m.id)): {
        "form": m.form, "field": m.field, "value_sha256": m.value_sha256, "verified_by": m.verified_by,
        "cleared": m.cleared_at is not None, "cleared_why": m.cleared_why}
        for m in session.execute(select(SourceVerification)).scalars() if m.patient_id in codes})
    check("signature", "signature", {(*codes[r.patient_id], str(r.id)): {
        "form": r.form or CASEBOOK, "meaning": r.meaning, "content_sha256": r.content_sha256,
        "signed_by": r.signed_by, "signed_at": _utc(r.signed_at), "invalidated_at": _utc(r.invalidated_at),
        "invalidated_why": r.invalidated_why}
        for r in session.execute(select(RecordSignature)).scalars() if r.patient_id in codes})
    check("lock", "freeze or lock", {(lk.trial_id, str(lk.id)): _with_utc(lock_json(
        lk, None if lk.patient_id is None else codes.get(lk.patient_id, ("?", f"patient row {lk.patient_id}"))[1]),
        LOCK_TIMES) for lk in session.execute(select(DataLock)).scalars()})
    check("protocol", "protocol", {(v.trial_id, f"version-{v.version}"): {
        "effective_from": _utc(v.effective_from), "changes": json.loads(v.changes_json),
        "protocol_sha256": _protocol_sha256(v.protocol_json), "created_by": v.created_by}
        for v in session.execute(select(ProtocolVersion)).scalars()})


def _protocol_sha256(stored: str) -> str:
    """The trail keeps the SHA-256 of the validated protocol, not its text: the stored text is read back and hashed
    as amendments.amend_protocol hashed it."""
    try:
        protocol = Protocol.model_validate_json(stored)
    except ValueError:
        return "not a valid protocol"
    return hashlib.sha256(protocol.model_dump_json().encode("utf-8")).hexdigest()


def _check_sae_reports(session: Session, codes: dict[int, tuple[str, str]], expected: dict[str, dict[Key, Any]],
                       check: Callable[[str, str, Rows], None]) -> None:
    """Each SAE's reports in order (report-1 the initial one): their events name the SAE, not the report row,
    and reports are only ever added, so the n-th event of an SAE is its n-th report row."""
    stored: dict[Key, list[dict[str, Any]]] = {}
    for report, patient_id in session.execute(select(SaeReport, SeriousAdverseEvent.patient_id)
                                              .join(SeriousAdverseEvent, SeriousAdverseEvent.id == SaeReport.sae_id)
                                              .order_by(SaeReport.id)).all():
        if patient_id in codes:
            stored.setdefault((*codes[patient_id], str(report.sae_id)), []).append(
                {"kind": report.kind, "created_by": report.created_by, **json.loads(report.data_json)})
    trail = expected["sae_report"]
    for key, reports in trail.items():
        # An SAE reported before the reports table existed has no initial report row: its SAE row stands for it
        # (serious_adverse_events._history), and that row is checked against report_sae above.
        if reports and reports[0]["kind"] == "initial" and not any(r["kind"] == "initial" for r in stored.get(key, ())):
            trail[key] = reports[1:]
    expected["sae_report"] = {(*key, f"report-{n}"): report for key, reports in trail.items()
                              for n, report in enumerate(reports, 1)}
    check("sae_report", "SAE", {(*key, f"report-{n}"): report for key, reports in stored.items()
                                for n, report in enumerate(reports, 1)})


class _SupplyReplay:
    """The supply and envelope events replayed in order (service/supply.py, service/envelopes.py): what the trail
    says each kit, shipment, resupply request, site's levels, envelope set and envelope holds."""

    def __init__(self) -> None:
        self.out: dict[str, dict[Key, Any]] = {t: {} for t in ("kit", "shipment", "resupply", "supply_levels",
                                                               "envelope_set", "envelope")}

    def kit(self, e: AuditEvent, parts: Key, after: Any) -> None:
        """Every kit event (import, generation, reservation, dispensing, damage, quarantine, close-out, ...) says
        the status it leaves the kit in; those made at the depot say its arm, lot and expiry; dispensing names the
        patient (and the damaged kit a replacement replaces)."""
        key = (str(e.trial_id), after.get("kit_number", parts[-1]))
        if e.action in KIT_MADE:
            self.out["kit"][key] = {"arm": after["arm"], "lot": after["lot"], "expiry": after["expiry"],
                                    "status": after["status"], "site": None, "shipment": None, "patient": None,
                                    "replaces": None, "created_by": e.actor, "dispensed_by": None}
            return
        kit = self.out["kit"].setdefault(key, {})
        if "status" in after:
            kit["status"] = after["status"]
        if after.get("status") == "dispensed":
            kit.update(patient=after["patient"], replaces=after.get("replaces"), dispensed_by=e.actor)

    def ship(self, e: AuditEvent, parts: Key, after: Any) -> None:
        trial, shipment, site = str(e.trial_id), after["shipment"], after["site"]
        self.out["shipment"][(trial, str(shipment))] = {
            "site": site, "status": "in_transit", "shipped_on": after["shipped_on"],
            "expected_on": after["expected_on"], "created_by": e.actor, "received_by": None}
        arms = set()
        for number in after["kits"]:
            kit = self.out["kit"].setdefault((trial, number), {})
            kit.update(status="in_transit", site=site, shipment=shipment)
            arms.add(kit.get("arm"))
        # The event does not name the requests it fills: as supply.ship does, every open request of the site for an
        # arm the shipment carries is shipped by it.
        for (t, _), request in self.out["resupply"].items():
            if t == trial and request["site"] == site and request["status"] == "open" and request["arm"] in arms:
                request.update(status="shipped", shipment=shipment)

    def receive(self, e: AuditEvent, parts: Key, after: Any) -> None:
        trial, shipment = str(e.trial_id), after["shipment"]
        for status, field in (("available", "received"), ("damaged", "damaged"), ("missing", "missing")):
            for number in after[field]:
                self.out["kit"].setdefault((trial, number), {})["status"] = status
        self.out["shipment"].setdefault((trial, str(shipment)), {}).update(status="received", received_by=e.actor)
        for (t, _), request in self.out["resupply"].items():  # (supply.receive: the requests it shipped)
            if t == trial and request.get("shipment") == shipment and request["status"] == "shipped":
                request["status"] = "received"

    def resupply(self, e: AuditEvent, parts: Key, after: Any) -> None:
        self.out["resupply"][(str(e.trial_id), str(after["request"]))] = {
            "site": after["site"], "arm": after["arm"], "kits": after["kits"], "urgent": after["urgent"],
            "reason": after["reason"], "status": "open", "raised_by": e.actor, "shipment": None}

    def levels(self, e: AuditEvent, parts: Key, after: Any) -> None:
        self.out["supply_levels"][(parts[0], parts[-1])] = {**after, "set_by": e.actor}

    def envelope_set(self, e: AuditEvent, parts: Key, after: Any) -> None:
        trial, site, set_id = parts[0], parts[1], after["set"]
        envelope_set = self.out["envelope_set"].setdefault((trial, str(set_id)), {})
        if e.action == "generate_envelopes":
            envelope_set.update(site=site, method=after["method"], count=after["count"], created_by=e.actor,
                                prints=0, voided_by=None, void_reason=None)
            for item in after["envelopes"]:
                # The event names each envelope's number and stratum, never what it holds (the trail is read by
                # blinded roles too): a sealed envelope's arm and kit are not compared (see _check_supply).
                self.out["envelope"][(trial, envelope_label(site, item["number"]))] = {
                    "set": set_id, "stratum": item["stratum"], "status": "sealed", "patient": None,
                    "opened_at": None, "reconciled_by": None}
        elif e.action == "print_envelope_set":
            envelope_set["prints"] = after["print"]
        else:  # void_envelope_set: its sealed envelopes, by number
            envelope_set.update(voided_by=e.actor, void_reason=e.reason)
            for number in after["voided"]:
                self.out["envelope"].setdefault((trial, envelope_label(site, number)), {})["status"] = "void"

    def envelope_opened(self, e: AuditEvent, parts: Key, after: Any) -> None:
        """randomize_by_envelope: the allocation record names the envelope, the patient, the arm and the kit."""
        envelope = self.out["envelope"].setdefault((parts[0], after["envelope"]), {})
        envelope.update(status="reconciled", patient=after["patient_id"], arm=after["arm"], kit=after.get("kit"),
                        reconciled_by=e.actor)
        # The time the site opened it is a decision, kept in the event's reason as envelopes.record_opened wrote it.
        opened = OPENED_AT.search(e.reason or "")
        if opened:
            envelope["opened_at"] = _utc(opened.group(1))
        else:
            envelope.pop("opened_at", None)


KIT_MADE = ("import_kit", "generate_kit")
OPENED_AT = re.compile(r" opened at (\S+) while ")
_SUPPLY_REPLAY: dict[str, Callable[[_SupplyReplay, AuditEvent, Key, Any], None]] = {
    "ship_kits": _SupplyReplay.ship, "receive_shipment": _SupplyReplay.receive,
    "raise_resupply": _SupplyReplay.resupply, "set_supply_levels": _SupplyReplay.levels,
    **dict.fromkeys(("generate_envelopes", "print_envelope_set", "void_envelope_set"), _SupplyReplay.envelope_set),
    "randomize_by_envelope": _SupplyReplay.envelope_opened,
}


def _expected_supply(session: Session) -> dict[str, dict[Key, Any]]:
    """What the trail says the supply and envelope tables hold (`_check_supply` compares). Every event on a kit
    is replayed, whatever its action, by the status it records."""
    replay = _SupplyReplay()
    for e in session.execute(select(AuditEvent).where(or_(AuditEvent.entity == "kit",
                                                          AuditEvent.action.in_(_SUPPLY_REPLAY)))
                             .order_by(AuditEvent.seq)).scalars():
        handler = _SupplyReplay.kit if e.entity == "kit" else _SUPPLY_REPLAY[e.action]
        handler(replay, e, tuple(e.entity_id.split("/")), json.loads(e.after_json or "{}"))
    return replay.out


def _check_supply(session: Session, codes: dict[int, tuple[str, str]], expected: dict[str, dict[Key, Any]],
                  check: Callable[[str, str, Rows], None]) -> None:
    """Kits, shipments, resupply requests, a site's levels, envelope sets and envelopes against the trail.

    Not compared, as no event carries them: the server's clock readings (a kit's created_at, updated_at and
    dispensed_at, a shipment's created_at and received_at, a request's raised_at and closed_at, a site's levels'
    set_at, a set's created_at, an envelope's reconciled_at); a kit's note and updated_by; an envelope's block,
    block_size and slot; and the arm and kit inside a sealed or void envelope (the trail never says what a
    sealed envelope holds: such a change is refused when the envelope is recorded, as its printed check code no
    longer matches). An opened envelope's arm and kit are compared with its randomize_by_envelope event."""
    def patient(patient_id: int | None) -> str | None:
        return None if patient_id is None else codes.get(patient_id, ("?", f"patient row {patient_id}"))[1]

    check("kit", "kit", {(k.trial_id, k.kit_number): {
        "arm": k.arm, "lot": k.lot, "expiry": k.expiry.isoformat(), "status": k.status, "site": k.site_code,
        "shipment": k.shipment_id, "patient": patient(k.patient_id), "replaces": k.replaces,
        "created_by": k.created_by, "dispensed_by": k.dispensed_by}
        for k in session.execute(select(SupplyKit)).scalars()})
    check("shipment", "shipment", {(s.trial_id, str(s.id)): {
        "site": s.site_code, "status": s.status, "shipped_on": s.shipped_on.isoformat(),
        "expected_on": s.expected_on.isoformat() if s.expected_on else None, "created_by": s.created_by,
        "received_by": s.received_by} for s in session.execute(select(SupplyShipment)).scalars()})
    check("resupply", "resupply request", {(r.trial_id, str(r.id)): {
        "site": r.site_code, "arm": r.arm, "kits": r.kits, "urgent": bool(r.urgent), "reason": r.reason,
        "status": r.status, "raised_by": r.raised_by, "shipment": r.shipment_id}
        for r in session.execute(select(ResupplyRequest)).scalars()})
    check("supply_levels", "supply levels of", {(v.trial_id, v.site_code): {
        "trigger_per_arm": v.trigger_per_arm, "target_per_arm": v.target_per_arm, "set_by": v.set_by}
        for v in session.execute(select(SupplySiteLevels)).scalars()})
    check("envelope_set", "envelope set", {(s.trial_id, str(s.id)): {
        "site": s.site_code, "method": s.method, "count": s.count, "created_by": s.created_by, "prints": s.prints,
        "voided_by": s.voided_by, "void_reason": s.void_reason}
        for s in session.execute(select(EnvelopeSet)).scalars()})
    trail = expected["envelope"]
    envelopes: Rows = {}
    for e in session.execute(select(Envelope)).scalars():
        key = (e.trial_id, envelope_label(e.site_code, e.number))
        row = {"set": e.set_id, "stratum": e.stratum, "status": e.status, "patient": patient(e.patient_id),
               "opened_at": _utc(e.opened_at), "reconciled_by": e.reconciled_by, "arm": e.arm, "kit": e.kit}
        # What the trail does not say of this envelope is not compared: the contents of one never opened, the
        # time of opening where the event's reason does not give it.
        envelopes[key] = {k: v for k, v in row.items() if key not in trail or k in trail[key]
                          or k not in ("arm", "kit", "opened_at")}
    check("envelope", "envelope", envelopes)


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
