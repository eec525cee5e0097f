"""The GCP workflow's tables against the audit trail (service/reconcile.py), on SQLite and PostgreSQL.

For each table the protocol's operation is done through the platform, the tables then agree with the trail;
then someone with database access edits a row around the platform, copies one in and deletes one, and each is
named in one line: changed unseen, inserted unseen, deleted unseen.
"""

from __future__ import annotations

import datetime as dt
import json
from importlib import resources

import pytest
import yaml
from sqlalchemy import text

from stroketrial.service import SYSTEM, accounts, amendments, trials
from stroketrial.service.reconcile import reconcile

from ..trials import amass2
from ..trials.helpers import happening_now
from .test_api import randomize, register

TRIAL = "amass-2"
DEFERRED = "amass-2-deferred"
TODAY = dt.date.today().isoformat()
PASSWORD = "password-1"


def ago(**delta) -> str:
    """A wall-clock time at the test sites (UTC), `delta` ago, to the minute."""
    return (dt.datetime.now(dt.UTC) - dt.timedelta(**delta)).replace(tzinfo=None).isoformat(timespec="minutes")


def problems(platform) -> list[str]:
    with platform.db.read() as session:
        return reconcile(session)


def around_the_platform(platform, sql: str, **params) -> None:
    """An edit with write access to the database, not through the platform (no audit event)."""
    with platform.db.write() as session:
        session.execute(text(sql), params)


def edit_json(platform, table: str, row_id: int, column: str, **changes) -> None:
    with platform.db.write() as session:
        stored = session.execute(text(f"SELECT {column} FROM {table} WHERE id = :id"), {"id": row_id}).scalar_one()
        session.execute(text(f"UPDATE {table} SET {column} = :v WHERE id = :id"),
                        {"v": json.dumps({**json.loads(stored), **changes}), "id": row_id})


def copy_in(platform, table: str, row_id: int, **changes) -> int:
    """A copy of a row inserted around the platform; its new id."""
    with platform.db.write() as session:
        row = dict(session.execute(text(f"SELECT * FROM {table} WHERE id = :id"), {"id": row_id}).mappings().one())
        row = {k: v for k, v in row.items() if k != "id"} | changes
        session.execute(text(f"INSERT INTO {table} ({', '.join(row)}) VALUES ({', '.join(f':{k}' for k in row)})"),
                        row)
        return session.execute(text(f"SELECT MAX(id) FROM {table}")).scalar_one()


def delete(platform, table: str, row_id: int) -> None:
    around_the_platform(platform, f"DELETE FROM {table} WHERE id = :id", id=row_id)


def changed(found: list[str], name: str, *fields: str) -> bool:
    """`name` is named once as changed, with exactly `fields` differing."""
    return f"{name}: {', '.join(sorted(fields))} differ from the audit trail (changed unseen)" in found


def randomized(platform, code="P1"):
    assert register(platform, code=code).status_code == 201
    assert randomize(platform, code=code, key=f"key-{code}").status_code == 201


def baseline(platform, nihss: int, reason: str | None = None):
    body = {"visit_date": TODAY, "values": {"nihss": nihss}, **({"reason": reason} if reason else {})}
    answer = platform.call("PUT", f"/trials/{TRIAL}/patients/P1/visits/baseline", json=body)
    assert answer.status_code == 200, answer.text


@pytest.fixture
def deferred_trial(platform, tmp_path):
    """AMASS-2 with deferred consent allowed (72 h to confirm) and form versions 1.0 and 2.0."""
    source = resources.files("stroketrial.protocol").joinpath("builtin", "amass-2.yaml").read_text(encoding="utf-8")
    source = source.replace("id: amass-2\n", f"id: {DEFERRED}\n", 1)
    source = source.replace('  routes: [patient, representative]\n  form_versions: ["1.0"]\n',
                            '  routes: [patient, representative, deferred]\n  form_versions: ["1.0", "2.0"]\n'
                            '  deferred_confirmation_hours: 72\n'
                            '  deferred_text: "test: confirmation within 72 hours"\n', 1)
    path = tmp_path / f"{DEFERRED}.yaml"
    path.write_text(source, encoding="utf-8")
    with platform.db.write() as session:
        trials.create_trial(session, SYSTEM, str(path), ["S1", "S2"])
    return DEFERRED


