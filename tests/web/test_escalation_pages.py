"""AMASS-1's dose-escalation pages without a browser, on SQLite and PostgreSQL: the escalation table, enrolment
into the open cohort, the investigator's DLT assessment and the safety review committee's signed decision. Each
page is offered only to the roles that may use it; a stale enrolment page, a DLT form with errors and a wrong
signature password are refused with words that name what is wrong, and store nothing."""

from __future__ import annotations

import datetime as dt
import html
import re

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select, update

from stroketrial.protocol import load_builtin
from stroketrial.service import SYSTEM, accounts, escalation, patients, signatures, trials
from stroketrial.service.accounts import Actor
from stroketrial.store import Database
from stroketrial.store.models import AuditEvent, DltAssessment, EscalationAssignment, EscalationDecision, Site
from stroketrial.web import create_app

from ..trials import amass1, amass2
from ..trials.helpers import happening_now

TRIAL = amass1.TRIAL
PASSWORD = "password-1"
ROLES = {"coordinator": "coordinator", "investigator": "investigator", "committee": "safety_review_committee",
         "dsmb": "dsmb", "assessor": "outcome_assessor"}
COORDINATOR = Actor("coordinator", "coordinator", frozenset({"S1"}))
INVESTIGATOR = Actor("investigator", "investigator", frozenset({"S1"}))
COMMITTEE = Actor("committee", "safety_review_committee", frozenset({"S1"}))


@pytest.fixture
def db(database_url):
    database = Database(database_url)
    database.migrate()
    with database.write() as session:
        trials.create_trial(session, SYSTEM, TRIAL, ["S1"])
        trials.create_trial(session, SYSTEM, amass2.TRIAL, ["S1"])
        for name, role in ROLES.items():
            accounts.create_user(session, SYSTEM, name, role, ["S1"], password=PASSWORD)
    yield database
    database.dispose()


def register(db: Database, *codes: str, trial: str = TRIAL, record: dict | None = None) -> None:
    data = dict(happening_now(record or amass1.ELIGIBLE))
    attestations = data.pop("attestations")
    with db.write() as session:
        for code in codes:
            patients.register(session, COORDINATOR, trial, code, "S1", data, attestations)


def enrol(db: Database, *codes: str) -> None:
    for code in codes:
        with db.write() as session:
            escalation.enrol(session, COORDINATOR, TRIAL, code, f"key-{code}")


def windows_pass(db: Database, hours: int = 49) -> None:
    """The DLT observation windows of everyone enrolled so far end (the clock moves on)."""
    with db.write() as session:
        for row in session.execute(select(EscalationAssignment)).scalars():
            row.enrolled_at = row.enrolled_at - dt.timedelta(hours=hours)


def no_dlt(db: Database, *codes: str) -> None:
    with db.write() as session:
        for code in codes:
            escalation.record_dlt(session, INVESTIGATOR, TRIAL, code, False, None, None, None)


def cohort_awaiting_the_committee(db: Database, codes=("E1", "E2", "E3")) -> None:
    register(db, *codes)
    enrol(db, *codes)
    windows_pass(db)
    no_dlt(db, *codes)


def client_for(db: Database, user: str | None) -> TestClient:
    client = TestClient(create_app(db))
    if user:
        token = csrf_of(client.get("/login").text)
        response = client.post("/login", data={"csrf": token, "name": user, "password": PASSWORD, "next": "/"})
        assert response.status_code == 200 and "Your trials" in response.text
    return client


def csrf_of(html: str) -> str:
    return re.search(r'name="csrf" value="([^"]+)"', html).group(1)


def hidden(html: str, name: str) -> str:
    return re.search(rf'name="{name}" value="([^"]*)"', html).group(1)


def visible(html: str) -> str:
    """The words a reader sees: no style sheet, no tags, no attributes."""
    return re.sub(r"<[^>]+>", " ", re.sub(r"<style>.*?</style>", "", html, flags=re.S))


def count(db: Database, model) -> int:
    with db.read() as session:
        return session.execute(select(func.count()).select_from(model)).scalar_one()


