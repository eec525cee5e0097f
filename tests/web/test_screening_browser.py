"""Issue 20, defects 1 and 3, in a real browser on a tablet (820x1180): a field is checked as it is left, the live
panel keeps screening around an invalid value, and a record that randomization cannot read is corrected on the pages
and randomized. Screenshots go to test-artifacts/screenshots/ (screening-*.png)."""

from __future__ import annotations

import pytest

from stroketrial.service import demo, patients
from stroketrial.service.accounts import Actor
from stroketrial.store import Database

from ..process import ServerProcess
from ..trials import amass2
from ..trials.helpers import happening_now
from .test_browser import fill_screening, require_chromium, shot, sign_in

TABLET = {"width": 820, "height": 1180}


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    require_chromium()
    url = f"sqlite:///{tmp_path_factory.mktemp('screening-web') / 'web.db'}"
    db = Database(url)
    db.migrate()
    demo.load(db, interim_look=False)  # no DSMB look: loads in seconds
    db.dispose()
    with ServerProcess(url, log_path=str(tmp_path_factory.getbasetemp() / "screening-server.log")) as process:
        yield process, url


@pytest.fixture
def page(browser, server):
    context = browser.new_context(base_url=server[0].url, viewport=TABLET)
    yield context.new_page()
    context.close()


def test_a_field_is_checked_as_it_is_left_and_the_panel_screens_the_rest(page):
    sign_in(page, "coordinator")
    page.goto("/trials/amass-2/screen")
    fill_screening(page, "amass-2", happening_now(amass2.ELIGIBLE), "TAB-001")
    page.wait_for_selector("[data-testid=eligibility-status]:has-text('ELIGIBLE'):not(:has-text('IN'))")
    page.select_option("[data-testid=unit-creatinine_umol_l]", "mg/dL")  # 80 µmol/L typed with mg/dL selected
    page.fill("input[name=creatinine_umol_l]", "88")
    page.press("input[name=creatinine_umol_l]", "Tab")  # leaving the field checks it
    page.wait_for_selector("[data-testid=error-creatinine_umol_l]:has-text('88 mg/dL is out of range')")
    error = page.locator("[data-testid=error-creatinine_umol_l]")
    assert "88 mg/dL is out of range" in error.inner_text() and "7779" not in error.inner_text()
    assert page.get_attribute("#f-creatinine_umol_l", "aria-invalid") == "true"
    status = page.inner_text("[data-testid=eligibility-status]")  # the rest is still screened
    assert status == "INCOMPLETE"
    assert "waiting for a valid serum creatinine" in page.inner_text("[data-testid=eligibility]")
    shot(page, "screening-tablet-invalid-field")
    page.select_option("[data-testid=unit-creatinine_umol_l]", "µmol/L")
    error.wait_for(state="hidden")
    page.wait_for_selector("[data-testid=eligibility-status]:has-text('ELIGIBLE'):not(:has-text('IN'))")
    assert page.get_attribute("#f-creatinine_umol_l", "aria-invalid") is None


def test_a_record_randomization_cannot_read_is_corrected_on_the_pages_and_randomized(page, server):
    _, url = server
    data = {k: v for k, v in happening_now(amass2.ELIGIBLE).items() if k != "bridging_thrombolysis"}
    attestations = data.pop("attestations")
    db = Database(url)
    with db.write() as session:  # as the API takes it: everything but bridging IVT
        patients.register(session, Actor("coordinator", "coordinator", frozenset({"S1"})), "amass-2", "TAB-002",
                          "S1", data, attestations)
    db.dispose()
    sign_in(page, "coordinator")
    page.goto("/trials/amass-2/patients/TAB-002")
    assert page.locator("[data-testid=randomize]").count() == 0
    assert "bridging intravenous thrombolysis" in page.inner_text("[data-testid=still-needed]")
    shot(page, "screening-tablet-not-randomizable")
    page.click("[data-testid=not-randomizable] [data-testid=correct-screening]")
    page.wait_for_selector("[data-testid=correction-form]")
    assert page.input_value("input[name=nihss]") == "14"
    page.check("input[name=bridging_thrombolysis][value=yes]")
    page.wait_for_selector("[data-testid=eligibility-status]:has-text('ELIGIBLE'):not(:has-text('IN'))")
    page.click("[data-testid=save-correction]")  # no reason: refused, nothing typed lost
    page.wait_for_selector("[data-testid=problems]")
    assert "reason for the correction" in page.inner_text("[data-testid=problems]")
    assert page.is_checked("input[name=bridging_thrombolysis][value=yes]")
    page.fill("[data-testid=reason]", "Bridging IVT was given at the referring hospital")
    shot(page, "screening-tablet-correction")
    page.click("[data-testid=save-correction]")
    page.wait_for_selector("[data-testid=notice]")
    assert page.inner_text("[data-testid=patient-status]") == "ELIGIBLE"
    shot(page, "screening-tablet-corrected")
    page.click("[data-testid=randomize]")
    page.check("[data-testid=confirm]")
    page.click("[data-testid=randomize-now]")
    page.wait_for_selector("[data-testid=allocation]")