# ---- consents -----------------------------------------------------------------------------------------------------
def test_a_consent_recorded_confirmed_renewed_and_withdrawn_is_reconciled_and_an_unwithdrawal_is_named(
        platform, deferred_trial):
    data = dict(happening_now(amass2.ELIGIBLE))
    attestations = {k: v for k, v in data.pop("attestations").items() if k != "informed_consent"}
    assert platform.call("POST", f"/trials/{DEFERRED}/patients", json={
        "patient_id": "P1", "site": "S1", "data": data, "attestations": attestations}).status_code == 201
    path = f"/trials/{DEFERRED}/patients/P1/consents"
    deferred = platform.call("POST", path, json={"route": "deferred", "form_version": "1.0",
                                                 "consented_at": ago(hours=3)}).json()["id"]
    assert platform.call("POST", f"{path}/{deferred}/confirmation", json={
        "route": "representative", "confirmed_at": ago(hours=2), "signer_name": "Wang Li",
        "signer_relationship": "spouse"}).status_code == 200
    renewed = platform.call("POST", path, json={"route": "patient", "form_version": "2.0",
                                                "consented_at": ago(hours=1)})
    assert renewed.status_code == 201, renewed.text
    current = renewed.json()["id"]
    assert platform.call("POST", f"{path}/{current}/withdrawal", json={
        "scope": "follow_up", "reason": "no more visits, in the patient's words"}).status_code == 200
    assert problems(platform) == []

    # The withdrawal wiped: the patient would be followed up again.
    around_the_platform(platform, "UPDATE consents SET withdrawn_at = NULL, withdrawal = NULL, "
                                  "withdrawal_reason = NULL WHERE id = :id", id=current)
    found = problems(platform)
    assert changed(found, f"consent {DEFERRED}/P1/{current}", "withdrawal", "withdrawal_reason", "withdrawn_at"), found
    # The deferred consent said to be on the newer form, and not superseded.
    around_the_platform(platform, "UPDATE consents SET form_version = '2.0', superseded_by = NULL WHERE id = :id",
                        id=deferred)
    assert changed(problems(platform), f"consent {DEFERRED}/P1/{deferred}", "form_version", "superseded_by")
    copied = copy_in(platform, "consents", current)
    delete(platform, "consents", deferred)
    found = problems(platform)
    assert f"consent {DEFERRED}/P1/{copied}: in the table but not in the audit trail (inserted unseen)" in found
    assert f"consent {DEFERRED}/P1/{deferred}: in the audit trail but not in the table (deleted unseen)" in found
    assert len(found) == 3, found


# ---- the non-serious AE log ---------------------------------------------------------------------------------------
def test_an_adverse_event_recorded_and_corrected_is_reconciled_and_a_downgrade_is_named(platform):
    randomized(platform)
    event = {"term": "headache", "onset_date": TODAY, "severity": "mild", "relatedness": "unlikely",
             "action_taken": "none", "outcome": "recovering"}
    path = f"/trials/{TRIAL}/patients/P1/adverse-events"
    ae = platform.call("POST", path, json=event).json()["id"]
    corrected = platform.call("PUT", f"{path}/{ae}", json={**event, "severity": "severe", "relatedness": "possible",
                                                         "reason": "the source notes say severe"})
    assert corrected.status_code == 200, corrected.text
    assert problems(platform) == []

    edit_json(platform, "adverse_events", ae, "data_json", severity="mild", relatedness="not_related")
    assert changed(problems(platform), f"adverse event {TRIAL}/P1/{ae}", "relatedness", "severity")
    around_the_platform(platform, "UPDATE adverse_events SET updated_by = NULL WHERE id = :id", id=ae)
    assert changed(problems(platform), f"adverse event {TRIAL}/P1/{ae}", "corrected_by", "relatedness", "severity")
    copied = copy_in(platform, "adverse_events", ae)
    delete(platform, "adverse_events", ae)
    assert problems(platform) == [
        f"adverse event {TRIAL}/P1/{copied}: in the table but not in the audit trail (inserted unseen)",
        f"adverse event {TRIAL}/P1/{ae}: in the audit trail but not in the table (deleted unseen)"]