def test_the_table_shows_each_patient_what_waits_and_the_rule_in_words(db):
    register(db, "E1", "E2", "E3")
    enrol(db, "E1", "E2", "E3")
    investigator = client_for(db, "investigator")
    page = investigator.get(f"/trials/{TRIAL}/escalation")
    assert page.status_code == 200
    text = page.text
    assert "Observing the cohort" in text and "Waiting for DLT observation of E1, E2, E3 in cohort 1" in text
    assert text.count(">observing<") == 3 and "until " in text
    assert 'data-testid="record-E1"' in text  # the investigator records DLTs from the table
    # The DLT definitions by their text and window, never by their ids.
    assert "symptomatic intracranial haemorrhage within 48 h" in text and "48 h" in text
    assert "_" not in visible(text)  # no internal code (status, phase, rule, DLT id: all snake_case) is shown
    windows_pass(db)
    no_dlt(db, "E1")
    text = investigator.get(f"/trials/{TRIAL}/escalation").text
    assert ">no DLT<" in text and text.count(">assessment due<") == 2
    assert "Waiting for the investigator&#39;s DLT assessment of E2, E3" in text
    no_dlt(db, "E2", "E3")
    text = investigator.get(f"/trials/{TRIAL}/escalation").text
    assert "Waiting for the safety review committee" in text
    assert "treat the next cohort at level 2 (0.35 g/kg)" in text
    assert "0/3 with a DLT: escalate to the next level" in text  # the rule's own text
    assert "_" not in visible(text)
    assert 'data-testid="review-decision"' not in text  # the investigator does not sign
    committee = client_for(db, "committee").get(f"/trials/{TRIAL}/escalation").text
    assert 'data-testid="review-decision"' in committee and 'data-testid="record-E1"' not in committee
    dsmb = client_for(db, "dsmb").get(f"/trials/{TRIAL}/escalation")
    assert dsmb.status_code == 200 and "review-decision" not in dsmb.text and "record-E" not in dsmb.text
    refused = client_for(db, "assessor").get(f"/trials/{TRIAL}/escalation")
    assert refused.status_code == 403 and "reading safety data is for" in refused.text
    # A departure from the rule: who signed, when, why, and the mark.
    signature = signatures.sign(db, COMMITTEE, PASSWORD, "test")
    with db.write() as session:
        escalation.confirm_decision(session, COMMITTEE, TRIAL, 1, "treat", 1, None,
                                    "a borderline infusion reaction; 3 more at level 1", signature)
    text = investigator.get(f"/trials/{TRIAL}/escalation").text
    assert "departure from the rule" in text and "a borderline infusion reaction; 3 more at level 1" in text
    assert ">committee<" in text and "UTC" in text
    assert re.search(r"Open: <b>cohort 2</b> \(dose escalation\) at <b>level 1, 0.25 g/kg</b>", text)


def test_a_coordinator_enrols_from_the_trial_page_and_the_patient_page_shows_the_cohort(db):
    register(db, "P1", "P2")
    register(db, "R1", trial=amass2.TRIAL, record=amass2.ELIGIBLE)
    coordinator = client_for(db, "coordinator")
    trial_page = coordinator.get(f"/trials/{TRIAL}").text
    assert "awaiting enrolment" in trial_page and "awaiting randomization" not in trial_page
    assert 'data-testid="enrol-P1"' in trial_page and f'href="/trials/{TRIAL}/escalation"' in trial_page
    assert "Open: cohort 1 at level 1, 0.25 g/kg (3 places free)" in trial_page
    other = coordinator.get(f"/trials/{amass2.TRIAL}").text  # a randomized trial is as it was
    assert "awaiting randomization" in other and "escalation" not in other
    patient = coordinator.get(f"/trials/{TRIAL}/patients/P1").text
    assert 'data-testid="enrol"' in patient and "Enrol in the open cohort" in patient
    page = coordinator.get(f"/trials/{TRIAL}/patients/P1/enrol")
    assert page.status_code == 200
    assert re.search(r'data-testid="enrol-level">level 1</b>: <b data-testid="enrol-dose">0.25 g/kg', page.text)
    form = {"csrf": csrf_of(page.text), "key": hidden(page.text, "key"), "cohort": hidden(page.text, "cohort"),
            "level": hidden(page.text, "level"), "confirm": "yes"}
    assert (form["cohort"], form["level"]) == ("1", "1")
    done = coordinator.post(f"/trials/{TRIAL}/patients/P1/enrol", data=form, follow_redirects=False)
    assert done.status_code == 303 and done.headers["location"] == f"/trials/{TRIAL}/patients/P1"
    again = coordinator.post(f"/trials/{TRIAL}/patients/P1/enrol", data=form, follow_redirects=False)
    assert again.status_code == 303  # the same page sent twice: the first enrolment, not a second
    assert count(db, EscalationAssignment) == 1
    patient = coordinator.get(f"/trials/{TRIAL}/patients/P1").text
    assert re.search(r"Cohort <b>1</b> · level <b>1</b> · <b data-testid=\"enrolled-dose\">0.25 g/kg", patient)
    assert ">observing<" in patient and "dlt-link" not in patient  # the DLT is the investigator's
    assert 'data-testid="dlt-link"' in client_for(db, "investigator").get(f"/trials/{TRIAL}/patients/P1").text
    assert coordinator.get(f"/trials/{TRIAL}/patients/P1/enrol", follow_redirects=False).status_code == 303
    assert "cohort 1 · level 1, 0.25 g/kg" in coordinator.get(f"/trials/{TRIAL}").text
    for user in ("committee", "dsmb"):
        client = client_for(db, user)
        assert "enrol-P2" not in client.get(f"/trials/{TRIAL}").text
        assert 'data-testid="enrol"' not in client.get(f"/trials/{TRIAL}/patients/P2").text
        refused = client.get(f"/trials/{TRIAL}/patients/P2/enrol")
        assert refused.status_code == 403 and "enrolling in a dose-escalation cohort is for" in refused.text
    assert coordinator.get(f"/trials/{amass2.TRIAL}/patients/R1/enrol").status_code == 409  # no escalation


