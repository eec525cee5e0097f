"""Record signatures and data freezes/locks through the API, on SQLite and PostgreSQL: the investigator signs a
casebook with the password entered again; a later change invalidates the signature visibly and in the audit
trail; an edit around the platform is reported; a wrong password is throttled as sign-in. A frozen or locked
patient, form or trial refuses writes with 409 naming the lock; releasing needs a reason and the right role; the
export says whether the data are locked."""

from __future__ import annotations

import csv
import datetime as dt
import io
import json
import zipfile

import pytest
from sqlalchemy import select, text
from typer.testing import CliRunner

from stroketrial.cli import app
from stroketrial.service import SYSTEM, accounts, export, locks
from stroketrial.service import demo as demo_data
from stroketrial.service.accounts import Actor
from stroketrial.store import Database, verify
from stroketrial.store.models import AuditEvent

from ..trials import amass2
from ..trials.helpers import happening_now

TRIAL = amass2.TRIAL
PASSWORD = "password-1"
DATA_MANAGER = "data_manager"
PATIENT = happening_now({**amass2.ELIGIBLE, "bridging_thrombolysis": True})
TODAY = dt.date.today().isoformat()


def register(platform, code="P1"):
    data = dict(PATIENT)
    attestations = data.pop("attestations", None)
    return platform.call("POST", f"/trials/{TRIAL}/patients", "coordinator",
                         json={"patient_id": code, "site": "S1", "data": data, "attestations": attestations})


def randomized(platform, code="P1"):
    assert register(platform, code).status_code == 201
    answer = platform.call("POST", f"/trials/{TRIAL}/patients/{code}/randomization", "coordinator",
                           headers={"Idempotency-Key": f"key-{code}"})
    assert answer.status_code == 201, answer.text


def visit(platform, code="P1", form="baseline", values=None, reason=None, role="coordinator"):
    body = {"visit_date": TODAY, "values": values or {"nihss": 12}, **({"reason": reason} if reason else {})}
    return platform.call("PUT", f"/trials/{TRIAL}/patients/{code}/visits/{form}", role, json=body)


def sae(platform, code="P1"):
    return platform.call("POST", f"/trials/{TRIAL}/patients/{code}/saes", "coordinator",
                         json={"term": "pneumonia", "onset_date": TODAY, "criteria": ["hospitalization"],
                               "outcome": "recovering", "relatedness": "unlikely"})


def ae(platform, code="P1"):
    return platform.call("POST", f"/trials/{TRIAL}/patients/{code}/adverse-events", "coordinator",
                         json={"term": "headache", "onset_date": TODAY, "severity": "mild", "relatedness": "unlikely",
                               "action_taken": "none", "outcome": "recovered"})


def sign(platform, code="P1", form=None, meaning="review", password=PASSWORD, role="investigator"):
    return platform.call("POST", f"/trials/{TRIAL}/patients/{code}/signatures", role,
                         json={"form": form, "meaning": meaning, "password": password})


def signatures(platform, code="P1", role="investigator"):
    answer = platform.call("GET", f"/trials/{TRIAL}/patients/{code}/signatures", role)
    assert answer.status_code == 200, answer.text
    return answer.json()


def lock(platform, level="lock", reason="database lock for the final analysis", role="admin", **scope):
    return platform.call("POST", f"/trials/{TRIAL}/locks", role, json={"level": level, "reason": reason, **scope})


def release(platform, lock_id, reason="query answered; corrections allowed again", role="admin"):
    return platform.call("POST", f"/trials/{TRIAL}/locks/{lock_id}/release", role,
                         json={} if reason is None else {"reason": reason})


def events(platform, action):
    with platform.db.read() as session:
        return session.execute(select(AuditEvent).where(AuditEvent.action == action)
                               .order_by(AuditEvent.seq)).scalars().all()


def with_data_manager(platform):
    """A data manager at S1."""
    if DATA_MANAGER not in platform.tokens:
        with platform.db.write() as session:
            _, platform.tokens[DATA_MANAGER] = accounts.create_user(session, SYSTEM, f"dm-{DATA_MANAGER}",
                                                                    DATA_MANAGER, ["S1"], password=PASSWORD)
    return DATA_MANAGER