# ---- SAE reports: initial, follow-up, the sponsor's assessment ----------------------------------------------------
def _sae_with_follow_up_and_assessment(platform) -> tuple[int, list[int]]:
    with platform.db.write() as session:
        _, platform.tokens["pharmacovigilance"] = accounts.create_user(session, SYSTEM, "pv", "pharmacovigilance",
                                                                       ["S1", "S2"])
    randomized(platform)
    sae = platform.call("POST", f"/trials/{TRIAL}/patients/P1/saes", json={
        "term": "pneumonia", "onset_date": TODAY, "criteria": ["hospitalization"], "outcome": "recovering",
        "relatedness": "unlikely"}).json()["id"]
    path = f"/trials/{TRIAL}/patients/P1/saes/{sae}"
    assert platform.call("POST", f"{path}/follow-ups", "investigator",
                         json={"description": "antibiotics changed"}).status_code == 201
    assessed = platform.call("POST", f"{path}/sponsor-assessment", "pharmacovigilance",
                             json={"causality": "possible", "expectedness": "unexpected", "comment": "not in the IB"})
    assert assessed.status_code == 201, assessed.text
    with platform.db.read() as session:
        reports = list(session.execute(text("SELECT id FROM sae_reports WHERE sae_id = :s ORDER BY id"),
                                       {"s": sae}).scalars())
    return sae, reports


def test_sae_reports_are_reconciled_one_by_one_and_a_hidden_susar_is_named(platform):
    sae, (_initial, follow_up, assessment) = _sae_with_follow_up_and_assessment(platform)
    assert problems(platform) == []

    # The sponsor's "unexpected" turned into "expected": the SUSAR and its 7- or 15-day clock would vanish.
    edit_json(platform, "sae_reports", assessment, "data_json", expectedness="expected")
    edit_json(platform, "sae_reports", follow_up, "data_json", description="nothing new")
    found = problems(platform)
    assert changed(found, f"SAE {TRIAL}/P1/{sae}/report-3", "expectedness"), found
    assert changed(found, f"SAE {TRIAL}/P1/{sae}/report-2", "description"), found
    copy_in(platform, "sae_reports", follow_up)
    assert f"SAE {TRIAL}/P1/{sae}/report-4: in the table but not in the audit trail (inserted unseen)" \
        in problems(platform)
    around_the_platform(platform, "DELETE FROM sae_reports WHERE id >= :id", id=assessment)
    found = problems(platform)
    assert f"SAE {TRIAL}/P1/{sae}/report-3: in the audit trail but not in the table (deleted unseen)" in found
    assert len(found) == 2, found  # report-2 changed, report-3 deleted


def test_an_sae_without_its_initial_report_row_is_read_from_its_sae_row_which_is_checked(platform):
    """SAEs reported before the reports table existed have no initial report row; the SAE row stands for it."""
    sae, (initial, _follow_up, _assessment) = _sae_with_follow_up_and_assessment(platform)
    delete(platform, "sae_reports", initial)
    assert problems(platform) == []
    edit_json(platform, "serious_adverse_events", sae, "data_json", term="cough")
    assert changed(problems(platform), f"SAE {TRIAL}/P1/{sae}", "term")


