"""Issue 20, defects 9 and 10, on SQLite and PostgreSQL (IMPACT-LVO, double-blind).

10: emergency unblinding is post/redirect/get (a reload or a resubmitted form records nothing more), the recorded
result can be read again by those entitled, the button gives way to a link once unblinded, and the DSMB and the
admin read the unblinding log from the dashboard; a coordinator and a monitor see the same pages for a patient of
either arm.
9: the protocol's edit checks run on the visit form as it is filled (the check endpoint) and on save: a warning is
saved only when confirmed with a reason (audited), an error never; messages name fields by label; what was typed
comes back on a refusal."""

from __future__ import annotations

import datetime as dt
import json
import re

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select

from stroketrial.protocol import load_builtin
from stroketrial.service import SYSTEM, accounts, patients, randomize, trials
from stroketrial.service.accounts import Actor
from stroketrial.store import Database
from stroketrial.store.models import Allocation, AuditEvent, DataQuery, Patient, Unblinding, VisitRecord
from stroketrial.web import create_app

from ..trials import impact_lvo
from ..trials.helpers import happening_now

TRIAL = impact_lvo.TRIAL
PASSWORD = "password-1"
USERS = {"coordinator": "coordinator", "investigator": "investigator", "investigator2": "investigator",
         "dsmb": "dsmb", "admin": "admin", "monitor": "monitor"}
COORDINATOR = Actor("coordinator", "coordinator", frozenset({"S1"}))
TODAY = dt.datetime.now(dt.UTC).date().isoformat()
REASON = "suspected GI bleeding, steroid decision"


@pytest.fixture
def db(database_url, monkeypatch):
    monkeypatch.delenv("STROKETRIAL_SMTP_HOST", raising=False)
    database = Database(database_url)
    database.migrate()
    with database.write() as session:
        trials.create_trial(session, SYSTEM, TRIAL, ["S1"])
        for name, role in USERS.items():
            accounts.create_user(session, SYSTEM, name, role, [] if role == "admin" else ["S1"], password=PASSWORD)
    enrol(database, "P1")
    yield database
    database.dispose()


def enrol(db: Database, code: str) -> str:
    """Register and randomize one eligible patient; its arm."""
    data = dict(happening_now(impact_lvo.ELIGIBLE))
    attestations = data.pop("attestations")
    with db.write() as session:
        patients.register(session, COORDINATOR, TRIAL, code, "S1", data, attestations)
    with db.write() as session:
        randomize.randomize(session, COORDINATOR, TRIAL, code, f"key-{code}")
    return arm_of(db, code)


def arm_of(db: Database, code: str) -> str:
    with db.read() as session:
        return session.execute(select(Allocation.arm).join(Patient, Allocation.patient_id == Patient.id)
                               .where(Patient.code == code)).scalar_one()


def csrf_of(html: str) -> str:
    return re.search(r'name="csrf" value="([^"]+)"', html).group(1)


def client_for(db: Database, user: str) -> TestClient:
    client = TestClient(create_app(db))
    token = csrf_of(client.get("/login").text)
    response = client.post("/login", data={"csrf": token, "name": user, "password": PASSWORD, "next": "/"})
    assert response.status_code == 200 and "Your trials" in response.text
    return client


def unblindings(db: Database) -> int:
    with db.read() as session:
        return len(session.execute(select(Unblinding)).scalars().all())


def arm_name(db: Database, code: str) -> str:
    return {a.id: a.name for a in load_builtin(TRIAL).arms}[arm_of(db, code)]


def unblind(client: TestClient, code: str = "P1", **kwargs):
    page = client.get(f"/trials/{TRIAL}/patients/{code}/unblind").text
    return client.post(f"/trials/{TRIAL}/patients/{code}/unblind", data={"csrf": csrf_of(page), "reason": REASON},
                       **kwargs)


# ---- defect 10: emergency unblinding ------------------------------------------------------------------------

def test_unblinding_posts_once_and_redirects_to_a_result_that_a_reload_only_reads(db):
    investigator = client_for(db, "investigator")
    page = investigator.get(f"/trials/{TRIAL}/patients/P1/unblind").text
    posted = investigator.post(f"/trials/{TRIAL}/patients/P1/unblind", data={"csrf": csrf_of(page), "reason": REASON},
                               follow_redirects=False)
    assert posted.status_code == 303  # before: 200, the result page as the answer to the POST
    result_url = posted.headers["location"]
    assert re.fullmatch(rf"/trials/{TRIAL}/patients/P1/unblindings/\d+", result_url)
    for _ in range(2):  # reloading the result
        result = investigator.get(result_url)
        assert result.status_code == 200 and arm_name(db, "P1") in result.text and REASON in result.text
        assert 'data-testid="unblinded-by">investigator<' in result.text and "UTC" in result.text
    # the form resubmitted (the back button, a double tap): the record made, nothing more
    again = investigator.post(f"/trials/{TRIAL}/patients/P1/unblind", data={"csrf": csrf_of(page), "reason": REASON},
                              follow_redirects=False)
    assert again.status_code == 303 and again.headers["location"] == result_url
    assert unblindings(db) == 1
    with db.read() as session:
        events = session.execute(select(AuditEvent).where(AuditEvent.action == "emergency_unblinding")).scalars()
        assert len(list(events)) == 1


