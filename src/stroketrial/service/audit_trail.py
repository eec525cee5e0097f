"""The audit trail as its readers may see it: the site scope of the API, and blinded projections.

A monitor scoped to S1 sees the events of trials run at S1 and, of patient-level events,
only those of S1's patients. Allocation documents are projected (`blinding.py`): arm and
slot are dropped for a reader who may not see arms, strata, block numbers, list positions
and minimization scores for anyone who may not see how allocation ran. A projected export
carries no hashes at all: a hash over a record with a hidden field of a few possible values
would let anyone test each value. A reader who sees the whole trail (the admin) also gets each event's chain
(`chain`: the trial's, or `platform`, which holds every event from before trials had chains of their own) and
its number there (`chain_seq`); for a reader scoped to sites the gaps in a trial's numbers would count the
events of its other sites, so they get `seq` alone, whose gaps mix every trial of the platform. The export
reads the events up to the last one committed when it starts, so the columns chosen fit every row written.
"""

from __future__ import annotations

import json
from typing import Any
from collections.abc import Iterator

from sqlalchemy import Row, func, or_, select
from sqlalchemy.orm import Session

from ..protocol import Protocol
from ..store.models import AuditEvent, Patient, Trial, TrialSite
from .accounts import Actor
from .blinding import allocation_projection, sees_allocation_machinery, sees_arm
from .reconcile import check_trail
from .trials import protocol_of

PATIENT_ENTITIES = ("patient", "visit", "sae")
COLUMNS = ["seq", "at", "actor", "action", "entity", "entity_id", "trial", "site", "reason", "before", "after"]
CHAIN_COLUMNS = ["chain", "chain_seq"]  # after seq, for the reader who sees the whole trail
HASH_COLUMNS = ["prev_hash", "hash"]
PLATFORM_CHAIN = "platform"
EVENT_COLUMNS = (AuditEvent.seq, AuditEvent.chain_id, AuditEvent.chain_seq, AuditEvent.at, AuditEvent.actor,
                 AuditEvent.action, AuditEvent.entity, AuditEvent.entity_id, AuditEvent.trial_id, AuditEvent.site_code,
                 AuditEvent.reason, AuditEvent.before_json, AuditEvent.after_json, AuditEvent.prev_hash,
                 AuditEvent.hash)
WITHHELD = "allocation details withheld (blinding)"
# The DSMB's closed records: a reader who may not see arms gets only what no arm went into (interim_analyses.py).
CLOSED_ENTITIES = ("interim_look", "dsmb_decision")
CLOSED_READERS = ("dsmb", "unblinded_statistician")
CLOSED_NOTIFICATIONS = ("safety_rule",)  # service/safety_monitoring.py's alerts


class _Scope:
    """Which events a reader may see, and what of them."""

    def __init__(self, session: Session, actor: Actor):
        self.actor = actor
        self.protocols: dict[str, Protocol] = {t.id: protocol_of(t) for t in session.execute(select(Trial)).scalars()}
        sites: dict[str, set[str]] = {}
        for trial_id, site in session.execute(select(TrialSite.trial_id, TrialSite.site_code)):
            sites.setdefault(trial_id, set()).add(site)
        self.trials = {t for t in self.protocols if actor.is_admin or actor.sites & sites.get(t, set())}
        self.patient_sites = {(trial, code): site for trial, code, site in
                              session.execute(select(Patient.trial_id, Patient.code, Patient.site_code))}

    def site_of(self, event: AuditEvent | Row) -> str | None:
        if event.site_code is not None:
            return event.site_code
        if event.entity in PATIENT_ENTITIES and event.trial_id:  # events from before sites were recorded
            parts = event.entity_id.split("/")
            return self.patient_sites.get((event.trial_id, parts[1])) if len(parts) > 1 else None
        return None

    def admits(self, event: AuditEvent | Row) -> bool:
        if event.trial_id is None:
            return self.actor.is_admin
        if event.trial_id not in self.trials:
            return False
        site = self.site_of(event)
        return site is None or self.actor.can_see_site(site)

    def unredacted(self, trial_id: str | None) -> bool:
        if trial_id is None:
            return True
        masking = self.protocols[trial_id].design.masking
        return sees_arm(self.actor.role, masking) and sees_allocation_machinery(self.actor.role, masking)

    def document(self, event: AuditEvent | Row, text: str | None) -> tuple[str, bool]:
        """(the document as this reader may see it, whether anything was withheld)."""
        if text is None:
            return "", False
        if (event.entity == "notification" and self.actor.role not in CLOSED_READERS
                and json.loads(text).get("kind") in CLOSED_NOTIFICATIONS):
            return json.dumps({"kind": "a closed message to the DSMB"}), True
        if (event.entity == "dsmb_report" and self.actor.role not in CLOSED_READERS
                and json.loads(text).get("kind") == "closed"):
            from .dsmb_reports import OPEN_KEYS as REPORT_KEYS  # a closed report's hashes are computed from arms

            data = json.loads(text)
            return json.dumps({k: data[k] for k in REPORT_KEYS if k in data}, sort_keys=True), True
        if event.entity in CLOSED_ENTITIES and self.actor.role not in CLOSED_READERS:
            # interim results stay with the DSMB and its statistician even in an open-label trial
            from .interim_analyses import OPEN_KEYS

            data = json.loads(text)
            return json.dumps({k: data[k] for k in OPEN_KEYS if k in data}, sort_keys=True), True
        if event.trial_id is None or self.unredacted(event.trial_id):
            return text, False
        data = json.loads(text)
        if not isinstance(data, dict) or not (event.action == "randomize" or "arm" in data):
            return text, False
        masking = self.protocols[event.trial_id].design.masking
        return json.dumps(allocation_projection(data, self.actor.role, masking), sort_keys=True,
                          ensure_ascii=False), True


