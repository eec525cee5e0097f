"""Issue 14, tried as an attacker would: blinding and allocation concealment, and tamper evidence.

Each test runs the attack the issue describes, on SQLite and PostgreSQL.
"""

from __future__ import annotations

import csv
import datetime as dt
import hashlib
import io
import json
import os
import subprocess
import sys
import uuid

import psycopg
import pytest
from sqlalchemy import text
from sqlalchemy.engine import make_url

from stroketrial.protocol import ProtocolError, load_builtin
from stroketrial.protocol.loader import parse_protocol
from stroketrial.service import SYSTEM, accounts, trials
from stroketrial.service.audit_trail import audit_rows
from stroketrial.service.blinding import ARM_KEYS, MACHINERY_KEYS
from stroketrial.service.dashboard import balance, funnel
from stroketrial.service.export import audit_csv
from stroketrial.service.reconcile import check_trail
from stroketrial.service.safety import safety
from stroketrial.store import Database

from .conftest import _pg_server_url
from .test_api import _drop_audit_triggers, randomize, register


def _rows(platform, user: str) -> list[dict]:
    with platform.db.read() as session:
        return list(csv.DictReader(io.StringIO(audit_csv(session, accounts.actor_named(session, user)))))


def _enrol(platform, trial: str, n: int, prefix: str = "P", site: str = "S1", role: str = "coordinator") -> None:
    for i in range(n):
        code = f"{prefix}{i}"
        assert register(platform, trial, code, site=site, role=role).status_code == 201
        assert randomize(platform, trial, code, key=f"{trial}-{code}", role=role).status_code == 201