def test_a_stale_enrolment_page_is_refused_with_the_service_message(db):
    register(db, "S4")
    coordinator = client_for(db, "coordinator")
    stale = coordinator.get(f"/trials/{TRIAL}/patients/S4/enrol").text  # read while cohort 1 is open
    cohort_awaiting_the_committee(db)
    form = {"csrf": csrf_of(stale), "key": hidden(stale, "key"), "cohort": "1", "level": "1", "confirm": "yes"}
    waiting = coordinator.post(f"/trials/{TRIAL}/patients/S4/enrol", data=form)
    assert waiting.status_code == 409 and "safety review committee to confirm the decision" in waiting.text
    assert 'data-testid="enrol-now"' not in waiting.text  # nothing to press while enrolment is closed
    signature = signatures.sign(db, COMMITTEE, PASSWORD, "test")
    with db.write() as session:
        escalation.confirm_decision(session, COMMITTEE, TRIAL, 1, "treat", 2, None, "no concern", signature)
    refused = coordinator.post(f"/trials/{TRIAL}/patients/S4/enrol", data=form)
    assert refused.status_code == 409
    assert "cohort 1 is not open; enrolment is open in cohort 2 (level 2)" in refused.text
    assert 'data-testid="enrol-dose">0.35 g/kg' in refused.text  # the page now shows where the patient would go
    assert count(db, EscalationAssignment) == 3
    fresh = {**form, "key": hidden(refused.text, "key"), "cohort": hidden(refused.text, "cohort"),
             "level": hidden(refused.text, "level")}
    assert coordinator.post(f"/trials/{TRIAL}/patients/S4/enrol", data=fresh, follow_redirects=False
                            ).status_code == 303
    unticked = coordinator.post(f"/trials/{TRIAL}/patients/S4/enrol", data={**fresh, "confirm": ""})
    assert unticked.status_code == 422


def test_the_dlt_form_is_the_investigators_and_names_the_field_in_error(db):
    register(db, "F1")
    enrol(db, "F1")
    assert client_for(db, "coordinator").get(f"/trials/{TRIAL}/patients/F1/dlt").status_code == 403
    investigator = client_for(db, "investigator")
    page = investigator.get(f"/trials/{TRIAL}/patients/F1/dlt")
    assert page.status_code == 200
    assert "infusion reaction requiring treatment (anaphylaxis, urticaria, fever, rigors) within 24 h" in page.text
    assert 'name="reason"' not in page.text  # nothing recorded yet: no correction
    token = csrf_of(page.text)
    url = f"/trials/{TRIAL}/patients/F1/dlt"
    unanswered = investigator.post(url, data={"csrf": token})
    assert unanswered.status_code == 422 and 'data-testid="error-dlt">choose yes or no' in unanswered.text
    bad = investigator.post(url, data={"csrf": token, "dlt": "yes", "criterion": "", "event": " ",
                                       "onset": "2001-01-01"})
    assert bad.status_code == 422
    assert 'data-testid="error-criterion">choose the protocol&#39;s DLT' in bad.text
    assert 'data-testid="error-event">the event, 1-' in bad.text
    assert 'data-testid="error-onset">within the DLT&#39;s window' in bad.text
    assert 'value="yes" checked' in bad.text and 'value="2001-01-01"' in bad.text  # nothing typed is lost
    assert count(db, DltAssessment) == 0
    # "No DLT" sends none of the DLT's fields on, whatever they held when the answer changed.
    saved = investigator.post(url, data={"csrf": token, "dlt": "no", "criterion": "sich", "event": "x"},
                              follow_redirects=False)
    assert saved.status_code == 303 and saved.headers["location"] == f"/trials/{TRIAL}/escalation?saved=F1"
    assert "The DLT assessment of F1 is saved" in investigator.get(saved.headers["location"]).text
    correction = investigator.get(url).text
    assert "Correct the DLT assessment" in correction and 'name="reason"' in correction
    no_reason = investigator.post(url, data={"csrf": token, "dlt": "yes", "criterion": "infusion_reaction",
                                             "event": "urticaria", "onset": dt.date.today().isoformat()})
    assert no_reason.status_code == 422 and 'data-testid="error-reason">required for a correction' in no_reason.text
    corrected = investigator.post(url, data={"csrf": token, "dlt": "yes", "criterion": "infusion_reaction",
                                             "event": "urticaria", "onset": dt.date.today().isoformat(),
                                             "reason": "the reaction was reported late"}, follow_redirects=False)
    assert corrected.status_code == 303
    assert ">DLT<" in investigator.get(f"/trials/{TRIAL}/patients/F1").text
    register(db, "F2")
    not_enrolled = investigator.get(f"/trials/{TRIAL}/patients/F2/dlt")
    assert not_enrolled.status_code == 409 and "not enrolled in a dose cohort" in not_enrolled.text


