"""The audit trail: append-only events in chains, one per trial and one for the platform, keyed with a secret
kept outside the database.

Each event's hash is HMAC-SHA256, under the keystore's audit key, over its chain, its number in the chain,
time, actor, action, entity, trial, site, before and after documents, reason and the previous event's hash
in the chain. Changing, inserting or deleting an event breaks every hash after it in its chain, and without
the key nobody can recompute them, forge an event, or test a guess about a hidden field (an arm) against a
stored hash. Each chain's head row keeps its last number and hash; the checkpoint log outside the database
(`keystore.py`) catches a chain cut short together with its head, or a trial's chain and head deleted
whole. `verify` recomputes it all.

Why a chain per trial: every write locks the head of the chain it appends to, so with one chain every
write of every trial waited for every other; with a chain per trial, trial A's randomizations never queue
behind trial B's (`db.py` says how the locks are taken).

Chain versions: 1, a plain SHA-256 chain, for events written before the key existed (schema 0001);
2, keyed, before there were trial chains (schema 0002-0014): both are only in the platform chain, where
their number in the chain is their `seq`; 3, keyed with the chain's id and number, from schema 0015.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import json
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import bindparam, insert, select, update
from sqlalchemy.orm import Session

from .keystore import Checkpoint, Keystore, KeystoreError
from .models import AuditEvent, AuditHead

GENESIS = "0" * 64
UNKEYED, KEYED, CHAINED = 1, 2, 3
PLATFORM = ""  # the chain of events that belong to no trial


class AuditScopeError(RuntimeError):
    """A write opened for one trial recorded an event of another trial: a programming error, never the user's."""


def canonical(document: Any) -> str:
    """The one JSON spelling of a document: sorted keys, no spaces, UTF-8."""
    return json.dumps(document, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=str)


def event_hash(key: bytes | None, prev_hash: str, seq: int, at: str, actor: str, action: str, entity: str,
               entity_id: str, trial_id: str | None, site: str | None, before_json: str | None,
               after_json: str | None, reason: str | None, chain_id: str | None = None) -> str:
    """Chain version 3 with a key and a chain id (`seq` is then the number in the chain); version 2 with a key
    and no chain id; version 1 (no key, no site) for events from before the key."""
    if key is None:
        payload = canonical([seq, at, actor, action, entity, entity_id, trial_id, before_json, after_json, reason,
                             prev_hash])
        return hashlib.sha256(payload.encode("utf-8")).hexdigest()
    if chain_id is None:
        payload = canonical([KEYED, seq, at, actor, action, entity, entity_id, trial_id, site, before_json,
                             after_json, reason, prev_hash])
    else:
        payload = canonical([CHAINED, chain_id, seq, at, actor, action, entity, entity_id, trial_id, site,
                             before_json, after_json, reason, prev_hash])
    return hmac.new(key, payload.encode("utf-8"), hashlib.sha256).hexdigest()


def _hash_of(event: AuditEvent, key: bytes | None) -> str:
    if event.chain == CHAINED:
        return event_hash(key, event.prev_hash, event.chain_seq, event.at, event.actor, event.action, event.entity,
                          event.entity_id, event.trial_id, event.site_code, event.before_json, event.after_json,
                          event.reason, event.chain_id)
    return event_hash(key if event.chain == KEYED else None, event.prev_hash, event.seq, event.at, event.actor,
                      event.action, event.entity, event.entity_id, event.trial_id, event.site_code, event.before_json,
                      event.after_json, event.reason)


def chain_of(trial_id: str | None) -> str:
    return trial_id or PLATFORM


def chain_label(chain_id: str) -> str:
    return f"trial {chain_id}" if chain_id else "the platform"


@dataclass
class ChainHead:
    """A chain's head as this write holds it (locked): its last event's number and hash, and the number it had
    when the write took it (the UPDATE at the end moves it from there, so a head moved behind the lock fails
    loudly instead of being overwritten)."""

    chain_id: str
    seq: int
    hash: str
    start: int = -1

    def __post_init__(self) -> None:
        if self.start < 0:
            self.start = self.seq


# Events and heads are written with SQLAlchemy Core, not as ORM objects: the ORM's unit of work cost about
# 0.3 ms of CPU per row at flush (an allocation's 5 rows, on PostgreSQL), several times a cached Core
# statement (0.05-0.07 ms), and the trail needs none of what it offers (no relationships, no object read back).
_INSERT_EVENTS = insert(AuditEvent.metadata.tables[AuditEvent.__tablename__])
_heads = AuditHead.metadata.tables[AuditHead.__tablename__]
_MOVE_HEAD = (update(_heads).where(_heads.c.chain_id == bindparam("chain"), _heads.c.seq == bindparam("start"))
              .values(seq=bindparam("seq"), hash=bindparam("hash")))
# a chain's head, locked FOR UPDATE (SQLite, whose BEGIN IMMEDIATE has locked the database, renders no FOR UPDATE)
LOCK_HEAD = select(AuditHead.chain_id, AuditHead.seq, AuditHead.hash).where(
    AuditHead.chain_id == bindparam("chain")).with_for_update()