def test_once_unblinded_the_form_gives_way_to_the_recorded_result(db):
    investigator = client_for(db, "investigator")
    unblind(investigator)
    page = investigator.get(f"/trials/{TRIAL}/patients/P1/unblind").text
    assert 'data-testid="unblind-form"' not in page and 'data-testid="already-unblinded"' in page
    link = re.search(r'href="([^"]+)" data-testid="unblinding-result-link"', page).group(1)
    assert arm_name(db, "P1") in investigator.get(link).text
    assert 'data-testid="past-unblindings"' in page and REASON in page
    # the patient page offers the recorded result in place of the unblinding button
    patient_page = investigator.get(f"/trials/{TRIAL}/patients/P1").text
    assert 'data-testid="unblinded-result"' in patient_page and f'href="{link}"' in patient_page
    assert "/unblind\"" not in patient_page
    # another investigator at the site sees that it happened, never the arm, and may unblind for themself
    other = client_for(db, "investigator2").get(f"/trials/{TRIAL}/patients/P1/unblind").text
    assert 'data-testid="unblind-form"' in other and REASON in other and "not shown to you" in other
    assert arm_name(db, "P1") not in other
    assert client_for(db, "investigator2").get(link).status_code == 200
    assert arm_name(db, "P1") not in client_for(db, "investigator2").get(link).text


def test_the_dsmb_and_the_admin_read_the_unblinding_log_from_the_dashboard(db):
    unblind(client_for(db, "investigator"))
    arms = [a.name for a in load_builtin(TRIAL).arms]
    for user, sees in (("dsmb", True), ("admin", False)):
        client = client_for(db, user)
        dashboard = client.get(f"/trials/{TRIAL}/dashboard").text
        assert 'data-testid="unblinding-log-link"' in dashboard  # before: no unblinding log on any page
        log = client.get(f"/trials/{TRIAL}/unblindings")
        assert log.status_code == 200 and REASON in log.text and "P1" in log.text
        assert (arm_name(db, "P1") in log.text) is sees
        if not sees:
            assert not any(re.search(rf"\b{re.escape(a)}\b", log.text, re.IGNORECASE) for a in arms)
        record = re.search(r'href="(/trials/[^"]+/unblindings/\d+)"', log.text).group(1)
        shown = client.get(record)
        assert shown.status_code == 200 and (arm_name(db, "P1") in shown.text) is sees
    for user in ("coordinator", "monitor", "investigator"):
        client = client_for(db, user)
        assert 'unblinding-log-link' not in client.get(f"/trials/{TRIAL}/dashboard").text
        assert client.get(f"/trials/{TRIAL}/unblindings").status_code == 403


def _normalised(html: str, code: str, kit: str | None) -> str:
    html = re.sub(r'name="csrf" value="[^"]+"|data-csrf="[^"]+"', "", html).replace(code, "PX")
    if kit:
        html = html.replace(kit, "KIT")
    return re.sub(r"\d", "0", html)


def test_a_coordinator_and_a_monitor_see_the_same_pages_for_a_patient_of_either_arm(db):
    arms = {arm_of(db, "P1"): "P1"}
    n = 1
    while len(arms) < 2:
        n += 1
        arms.setdefault(enrol(db, f"P{n}"), f"P{n}")
    investigator = client_for(db, "investigator")
    for code in arms.values():
        unblind(investigator, code)
    names = [a.name for a in load_builtin(TRIAL).arms]
    with db.read() as session:
        kits = dict(tuple(r) for r in session.execute(select(Patient.code, Allocation.kit)
                                    .join(Allocation, Allocation.patient_id == Patient.id)).all())
    ids = {code: re.search(r"/unblindings/(\d+)", investigator.get(f"/trials/{TRIAL}/patients/{code}/unblind").text)
           .group(1) for code in arms.values()}
    for user in ("coordinator", "monitor"):
        client = client_for(db, user)
        pages = []
        for code in arms.values():
            seen = []
            for url in (f"/trials/{TRIAL}/patients/{code}", f"/trials/{TRIAL}/patients/{code}/visits",
                        f"/trials/{TRIAL}/patients/{code}/unblind",
                        f"/trials/{TRIAL}/patients/{code}/unblindings/{ids[code]}", f"/trials/{TRIAL}/unblindings"):
                response = client.get(url)
                seen.append((response.status_code, _normalised(response.text, code, kits[code])))
                if "unblind" in url:
                    assert not any(re.search(rf"\b{re.escape(a)}\b", response.text, re.IGNORECASE) for a in names)
            pages.append(seen)
        assert [s for s, _ in pages[0]] == [200, 200, 403, 403, 403]
        assert pages[0] == pages[1], user


# ---- defect 9: plausibility on follow-up ----------------------------------------------------------------------

D90 = f"/trials/{TRIAL}/patients/P1/visits/d90"