def _legacy_hash(event: dict, after_json: str) -> str:
    """The chain formula of the code this issue was filed against (SHA-256, no key), as the attacker used it."""
    payload = json.dumps([event["seq"], event["at"], event["actor"], event["action"], event["entity"],
                          event["entity_id"], event["trial_id"], event["before_json"], after_json, event["reason"],
                          event["prev_hash"]], sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(payload.encode()).hexdigest()


# ---- 1. arms recoverable from the audit export ---------------------------------------------------------------
@pytest.mark.parametrize("reader", ["monitor", "admin"])
def test_the_hash_attack_on_the_audit_export_recovers_no_arm(platform, reader):
    _enrol(platform, "impact-lvo", 8)
    arms = [a.id for a in load_builtin("impact-lvo").arms]
    rows = [r for r in _rows(platform, reader) if r["action"] == "randomize" and r["trial"] == "impact-lvo"]
    assert len(rows) == 8
    with platform.db.read() as session:
        stored = {r.seq: dict(r._mapping) for r in session.execute(text(
            "SELECT seq, at, actor, action, entity, entity_id, trial_id, before_json, after_json, reason, prev_hash, "
            "hash FROM audit_events WHERE action = 'randomize'"))}
    recovered = 0
    for row in rows:
        shown = json.loads(row["after"])
        assert not (set(shown) & (ARM_KEYS | MACHINERY_KEYS)), shown
        assert not any(arm in json.dumps(row) for arm in arms)
        # The strongest attacker: knows every field but the arm (even the slot and the scores), and has the
        # hash, from the export if it carries one, else from a copy of the database without the keystore.
        event = stored[int(row["seq"])]
        target = row.get("hash") or event["hash"]
        truth = json.loads(event["after_json"])
        for arm in arms:
            guess = {**truth, "arm": arm, "slot": truth["slot"] if arm == truth["arm"] else arm}
            guess_json = json.dumps(guess, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
            if _legacy_hash(event, guess_json) == target:
                recovered += 1
    assert recovered == 0
    assert "hash" not in rows[0] and "prev_hash" not in rows[0]


# ---- 2. block structure ----------------------------------------------------------------------------------------
def test_blinded_and_recruiting_roles_never_see_block_list_position_or_stratum(platform):
    _enrol(platform, "angel-rescue", 4)
    _enrol(platform, "impact-lvo", 2)
    machinery = {"block", "list_position", "stratum"}
    for reader, trial in (("monitor", "angel-rescue"), ("monitor", "impact-lvo"), ("admin", "impact-lvo")):
        rows = [r for r in _rows(platform, reader) if r["action"] == "randomize" and r["trial"] == trial]
        assert rows and all(not (machinery & set(json.loads(r["after"]))) for r in rows), (reader, trial)
    # The API never gave them to site staff; it still does not.
    view = platform.call("GET", "/trials/angel-rescue/patients/P0/randomization").json()
    assert not machinery & set(view)
    # The admin of an open trial may study how allocation ran.
    with platform.db.read() as session:
        rows, _ = audit_rows(session, accounts.actor_named(session, "admin"))
    shown = [json.loads(r["after"]) for r in rows if r["action"] == "randomize" and r["trial"] == "angel-rescue"]
    assert shown and all({"block", "list_position", "stratum", "arm"} <= set(d) for d in shown)


# ---- 3. minimization predictable from the dashboard -----------------------------------------------------------
def test_recruiters_see_no_counts_per_arm_in_a_minimized_trial(platform):
    _enrol(platform, "amass-2", 6)
    with platform.db.write() as session:
        accounts.create_user(session, SYSTEM, "unblinded_stat", "unblinded_statistician", ["S1"])
    with platform.db.read() as session:
        for user in ("coordinator", "investigator"):
            actor = accounts.actor_named(session, user)
            margins = balance(session, actor, "amass-2")
            assert margins["by_arm"] is False and margins["arms"] == []
            assert all("arms" not in level for f in margins["factors"] for level in f["levels"])
            assert list(funnel(session, actor, "amass-2")["allocated"]) == ["all"]
            assert list(safety(session, actor, "amass-2")["groups"]) == ["all"]
        for user in ("dsmb", "admin", "unblinded_stat"):
            margins = balance(session, accounts.actor_named(session, user), "amass-2")
            assert margins["by_arm"] and sum(sum(lv["arms"].values()) for lv in margins["factors"][0]["levels"]) == 6
    assert list(platform.call("GET", "/trials/amass-2/safety").json()["groups"]) == ["all"]
    assert set(platform.call("GET", "/trials/amass-2/safety", "dsmb").json()["groups"]) == {"albumin", "control"}


def test_simple_randomization_leaves_nothing_to_predict_so_open_label_counts_stay(platform):
    from stroketrial.service.blinding import allocation_depends_on_counts, sees_arm_counts

    protocol = load_builtin("amass-2")
    simple = protocol.model_copy(update={"randomization": None})
    assert allocation_depends_on_counts(protocol) and not allocation_depends_on_counts(simple)
    assert not sees_arm_counts("coordinator", protocol) and sees_arm_counts("dsmb", protocol)
    assert sees_arm_counts("coordinator", simple)
    assert not sees_arm_counts("coordinator", load_builtin("impact-lvo"))


# ---- 4. double-blind without kits --------------------------------------------------------------------------------
@pytest.mark.parametrize("masking", ["double_blind", "single_blind"])
def test_a_blinded_protocol_without_kits_is_refused(masking):
    from importlib import resources

    source = (resources.files("stroketrial.protocol") / "builtin" / "impact-lvo.yaml").read_text()
    assert "blinded_kits: true" in source
    changed = source.replace("blinded_kits: true", "blinded_kits: false").replace("masking: double_blind",
                                                                                   f"masking: {masking}")
    with pytest.raises(ProtocolError, match="blinded_kits"):
        parse_protocol(changed, "no-kits.yaml")


# ---- 5. site scope of the audit trail and the unblinding log ----------------------------------------------------
def test_the_audit_trail_and_unblinding_log_keep_the_site_scope(platform):
    with platform.db.write() as session:
        trials.add_site(session, SYSTEM, "amass-2", "S3")
        _, platform.tokens["coordinator_s3"] = accounts.create_user(session, SYSTEM, "coordinator_s3", "coordinator",
                                                                    ["S3"])
        accounts.create_user(session, SYSTEM, "monitor_s3", "monitor", ["S3"])
        _, platform.tokens["investigator_s2"] = accounts.create_user(session, SYSTEM, "investigator_s2",
                                                                     "investigator", ["S2"])
        _, platform.tokens["dsmb_s1"] = accounts.create_user(session, SYSTEM, "dsmb_s1", "dsmb", ["S1"])
    _enrol(platform, "amass-2", 2, prefix="S1-")
    _enrol(platform, "impact-lvo", 1, prefix="S1-")
    _enrol(platform, "amass-2", 2, prefix="S3-", site="S3", role="coordinator_s3")
    rows = _rows(platform, "monitor_s3")
    assert {r["trial"] for r in rows} == {"amass-2"}
    patients = {r["entity_id"].split("/")[1] for r in rows if r["entity"] in ("patient", "visit", "sae")}
    assert patients == {"S3-0", "S3-1"}
    assert "S1-0" not in json.dumps(rows)
    # A monitor at S1 sees S1's patients of both trials, none of S3's.
    s1 = {r["entity_id"] for r in _rows(platform, "monitor") if r["entity"] == "patient"}
    assert s1 and all("/S1-" in e for e in s1)
    _enrol(platform, "impact-lvo", 1, prefix="S2-", site="S2", role="coordinator_s2")
    assert platform.call("POST", "/trials/impact-lvo/patients/S2-0/unblinding", "investigator_s2",
                         json={"reason": "haemorrhage: steroid decision needed"}).status_code == 201
    assert platform.call("GET", "/trials/impact-lvo/unblindings", "dsmb_s1").json() == []
    assert [u["patient_id"] for u in platform.call("GET", "/trials/impact-lvo/unblindings", "dsmb").json()] == \
        ["S2-0"]


# ---- 6. tamper evidence ----------------------------------------------------------------------------------------------
def _append(conn, forged: dict, chain: int) -> None:
    """An event added at the end of its chain with the chain's head moved on, hashed with the formula the attacker
    knows (the database numbers it in the whole trail)."""
    forged["hash"] = _legacy_hash(forged, forged["after_json"])
    conn.execute(text("INSERT INTO audit_events (at, actor, action, entity, entity_id, trial_id, before_json, "
                      "after_json, reason, prev_hash, hash, chain, chain_id, chain_seq) VALUES (:at, :actor, :action, "
                      ":entity, :entity_id, :trial_id, :before_json, :after_json, :reason, :prev_hash, :hash, :chain, "
                      ":chain_id, :seq)"), {**forged, "chain": chain, "chain_id": forged["trial_id"] or ""})
    _move_head(conn, forged["trial_id"] or "", forged["seq"], forged["hash"])


def _move_head(conn, chain_id: str, seq: int, digest: str) -> None:
    conn.execute(text("UPDATE audit_heads SET seq = :s, hash = :h WHERE chain_id = :c"),
                 {"s": seq, "h": digest, "c": chain_id})


def _head(conn, chain_id: str):
    return conn.execute(text("SELECT seq, hash FROM audit_heads WHERE chain_id = :c"), {"c": chain_id}).one()


def _check(platform):
    with platform.db.read() as session:
        return check_trail(session)


def _cli_verify(platform) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "stroketrial.cli", "audit", "verify", "--db", platform.db.url],
                          capture_output=True, text=True, env={**os.environ, "STROKETRIAL_KEYS":
                                                               str(platform.db.keystore.folder)})


