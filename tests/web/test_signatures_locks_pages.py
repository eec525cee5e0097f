"""Record signatures and data locks on the pages, without a browser, on SQLite and PostgreSQL: the patient page
shows the casebook's signatures and the investigator's "Sign the casebook" form (meaning and password); a wrong
password is refused and stores nothing; a later change shows the signature invalidated with why; the trial's
locks page sets a lock, shows it on the patient page, and releases it only with a reason."""

from __future__ import annotations

import datetime as dt
import re

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select

from stroketrial.service import SYSTEM, accounts, patients, randomize, trials, visits
from stroketrial.service.accounts import Actor
from stroketrial.service.errors import Conflict
from stroketrial.store import Database
from stroketrial.store.models import DataLock, RecordSignature
from stroketrial.web import create_app

from ..trials import amass2
from ..trials.helpers import happening_now

TRIAL = amass2.TRIAL
PASSWORD = "password-1"
USERS = {"coordinator": "coordinator", "investigator": "investigator", "admin": "admin", "dm": "data_manager",
         "assessor": "outcome_assessor"}
COORDINATOR = Actor("coordinator", "coordinator", frozenset({"S1"}))
TODAY = dt.date.today().isoformat()


@pytest.fixture
def db(database_url):
    database = Database(database_url)
    database.migrate()
    with database.write() as session:
        trials.create_trial(session, SYSTEM, TRIAL, ["S1"])
        for name, role in USERS.items():
            accounts.create_user(session, SYSTEM, name, role, [] if role == "admin" else ["S1"], password=PASSWORD)
    data = dict(happening_now({**amass2.ELIGIBLE, "bridging_thrombolysis": True}))
    attestations = data.pop("attestations", None)
    with database.write() as session:
        patients.register(session, COORDINATOR, TRIAL, "P1", "S1", data, attestations)
    with database.write() as session:
        randomize.randomize(session, COORDINATOR, TRIAL, "P1", "key-P1")
    with database.write() as session:
        visits.record_visit(session, COORDINATOR, TRIAL, "P1", "baseline", TODAY, {"nihss": 12})
    yield database
    database.dispose()


def client_for(db: Database, user: str) -> TestClient:
    client = TestClient(create_app(db))
    token = csrf_of(client.get("/login").text)
    response = client.post("/login", data={"csrf": token, "name": user, "password": PASSWORD, "next": "/"})
    assert response.status_code == 200 and "Your trials" in response.text
    return client


def csrf_of(html: str) -> str:
    return re.search(r'name="csrf" value="([^"]+)"', html).group(1)


def count(db: Database, model) -> int:
    with db.read() as session:
        return session.execute(select(func.count()).select_from(model)).scalar_one()


PATIENT_PAGE = f"/trials/{TRIAL}/patients/P1"


def test_the_investigator_signs_the_casebook_and_a_later_change_shows_it_invalidated(db):
    investigator = client_for(db, "investigator")
    page = investigator.get(PATIENT_PAGE).text
    assert 'data-testid="no-signatures"' in page and 'data-testid="sign-casebook"' in page
    assert "I have reviewed the data of this patient&#39;s casebook" in page
    token = csrf_of(page)
    wrong = investigator.post(f"{PATIENT_PAGE}/sign", data={"csrf": token, "meaning": "review", "password": "nope"})
    assert wrong.status_code == 401
    assert 'data-testid="error-password">the signature needs your password; it did not match' in wrong.text
    assert 'value="nope"' not in wrong.text and count(db, RecordSignature) == 0
    unchosen = investigator.post(f"{PATIENT_PAGE}/sign", data={"csrf": token, "password": PASSWORD})
    assert unchosen.status_code == 422 and 'data-testid="error-meaning"' in unchosen.text
    signed = investigator.post(f"{PATIENT_PAGE}/sign", data={"csrf": token, "meaning": "review",
                                                              "password": PASSWORD}, follow_redirects=False)
    assert signed.status_code == 303 and signed.headers["location"] == PATIENT_PAGE
    page = investigator.get(PATIENT_PAGE).text
    assert 'data-testid="signature-state">valid<' in page and count(db, RecordSignature) == 1

    coordinator = client_for(db, "coordinator")
    assert 'data-testid="sign-casebook"' not in coordinator.get(PATIENT_PAGE).text  # the investigator signs
    assert coordinator.get(f"{PATIENT_PAGE}/sign").status_code == 403
    with db.write() as session:
        visits.record_visit(session, COORDINATOR, TRIAL, "P1", "baseline", TODAY, {"nihss": 13}, "source says 13")
    page = coordinator.get(PATIENT_PAGE).text
    assert 'data-testid="signature-state">invalidated<' in page
    why = re.search(r'data-testid="invalidated-why">([^<]+)<', page).group(1)
    assert why.startswith("form baseline of patient P1 was changed by coordinator on ")


def test_the_locks_page_locks_a_patient_and_releases_only_with_a_reason(db):
    assert client_for(db, "assessor").get(f"/trials/{TRIAL}/locks").status_code == 403
    admin = client_for(db, "admin")
    page = admin.get(f"/trials/{TRIAL}/locks").text
    assert 'data-testid="no-locks"' in page and 'data-testid="lock-form"' in page
    token = csrf_of(page)
    no_reason = admin.post(f"/trials/{TRIAL}/locks", data={"csrf": token, "level": "lock", "patient_id": "P1",
                                                           "reason": " "})
    assert no_reason.status_code == 422 and count(db, DataLock) == 0
    locked = admin.post(f"/trials/{TRIAL}/locks", data={"csrf": token, "level": "lock", "patient_id": "P1",
                                                        "form": "", "reason": "casebook signed"},
                        follow_redirects=False)
    assert locked.status_code == 303
    with db.read() as session:
        lock_id = session.execute(select(DataLock.id)).scalar_one()
    page = admin.get(f"/trials/{TRIAL}/locks").text
    assert f'data-testid="lock-{lock_id}"' in page and "patient P1" in page and "casebook signed" in page
    patient_page = client_for(db, "coordinator").get(PATIENT_PAGE).text
    assert f"Lock #{lock_id} of patient P1: set by admin" in patient_page
    with db.write() as session, pytest.raises(Conflict, match=f"lock #{lock_id} of patient P1 by admin"):
        visits.record_visit(session, COORDINATOR, TRIAL, "P1", "d7", TODAY, {"nihss": 4})
    manager_page = client_for(db, "dm").get(f"/trials/{TRIAL}/locks").text
    assert f'data-testid="release-{lock_id}"' not in manager_page  # a lock is released by the admin alone
    unreasoned = admin.post(f"/trials/{TRIAL}/locks/{lock_id}/release", data={"csrf": token, "reason": ""})
    assert unreasoned.status_code == 422 and "reason" in unreasoned.text
    released = admin.post(f"/trials/{TRIAL}/locks/{lock_id}/release", data={"csrf": token, "reason": "query raised"},
                          follow_redirects=False)
    assert released.status_code == 303
    assert "released" in admin.get(f"/trials/{TRIAL}/locks").text
    with db.write() as session:
        visits.record_visit(session, COORDINATOR, TRIAL, "P1", "d7", TODAY, {"nihss": 4})
