"""AMASS-1's dose escalation in a real browser (Debian's Chromium, headless, Playwright) against a real server,
at tablet width: a coordinator enrols three patients into cohort 1 through the pages, the DLT windows pass, the
investigator records the three DLT assessments (a form error first), and the safety review committee member signs
the rule's decision with password and reason (a wrong password first). The escalation table then shows cohort 2
open at level 2, 0.35 g/kg. Screenshots of each step go to test-artifacts/screenshots/.
"""

from __future__ import annotations

import datetime as dt

import pytest
from sqlalchemy import select

from stroketrial.service import SYSTEM, accounts, patients, trials
from stroketrial.service.accounts import Actor
from stroketrial.store import Database
from stroketrial.store.models import EscalationAssignment, EscalationDecision

from ..process import ServerProcess
from ..trials import amass1
from ..trials.helpers import happening_now
from .test_browser import SHOTS, require_chromium

TRIAL = amass1.TRIAL
PASSWORD = "password-1"
USERS = {"coordinator": "coordinator", "investigator": "investigator", "committee": "safety_review_committee"}
CODES = ("W1", "W2", "W3", "W4")
TABLET = {"width": 1024, "height": 768}


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    require_chromium()
    url = f"sqlite:///{tmp_path_factory.mktemp('escalation-web') / 'web.db'}"
    db = Database(url)
    db.migrate()
    data = dict(happening_now(amass1.ELIGIBLE))
    attestations = data.pop("attestations")
    coordinator = Actor("coordinator", "coordinator", frozenset({"S1"}))
    with db.write() as session:
        trials.create_trial(session, SYSTEM, TRIAL, ["S1"])
        for name, role in USERS.items():
            accounts.create_user(session, SYSTEM, name, role, ["S1"], password=PASSWORD)
        for code in CODES:
            patients.register(session, coordinator, TRIAL, code, "S1", data, attestations)
    db.dispose()
    log = str(tmp_path_factory.getbasetemp() / "escalation-web-server.log")
    with ServerProcess(url, log_path=log) as process:
        yield process, url


@pytest.fixture
def page(browser, server):
    context = browser.new_context(base_url=server[0].url, viewport=TABLET)
    yield context.new_page()
    context.close()


def shot(page, name: str) -> None:
    page.screenshot(path=str(SHOTS / f"{name}.png"), full_page=True)


def sign_in(page, user: str) -> None:
    page.goto("/login")
    page.fill("input[name=name]", user)
    page.fill("input[name=password]", PASSWORD)
    page.click("form[action='/login'] button[type=submit]")  # not the language menu's
    page.wait_for_selector("[data-testid=user]")


def sign_out(page) -> None:
    page.click("button:has-text('Sign out')")
    page.wait_for_selector("input[name=password]")


def windows_pass(url: str, hours: int = 49) -> None:
    """The DLT observation windows of everyone enrolled so far end (the clock moves on), in the server's database."""
    db = Database(url)
    with db.write() as session:
        for row in session.execute(select(EscalationAssignment)).scalars():
            row.enrolled_at = row.enrolled_at - dt.timedelta(hours=hours)
    db.dispose()


def stored(url: str, model) -> list:
    db = Database(url)
    with db.read() as session:
        rows = list(session.execute(select(model)).scalars())
    db.dispose()
    return rows


def enrol_three_as_the_coordinator(page, url: str) -> None:
    sign_in(page, "coordinator")
    page.goto(f"/trials/{TRIAL}")
    assert "Open: cohort 1 at level 1, 0.25 g/kg (3 places free)" in page.inner_text("[data-testid=escalation-summary]")
    shot(page, "20-escalation-trial-page")
    for i, code in enumerate(CODES[:3]):
        if i == 1:  # from the patient's page, where a randomized trial offers "Randomize"
            page.goto(f"/trials/{TRIAL}/patients/{code}")
            page.click("[data-testid=enrol]")
        else:
            page.goto(f"/trials/{TRIAL}")
            page.click(f"[data-testid=enrol-{code}]")
        page.wait_for_selector("[data-testid=enrol-place]")
        assert page.inner_text("[data-testid=enrol-cohort]") == "1"
        assert page.inner_text("[data-testid=enrol-dose]") == "0.25 g/kg"
        if i == 0:
            shot(page, "21-escalation-enrol-confirm")
        page.check("[data-testid=confirm]")
        if i == 2:
            page.dblclick("[data-testid=enrol-now]")  # a double click must not enrol twice
        else:
            page.click("[data-testid=enrol-now]")
        page.wait_for_selector("[data-testid=enrolment]")
        assert "0.25 g/kg" in page.inner_text("[data-testid=enrolled-dose]")
        assert page.inner_text("[data-testid=dlt-status]").lower() == "observing"
    shot(page, "22-escalation-enrolled-patient")
    assert len(stored(url, EscalationAssignment)) == 3
    # Cohort 1 is full: the fourth patient waits, and the enrolment page says why.
    page.goto(f"/trials/{TRIAL}")
    row = page.inner_text("tr:has(a:text-is('W4'))")
    assert "awaiting enrolment" in row and page.locator("[data-testid=enrol-W4]").count() == 0
    page.goto(f"/trials/{TRIAL}/patients/W4/enrol")
    assert "DLT observation of W1, W2, W3" in page.inner_text("[data-testid=enrolment-closed]")
    page.goto(f"/trials/{TRIAL}/escalation")
    assert "Observing the cohort" in page.inner_text("[data-testid=escalation-status]")
    assert page.locator("[data-testid=escalation-table] .badge:text-is('observing')").count() == 3
    shot(page, "23-escalation-table-observing")
    sign_out(page)