def test_deleting_the_last_events_and_moving_the_head_back_is_caught(platform):
    _enrol(platform, "impact-lvo", 3)
    assert _check(platform).ok
    _drop_audit_triggers(platform)
    with platform.db.engine.begin() as conn:
        last = _head(conn, "impact-lvo").seq
        keep = last - 2
        digest = conn.execute(text("SELECT hash FROM audit_events WHERE chain_id = 'impact-lvo' AND chain_seq = :s"),
                              {"s": keep}).scalar()
        conn.execute(text("DELETE FROM audit_events WHERE chain_id = 'impact-lvo' AND chain_seq > :s"), {"s": keep})
        _move_head(conn, "impact-lvo", keep, digest)
        # and the rows those events recorded, so that the tables agree with the shortened trail
        conn.execute(text("DELETE FROM allocations WHERE sequence = 3"))
    result = _check(platform)
    assert not result.ok and "deleted from the end" in result.message and f"event {last}" in result.message
    assert result.chain == "impact-lvo" and "trial impact-lvo" in result.message
    cli = _cli_verify(platform)
    assert cli.returncode == 1 and "deleted" in cli.stderr


def test_deleting_a_whole_trial_chain_with_its_head_is_caught(platform):
    _enrol(platform, "amass-2", 2)
    _drop_audit_triggers(platform)
    with platform.db.engine.begin() as conn:
        conn.execute(text("DELETE FROM audit_events WHERE chain_id = 'amass-2'"))
        conn.execute(text("DELETE FROM audit_heads WHERE chain_id = 'amass-2'"))
    result = _check(platform)
    assert not result.ok and result.chain == "amass-2" and "deleted" in result.message