def d90_form(client: TestClient, **changes) -> dict:
    page = client.get(f"/trials/{TRIAL}/patients/P1/visits").text
    return {"csrf": csrf_of(page), "visit_date": TODAY, "mrs": "6", "sae": "no", "death": "no", **changes}


def stored_d90(db: Database) -> VisitRecord | None:
    with db.read() as session:
        return session.execute(select(VisitRecord).where(VisitRecord.visit_id == "d90")).scalar_one_or_none()


def test_a_day_90_visit_on_day_0_with_mrs_6_and_no_death_is_not_saved_without_a_confirmed_reason(db):
    client = client_for(db, "coordinator")
    refused = client.post(D90, data=d90_form(client), follow_redirects=False)
    assert refused.status_code == 422  # before: 303, saved without a warning
    assert stored_d90(db) is None
    text = refused.text
    warnings = re.search(r'data-testid="check-warnings">(.*?)</div>', text, re.S).group(1)
    assert "Visit date" in warnings and "outside the protocol&#39;s window" in warnings and "day 0" in warnings
    assert "<b>death</b>" in warnings and "modified Rankin Scale is 6 and death is no" in warnings
    assert "mrs_6_is_death" not in text and "visit_date</" not in warnings
    # what was typed comes back
    assert re.search(r'name="mrs"[^>]*value="6"', text)
    assert re.search(r'name="death" value="no" checked', text)
    # ticked without a reason: still refused, by name
    form = d90_form(client, confirm="yes", confirmed=re.findall(r'name="confirmed" value="([^"]+)"', text))
    form["confirmed"] = [m.replace("&#39;", "'") for m in form["confirmed"]]
    again = client.post(D90, data=form, follow_redirects=False)
    assert again.status_code == 422 and "give the reason the values are right" in again.text
    assert stored_d90(db) is None
    # confirmed with a reason: saved, the reason audited and given as the answer to the automatic queries
    saved = client.post(D90, data={**form, "confirm_reason": "patient seen early, died on day 0 per the notes"},
                        follow_redirects=False)
    assert saved.status_code == 303 and stored_d90(db) is not None
    with db.read() as session:
        event = session.execute(select(AuditEvent).where(AuditEvent.action == "confirm_edit_checks")).scalar_one()
        assert event.reason == "patient seen early, died on day 0 per the notes"
        assert set(json.loads(event.after_json)["checks"]) == {"mrs_6_is_death", "visit_in_window"}
        queries = session.execute(select(DataQuery).where(DataQuery.origin == "edit_check")).scalars().all()
        assert {(q.check_id, q.status) for q in queries} == {("mrs_6_is_death", "answered"),
                                                             ("visit_in_window", "answered")}
        assert all("died on day 0 per the notes" in q.answer for q in queries)
    schedule = client.get(f"/trials/{TRIAL}/patients/P1/visits").text
    assert 'data-testid="outside-d90"' in schedule and "modified Rankin Scale 6" in schedule


def test_a_confirmation_covers_only_the_warnings_shown(db):
    client = client_for(db, "coordinator")
    form = d90_form(client, death="yes", confirm="yes", confirm_reason="seen early",
                    confirmed=["something else"])
    assert client.post(D90, data=form, follow_redirects=False).status_code == 422
    assert stored_d90(db) is None


def test_an_error_is_never_saved_and_keeps_what_was_typed(db):
    client = client_for(db, "coordinator")
    future = (dt.datetime.now(dt.UTC).date() + dt.timedelta(days=3)).isoformat()
    refused = client.post(D90, data=d90_form(client, visit_date=future, mrs="7", confirm="yes",
                                             confirm_reason="sure"), follow_redirects=False)
    assert refused.status_code == 422 and stored_d90(db) is None
    errors = re.search(r'data-testid="check-errors">(.*?)</div>', refused.text, re.S).group(1)
    assert "modified Rankin Scale" in errors and "in the future" in errors and "Visit date" in errors
    assert re.search(r'name="mrs"[^>]*value="7"', refused.text) and f'value="{future}"' in refused.text


def test_the_check_endpoint_answers_as_the_form_is_filled(db):
    client = client_for(db, "coordinator")
    form = d90_form(client)
    token = form.pop("csrf")
    answer = client.post(f"{D90}/check", data=form, headers={"X-CSRF-Token": token})
    assert answer.status_code == 200 and 'data-testid="check-warnings"' in answer.text
    assert "modified Rankin Scale is 6 and death is no" in answer.text and 'name="confirm_reason"' in answer.text
    fine = client.post(f"{D90}/check", data={**form, "death": "yes"}, headers={"X-CSRF-Token": token})
    assert "death is no" not in fine.text
    assert client.post(f"{D90}/check", data=form).status_code == 403  # the form token is checked
    assert stored_d90(db) is None
    page = client.get(f"/trials/{TRIAL}/patients/P1/visits").text
    assert 'data-check="/trials/' in page and '<script src="/static/visits.js"' in page
    assert client.get("/static/visits.js").status_code == 200
