"""The audit trail: append-only events, hash-chained.

Each event's hash is SHA-256 over its number, time, actor, action, entity, trial,
before and after documents, reason, and the previous event's hash. Changing,
inserting or deleting any event changes every hash after it; the head row keeps the
last number and hash, so a trail cut short is caught too. `verify` recomputes it all.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
from dataclasses import dataclass
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from .models import AuditEvent, AuditHead

GENESIS = "0" * 64


def canonical(document: Any) -> str:
    """The one JSON spelling of a document: sorted keys, no spaces, UTF-8."""
    return json.dumps(document, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=str)


def event_hash(prev_hash: str, seq: int, at: str, actor: str, action: str, entity: str, entity_id: str,
               trial_id: str | None, before_json: str | None, after_json: str | None, reason: str | None) -> str:
    payload = canonical([seq, at, actor, action, entity, entity_id, trial_id, before_json, after_json, reason,
                         prev_hash])
    return hashlib.sha256(payload.encode("utf-8")).hexdigest()


def record(session: Session, actor: str, action: str, entity: str, entity_id: str | int, *,
           trial_id: str | None = None, before: Any = None, after: Any = None,
           reason: str | None = None) -> AuditEvent:
    """Append one event inside the current write transaction (which holds the head lock)."""
    head: AuditHead = session.info["audit_head"]
    seq = head.seq + 1
    at = dt.datetime.now(dt.timezone.utc).isoformat(timespec="microseconds")
    before_json = None if before is None else canonical(before)
    after_json = None if after is None else canonical(after)
    digest = event_hash(head.hash, seq, at, actor, action, entity, str(entity_id), trial_id, before_json, after_json,
                        reason)
    event = AuditEvent(seq=seq, at=at, actor=actor, action=action, entity=entity, entity_id=str(entity_id),
                       trial_id=trial_id, before_json=before_json, after_json=after_json, reason=reason,
                       prev_hash=head.hash, hash=digest)
    session.add(event)
    head.seq, head.hash = seq, digest
    return event


@dataclass(frozen=True)
class Verification:
    ok: bool
    events: int
    message: str
    first_bad: int | None = None


def verify(session: Session) -> Verification:
    """Recompute the chain from the first event; report the first break."""
    previous, expected_seq, count = GENESIS, 1, 0
    for event in session.execute(select(AuditEvent).order_by(AuditEvent.seq)).scalars():
        if event.seq != expected_seq:
            return Verification(False, count, f"event {expected_seq} is missing (next found: {event.seq})",
                                expected_seq)
        if event.prev_hash != previous:
            return Verification(False, count, f"event {event.seq} does not follow event {event.seq - 1}: its "
                                              "previous-hash link is broken", event.seq)
        digest = event_hash(event.prev_hash, event.seq, event.at, event.actor, event.action, event.entity,
                            event.entity_id, event.trial_id, event.before_json, event.after_json, event.reason)
        if digest != event.hash:
            return Verification(False, count, f"event {event.seq} ({event.action} {event.entity} {event.entity_id}) "
                                              "was changed after it was written", event.seq)
        previous, expected_seq, count = event.hash, expected_seq + 1, count + 1
    head = session.get(AuditHead, 1)
    if head is None:
        return Verification(False, count, "the audit head is missing")
    if head.seq != count or head.hash != previous:
        return Verification(False, count, f"the trail ends at event {count}, but the head records event {head.seq}: "
                                          "events were deleted from the end", count + 1)
    return Verification(True, count, f"audit trail intact: {count} events, chain verified")