def test_flipping_an_arm_and_recomputing_every_later_hash_is_caught(platform):
    _enrol(platform, "impact-lvo", 3)
    arms = [a.id for a in load_builtin("impact-lvo").arms]
    _drop_audit_triggers(platform)
    with platform.db.engine.begin() as conn:
        events = [dict(r._mapping) for r in conn.execute(text(
            "SELECT * FROM audit_events WHERE chain_id = 'impact-lvo' ORDER BY chain_seq"))]
        target = next(e for e in events if e["action"] == "randomize")
        document = json.loads(target["after_json"])
        flipped = next(a for a in arms if a != document["arm"])
        document.update(arm=flipped, slot=flipped)
        target["after_json"] = json.dumps(document, sort_keys=True, separators=(",", ":"))
        conn.execute(text("UPDATE allocations SET arm = :a, record_json = :r WHERE sequence = :s"),
                     {"a": flipped, "r": target["after_json"], "s": document["sequence"]})
        previous = None
        for e in events:  # recompute the chain from the flipped event on, with every formula the attacker knows
            if e["chain_seq"] < target["chain_seq"]:
                previous = e["hash"]
                continue
            e["prev_hash"] = previous
            e["hash"] = _legacy_hash({**e, "seq": e["chain_seq"]}, e["after_json"])
            conn.execute(text("UPDATE audit_events SET after_json = :a, prev_hash = :p, hash = :h WHERE seq = :s"),
                         {"a": e["after_json"], "p": e["prev_hash"], "h": e["hash"], "s": e["seq"]})
            previous = e["hash"]
        conn.execute(text("UPDATE audit_heads SET hash = :h WHERE chain_id = 'impact-lvo'"), {"h": previous})
    result = _check(platform)
    assert not result.ok and f"event {target['chain_seq']} of trial impact-lvo" in result.message
    assert "forged" in result.message
    assert _cli_verify(platform).returncode == 1


def test_a_forged_emergency_unblinding_event_is_caught(platform):
    _enrol(platform, "impact-lvo", 2)
    with platform.db.engine.begin() as conn:  # INSERT needs no trigger bypass
        head = _head(conn, "impact-lvo")
        forged = {"seq": head.seq + 1, "at": dt.datetime.now(dt.UTC).isoformat(), "actor": "investigator",
                  "action": "emergency_unblinding", "entity": "patient", "entity_id": "impact-lvo/P0",
                  "trial_id": "impact-lvo", "before_json": None, "after_json": '{"kit":null,"sequence":1}',
                  "reason": "forged to cover an unblinding done outside the platform", "prev_hash": head.hash}
        _append(conn, forged, chain=3)
        patient = conn.execute(text("SELECT id FROM patients WHERE code = 'P0' AND trial_id = 'impact-lvo'")).scalar()
        conn.execute(text("INSERT INTO unblindings (patient_id, reason, created_at, created_by) VALUES "
                          "(:p, 'forged', :t, 'investigator')"), {"p": patient, "t": dt.datetime.now(dt.UTC)})
    result = _check(platform)
    assert not result.ok and f"event {forged['seq']} of trial impact-lvo" in result.message
    assert _cli_verify(platform).returncode == 1