def test_the_committee_signs_with_password_and_reason_and_a_wrong_one_stores_nothing(db):
    committee = client_for(db, "committee")
    nothing = committee.get(f"/trials/{TRIAL}/escalation/decision")
    assert nothing.status_code == 200 and "No escalation decision is waiting" in nothing.text
    cohort_awaiting_the_committee(db)
    for user in ("investigator", "coordinator", "dsmb"):
        refused = client_for(db, user).get(f"/trials/{TRIAL}/escalation/decision")
        assert refused.status_code == 403 and "confirming an escalation decision is for" in refused.text
    page = committee.get(f"/trials/{TRIAL}/escalation/decision")
    assert page.status_code == 200
    text = page.text
    assert "0/3 with a DLT: escalate to the next level" in text and "Treat the next cohort at level 2" in text
    assert 'data-testid="cohort-patient-E1"' in text and "0 of 3</b> with a DLT" in text
    assert "By entering my password I sign this decision" in text
    assert "_" not in visible(text)
    form = {"csrf": csrf_of(text), "after_cohort": hidden(text, "after_cohort"),
            "rule_action": hidden(text, "rule_action"), "rule_level": hidden(text, "rule_level"),
            "rule_mtd": hidden(text, "rule_mtd"), "choice": "rule", "reason": "no safety concern", "password": "nope"}
    url = f"/trials/{TRIAL}/escalation/decision"
    wrong = committee.post(url, data=form)
    assert wrong.status_code == 401
    assert 'data-testid="error-password">the signature needs your password; it did not match' in wrong.text
    assert "no safety concern" in wrong.text and 'value="nope"' not in wrong.text  # the password is not echoed
    no_reason = committee.post(url, data={**form, "reason": "  ", "password": PASSWORD})
    assert no_reason.status_code == 422 and 'data-testid="error-reason">required' in no_reason.text
    skip = committee.post(url, data={**form, "choice": "treat", "level": "3", "password": PASSWORD})
    assert skip.status_code == 422 and "would skip level 2" in skip.text and 'data-testid="error-decision"' in skip.text
    assert 'value="treat" required checked' in skip.text
    unchosen = committee.post(url, data={**form, "choice": "", "password": PASSWORD})
    assert unchosen.status_code == 422 and 'data-testid="error-decision">choose the rule' in unchosen.text
    with db.read() as session:
        assert count(db, EscalationDecision) == 0
        assert session.execute(select(AuditEvent).where(AuditEvent.action.in_(
            ("confirm_escalation", "deviate_escalation")))).first() is None
    signed = committee.post(url, data={**form, "password": PASSWORD}, follow_redirects=False)
    assert signed.status_code == 303 and signed.headers["location"] == f"/trials/{TRIAL}/escalation"
    table = committee.get(signed.headers["location"]).text
    assert "no safety concern" in table and ">committee<" in table and "departure from the rule</span>" not in table
    assert re.search(r"Open: <b>cohort 2</b> \(dose escalation\) at <b>level 2, 0.35 g/kg</b>", table)
    again = committee.post(url, data={**form, "password": PASSWORD})
    assert again.status_code == 409 and "no decision after cohort 1 to confirm" in again.text
    assert count(db, EscalationDecision) == 1


