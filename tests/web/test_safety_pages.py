"""The safety reporting pages without a browser, on SQLite and PostgreSQL (IMPACT-LVO, double-blind): the patient's
AE log (errors named by field, values kept; a correction with its reason), the SAE follow-up form on the visits
page, the trial's SAE list with its clocks and the sponsor's assessment form, the inbox (read and unread, and
what happened to the email) with its link in the navigation, and the unblinding page's promise kept."""

from __future__ import annotations

import datetime as dt
import re

import pytest
from fastapi.testclient import TestClient

from stroketrial.protocol import load_builtin
from stroketrial.service import SYSTEM, accounts, patients, randomize, serious_adverse_events, trials
from stroketrial.service.accounts import Actor
from stroketrial.store import Database
from stroketrial.web import create_app

from ..trials import impact_lvo
from ..trials.helpers import happening_now

TRIAL = impact_lvo.TRIAL
PASSWORD = "password-1"
USERS = {"coordinator": "coordinator", "investigator": "investigator", "dsmb": "dsmb", "admin": "admin",
         "pv": "pharmacovigilance", "assessor": "outcome_assessor", "monitor": "monitor"}
COORDINATOR = Actor("coordinator", "coordinator", frozenset({"S1"}))
TODAY = dt.date.today().isoformat()


@pytest.fixture
def db(database_url, monkeypatch):
    monkeypatch.delenv("STROKETRIAL_SMTP_HOST", raising=False)
    database = Database(database_url)
    database.migrate()
    data = dict(happening_now(impact_lvo.ELIGIBLE))
    attestations = data.pop("attestations")
    with database.write() as session:
        trials.create_trial(session, SYSTEM, TRIAL, ["S1"])
        for name, role in USERS.items():
            accounts.create_user(session, SYSTEM, name, role, [] if role == "admin" else ["S1"], password=PASSWORD)
        patients.register(session, COORDINATOR, TRIAL, "P1", "S1", data, attestations)
    with database.write() as session:
        randomize.randomize(session, COORDINATOR, TRIAL, "P1", "key-P1")
    yield database
    database.dispose()


def csrf_of(html: str) -> str:
    return re.search(r'name="csrf" value="([^"]+)"', html).group(1)


def client_for(db: Database, user: str) -> TestClient:
    client = TestClient(create_app(db))
    token = csrf_of(client.get("/login").text)
    response = client.post("/login", data={"csrf": token, "name": user, "password": PASSWORD, "next": "/"})
    assert response.status_code == 200 and "Your trials" in response.text
    return client


def report_sae(db: Database, **changes) -> int:
    body = {"term": "acute pancreatitis", "onset_date": TODAY, "criteria": ["hospitalization"],
            "outcome": "recovering", "relatedness": "possible", **changes}
    with db.write() as session:
        return serious_adverse_events.report_sae(session, Actor("investigator", "investigator", frozenset({"S1"})),
                                                 TRIAL, "P1", body)["id"]


def test_the_ae_log_page_names_each_bad_field_and_keeps_a_correction(db):
    client = client_for(db, "coordinator")
    page = client.get(f"/trials/{TRIAL}/patients/P1/adverse-events")
    assert page.status_code == 200 and "no licensed MedDRA dictionary" in page.text
    visits = client.get(f"/trials/{TRIAL}/patients/P1/visits").text
    assert 'data-testid="ae-log-link"' in visits
    bad = client.post(f"/trials/{TRIAL}/patients/P1/adverse-events",
                      data={"csrf": csrf_of(page.text), "term": "headache", "onset_date": "2999-01-01",
                            "severity": "awful", "relatedness": "possible", "action_taken": "none",
                            "outcome": "recovered"})
    assert bad.status_code == 422
    assert 'data-testid="error-severity"' in bad.text and 'data-testid="error-onset_date"' in bad.text
    assert 'data-testid="error-term"' not in bad.text and 'value="headache"' in bad.text
    good = {"csrf": csrf_of(page.text), "term": "headache", "onset_date": TODAY, "severity": "mild",
            "relatedness": "possible", "action_taken": "none", "outcome": "recovered"}
    done = client.post(f"/trials/{TRIAL}/patients/P1/adverse-events", data=good, follow_redirects=False)
    assert done.status_code == 303
    log = client.get(f"/trials/{TRIAL}/patients/P1/adverse-events").text
    assert "<td>headache</td>" in log and "<td>mild</td>" in log
    no_reason = client.post(f"/trials/{TRIAL}/patients/P1/adverse-events/1", data={**good, "severity": "moderate"})
    assert no_reason.status_code == 422 and 'data-testid="error-reason"' in no_reason.text
    fixed = client.post(f"/trials/{TRIAL}/patients/P1/adverse-events/1",
                        data={**good, "severity": "moderate", "reason": "severity misread"}, follow_redirects=False)
    assert fixed.status_code == 303
    log = client.get(f"/trials/{TRIAL}/patients/P1/adverse-events").text
    assert "<td>moderate</td>" in log and "corrected by coordinator" in log
    # The monitor reads the log but gets no form; the outcome assessor does not read it.
    monitor = client_for(db, "monitor").get(f"/trials/{TRIAL}/patients/P1/adverse-events").text
    assert "<td>headache</td>" in monitor and 'data-testid="ae-form"' not in monitor
    assert client_for(db, "assessor").get(f"/trials/{TRIAL}/patients/P1/adverse-events").status_code == 403