@pytest.mark.parametrize("version", [1, 2])
def test_an_event_of_an_older_chain_version_after_the_current_ones_is_caught(platform, version):
    _enrol(platform, "amass-2", 1)
    with platform.db.engine.begin() as conn:
        head = _head(conn, "")
        forged = {"seq": head.seq + 1, "at": dt.datetime.now(dt.UTC).isoformat(), "actor": "admin",
                  "action": "create", "entity": "user", "entity_id": "backdoor", "trial_id": None,
                  "before_json": None, "after_json": '{"role":"admin"}', "reason": None, "prev_hash": head.hash}
        _append(conn, forged, chain=version)
    result = _check(platform)
    assert not result.ok and "it was inserted" in result.message and "of the platform" in result.message


def test_changing_an_allocation_row_is_named_by_the_reconciliation(platform):
    _enrol(platform, "impact-lvo", 2)
    with platform.db.engine.begin() as conn:  # no trigger guards the allocations: nothing to bypass
        conn.execute(text("UPDATE allocations SET arm = CASE WHEN arm = 'placebo' THEN 'methylprednisolone' "
                          "ELSE 'placebo' END WHERE sequence = 2"))
        conn.execute(text("UPDATE visit_records SET visit_date = '2020-01-01'"))
    result = _check(platform)
    assert not result.ok
    assert any(p.startswith("allocation of impact-lvo/P1: ") and "arm" in p for p in result.problems), \
        result.problems
    cli = _cli_verify(platform)
    assert cli.returncode == 1 and "allocation of impact-lvo/P1" in cli.stderr


def test_changing_screening_data_visits_and_saes_behind_the_platform_is_named(platform):
    _enrol(platform, "amass-2", 1)
    today = dt.date.today().isoformat()
    assert platform.call("PUT", "/trials/amass-2/patients/P0/visits/d90",
                         json={"visit_date": today, "values": {"death": False}}).status_code == 200
    assert platform.call("POST", "/trials/amass-2/patients/P0/saes", json={
        "term": "pneumonia", "onset_date": today, "criteria": ["hospitalization"], "outcome": "recovering",
        "relatedness": "unlikely"}).status_code == 201
    assert _check(platform).ok
    with platform.db.engine.begin() as conn:
        conn.execute(text("UPDATE patients SET data_json = REPLACE(data_json, :old, :new) WHERE code = 'P0'"),
                     {"old": '"nihss":', "new": '"nihss":1'})
        conn.execute(text("UPDATE visit_records SET values_json = :v"), {"v": '{"mrs":0}'})
        conn.execute(text("UPDATE serious_adverse_events SET data_json = REPLACE(data_json, 'pneumonia', 'none')"))
    problems = _check(platform).problems
    assert any(p.startswith("patient amass-2/P0: nihss differ") for p in problems), problems
    assert any(p.startswith("visit amass-2/P0/d90: values differ") for p in problems), problems
    assert any(p.startswith("SAE amass-2/P0/") and "term" in p for p in problems), problems


def test_a_missing_audit_key_stops_the_platform_rather_than_making_a_new_one(platform, tmp_path):
    _enrol(platform, "amass-2", 1)
    moved = tmp_path / "key-backup"
    platform.db.keystore.key_path.rename(moved)
    with pytest.raises(Exception, match="audit key of this database is missing"):
        Database(platform.db.url, keys=platform.db.keystore.folder).audit_key()
    moved.rename(platform.db.keystore.key_path)
    assert _check(platform).ok


