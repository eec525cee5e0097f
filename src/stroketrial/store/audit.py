"""The audit trail: append-only events in one chain, keyed with a secret kept outside the database.

Each event's hash is HMAC-SHA256, under the keystore's audit key, over its number, time,
actor, action, entity, trial, site, before and after documents, reason and the previous
event's hash. Changing, inserting or deleting an event breaks every hash after it, and
without the key nobody can recompute them, forge an event, or test a guess about a hidden
field (an arm) against a stored hash. The head row keeps the last number and hash; the
checkpoint log outside the database (`keystore.py`) catches a trail cut short together
with its head. `verify` recomputes it all.

Events written before the key existed (schema 0001) carry chain version 1, a plain
SHA-256 chain; they may only come before the first keyed event.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import json
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from .keystore import Checkpoint, Keystore, KeystoreError
from .models import AuditEvent, AuditHead

GENESIS = "0" * 64
UNKEYED, KEYED = 1, 2


def canonical(document: Any) -> str:
    """The one JSON spelling of a document: sorted keys, no spaces, UTF-8."""
    return json.dumps(document, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=str)


def event_hash(key: bytes | None, prev_hash: str, seq: int, at: str, actor: str, action: str, entity: str,
               entity_id: str, trial_id: str | None, site: str | None, before_json: str | None,
               after_json: str | None, reason: str | None) -> str:
    """Chain version 2 with a key; version 1 (no key, no site) for events from before the key."""
    if key is None:
        payload = canonical([seq, at, actor, action, entity, entity_id, trial_id, before_json, after_json, reason,
                             prev_hash])
        return hashlib.sha256(payload.encode("utf-8")).hexdigest()
    payload = canonical([KEYED, seq, at, actor, action, entity, entity_id, trial_id, site, before_json, after_json,
                         reason, prev_hash])
    return hmac.new(key, payload.encode("utf-8"), hashlib.sha256).hexdigest()


def _hash_of(event: AuditEvent, key: bytes | None) -> str:
    return event_hash(key if event.chain == KEYED else None, event.prev_hash, event.seq, event.at, event.actor,
                      event.action, event.entity, event.entity_id, event.trial_id, event.site_code, event.before_json,
                      event.after_json, event.reason)


def record(session: Session, actor: str, action: str, entity: str, entity_id: str | int, *,
           trial_id: str | None = None, site: str | None = None, before: Any = None, after: Any = None,
           reason: str | None = None) -> AuditEvent:
    """Append one event inside the current write transaction (which holds the head lock).

    `site` is the site whose data the event touches (a patient's site); the audit export
    shows a site-scoped reader only the events of their sites.
    """
    head: AuditHead = session.info["audit_head"]
    key: bytes = session.info["audit_key"]
    seq = head.seq + 1
    at = dt.datetime.now(dt.UTC).isoformat(timespec="microseconds")
    before_json = None if before is None else canonical(before)
    after_json = None if after is None else canonical(after)
    digest = event_hash(key, head.hash, seq, at, actor, action, entity, str(entity_id), trial_id, site, before_json,
                        after_json, reason)
    event = AuditEvent(seq=seq, at=at, actor=actor, action=action, entity=entity, entity_id=str(entity_id),
                       trial_id=trial_id, site_code=site, before_json=before_json, after_json=after_json,
                       reason=reason, prev_hash=head.hash, hash=digest, chain=KEYED)
    session.add(event)
    head.seq, head.hash = seq, digest
    return event


@dataclass(frozen=True)
class Verification:
    ok: bool
    events: int
    message: str
    first_bad: int | None = None
    problems: tuple[str, ...] = field(default_factory=tuple)


def keyed_events(session: Session) -> int:
    return session.query(AuditEvent).filter(AuditEvent.chain == KEYED).count()


def verify(session: Session, extra_checkpoints: list[Checkpoint] | tuple[Checkpoint, ...] = ()) -> Verification:
    """Recompute the chain from the first event, then compare it with every checkpoint; report the first break.

    `extra_checkpoints` are signed heads kept elsewhere (`stroketrial audit checkpoint`).
    """
    keystore: Keystore | None = session.info.get("keystore")
    try:
        key = keystore.key() if keystore is not None and keystore.exists() else None
    except KeystoreError as exc:
        return Verification(False, 0, str(exc))
    previous, count, keyed_seen = GENESIS, 0, False
    hashes: dict[int, str] = {}
    for event in session.execute(select(AuditEvent).order_by(AuditEvent.seq)).scalars():
        keyed_seen = keyed_seen or event.chain == KEYED
        problem = _event_break(event, count + 1, previous, key, keyed_seen, keystore)
        if problem is not None:
            return Verification(False, count, *problem)
        hashes[event.seq] = event.hash
        previous, count = event.hash, count + 1
    head = session.get(AuditHead, 1)
    if head is None:
        return Verification(False, count, "the audit head is missing")
    if head.seq != count or head.hash != previous:
        return Verification(False, count, f"the trail ends at event {count}, but the head records event {head.seq}: "
                                          "events were deleted from the end", count + 1)
    checkpoints = list(keystore.checkpoints()) if keystore is not None and key is not None else []
    for checkpoint in [*checkpoints, *extra_checkpoints]:
        signed = keystore is not None and key is not None and keystore.is_signed(checkpoint)
        mismatch = _checkpoint_break(checkpoint, signed, count, hashes)
        if mismatch is not None:
            return Verification(False, count, *mismatch)
    latest = max((c.seq for c in checkpoints), default=0)
    return Verification(True, count, f"audit trail intact: {count} events, chain verified with the audit key, "
                                     f"{len(checkpoints) + len(extra_checkpoints)} checkpoints matched "
                                     f"(latest: event {latest})")


def _event_break(event: AuditEvent, expected_seq: int, previous: str, key: bytes | None, keyed_seen: bool,
                 keystore: Keystore | None) -> tuple[str, int] | None:
    """Why this event breaks the chain (the message and the first bad event), or None when it holds."""
    if event.seq != expected_seq:
        return f"event {expected_seq} is missing (next found: {event.seq})", expected_seq
    if event.prev_hash != previous:
        return (f"event {event.seq} does not follow event {event.seq - 1}: its previous-hash link is broken",
                event.seq)
    described = f"event {event.seq} ({event.action} {event.entity} {event.entity_id})"
    if event.chain == KEYED:
        if key is None:
            where = keystore.key_path if keystore is not None else "(no keystore configured)"
            return (f"the trail is keyed but the audit key is missing ({where}); restore the keystore folder from "
                    "its backup", event.seq)
    elif event.chain != UNKEYED or keyed_seen:
        return f"{described} is not signed with the audit key: it was inserted", event.seq
    if not hmac.compare_digest(_hash_of(event, key), event.hash):
        return f"{described} was changed or forged after it was written", event.seq
    return None


def _checkpoint_break(checkpoint: Checkpoint, signed: bool, count: int,
                      hashes: dict[int, str]) -> tuple[str, int | None] | None:
    """Why the trail does not match this checkpoint, or None when it does."""
    if not signed:
        return f"checkpoint {checkpoint.source} is not signed with this database's audit key", None
    if checkpoint.seq > count:
        return (f"the trail ends at event {count}, but it held event {checkpoint.seq} at {checkpoint.at} "
                f"(checkpoint {checkpoint.source}): events were deleted from the end", count + 1)
    if checkpoint.seq > 0 and hashes.get(checkpoint.seq) != checkpoint.hash:
        return (f"event {checkpoint.seq} differs from the one checkpointed at {checkpoint.at} "
                f"({checkpoint.source}): the trail was rewritten", checkpoint.seq)
    return None