def chain_head(session: Session, chain_id: str) -> ChainHead:
    """The head of a chain this write may append to, locked (made, for a trial's first event)."""
    if "audit_heads" not in session.info:
        raise AuditScopeError("an audit event was recorded outside a write transaction (Database.write)")
    heads: dict[str, ChainHead] = session.info["audit_heads"]
    if chain_id in heads:
        return heads[chain_id]
    scope = session.info.get("audit_scope")
    if scope is not None and chain_id not in (scope, PLATFORM):
        raise AuditScopeError(f"a write opened for trial {scope} recorded an event of {chain_label(chain_id)}")
    found = session.execute(LOCK_HEAD, {"chain": chain_id}).one_or_none()
    if found is None:  # only a platform-wide write gets here (a trial's write is opened so only if its head exists)
        session.execute(insert(_heads), {"chain_id": chain_id, "seq": 0, "hash": GENESIS})
        head = ChainHead(chain_id, 0, GENESIS)
    else:
        head = ChainHead(*found)
    heads[chain_id] = head
    return head


def held_head(session: Session, head: ChainHead) -> ChainHead:
    """A chain's head the write lock already read and locked (`db.py`), kept as `chain_head` would keep it."""
    session.info["audit_heads"][head.chain_id] = head
    return head


def record(session: Session, actor: str, action: str, entity: str, entity_id: str | int, *,
           trial_id: str | None = None, site: str | None = None, before: Any = None, after: Any = None,
           reason: str | None = None) -> None:
    """Append one event, to its trial's chain (the platform's when it has no trial), inside the current write
    transaction (`Database.write`).

    `site` is the site whose data the event touches (a patient's site); the audit export
    shows a site-scoped reader only the events of their sites.

    The event is hashed and its head moved now; the row is sent with the write's other events in one INSERT,
    before the session's next statement or at the end of the write (`write_pending`), so a read later in the
    same write sees it.
    """
    chain_id = chain_of(trial_id)
    head = chain_head(session, chain_id)
    key: bytes = session.info["audit_key"]
    number = head.seq + 1
    at = dt.datetime.now(dt.UTC).isoformat(timespec="microseconds")
    before_json = None if before is None else canonical(before)
    after_json = None if after is None else canonical(after)
    digest = event_hash(key, head.hash, number, at, actor, action, entity, str(entity_id), trial_id, site,
                        before_json, after_json, reason, chain_id)
    session.info.setdefault("audit_pending", []).append(
        {"at": at, "actor": actor, "action": action, "entity": entity, "entity_id": str(entity_id),
         "trial_id": trial_id, "site_code": site, "before_json": before_json, "after_json": after_json,
         "reason": reason, "prev_hash": head.hash, "hash": digest, "chain": CHAINED, "chain_id": chain_id,
         "chain_seq": number})
    head.seq, head.hash = number, digest


def write_pending(session: Session) -> None:
    """Send the events recorded since the last statement, in one INSERT."""
    pending = session.info.get("audit_pending")
    if pending:
        session.info["audit_pending"] = []
        session.connection().execute(_INSERT_EVENTS, pending)


def write_heads(session: Session) -> list[ChainHead]:
    """At the end of a write: its last events, then each head it moved, from the number it had when locked.
    Answers the heads moved (after the commit their new number and hash go to the checkpoint log)."""
    write_pending(session)
    moved = [h for h in session.info.get("audit_heads", {}).values() if h.seq != h.start]
    for head in moved:
        changed = session.connection().execute(
            _MOVE_HEAD, {"chain": head.chain_id, "start": head.start, "seq": head.seq, "hash": head.hash}).rowcount
        if changed != 1:  # the head is locked by this write: a change behind it is tampering, or a bug
            raise AuditScopeError(f"the head of {chain_label(head.chain_id)}'s chain moved behind this write's lock")
    return moved


@dataclass(frozen=True)
class Verification:
    ok: bool
    events: int
    message: str
    first_bad: int | None = None
    problems: tuple[str, ...] = field(default_factory=tuple)
    chain: str | None = None  # the chain of the first bad event: a trial id, or "" for the platform's


def keyed_events(session: Session) -> int:
    return session.query(AuditEvent).filter(AuditEvent.chain != UNKEYED).count()


@dataclass
class _Chain:
    """One chain as verify walks it."""

    chain_id: str
    count: int = 0
    last: str = GENESIS
    keyed_seen: bool = False
    chained_seen: bool = False
    hashes: dict[int, str] = field(default_factory=dict)