def test_an_offsite_checkpoint_catches_a_rewrite_of_the_log_beside_the_key(platform, tmp_path):
    _enrol(platform, "amass-2", 2)
    lines = subprocess.run([sys.executable, "-m", "stroketrial.cli", "audit", "checkpoint", "--db", platform.db.url],
                           capture_output=True, text=True, check=True,
                           env={**os.environ, "STROKETRIAL_KEYS": str(platform.db.keystore.folder)}
                           ).stdout.splitlines()
    assert all(line.startswith("stroketrial-checkpoint seq=") for line in lines)
    # the platform's chain, and one per trial (each created one when its first event was written)
    assert len(lines) == 6 and sum("chain=amass-2" in line for line in lines) == 1
    offsite = tmp_path / "offsite.txt"
    offsite.write_text("\n".join(lines) + "\n")
    _drop_audit_triggers(platform)
    with platform.db.engine.begin() as conn:
        last = _head(conn, "amass-2").seq
        digest = conn.execute(text("SELECT hash FROM audit_events WHERE chain_id = 'amass-2' AND chain_seq = :s"),
                              {"s": last - 1}).scalar()
        conn.execute(text("DELETE FROM audit_events WHERE chain_id = 'amass-2' AND chain_seq = :s"), {"s": last})
        _move_head(conn, "amass-2", last - 1, digest)
    platform.db.keystore.checkpoint_path.write_text("")  # someone who could also empty the local log
    cli = subprocess.run([sys.executable, "-m", "stroketrial.cli", "audit", "verify", "--db", platform.db.url,
                          "--checkpoint-file", str(offsite)], capture_output=True, text=True,
                         env={**os.environ, "STROKETRIAL_KEYS": str(platform.db.keystore.folder)})
    assert cli.returncode == 1 and "deleted" in cli.stderr


# ---- 6. PostgreSQL: the application's role cannot switch the triggers off ------------------------------------------
OWNER, APP = "stroketrial_owner", "stroketrial_app"


@pytest.fixture
def two_roles(tmp_path):
    server = make_url(_pg_server_url())
    admin = server.set(drivername="postgresql").render_as_string(hide_password=False)
    name = f"t_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(admin, autocommit=True) as conn:
        for role in (OWNER, APP):
            conn.execute(f"DO $$ BEGIN IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = '{role}') THEN "
                         f"CREATE ROLE {role} LOGIN; END IF; END $$")
        conn.execute(f"CREATE DATABASE {name} OWNER {OWNER}")
        conn.execute(f"REVOKE ALL ON DATABASE {name} FROM PUBLIC")
        conn.execute(f"GRANT CONNECT ON DATABASE {name} TO {APP}")
    urls = {role: server.set(database=name, username=role).render_as_string(hide_password=False)
            for role in (OWNER, APP)}
    yield urls, tmp_path / "keys"
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")


def test_the_application_role_cannot_alter_or_disable_the_audit_triggers(two_roles):
    urls, keys = two_roles
    owner = Database(urls[OWNER], keys=keys)
    owner.migrate()
    owner.grant_app_role(APP)
    owner.dispose()
    app = Database(urls[APP], keys=keys)
    app.migrate()  # at head already: nothing to do, and the app may check that
    with app.write() as session:
        trials.create_trial(session, SYSTEM, "amass-2", ["S1"])
    for attack in ("ALTER TABLE audit_events DISABLE TRIGGER ALL", "ALTER TABLE audit_events DISABLE TRIGGER USER",
                   "DROP TRIGGER audit_events_append_only ON audit_events", "UPDATE audit_events SET actor = 'x'",
                   "DELETE FROM audit_events", "TRUNCATE audit_events", "DROP TABLE audit_events",
                   "ALTER FUNCTION audit_events_append_only() RENAME TO gone",
                   "CREATE OR REPLACE FUNCTION audit_events_append_only() RETURNS trigger AS $$ BEGIN RETURN NEW; "
                   "END $$ LANGUAGE plpgsql", "SET session_replication_role = replica"):
        with pytest.raises(Exception, match=r"permission denied|must be owner|append-only|must be superuser"), \
                app.engine.begin() as conn:
                conn.execute(text(attack))
    with app.read() as session:
        assert check_trail(session).ok
    app.dispose()