# ---- data queries -------------------------------------------------------------------------------------------------
def test_a_query_raised_answered_closed_and_reopened_is_reconciled_and_a_quiet_close_is_named(platform):
    randomized(platform)
    raised = platform.call("POST", f"/trials/{TRIAL}/patients/P1/queries", "monitor",
                           json={"form": "screening", "field": "nihss", "text": "The source says 14; please check"})
    assert raised.status_code == 201, raised.text
    query = raised.json()["id"]
    path = f"/trials/{TRIAL}/queries/{query}"
    assert platform.call("POST", f"{path}/answer", json={"answer": "12 is right"}).status_code == 200
    assert platform.call("POST", f"{path}/close", "monitor", json={"note": "accepted"}).status_code == 200
    assert platform.call("POST", f"{path}/reopen", "monitor", json={"reason": "the scan says 14"}).status_code == 200
    assert platform.call("POST", f"{path}/answer", json={"answer": "12 at the first exam"}).status_code == 200
    assert problems(platform) == []

    around_the_platform(platform, "UPDATE data_queries SET status = 'closed', closed_by = 'monitor' WHERE id = :id",
                        id=query)
    assert changed(problems(platform), f"data query {TRIAL}/P1/{query}", "closed_by", "status")
    copied = copy_in(platform, "data_queries", query)
    delete(platform, "data_queries", query)
    assert problems(platform) == [
        f"data query {TRIAL}/P1/{copied}: in the table but not in the audit trail (inserted unseen)",
        f"data query {TRIAL}/P1/{query}: in the audit trail but not in the table (deleted unseen)"]


# ---- source data verification -------------------------------------------------------------------------------------
def _marks(platform) -> list[int]:
    with platform.db.read() as session:
        return list(session.execute(text("SELECT id FROM source_verifications ORDER BY id")).scalars())


def verify_baseline(platform):
    answer = platform.call("POST", f"/trials/{TRIAL}/patients/P1/verifications", "monitor", json={"form": "baseline"})
    assert answer.status_code == 201, answer.text


def test_a_verification_cleared_by_a_correction_is_reconciled_and_a_restored_mark_is_named(platform):
    randomized(platform)
    baseline(platform, 12)
    verify_baseline(platform)
    baseline(platform, 10, reason="transcription error")  # clears the mark
    verify_baseline(platform)
    first, second = _marks(platform)
    assert problems(platform) == []

    # The cleared mark put back: the monitor's list would show the corrected form as verified.
    around_the_platform(platform, "UPDATE source_verifications SET cleared_at = NULL, cleared_why = NULL "
                                  "WHERE id = :id", id=first)
    assert changed(problems(platform), f"source verification {TRIAL}/P1/{first}", "cleared", "cleared_why")
    copied = copy_in(platform, "source_verifications", second)
    delete(platform, "source_verifications", first)
    assert problems(platform) == [
        f"source verification {TRIAL}/P1/{copied}: in the table but not in the audit trail (inserted unseen)",
        f"source verification {TRIAL}/P1/{first}: in the audit trail but not in the table (deleted unseen)"]


def test_a_mark_cleared_by_verifying_again_is_what_the_trail_implies(platform):
    """Values changed around the platform keep their mark; verifying again clears it with no event of its own."""
    randomized(platform)
    baseline(platform, 12)
    verify_baseline(platform)
    around_the_platform(platform, "UPDATE visit_records SET values_json = :v", v='{"nihss":9}')
    verify_baseline(platform)
    first, _second = _marks(platform)
    assert problems(platform) == [f"visit {TRIAL}/P1/baseline: values differ from the audit trail (changed unseen)"]
    around_the_platform(platform, "UPDATE source_verifications SET cleared_why = 'routine' WHERE id = :id", id=first)
    assert changed(problems(platform), f"source verification {TRIAL}/P1/{first}", "cleared_why")


# ---- record signatures --------------------------------------------------------------------------------------------
def test_a_signature_invalidated_by_a_change_is_reconciled_and_a_revived_one_is_named(platform):
    randomized(platform)
    baseline(platform, 12)
    signed = platform.call("POST", f"/trials/{TRIAL}/patients/P1/signatures", "investigator",
                           json={"form": None, "meaning": "review", "password": PASSWORD})
    assert signed.status_code == 201, signed.text
    signature = signed.json()["id"]
    baseline(platform, 10, reason="transcription error")  # invalidates the casebook's signature
    assert problems(platform) == []

    # The invalidation wiped: the changed casebook would look signed (and a new hash would hide the mismatch).
    around_the_platform(platform, "UPDATE record_signatures SET invalidated_at = NULL, invalidated_why = NULL, "
                                  "content_sha256 = :h WHERE id = :id", h="0" * 64, id=signature)
    assert changed(problems(platform), f"signature {TRIAL}/P1/{signature}", "content_sha256", "invalidated_at",
                   "invalidated_why")
    copied = copy_in(platform, "record_signatures", signature)
    delete(platform, "record_signatures", signature)
    assert problems(platform) == [
        f"signature {TRIAL}/P1/{copied}: in the table but not in the audit trail (inserted unseen)",
        f"signature {TRIAL}/P1/{signature}: in the audit trail but not in the table (deleted unseen)"]