def audit_rows(session: Session, actor: Actor) -> tuple[list[dict[str, Any]], list[str]]:
    """(rows, columns) of the audit trail for this reader, whole (`audit_stream` gives them a chunk at a time)."""
    rows, columns = audit_stream(session, actor)
    return list(rows), columns


def audit_stream(session: Session, actor: Actor, chunk: int = 1000) -> tuple[Iterator[dict[str, Any]], list[str]]:
    """(rows, columns) of the audit trail for this reader, the rows read `chunk` events at a time; the hash
    columns only when nothing is withheld. The permission and the columns are settled at once, before a row is
    read."""
    actor.require("reading the audit trail")
    scope = _Scope(session, actor)
    # Read only what was committed when the export began: on PostgreSQL each query sees its own snapshot, and
    # an event committed between the check for withheld documents and the rows must not slip into a file that
    # carries hashes.
    last = session.execute(select(func.coalesce(func.max(AuditEvent.seq), 0))).scalar_one()
    columns = [COLUMNS[0], *(CHAIN_COLUMNS if actor.is_admin else []), *COLUMNS[1:]]
    if not _withholds(session, scope, last):
        columns += HASH_COLUMNS
    return _rows(session, scope, chunk, last), columns


def _row(scope: _Scope, e: AuditEvent | Row) -> dict[str, Any]:
    before, hidden_before = scope.document(e, e.before_json)
    after, hidden_after = scope.document(e, e.after_json)
    row = {"seq": e.seq, "chain": e.chain_id or PLATFORM_CHAIN, "chain_seq": e.chain_seq, "at": e.at,
           "actor": e.actor, "action": e.action,
           "entity": e.entity, "entity_id": e.entity_id, "trial": e.trial_id or "", "site": scope.site_of(e) or "",
           "reason": e.reason or "", "before": before, "after": after, "prev_hash": e.prev_hash, "hash": e.hash}
    if hidden_before or hidden_after:
        row["reason"] = row["reason"] or WITHHELD
    return row


def _rows(session: Session, scope: _Scope, chunk: int, last: int) -> Iterator[dict[str, Any]]:
    query = select(*EVENT_COLUMNS).where(AuditEvent.seq <= last).order_by(AuditEvent.seq)
    with session.execute(query.execution_options(yield_per=chunk)) as events:
        for e in events:
            if scope.admits(e):
                yield _row(scope, e)


def _withholds(session: Session, scope: _Scope, last: int) -> bool:
    """Whether anything of an event this reader sees is withheld: an event of a trial whose allocations are
    projected for them, or a closed document. Only such events are read to find out."""
    redacted = [t for t in scope.trials if not scope.unredacted(t)]
    closed = [] if scope.actor.role in CLOSED_READERS else ["notification", "dsmb_report", *CLOSED_ENTITIES]
    if not redacted and not closed:
        return False
    query = (select(*EVENT_COLUMNS).where(or_(AuditEvent.trial_id.in_(redacted), AuditEvent.entity.in_(closed)),
                                          AuditEvent.seq <= last)
             .order_by(AuditEvent.seq).execution_options(yield_per=1000))
    with session.execute(query) as events:  # closed on the early return: no server-side cursor left open
        return any(scope.admits(e) and (not scope.unredacted(e.trial_id) or scope.document(e, e.before_json)[1]
                                        or scope.document(e, e.after_json)[1]) for e in events)


def trail_check(session: Session, actor: Actor) -> dict[str, Any]:
    """The chain, the checkpoints and the tables checked (`reconcile.check_trail`), for an audit reader.

    The rows that differ name patients of every site: they are listed for the admin only; a monitor,
    who may be scoped to some sites, gets their number.
    """
    actor.require("checking the audit trail")
    result = check_trail(session)
    return {"ok": result.ok, "events": result.events, "message": result.message, "first_bad": result.first_bad,
            "chain": result.chain,
            "problems": list(result.problems) if actor.is_admin else len(result.problems)}