# ---- 12. times against the server's clock ------------------------------------------------------------------------
def test_a_stroke_onset_or_puncture_in_the_future_is_refused(platform):
    response = register(platform, "amass-2", "FUT", last_known_well="2099-01-01T08:00:00",
                        arterial_puncture="2099-01-01T10:00:00", recanalization="2099-01-01T11:00:00",
                        randomization="2099-01-01T11:10:00")
    assert response.status_code == 422
    fields = {e["field"] for e in response.json()["errors"]}
    assert {"last_known_well", "arterial_puncture"} <= fields
    assert "in the future" in response.json()["detail"]
    assert platform.call("GET", "/trials/amass-2/patients/FUT").status_code == 404


def test_the_window_that_ends_at_randomization_is_measured_by_the_server_clock(platform):
    """Last known well 30 h ago; the form's planned time of randomization says 22.5 h after it."""
    now = dt.datetime.now(dt.UTC).replace(tzinfo=None, microsecond=0)
    lkw = now - dt.timedelta(hours=30)
    times = {"last_known_well": lkw.isoformat(), "arterial_puncture": (lkw + dt.timedelta(hours=21)).isoformat(),
             "recanalization": (lkw + dt.timedelta(hours=22)).isoformat(),
             "randomization": (lkw + dt.timedelta(hours=22.5)).isoformat()}
    registered = register(platform, "impact-lvo", "LATE", **times)
    assert registered.status_code == 201 and registered.json()["status"] == "eligible"
    with platform.db.read() as session:
        events = session.execute(text("SELECT COUNT(*) FROM audit_events")).scalar()
    response = randomize(platform, "impact-lvo", "LATE", key="late")
    assert response.status_code == 422, response.text
    assert "server's clock" in response.json()["detail"]
    assert "time_window" in {e["field"] for e in response.json()["errors"]}
    assert platform.call("GET", "/trials/impact-lvo/patients/LATE").json()["randomized"] is False
    with platform.db.read() as session:
        assert session.execute(text("SELECT COUNT(*) FROM audit_events")).scalar() == events


def test_randomization_records_the_server_time_in_the_site_zone(platform):
    with platform.db.write() as session:
        accounts.create_site(session, SYSTEM, "SH", "Shanghai", "Asia/Shanghai")
        trials.add_site(session, SYSTEM, "impact-lvo", "SH")
        _, platform.tokens["coordinator_sh"] = accounts.create_user(session, SYSTEM, "coordinator_sh", "coordinator",
                                                                    ["SH"])
    from zoneinfo import ZoneInfo

    wall = dt.datetime.now(ZoneInfo("Asia/Shanghai")).replace(tzinfo=None, microsecond=0)
    lkw = wall - dt.timedelta(hours=8)  # a Shanghai wall-clock time: 8 h ago there, in the future read as UTC
    times = {"last_known_well": lkw.isoformat(), "arterial_puncture": (lkw + dt.timedelta(hours=6)).isoformat(),
             "recanalization": (lkw + dt.timedelta(hours=7)).isoformat(),
             "randomization": (wall + dt.timedelta(minutes=20)).isoformat()}
    assert register(platform, "impact-lvo", "SH1", site="SH", role="coordinator_sh", **times).status_code == 201
    assert randomize(platform, "impact-lvo", "SH1", key="sh1", role="coordinator_sh").status_code == 201
    data = platform.call("GET", "/trials/impact-lvo/patients/SH1", "coordinator_sh").json()["data"]
    recorded = dt.datetime.fromisoformat(data["randomization"])
    assert abs(recorded - wall) < dt.timedelta(minutes=2)
    with platform.db.read() as session:
        assert session.execute(text("SELECT COUNT(*) FROM audit_events WHERE action = 'set_randomization_time'")
                               ).scalar() == 1
        assert check_trail(session).ok
    with platform.db.write() as session, pytest.raises(Exception, match="IANA"):
        accounts.create_site(session, SYSTEM, "MARS", "Mars", "Mars/Olympus_Mons")


