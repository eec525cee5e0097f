"""The consent pages without a browser, on SQLite and PostgreSQL: the patient page's consent card (record, confirm,
withdraw, each offered only to the roles that may), the to-do list of deferred consents with overdue ones flagged,
labels rather than codes, and refusals in words."""

from __future__ import annotations

import datetime as dt
import re
from importlib import resources

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select

from stroketrial.service import SYSTEM, accounts, patients, randomize, trials
from stroketrial.service.accounts import Actor
from stroketrial.store import Database
from stroketrial.store.models import Consent, VisitRecord
from stroketrial.web import create_app

from ..trials import amass2
from ..trials.helpers import happening_now

TRIAL = "amass-2"
DEFERRED = "amass-2-deferred"
PASSWORD = "password-1"
ROLES = {"coordinator": "coordinator", "investigator": "investigator", "monitor": "monitor",
         "assessor": "outcome_assessor", "dsmb": "dsmb"}
COORDINATOR = Actor("coordinator", "coordinator", frozenset({"S1"}))


@pytest.fixture
def db(database_url, tmp_path):
    """AMASS-2, and a copy of it that allows deferred consent (72 h to confirm); none of the five built-in trials
    does, since no source describes it."""
    text = resources.files("stroketrial.protocol").joinpath("builtin", "amass-2.yaml").read_text(encoding="utf-8")
    text = text.replace("id: amass-2\n", f"id: {DEFERRED}\n", 1).replace(
        "  routes: [patient, representative]\n",
        "  routes: [patient, representative, deferred]\n  deferred_confirmation_hours: 72\n", 1)
    path = tmp_path / f"{DEFERRED}.yaml"
    path.write_text(text, encoding="utf-8")
    database = Database(database_url)
    database.migrate()
    with database.write() as session:
        trials.create_trial(session, SYSTEM, TRIAL, ["S1"])
        trials.create_trial(session, SYSTEM, str(path), ["S1"])
        for name, role in ROLES.items():
            accounts.create_user(session, SYSTEM, name, role, ["S1"], password=PASSWORD)
    yield database
    database.dispose()


def register(db: Database, code: str, trial: str = TRIAL, consent: bool = True) -> None:
    data = dict(happening_now(amass2.ELIGIBLE))
    attestations = dict(data.pop("attestations"))
    if not consent:
        del attestations["informed_consent"]
    with db.write() as session:
        patients.register(session, COORDINATOR, trial, code, "S1", data, attestations)


def client_for(db: Database, user: str) -> TestClient:
    client = TestClient(create_app(db))
    token = csrf_of(client.get("/login").text)
    response = client.post("/login", data={"csrf": token, "name": user, "password": PASSWORD, "next": "/"})
    assert response.status_code == 200 and "Your trials" in response.text
    return client


def csrf_of(html: str) -> str:
    return re.search(r'name="csrf" value="([^"]+)"', html).group(1)


def visible(html: str) -> str:
    return re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", re.sub(r"<style>.*?</style>", "", html, flags=re.S)))


def ago(**delta) -> str:
    return (dt.datetime.now(dt.UTC) - dt.timedelta(**delta)).strftime("%Y-%m-%dT%H:%M")


def consent_id(db: Database, code: str) -> int:
    with db.read() as session:
        from stroketrial.store.models import Patient
        patient = session.execute(select(Patient).where(Patient.code == code)).scalars().first()
        return max(session.execute(select(Consent.id).where(Consent.patient_id == patient.id)).scalars())


def test_a_deferred_consent_is_recorded_and_confirmed_from_the_patient_page(db):
    register(db, "D1", DEFERRED, consent=False)
    coordinator = client_for(db, "coordinator")
    page = coordinator.get(f"/trials/{DEFERRED}/patients/D1")
    assert page.status_code == 200
    text = page.text
    assert 'data-testid="consent"' in text and "no consent recorded" in text
    assert 'data-testid="consent-record-form"' in text
    assert "a legally authorised representative" in text and "deferred consent" in text
    done = coordinator.post(f"/trials/{DEFERRED}/patients/D1/consents", follow_redirects=False,
                            data={"csrf": csrf_of(text), "route": "deferred", "form_version": "1.0",
                                  "consented_at": ago(hours=1)})
    assert done.status_code == 303 and done.headers["location"].endswith("?consent=recorded#consent")
    text = coordinator.get(done.headers["location"]).text
    assert "deferred: awaiting confirmation" in text and 'data-testid="consent-confirm-form"' in text
    assert 'data-testid="patient-status">ELIGIBLE' in text  # the consent meets the consent criterion
    assert "_" not in visible(re.search(r'<section class="card" id="consent".*?</section>', text, re.S).group(0))
    # the monitor reads the card, and gets no form
    monitor = client_for(db, "monitor").get(f"/trials/{DEFERRED}/patients/D1").text
    assert "deferred: awaiting confirmation" in monitor and "consent-confirm-form" not in monitor
    assert "consent-record-form" not in monitor and "consent-withdraw-form" not in monitor
    # the blinded outcome assessor sees no consent card
    assert 'data-testid="consent"' not in client_for(db, "assessor").get(f"/trials/{DEFERRED}/patients/D1").text
    number = consent_id(db, "D1")
    refused = coordinator.post(f"/trials/{DEFERRED}/patients/D1/consents/{number}/confirmation",
                               data={"csrf": csrf_of(text), "route": "representative", "confirmed_at": ago(minutes=5)})
    assert refused.status_code == 422 and "signer and their relationship" in refused.text
    confirmed = coordinator.post(f"/trials/{DEFERRED}/patients/D1/consents/{number}/confirmation",
                                 follow_redirects=False,
                                 data={"csrf": csrf_of(text), "route": "representative", "confirmed_at": ago(minutes=5),
                                       "signer_name": "Zhang Wei", "signer_relationship": "son"})
    assert confirmed.status_code == 303
    text = coordinator.get(confirmed.headers["location"]).text
    assert "deferred: confirmed" in text and "Zhang Wei (son)" in text and "consent-confirm-form" not in text
    stale = coordinator.post(f"/trials/{DEFERRED}/patients/D1/consents/{number}/confirmation",
                             data={"csrf": "stale", "route": "patient", "confirmed_at": ago(minutes=1)})
    assert stale.status_code == 403