def verify(session: Session, extra_checkpoints: Iterable[Checkpoint] = ()) -> Verification:
    """Recompute every chain from its first event, then compare each with its head and every checkpoint;
    report the first break.

    `extra_checkpoints` are signed heads kept elsewhere (`stroketrial audit checkpoint`).
    """
    extra_checkpoints = list(extra_checkpoints)
    keystore: Keystore | None = session.info.get("keystore")
    try:
        key = keystore.key() if keystore is not None and keystore.exists() else None
    except KeystoreError as exc:
        return Verification(False, 0, str(exc))
    chains: dict[str, _Chain] = {}
    total = 0
    for event in session.execute(select(AuditEvent).order_by(AuditEvent.chain_id, AuditEvent.chain_seq)).scalars():
        chain = chains.setdefault(event.chain_id, _Chain(event.chain_id))
        problem = _event_break(event, chain, key, keystore)
        if problem is not None:
            return Verification(False, total, problem[0], problem[1], chain=event.chain_id)
        chain.hashes[event.chain_seq] = event.hash
        chain.last, chain.count = event.hash, chain.count + 1
        total += 1
    heads = {h.chain_id: h for h in session.execute(select(AuditHead)).scalars()}
    if PLATFORM not in heads:
        return Verification(False, total, "the audit head is missing", chain=PLATFORM)
    for chain_id in sorted(set(heads) | set(chains)):
        chain, head = chains.get(chain_id, _Chain(chain_id)), heads.get(chain_id)
        if head is None:
            return Verification(False, total, f"the head of {chain_label(chain_id)}'s chain is missing: it was deleted",
                                chain=chain_id)
        if head.seq != chain.count or head.hash != chain.last:
            return Verification(False, total, f"{chain_label(chain_id)}'s chain ends at event {chain.count}, but "
                                              f"its head records event {head.seq}: events were deleted from the end",
                                chain.count + 1, chain=chain_id)
    checkpoints = list(keystore.checkpoints()) if keystore is not None and key is not None else []
    for checkpoint in [*checkpoints, *extra_checkpoints]:
        signed = keystore is not None and key is not None and keystore.is_signed(checkpoint)
        mismatch = _checkpoint_break(checkpoint, signed, chains.get(checkpoint.chain, _Chain(checkpoint.chain)))
        if mismatch is not None:
            return Verification(False, total, *mismatch, chain=checkpoint.chain)
    latest = max((c.seq for c in checkpoints if c.chain == PLATFORM), default=0)
    trials = len([c for c in chains if c != PLATFORM])
    return Verification(True, total, f"audit trail intact: {total} events in the platform's chain and {trials} "
                                     f"trial chain(s), each verified with the audit key, "
                                     f"{len(checkpoints) + len(extra_checkpoints)} checkpoints matched "
                                     f"(latest of the platform's chain: event {latest})")


def _event_break(event: AuditEvent, chain: _Chain, key: bytes | None,
                 keystore: Keystore | None) -> tuple[str, int] | None:
    """Why this event breaks its chain (the message and the first bad event's number in it), or None."""
    where = chain_label(event.chain_id)
    expected = chain.count + 1
    if event.chain_seq != expected:
        return f"event {expected} of {where} is missing (next found: {event.chain_seq})", expected
    if event.prev_hash != chain.last:
        return (f"event {event.chain_seq} of {where} does not follow event {event.chain_seq - 1}: its previous-hash "
                "link is broken", event.chain_seq)
    described = f"event {event.chain_seq} of {where} ({event.action} {event.entity} {event.entity_id})"
    if event.chain in (KEYED, CHAINED):
        if key is None:
            location = keystore.key_path if keystore is not None else "(no keystore configured)"
            return (f"the trail is keyed but the audit key is missing ({location}); restore the keystore folder "
                    "from its backup", event.chain_seq)
        # Versions 1 and 2 exist only in the platform chain, before any version 3, numbered as their seq.
        legacy_out_of_place = event.chain == KEYED and (event.chain_id != PLATFORM or chain.chained_seen
                                                        or event.seq != event.chain_seq)
        if legacy_out_of_place:
            return f"{described} is not signed as its place in the chain requires: it was inserted", event.chain_seq
        chain.keyed_seen = True
        chain.chained_seen = chain.chained_seen or event.chain == CHAINED
    elif event.chain != UNKEYED or chain.keyed_seen or event.chain_id != PLATFORM or event.seq != event.chain_seq:
        return f"{described} is not signed with the audit key: it was inserted", event.chain_seq
    if not hmac.compare_digest(_hash_of(event, key), event.hash):
        return f"{described} was changed or forged after it was written", event.chain_seq
    return None


def _checkpoint_break(checkpoint: Checkpoint, signed: bool, chain: _Chain) -> tuple[str, int | None] | None:
    """Why the chain does not match this checkpoint of it, or None when it does."""
    where = chain_label(checkpoint.chain)
    if not signed:
        return f"checkpoint {checkpoint.source} is not signed with this database's audit key", None
    if checkpoint.seq > chain.count:
        return (f"{where}'s chain ends at event {chain.count}, but it held event {checkpoint.seq} at "
                f"{checkpoint.at} (checkpoint {checkpoint.source}): events were deleted from the end",
                chain.count + 1)
    if checkpoint.seq > 0 and chain.hashes.get(checkpoint.seq) != checkpoint.hash:
        return (f"event {checkpoint.seq} of {where} differs from the one checkpointed at {checkpoint.at} "
                f"({checkpoint.source}): the trail was rewritten", checkpoint.seq)
    return None