@pytest.mark.parametrize("onset, fragment", [("2099-05-01", "after today"),
                                             ("1900-01-01", "before the patient was born")])
def test_an_sae_onset_after_today_or_before_birth_is_refused(platform, onset, fragment):
    _enrol(platform, "amass-2", 1)
    response = platform.call("POST", "/trials/amass-2/patients/P0/saes", json={
        "term": "pneumonia", "onset_date": onset, "criteria": ["hospitalization"], "outcome": "recovering",
        "relatedness": "unlikely"})
    assert response.status_code == 422
    error = next(e for e in response.json()["errors"] if e["field"] == "onset_date")
    assert fragment in error["message"] and error["value"] == onset
    assert platform.call("GET", "/trials/amass-2/patients/P0/saes").json() == []


def test_recruiters_cannot_rebuild_the_margins_from_lists_or_exports(platform):
    """The attack: list every patient's arm (open-label) and their factor levels, recount the margins."""
    _enrol(platform, "amass-2", 4)
    listed = platform.call("GET", "/trials/amass-2/patients").json()
    assert len(listed) == 4 and all("arm" not in p["randomization"] for p in listed)
    # The treating team still sees its patient's arm on that patient's own record.
    assert platform.call("GET", "/trials/amass-2/patients/P0").json()["randomization"]["arm"] in ("albumin", "control")
    with platform.db.read() as session:
        from stroketrial.service.export import tables

        rows = tables(session, accounts.actor_named(session, "coordinator"), "amass-2")["randomization"]
        assert len(rows) == 4 and all("arm" not in r for r in rows)
    assert all("arm" in p["randomization"] for p in platform.call("GET", "/trials/amass-2/patients", "dsmb").json())


def test_balance_counts_only_the_readers_sites(platform):
    _enrol(platform, "amass-2", 3, prefix="S1-")
    _enrol(platform, "amass-2", 2, prefix="S2-", site="S2", role="coordinator_s2")
    with platform.db.read() as session:
        for user, expected in (("coordinator", 3), ("coordinator_s2", 2), ("dsmb", 5), ("admin", 5)):
            margins = balance(session, accounts.actor_named(session, user), "amass-2")
            assert all(sum(level["total"] for level in f["levels"]) == expected
                       for f in margins["factors"] if f["field"] != "site"), (user, margins)


def test_the_admin_who_reads_margins_cannot_randomize(platform):
    assert register(platform, "amass-2", "ADM-1", role="admin").status_code == 201
    response = randomize(platform, "amass-2", "ADM-1", key="adm", role="admin")
    assert response.status_code == 403 and "randomizing is for investigator, coordinator" in response.json()["detail"]


def test_dose_sheets_of_a_double_blind_trial_for_both_arms(platform):
    _enrol(platform, "impact-lvo", 6)
    sheets = {p: platform.call("GET", f"/trials/impact-lvo/patients/{p}/dose", "unblinded_pharmacist")
              for p in (f"P{i}" for i in range(6))}
    assert all(r.status_code == 200 for r in sheets.values()), {p: r.text for p, r in sheets.items()}
    arms = {r.json()["arm"] for r in sheets.values()}
    assert arms == {"methylprednisolone", "placebo"}  # 6 patients in blocks of 2 or 4 hold both arms
    placebo = next(r.json() for r in sheets.values() if r.json()["arm"] == "placebo")
    assert any("placebo" in " ".join(a.get("notes", [])) for a in placebo["administrations"])
    blinded = platform.call("GET", "/trials/impact-lvo/patients/P0/dose").json()
    names = [a["name"] for a in blinded["administrations"]]
    assert names[0] == "Mechanical thrombectomy" and all(n.startswith("study drug from kit") for n in names[1:])