def test_an_sae_follow_up_from_the_visits_page_updates_its_clocks(db):
    sae = report_sae(db)
    client = client_for(db, "investigator")
    visits = client.get(f"/trials/{TRIAL}/patients/P1/visits").text
    assert f'data-testid="follow-up-{sae}"' in visits and f'data-testid="clock-{sae}-susar"' in visits
    sent = client.post(f"/trials/{TRIAL}/patients/P1/saes/{sae}/follow-up",
                       data={"csrf": csrf_of(visits), "description": "now in intensive care",
                             "outcome": "not_recovered", "criteria": ["hospitalization", "life_threatening"]},
                       follow_redirects=False)
    assert sent.status_code == 303
    page = client.get(f"/trials/{TRIAL}/patients/P1/visits").text
    assert "SUSAR to the authorities (7 days)" in page


def test_the_sae_list_shows_clocks_and_the_pv_assesses_and_alone_sees_the_susar_arm(db):
    sae = report_sae(db)
    arms = [a.name for a in load_builtin(TRIAL).arms]
    investigator = client_for(db, "investigator").get(f"/trials/{TRIAL}/saes").text
    assert f'data-testid="clock-{sae}-initial"' in investigator and "SUSAR" in investigator
    assert not any(arm in investigator for arm in arms) and f'data-testid="assess-{sae}"' not in investigator
    pv = client_for(db, "pv")
    page = pv.get(f"/trials/{TRIAL}/saes").text
    assert any(f"<td>{arm}</td>" in page for arm in arms)  # a SUSAR: unblinded for the PV alone
    done = pv.post(f"/trials/{TRIAL}/patients/P1/saes/{sae}/assessment",
                   data={"csrf": csrf_of(page), "causality": "possible", "expectedness": "unexpected",
                         "comment": "not in the SmPC", "reported_to_authorities_at": dt.datetime.now(dt.UTC)
                         .strftime("%Y-%m-%dT%H:%M")}, follow_redirects=False)
    assert done.status_code == 303
    page = pv.get(f"/trials/{TRIAL}/saes").text
    assert "(sponsor)" in page and "on time" in page


def test_the_inbox_page_lists_reads_and_says_the_email_was_not_sent(db):
    report_sae(db)
    client = client_for(db, "dsmb")
    home = client.get("/").text
    assert 'href="/inbox"' in home
    inbox = client.get("/inbox").text
    assert 'data-testid="unread">1 unread' in inbox
    assert "no SMTP server is configured" in inbox or "no notification recipients" in inbox
    notification = re.search(r'data-testid="read-(\d+)"', inbox).group(1)
    client.post(f"/inbox/{notification}/read", data={"csrf": csrf_of(inbox)})
    assert 'data-testid="unread">0 unread' in client.get("/inbox").text
    assert 'data-testid="unread">1 unread' in client_for(db, "pv").get("/inbox").text  # read is per user


def test_the_unblinding_page_informs_the_dsmb_with_the_arm_and_the_admin_without(db):
    investigator = client_for(db, "investigator")
    page = investigator.get(f"/trials/{TRIAL}/patients/P1/unblind").text
    revealed = investigator.post(f"/trials/{TRIAL}/patients/P1/unblind",
                                 data={"csrf": csrf_of(page), "reason": "suspected GI bleeding, steroid decision"})
    assert revealed.status_code == 200 and "notified in their inbox" in revealed.text
    arms = [w for a in load_builtin(TRIAL).arms for w in (a.id, a.name)]
    dsmb = client_for(db, "dsmb").get("/inbox").text
    admin = client_for(db, "admin").get("/inbox").text
    assert "Emergency unblinding" in dsmb and "Emergency unblinding" in admin
    assert any(f"Arm: {a}" in dsmb for a in arms)
    assert not any(re.search(rf"\b{re.escape(w)}\b", admin, re.IGNORECASE) for w in arms)