# ---- signatures ------------------------------------------------------------------------------------------
def test_a_signed_casebook_is_invalidated_by_a_later_visit_change_visibly_and_in_the_trail(platform):
    randomized(platform)
    assert visit(platform).status_code == 200
    assert visit(platform, form="d7", values={"nihss": 4}).status_code == 200
    casebook = sign(platform)
    assert casebook.status_code == 201, casebook.text
    signed = casebook.json()
    assert (signed["form"], signed["meaning"], signed["signed_by"], signed["state"]) == ("casebook", "review",
                                                                                          "investigator", "valid")
    assert signed["meaning_text"].startswith("I have reviewed the data of this patient's casebook")
    assert "content_sha256" not in signed  # the audit trail keeps the hash
    assert sign(platform, form="d7", meaning="approval").status_code == 201
    assert [s["state"] for s in signatures(platform)] == ["valid", "valid"]

    changed = visit(platform, values={"nihss": 14}, reason="source document says 14")
    assert changed.status_code == 200, changed.text
    d7, book = signatures(platform)
    assert d7["form"] == "d7" and d7["state"] == "valid"  # its form did not change
    assert book["state"] == "invalidated" and book["invalidated_at"]
    assert "form baseline of patient P1 was changed by coordinator" in book["invalidated_why"]
    assert "after the signature of investigator" in book["invalidated_why"]
    assert [e.entity_id for e in events(platform, "sign_record")] == [str(signed["id"]), str(d7["id"])]
    invalidation = events(platform, "invalidate_signature")
    assert [e.entity_id for e in invalidation] == [str(signed["id"])]
    assert "form baseline" in invalidation[0].reason
    # an SAE reported changes the casebook; the d7 signature stands
    assert sign(platform).status_code == 201
    assert sae(platform).status_code == 201
    states = {(s["form"], s["state"]) for s in signatures(platform)}
    assert states == {("casebook", "invalidated"), ("d7", "valid")}
    # so does a non-serious adverse event recorded in the AE log
    assert sign(platform).status_code == 201
    assert ae(platform).status_code == 201
    books = [s for s in signatures(platform) if s["form"] == "casebook"]
    assert [b["state"] for b in books] == ["invalidated"] * 3
    assert sum("the adverse event log of patient P1 was changed" in b["invalidated_why"] for b in books) == 1
    with platform.db.read() as session:
        assert verify(session).ok


def test_an_edit_around_the_platform_is_reported_as_a_mismatch(platform):
    randomized(platform)
    assert visit(platform).status_code == 200
    assert sign(platform).status_code == 201
    with platform.db.write() as session:  # someone with database access, around the platform
        session.execute(text("UPDATE visit_records SET values_json = :values"), {"values": '{"nihss":2}'})
    mismatch = signatures(platform, role="monitor")[0]
    assert mismatch["state"] == "mismatch" and "around the platform" in mismatch["problem"]


def test_only_the_investigator_signs_what_is_entered_with_a_stated_meaning(platform):
    randomized(platform)
    assert sign(platform, role="coordinator").status_code == 403
    assert sign(platform, form="d90").status_code == 409  # not entered: nothing to sign
    assert sign(platform, form="d91").status_code == 404
    assert sign(platform, meaning="agreement").status_code == 422
    assert platform.call("GET", f"/trials/{TRIAL}/patients/P1/signatures", "outcome_assessor").status_code == 403
    assert events(platform, "login_failed") == []  # none of these was a password guess


def test_a_wrong_signature_password_is_refused_and_throttled_as_sign_in(platform):
    randomized(platform)
    for _ in range(5):
        wrong = sign(platform, password="guess")
        assert wrong.status_code == 401 and "did not match" in wrong.json()["detail"]
    locked = sign(platform)  # the right password, too late
    assert locked.status_code == 429 and "Too many failed" in locked.json()["detail"]
    assert signatures(platform) == []
    assert {e.entity_id for e in events(platform, "login_failed")} == {"investigator"}


# ---- freeze and lock --------------------------------------------------------------------------------------
def test_a_locked_patient_refuses_writes_naming_the_lock_until_the_admin_unlocks_with_a_reason(platform):
    randomized(platform)
    randomized(platform, "P2")
    made = lock(platform, patient_id="P1", reason="casebook reviewed and signed")
    assert made.status_code == 201, made.text
    locked = made.json()
    assert (locked["level"], locked["scope"], locked["locked_by"]) == ("lock", "patient P1", "admin")
    refused = visit(platform)
    assert refused.status_code == 409, refused.text
    detail = refused.json()["detail"]
    assert f"lock #{locked['id']} of patient P1 by admin on" in detail and "casebook reviewed and signed" in detail
    assert refused.json()["lock"]["id"] == locked["id"]
    assert ae(platform).status_code == 409  # the non-serious AE log is data like any form
    # an SAE must still reach the sponsor within 24 hours: taken, and marked as received under the lock
    reported = sae(platform)
    assert reported.status_code == 201, reported.text
    assert reported.json()["received_under_lock"].startswith(f"lock #{locked['id']} of patient P1 by admin")
    assert visit(platform, "P2").status_code == 200  # another patient is not locked
    assert lock(platform, patient_id="P1").status_code == 409  # locked already
    manager = with_data_manager(platform)
    assert release(platform, locked["id"], role=manager).status_code == 403  # a lock: the admin's
    assert release(platform, locked["id"], reason=None).status_code == 422
    assert release(platform, locked["id"], reason="   ").status_code == 422
    released = release(platform, locked["id"])
    assert released.status_code == 200 and released.json()["in_force"] is False
    assert release(platform, locked["id"]).status_code == 409
    assert visit(platform).status_code == 200
    assert [e.action for e in events(platform, "lock")] == ["lock"] and len(events(platform, "unlock")) == 1


