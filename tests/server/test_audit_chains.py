"""A chain per trial: what a trial's write may record, and which writes wait for which (PostgreSQL)."""

from __future__ import annotations

import threading
import time

import pytest
from sqlalchemy import func, select, update

from stroketrial.service import SYSTEM, trials
from stroketrial.store import Database, record, verify
from stroketrial.store.audit import AuditScopeError
from stroketrial.store.models import AuditEvent, AuditHead


def _platform(url: str) -> Database:
    db = Database(url)
    db.migrate()
    with db.write() as session:
        for trial in ("amass-2", "impact-lvo"):
            trials.create_trial(session, SYSTEM, trial, ["S1"])
    return db


def test_a_trial_write_records_its_trial_and_the_platform_but_never_another_trial(database_url):
    db = _platform(database_url)
    with db.write("amass-2") as session:
        record(session, "admin", "note", "trial", "amass-2", trial_id="amass-2")
        record(session, "admin", "note", "user", "someone")  # the platform's chain: allowed, locked after the trial
    with pytest.raises(AuditScopeError, match="opened for trial amass-2 recorded an event of trial impact-lvo"), \
            db.write("amass-2") as session:
        record(session, "admin", "note", "trial", "impact-lvo", trial_id="impact-lvo")
    with pytest.raises(AuditScopeError, match="outside a write transaction"), db.bookkeeping() as session:
        record(session, "admin", "note", "user", "someone")
    with db.read() as session:
        assert verify(session).ok
    db.dispose()


def test_one_trial_does_not_wait_for_another_and_a_platform_write_waits_for_both(database_url):
    db = _platform(database_url)
    if db.backend == "sqlite":
        db.dispose()
        pytest.skip("SQLite takes one write at a time, whatever the trial")
    holding, release = threading.Event(), threading.Event()

    def slow_amass_write() -> None:
        with db.write("amass-2") as session:
            record(session, "admin", "note", "trial", "amass-2", trial_id="amass-2")
            holding.set()
            release.wait(30)

    done: dict[str, float] = {}

    def platform_write() -> None:
        with db.write() as session:
            record(session, "admin", "note", "user", "someone")
        done["platform"] = time.monotonic()

    holder = threading.Thread(target=slow_amass_write)
    holder.start()
    assert holding.wait(30)
    began = time.monotonic()
    with db.write("impact-lvo") as session:  # another trial: does not wait for AMASS-2's open transaction
        record(session, "admin", "note", "trial", "impact-lvo", trial_id="impact-lvo")
    assert time.monotonic() - began < 5
    waiter = threading.Thread(target=platform_write)
    waiter.start()
    time.sleep(1.0)
    assert "platform" not in done  # the platform-wide write waits for AMASS-2's write
    released = time.monotonic()
    release.set()
    holder.join(30)
    waiter.join(30)
    assert done["platform"] >= released
    with db.read() as session:
        assert verify(session).ok
    db.dispose()


def test_a_read_later_in_the_same_write_sees_the_events_recorded_so_far(database_url):
    db = _platform(database_url)
    with db.write("amass-2") as session:
        record(session, "admin", "note", "trial", "amass-2", trial_id="amass-2", reason="first")
        record(session, "admin", "note", "trial", "amass-2", trial_id="amass-2", reason="second")
        seen = session.execute(select(AuditEvent.reason, AuditEvent.chain_seq)
                               .where(AuditEvent.chain_id == "amass-2", AuditEvent.action == "note")
                               .order_by(AuditEvent.chain_seq)).all()
        assert [r for r, _ in seen] == ["first", "second"]
        assert seen[1][1] == seen[0][1] + 1
    with db.read() as session:
        assert verify(session).ok
    db.dispose()


def test_a_head_moved_behind_the_writes_lock_refuses_the_commit_and_nothing_is_stored(database_url):
    db = _platform(database_url)
    with db.read() as session:
        before = session.execute(select(func.count()).select_from(AuditEvent)).scalar_one()
    # a statement smuggled into the write moves the trial's head after the write locked it
    with pytest.raises(AuditScopeError, match="head of trial amass-2's chain moved behind this write's lock"), \
            db.write("amass-2") as session:
        record(session, "admin", "note", "trial", "amass-2", trial_id="amass-2")
        session.execute(update(AuditHead).where(AuditHead.chain_id == "amass-2").values(seq=AuditHead.seq + 7))
    with db.read() as session:
        assert session.execute(select(func.count()).select_from(AuditEvent)).scalar_one() == before
        assert verify(session).ok
    db.dispose()
