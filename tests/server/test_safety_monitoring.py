"""Safety monitoring rules (issue 21), on SQLite and PostgreSQL: IMPACT-LVO's rule on sICH in the methylprednisolone
arm, with its minimum scaled down to 4 patients. sICH reported as SAEs in that arm cross the bound: the DSMB gets one
alert (not one per report); blinded roles get 403 on the rules' status and see in the audit trail only that a closed
message went to the DSMB."""

from __future__ import annotations

import datetime as dt
import json
from importlib import resources
from pathlib import Path

import pytest
import yaml
from fastapi.testclient import TestClient
from scipy import stats
from sqlalchemy import select

from stroketrial.service import SYSTEM, accounts, audit_trail, notifications, patients, randomize, safety_monitoring
from stroketrial.service import serious_adverse_events, trials
from stroketrial.service.accounts import Actor
from stroketrial.store import Database
from stroketrial.store.models import Allocation, Notification, Patient
from stroketrial.web import create_app

from ..trials import impact_lvo
from ..trials.helpers import happening_now

TRIAL = impact_lvo.TRIAL
SITE = "S1"
INVESTIGATOR = Actor("investigator", "investigator", frozenset({SITE}))
DSMB = Actor("dsmb", "dsmb", frozenset({SITE}))
MONITOR = Actor("monitor", "monitor", frozenset({SITE}))


def test_the_posterior_probability_is_the_beta_binomial_identity():
    """For integer parameters, P(Beta(a, b) > x) = P(Binomial(a + b - 1, x) <= a - 1): a closed form to check by."""
    for events, n, expected in [(3, 20, 0.06), (0, 12, 0.05), (9, 40, 0.18)]:
        a, b = 1 + events, 1 + n - events
        assert safety_monitoring.exceedance(events, n, expected) == pytest.approx(
            stats.binom.cdf(a - 1, a + b - 1, expected), abs=1e-12)


@pytest.fixture
def db(database_url, tmp_path):
    builtin = resources.files("stroketrial.protocol").joinpath("builtin", f"{TRIAL}.yaml")
    data = yaml.safe_load(builtin.read_text(encoding="utf-8"))
    for rule in data["safety_monitoring"]:
        rule["minimum_patients"] = 4
    path = Path(tmp_path) / f"{TRIAL}.yaml"
    path.write_text(yaml.safe_dump(data, allow_unicode=True), encoding="utf-8")
    database = Database(database_url)
    database.migrate()
    with database.write() as session:
        accounts.create_site(session, SYSTEM, SITE, "Tianjin")
        trials.create_trial(session, SYSTEM, str(path), [SITE])
        for name, role in (("dsmb", "dsmb"), ("statistician", "blinded_statistician"), ("monitor", "monitor"),
                           ("coordinator", "coordinator")):
            accounts.create_user(session, SYSTEM, name, role, [SITE], password="password-1")
    for k in range(12):
        code = f"P{k + 1:02d}"
        record = happening_now(impact_lvo.ELIGIBLE)
        attestations = record.pop("attestations")
        with database.write() as session:
            patients.register(session, INVESTIGATOR, TRIAL, code, SITE, record, attestations)
        with database.write() as session:
            randomize.randomize(session, INVESTIGATOR, TRIAL, code, f"key-{code}")
    yield database
    database.dispose()


def treated(db: Database) -> list[str]:
    with db.read() as session:
        return [code for code, arm in session.execute(select(Patient.code, Allocation.arm).join(
            Allocation, Allocation.patient_id == Patient.id)) if arm == "methylprednisolone"]


def report_sich(db: Database, code: str) -> None:
    with db.write() as session:
        serious_adverse_events.report_sae(session, INVESTIGATOR, TRIAL, code, {
            "term": "symptomatic intracranial haemorrhage", "onset_date": dt.date.today().isoformat(),
            "criteria": ["life_threatening"], "outcome": "recovering", "relatedness": "possible"})


def alerts(db: Database) -> list[dict]:
    with db.read() as session:
        return [n for n in notifications.inbox(session, DSMB) if n["kind"] == safety_monitoring.KIND]


def test_crossing_the_sich_bound_alerts_the_dsmb_once(db):
    methylprednisolone = treated(db)
    assert len(methylprednisolone) >= 4

    def sich_rule():
        with db.read() as session:
            return next(r for r in safety_monitoring.status(session, DSMB, TRIAL) if r["event"] == "sich")

    before = sich_rule()  # no sICH among the arm's patients: probably not above 6%
    assert before["events"] == 0 and not before["crossed"] and before["probability_above_expected"] < 0.9
    assert alerts(db) == []
    report_sich(db, methylprednisolone[0])
    after = sich_rule()
    n = len(methylprednisolone)
    assert after["events"] == 1 and after["patients"] == n
    assert after["probability_above_expected"] == pytest.approx(stats.binom.cdf(1, n + 1, 0.06))
    assert after["crossed"] == (after["probability_above_expected"] > 0.9)
    assert after["crossed"], "one sICH among a handful of patients: P(rate > 6%) > 0.9"
    assert len(alerts(db)) == 1
    with db.read() as session:  # the DSMB's email in Chinese is worded from the catalogs when it is stored
        row = session.execute(select(Notification).where(Notification.kind == safety_monitoring.KIND)).scalar_one()
        subject, body = notifications.email_text(row, "zh_Hans")
    assert subject == "[IMPACT-LVO] 非公开：致 DSMB 的消息" and "症状性颅内出血" in body and "/dsmb" in body  # noqa: RUF001
    assert "Safety monitoring rule" in row.body and "symptomatic intracranial haemorrhage" in row.body
    report_sich(db, methylprednisolone[1])
    assert len(alerts(db)) == 1  # once per rule
    with db.read() as session:
        monitor_inbox = notifications.inbox(session, MONITOR)
        rows, columns = audit_trail.audit_rows(session, Actor("admin", "admin", frozenset()))
    assert not [n for n in monitor_inbox if n["kind"] == safety_monitoring.KIND]
    closed = [r for r in rows if r["entity"] == "notification" and "closed message" in r["after"]]
    assert len(closed) == 1 and json.loads(closed[0]["after"]) == {"kind": "a closed message to the DSMB"}
    assert "hash" not in columns and not any("sich_methylprednisolone" in r["after"] for r in rows)


def test_the_rules_status_is_closed_to_blinded_roles(db):
    client = TestClient(create_app(db))
    with db.write() as session:
        tokens = {name: accounts.issue_token(session, session.execute(
            select(accounts.User).where(accounts.User.name == name)).scalar_one())
            for name in ("dsmb", "statistician", "monitor", "coordinator")}
    url = f"/api/v1/trials/{TRIAL}/safety-monitoring"
    for name in ("statistician", "monitor", "coordinator"):
        assert client.get(url, headers={"Authorization": f"Bearer {tokens[name]}"}).status_code == 403, name
    answer = client.get(url, headers={"Authorization": f"Bearer {tokens['dsmb']}"})
    assert answer.status_code == 200 and {r["rule"] for r in answer.json()} == {
        "sich_methylprednisolone", "mortality_methylprednisolone"}