def test_a_frozen_form_refuses_its_writes_and_the_data_manager_releases_the_freeze(platform):
    randomized(platform)
    manager = with_data_manager(platform)
    assert lock(platform, role="coordinator", patient_id="P1").status_code == 403
    assert lock(platform, level="freeze", role=manager, patient_id="P1", form="d99").status_code == 404
    frozen = lock(platform, level="freeze", role=manager, patient_id="P1", form="d7", reason="query open on d7")
    assert frozen.status_code == 201, frozen.text
    refused = visit(platform, form="d7", values={"nihss": 4})
    assert refused.status_code == 409 and "the data are frozen (freeze #" in refused.json()["detail"]
    assert visit(platform).status_code == 200  # the baseline form is not frozen
    assert release(platform, frozen.json()["id"], role=manager).status_code == 200
    assert visit(platform, form="d7", values={"nihss": 4}).status_code == 200
    listed = platform.call("GET", f"/trials/{TRIAL}/locks", "investigator").json()
    assert [(x["form"], x["level"], x["in_force"]) for x in listed] == [("d7", "freeze", False)]


def test_a_locked_trial_refuses_registration_and_every_write_and_the_export_says_locked(platform):
    randomized(platform)
    assert register(platform, "P2").status_code == 201  # registered, not randomized
    assert lock(platform, role="monitor").status_code == 403
    made = lock(platform)
    assert made.status_code == 201, made.text
    trial_lock = made.json()
    assert trial_lock["scope"] == f"the whole trial {TRIAL}"
    new = register(platform, "P3")
    assert new.status_code == 409 and f"lock #{trial_lock['id']}" in new.json()["detail"]
    assert visit(platform).status_code == 409
    assert ae(platform).status_code == 409
    reported = sae(platform)
    assert reported.status_code == 201 and f"lock #{trial_lock['id']}" in reported.json()["received_under_lock"]
    assert ["received_under_lock" in json.loads(e.after_json) for e in events(platform, "report_sae")] == [True]
    correction = platform.call("PATCH", f"/trials/{TRIAL}/patients/P2", "coordinator",
                               json={"data": {"nihss": 14}, "reason": "typo"})
    assert correction.status_code == 409 and "the data are locked" in correction.json()["detail"]
    with platform.db.read() as session:
        archive = zipfile.ZipFile(io.BytesIO(export.csv_zip(session, Actor("dsmb", "dsmb", frozenset({"S1"})),
                                                            TRIAL)))
    info = {row["field"]: row["value"]
            for row in csv.DictReader(io.StringIO(archive.read(f"{TRIAL}/export_info.csv").decode()))}
    assert (info["data_lock"], info["lock_id"], info["locked_by"]) == ("locked", str(trial_lock["id"]), "admin")
    assert release(platform, trial_lock["id"], reason=None).status_code == 422
    assert release(platform, trial_lock["id"]).status_code == 200
    assert register(platform, "P3").status_code == 201
    with platform.db.read() as session:
        archive = zipfile.ZipFile(io.BytesIO(export.csv_zip(session, Actor("dsmb", "dsmb", frozenset({"S1"})),
                                                            TRIAL)))
    assert "data_lock,not locked" in archive.read(f"{TRIAL}/export_info.csv").decode()


@pytest.mark.sqlite_only
def test_analyze_on_a_locked_export_says_locked_on_the_title_page(tmp_path):
    db = Database(f"sqlite:///{tmp_path / 'p.db'}")
    db.migrate()
    demo_data.load(db)
    dsmb = Actor("dsmb", "dsmb", frozenset({"S1", "S2", "S3"}))
    with db.write() as session:
        trial_lock = locks.lock(session, SYSTEM, TRIAL, "lock", "database lock for the final analysis")
    with db.read() as session:
        (tmp_path / "locked.zip").write_bytes(export.csv_zip(session, dsmb, TRIAL))
    db.dispose()
    result = CliRunner().invoke(app, ["analyze", TRIAL, str(tmp_path / "locked.zip"), "--out", str(tmp_path / "r"),
                                      "--json"])
    assert result.exit_code == 0, result.output
    day = trial_lock["locked_at"][:10]
    statement = f"Data locked on {day} by system (lock #{trial_lock['id']})"
    assert json.loads(result.stdout)["data_lock"] == statement
    title_page = (tmp_path / "r" / "report.html").read_text().split("</section>")[0]
    assert f"<dt>Data lock</dt><dd data-lock>{statement}</dd>" in title_page
    assert locks.lock_statement({"data_lock": "not locked"}) == "Data not locked: interim"