def test_signing_the_rule_from_a_page_read_before_a_dlt_correction_is_refused(db):
    cohort_awaiting_the_committee(db)
    committee = client_for(db, "committee")
    page = committee.get(f"/trials/{TRIAL}/escalation/decision").text
    with db.write() as session:  # the investigator corrects E1 to a DLT: the rule now says 3 more at level 1
        escalation.record_dlt(session, INVESTIGATOR, TRIAL, "E1", True, "infusion_reaction", "fever",
                              (dt.date.today() - dt.timedelta(days=2)).isoformat(), reason="reported late")
    form = {"csrf": csrf_of(page), "after_cohort": "1", "rule_action": hidden(page, "rule_action"),
            "rule_level": hidden(page, "rule_level"), "rule_mtd": "", "choice": "rule", "reason": "as the rule says",
            "password": PASSWORD}
    stale = committee.post(f"/trials/{TRIAL}/escalation/decision", data=form)
    assert stale.status_code == 409 and "changed since this page was shown" in stale.text
    assert "1/3 with a DLT: treat 3 more patients at the same level" in stale.text
    assert count(db, EscalationDecision) == 0


PAGES = [("GET", f"/trials/{TRIAL}/escalation"), ("GET", f"/trials/{TRIAL}/patients/P1/enrol"),
         ("POST", f"/trials/{TRIAL}/patients/P1/enrol"), ("GET", f"/trials/{TRIAL}/patients/P1/dlt"),
         ("POST", f"/trials/{TRIAL}/patients/P1/dlt"), ("GET", f"/trials/{TRIAL}/escalation/decision"),
         ("POST", f"/trials/{TRIAL}/escalation/decision")]


def test_the_pages_ask_a_signed_out_user_to_sign_in_and_posts_need_the_form_token(db):
    signed_out = client_for(db, None)
    for method, url in PAGES:
        response = signed_out.request(method, url, follow_redirects=False)
        assert response.status_code == 303 and response.headers["location"].startswith("/login?next="), url
    register(db, "P1")
    enrol(db, "P1")
    for user in ("coordinator", "investigator", "committee"):
        client = client_for(db, user)
        for method, url in PAGES:
            if method == "POST":
                response = client.post(url, data={"csrf": "forged", "confirm": "yes", "dlt": "no"})
                assert response.status_code == 403 and "CSRF check" in response.text, (user, url)
    assert count(db, DltAssessment) == 0 and count(db, EscalationAssignment) == 1


def test_a_correction_starts_from_what_is_recorded_and_is_not_offered_once_signed(db):
    investigator = client_for(db, "investigator")
    register(db, "K1", "K2", "K3")
    enrol(db, "K1", "K2", "K3")
    with db.write() as session:
        for code in ("K1", "K2", "K3"):
            escalation.record_dlt(session, INVESTIGATOR, TRIAL, code, True, "infusion_reaction", "urticaria",
                                  dt.date.today().isoformat())
    assert 'data-testid="event">urticaria</textarea>' in investigator.get(f"/trials/{TRIAL}/patients/K1/dlt").text
    assert "Correct the DLT assessment" in investigator.get(f"/trials/{TRIAL}/patients/K1").text
    signature = signatures.sign(db, COMMITTEE, PASSWORD, "test")
    with db.write() as session:
        escalation.confirm_decision(session, COMMITTEE, TRIAL, 1, "stop", None, None, "3 of 3 with a DLT", signature)
    assert 'data-testid="dlt-link"' not in investigator.get(f"/trials/{TRIAL}/patients/K1").text


def test_the_enrolment_page_names_an_excluding_criterion_in_the_protocols_words_and_the_times_at_the_site(db):
    """Issue 20, defects 8 and 7: no criterion id on the enrolment page, and the key facts' clock times in the
    site's time zone, named."""
    with db.write() as session:
        session.execute(update(Site).where(Site.code == "S1").values(timezone="Asia/Shanghai"))
    register(db, "X1", record={**amass1.ELIGIBLE, "age": 17})
    register(db, "P1")
    coordinator = client_for(db, "coordinator")
    refused = coordinator.get(f"/trials/{TRIAL}/patients/X1/enrol").text
    criterion = next(c for c in load_builtin(TRIAL).criteria if c.id == "age")
    assert 'data-testid="excluded-by"' in refused and html.escape(criterion.text, quote=True) in refused
    assert ">age<" not in refused
    page = coordinator.get(f"/trials/{TRIAL}/patients/P1/enrol").text
    assert "CST (Asia/Shanghai)" in page
