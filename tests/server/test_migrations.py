"""Migrations that rewrite stored data, up and down, on both databases."""

from __future__ import annotations

import datetime as dt
import json

import pytest
from alembic import command
from sqlalchemy import text

from stroketrial.randomization import RandomizationState
from stroketrial.service import SYSTEM, trials
from stroketrial.store import Database, verify
from stroketrial.store.audit import GENESIS, KEYED, event_hash
from stroketrial.store.db import alembic_config


def _at(url: str, revision: str, tmp_path) -> Database:
    db = Database(url, keys=tmp_path / "keys")
    command.upgrade(alembic_config(db.url), revision)
    return db


def test_the_state_keeps_counts_only_and_gets_its_patient_list_back_on_downgrade(database_url, tmp_path):
    db = _at(database_url, "0013", tmp_path)
    state = {"allocated": 0, "patients": [], "slots": {"albumin": 0}, "margins": {}, "strata": {}, "kits": {}}
    with db.engine.begin() as conn:
        conn.execute(text("INSERT INTO trials (id, protocol_json, created_at) VALUES ('t1', '{}', :now)"),
                     {"now": dt.datetime.now(dt.UTC)})
        conn.execute(text("INSERT INTO randomization_state (trial_id, state_json, block_list_json, kit_list_json) "
                          "VALUES ('t1', :s, '{}', '{}')"), {"s": json.dumps(state)})
    command.upgrade(alembic_config(db.url), "0014")
    with db.engine.connect() as conn:
        counts = json.loads(conn.execute(text("SELECT state_json FROM randomization_state")).scalar_one())
    assert counts == {k: v for k, v in state.items() if k != "patients"}
    RandomizationState.model_validate(counts)
    command.downgrade(alembic_config(db.url), "0013")
    with db.engine.connect() as conn:
        assert json.loads(conn.execute(text("SELECT state_json FROM randomization_state")).scalar_one()) == state
    db.dispose()


def test_the_concealed_lists_move_into_rows_and_back_entry_for_entry(database_url, tmp_path):
    from sqlalchemy.orm import Session

    from stroketrial.protocol import load_builtin
    from stroketrial.randomization import BlockList, KitList, Randomizer, SeededDraw, generate_kit_list
    from stroketrial.service.concealed_lists import StoredBlockList, StoredKitList

    arms = Randomizer.for_protocol(load_builtin("impact-lvo")).arms
    draw = SeededDraw(7)
    blocks = BlockList().extended(arms, [2, 4], "site=S2", 12, draw).extended(arms, [2, 4], "site=S1", 9, draw)
    kits = generate_kit_list(arms, ["S1", "S2"], 10, [2, 4], draw)
    db = _at(database_url, "0015", tmp_path)
    with db.engine.begin() as conn:
        conn.execute(text("INSERT INTO trials (id, protocol_json, created_at) VALUES ('t1', '{}', :now)"),
                     {"now": dt.datetime.now(dt.UTC)})
        conn.execute(text("INSERT INTO randomization_state (trial_id, state_json, block_list_json, kit_list_json) "
                          "VALUES ('t1', '{}', :b, :k)"), {"b": blocks.model_dump_json(), "k": kits.model_dump_json()})
    command.upgrade(alembic_config(db.url), "0016")
    with Session(db.engine) as session:
        stored_blocks, stored_kits = StoredBlockList(session, "t1"), StoredKitList(session, "t1")
        for stratum, entries in blocks.strata.items():
            assert [stored_blocks.entry(stratum, e.position) for e in entries] == list(entries)
            assert stored_blocks.length(stratum) == len(entries)
        for site in ("S1", "S2"):
            for arm in arms.arms:
                of_arm = [k for k in kits.kits if k.site == site and k.arm == arm]
                assert [stored_kits.next_kit(site, arm, i) for i in range(len(of_arm))] == of_arm
    command.downgrade(alembic_config(db.url), "0015")
    with db.engine.connect() as conn:
        back_blocks, back_kits = conn.execute(text("SELECT block_list_json, kit_list_json FROM randomization_state")
                                              ).one()
    assert BlockList.model_validate_json(back_blocks) == blocks and KitList.model_validate_json(back_kits) == kits
    command.upgrade(alembic_config(db.url), "head")
    db.dispose()


def _legacy_event(conn, key: bytes, seq: int, prev: str, action: str) -> str:
    """An event as schema 0002-0014 wrote it: keyed, numbered in the one chain of the whole platform."""
    at = dt.datetime.now(dt.UTC).isoformat()
    digest = event_hash(key, prev, seq, at, "admin", action, "user", f"u{seq}", None, None, None, '{"x":1}', None)
    conn.execute(text("INSERT INTO audit_events (seq, at, actor, action, entity, entity_id, trial_id, site_code, "
                      "before_json, after_json, reason, prev_hash, hash, chain) VALUES (:seq, :at, 'admin', :action, "
                      "'user', :eid, NULL, NULL, NULL, :after, NULL, :prev, :hash, :chain)"),
                 {"after": '{"x":1}', "seq": seq, "at": at, "action": action, "eid": f"u{seq}", "prev": prev,
                  "hash": digest, "chain": KEYED})
    conn.execute(text("UPDATE audit_head SET seq = :s, hash = :h WHERE id = 1"), {"s": seq, "h": digest})
    return digest


def test_the_single_chain_becomes_the_platform_chain_and_trials_get_their_own(database_url, tmp_path):
    db = _at(database_url, "0014", tmp_path)
    key = db.keystore.create()
    previous = GENESIS
    with db.engine.begin() as conn:
        for seq in (1, 2, 3):
            previous = _legacy_event(conn, key, seq, previous, "create")
            db.keystore.append_checkpoint(seq, previous)  # the log's lines as they were: no chain named

    command.upgrade(alembic_config(db.url), "head")
    with db.read() as session:
        result = verify(session)
    assert result.ok and result.events == 3, result.message
    # Only events of the old kind: the schema can still go back, and up again.
    command.downgrade(alembic_config(db.url), "0014")
    command.upgrade(alembic_config(db.url), "head")

    with db.write() as session:
        trials.create_trial(session, SYSTEM, "amass-2", ["S1"])
    with db.read() as session:
        result = verify(session)
        heads = {r.chain_id: r.seq for r in session.execute(text("SELECT chain_id, seq FROM audit_heads"))}
        chained = session.execute(text("SELECT chain_seq FROM audit_events WHERE chain_id = 'amass-2' "
                                       "ORDER BY chain_seq")).scalars().all()
    assert result.ok, result.message
    assert heads["amass-2"] == len(chained) and chained == list(range(1, len(chained) + 1))
    assert heads[""] > 3  # the new site was created on the platform's chain, after the old events

    with pytest.raises(RuntimeError, match="cannot go back before schema 0015"):
        command.downgrade(alembic_config(db.url), "0014")
    db.dispose()