def test_the_to_do_list_flags_overdue_deferred_consents(db):
    register(db, "D1", DEFERRED, consent=False)
    register(db, "D2", DEFERRED, consent=False)
    coordinator = client_for(db, "coordinator")
    token = csrf_of(coordinator.get(f"/trials/{DEFERRED}/patients/D1").text)
    for code, hours in (("D1", 80), ("D2", 3)):
        answer = coordinator.post(f"/trials/{DEFERRED}/patients/{code}/consents", follow_redirects=False,
                                  data={"csrf": token, "route": "deferred", "form_version": "1.0",
                                        "consented_at": ago(hours=hours)})
        assert answer.status_code == 303, answer.text
    page = coordinator.get(f"/trials/{DEFERRED}/consents")
    assert page.status_code == 200
    text = page.text
    assert "1 confirmation is overdue" in text
    d1 = re.search(r'data-testid="pending-D1">.*?</tr>', text, re.S).group(0)
    d2 = re.search(r'data-testid="pending-D2">.*?</tr>', text, re.S).group(0)
    assert ">overdue<" in d1 and ">awaiting confirmation<" in d2
    assert text.index('pending-D1') < text.index('pending-D2')  # the earliest deadline first
    assert "was due" in coordinator.get(f"/trials/{DEFERRED}/patients/D1").text
    assert client_for(db, "monitor").get(f"/trials/{DEFERRED}/consents").status_code == 200
    assert client_for(db, "assessor").get(f"/trials/{DEFERRED}/consents").status_code == 403
    empty = coordinator.get(f"/trials/{TRIAL}/consents")
    assert empty.status_code == 200 and 'data-testid="no-pending"' in empty.text


def test_a_withdrawal_of_follow_up_from_the_patient_page_refuses_later_visits(db):
    register(db, "P1")
    with db.write() as session:
        randomize.randomize(session, COORDINATOR, TRIAL, "P1", "key-P1")
    investigator = client_for(db, "investigator")
    text = investigator.get(f"/trials/{TRIAL}/patients/P1").text
    assert "consent given" in text and "by the patient" in text  # recorded from the registration attestation
    assert "Stop study treatment and follow-up" in text and "withdraw the use of their data" in text
    number = consent_id(db, "P1")
    with db.write() as session:  # entered yesterday's 24-hour visit, randomized and consented the day before
        from stroketrial.store.models import Allocation
        allocation = session.execute(select(Allocation)).scalar_one()
        allocation.created_at -= dt.timedelta(days=2)
        row = session.get(Consent, number)
        row.consented_at -= dt.timedelta(days=2)
    yesterday = (dt.date.today() - dt.timedelta(days=1)).isoformat()
    put = investigator.post(f"/trials/{TRIAL}/patients/P1/visits/h24",
                            data={"csrf": csrf_of(text), "visit_date": yesterday, "nihss": "4"},
                            follow_redirects=False)
    withdrawn = investigator.post(f"/trials/{TRIAL}/patients/P1/consents/{number}/withdrawal", follow_redirects=False,
                                  data={"csrf": csrf_of(text), "scope": "follow_up",
                                        "reason": "the patient wants no more visits",
                                        # yesterday at noon, a day before today's visit at any hour of the day
                                        # (20 hours ago fell on today's date in the site's zone late in the day)
                                        "withdrawn_at": f"{yesterday}T12:00"})
    assert withdrawn.status_code == 303, withdrawn.text
    text = investigator.get(withdrawn.headers["location"]).text
    assert "Withdrawn" in text and "the patient wants no more visits" in text
    assert "Widen the withdrawal" in text and "Stop study treatment only" not in text  # never narrowed
    assert "consent-record-form" not in text  # a withdrawal is not undone by a new consent
    later = investigator.post(f"/trials/{TRIAL}/patients/P1/visits/d7",
                              data={"csrf": csrf_of(text), "visit_date": dt.date.today().isoformat(), "nihss": "3"})
    # the visits page answers a refused entry with its form again (422), carrying the service's words
    assert later.status_code in (409, 422) and "withdrew from follow-up" in later.text
    with db.read() as session:
        stored = [v.visit_id for v in session.execute(select(VisitRecord)).scalars()]
    assert put.status_code == 303 and stored == ["h24"]  # entered before the withdrawal: kept
    dose = investigator.get(f"/trials/{TRIAL}/patients/P1/dose")
    assert dose.status_code == 409 and "withdrew from study treatment" in dose.text