# ---- freezes and locks --------------------------------------------------------------------------------------------
def test_freezes_and_locks_set_and_released_are_reconciled_and_a_lifted_lock_is_named(platform):
    randomized(platform)
    path = f"/trials/{TRIAL}/locks"
    freeze = platform.call("POST", path, "admin", json={"level": "freeze", "reason": "interim cleaning",
                                                       "patient_id": "P1", "form": "screening"}).json()["id"]
    assert platform.call("POST", f"{path}/{freeze}/release", "admin",
                         json={"reason": "query answered"}).status_code == 200
    lock = platform.call("POST", path, "admin", json={"level": "lock", "reason": "final analysis"})
    assert lock.status_code == 201, lock.text
    locked = lock.json()["id"]
    assert problems(platform) == []

    # The database lock lifted quietly, and the released freeze made to look never released.
    around_the_platform(platform, "UPDATE data_locks SET released_at = locked_at, released_by = 'admin', "
                                  "release_reason = 'x' WHERE id = :id", id=locked)
    around_the_platform(platform, "UPDATE data_locks SET released_at = NULL WHERE id = :id", id=freeze)
    found = problems(platform)
    assert changed(found, f"freeze or lock {TRIAL}/{locked}", "in_force", "release_reason", "released_at",
                   "released_by"), found
    assert changed(found, f"freeze or lock {TRIAL}/{freeze}", "in_force", "released_at"), found
    copied = copy_in(platform, "data_locks", freeze)
    delete(platform, "data_locks", locked)
    found = problems(platform)
    assert f"freeze or lock {TRIAL}/{copied}: in the table but not in the audit trail (inserted unseen)" in found
    assert f"freeze or lock {TRIAL}/{locked}: in the audit trail but not in the table (deleted unseen)" in found


# ---- protocol amendments ------------------------------------------------------------------------------------------
def test_an_amendment_is_reconciled_and_a_backdated_or_rewritten_one_is_named(platform, tmp_path):
    data = yaml.safe_load(resources.files("stroketrial.protocol").joinpath("builtin", "amass-2.yaml").read_text())
    for criterion in data["inclusion"]:
        if criterion["id"] == "nihss":
            criterion["rule"]["value"] = 8
            criterion["text"] = "Baseline NIHSS scores ≥ 8 (amendment 1)"
    path = tmp_path / "amass-2-v2.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False, allow_unicode=True))
    with platform.db.write() as session:
        assert amendments.amend_protocol(session, SYSTEM, TRIAL, path, dt.date.today())["version"] == 2
    assert problems(platform) == []

    with platform.db.read() as session:
        row_id, stored = session.execute(text("SELECT id, protocol_json FROM protocol_versions")).one()
    rewritten = stored.replace("(amendment 1)", "(amendment 1, as approved)")
    assert rewritten != stored
    # In force a year earlier (patients screened since would move to it), and its text rewritten.
    around_the_platform(platform, "UPDATE protocol_versions SET effective_from = :at, protocol_json = :p",
                        at=dt.datetime(dt.date.today().year - 1, 1, 1), p=rewritten)
    assert changed(problems(platform), f"protocol {TRIAL}/version-2", "effective_from", "protocol_sha256")
    copy_in(platform, "protocol_versions", row_id, version=3)
    delete(platform, "protocol_versions", row_id)
    assert problems(platform) == [
        f"protocol {TRIAL}/version-3: in the table but not in the audit trail (inserted unseen)",
        f"protocol {TRIAL}/version-2: in the audit trail but not in the table (deleted unseen)"]