def record_the_dlts_as_the_investigator(page) -> None:
    sign_in(page, "investigator")
    page.goto(f"/trials/{TRIAL}/escalation")
    assert page.locator("[data-testid=escalation-table] .badge:text-is('assessment due')").count() == 3
    for i, code in enumerate(CODES[:3]):
        page.click(f"[data-testid=record-{code}]")
        page.wait_for_selector("[data-testid=dlt-form]")
        assert page.is_hidden("[data-testid=dlt-details]")  # the DLT's fields appear only with "yes"
        if i == 0:
            page.check("[data-testid=dlt-yes]")
            assert page.is_visible("[data-testid=criterion]")
            page.fill("[data-testid=event]", "rash")
            page.click("[data-testid=save-dlt]")
            page.wait_for_selector("[data-testid=error-criterion]")
            assert "choose the protocol's DLT" in page.inner_text("[data-testid=error-criterion]")
            shot(page, "24-escalation-dlt-form-error")
        page.check("[data-testid=dlt-no]")
        assert page.is_hidden("[data-testid=dlt-details]")
        page.click("[data-testid=save-dlt]")
        page.wait_for_selector("[data-testid=saved]")
        assert page.inner_text(f"[data-testid=dlt-{code}]").lower() == "no dlt"
    assert "Waiting for the safety review committee" in page.inner_text("[data-testid=escalation-status]")
    assert page.locator("[data-testid=review-decision]").count() == 0
    sign_out(page)


def sign_the_decision_as_the_committee(page) -> None:
    sign_in(page, "committee")
    page.goto(f"/trials/{TRIAL}/escalation")
    pending = page.inner_text("[data-testid=pending-decision]")
    assert "treat the next cohort at level 2 (0.35 g/kg)" in pending and "0/3 with a DLT" in pending
    shot(page, "25-escalation-table-awaiting-committee")
    page.click("[data-testid=review-decision]")
    page.wait_for_selector("[data-testid=decision-form]")
    assert "By entering my password I sign this decision" in page.inner_text("[data-testid=signature-meaning]")
    assert not page.locator("[data-testid=choice-rule]").is_checked()  # a signature is an explicit choice
    page.check("[data-testid=choice-rule]")
    shot(page, "26-escalation-committee")
    page.fill("[data-testid=reason]", "0 of 3 with a DLT; no other safety concern in cohort 1")
    page.fill("[data-testid=password]", "not-my-password")
    page.click("[data-testid=sign]")
    page.wait_for_selector("[data-testid=error-password]")
    assert "did not match" in page.inner_text("[data-testid=error-password]")
    assert page.input_value("[data-testid=reason]").startswith("0 of 3 with a DLT")  # kept; the password is not
    shot(page, "27-escalation-committee-wrong-password")
    page.fill("[data-testid=password]", PASSWORD)
    page.click("[data-testid=sign]")
    page.wait_for_selector("[data-testid=decision-1]")


def test_amass1_cohort_1_enrolled_observed_and_signed_through_the_pages(page, server):
    _, url = server
    enrol_three_as_the_coordinator(page, url)
    assert sorted(r.cohort for r in stored(url, EscalationAssignment)) == [1, 1, 1]
    windows_pass(url)
    record_the_dlts_as_the_investigator(page)
    sign_the_decision_as_the_committee(page)
    status = page.inner_text("[data-testid=open-cohort]")
    assert "cohort 2" in status and "level 2, 0.35 g/kg" in status and "3 places free" in status
    assert "open · 3 places free" in page.inner_text("[data-testid=cell-2-2]")
    decision = page.inner_text("[data-testid=decision-1]")
    assert "committee" in decision and "no other safety concern" in decision and "departure" not in decision
    shot(page, "28-escalation-table-cohort-2-open")
    [signed] = stored(url, EscalationDecision)
    assert (signed.action, signed.level, signed.deviation, signed.signed_by) == ("treat", 2, False, "committee")
    # The coordinator can now enrol the fourth patient, at level 2.
    sign_out(page)
    sign_in(page, "coordinator")
    page.goto(f"/trials/{TRIAL}/patients/W4/enrol")
    assert page.inner_text("[data-testid=enrol-dose]") == "0.35 g/kg"
