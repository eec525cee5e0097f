"""The pages in a real browser: Debian's Chromium, headless, driven by Playwright, against a real server.

AMASS-2 as a coordinator: sign in, screen an eligible patient (live eligibility, a unit
switch), randomize with a double click, open the dose sheet, enter the day-90 visit; then as the blinded
outcome assessor, who sees no arm, enter the 90-day mRS the protocol reserves for it.
IMPACT-LVO as a blinded coordinator: the same flow, and the arm appears on no page.
Screenshots of every step go to test-artifacts/screenshots/.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest
from sqlalchemy import select

from stroketrial.protocol import load_builtin
from stroketrial.service import demo
from stroketrial.store import Database
from stroketrial.store.models import Allocation, Patient
from stroketrial.web.forms import screening_fields
from ..process import ServerProcess

from ..trials import amass2, impact_lvo
from ..trials.helpers import happening_now

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
SHOTS = Path(__file__).resolve().parents[2] / "test-artifacts" / "screenshots"
FLAGS = ["--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync"]


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    require_chromium()
    url = f"sqlite:///{tmp_path_factory.mktemp('web') / 'web.db'}"
    db = Database(url)
    db.migrate()
    demo.load(db, interim_look=False)  # no DSMB look: loads in seconds
    db.dispose()
    with ServerProcess(url, log_path=str(tmp_path_factory.getbasetemp() / "web-server.log")) as process:
        yield process, url


def require_chromium() -> None:
    """Skip a browser module without Chromium, or fail when `make test` said it must be there."""
    if not os.path.exists(CHROMIUM):
        if os.environ.get("STROKETRIAL_REQUIRE_BROWSER"):
            pytest.fail(f"no Chromium at {CHROMIUM}; `make test` installs Debian's chromium")
        pytest.skip("no Chromium: run `make test`, which installs Debian's chromium")


def chromium_browser():
    """Debian's Chromium, headless, for a module's browser fixture (a generator: `yield from` it)."""
    from playwright.sync_api import sync_playwright

    SHOTS.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as p:
        chromium = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=FLAGS)
        yield chromium
        chromium.close()


@pytest.fixture
def page(browser, server):
    context = browser.new_context(base_url=server[0].url, viewport={"width": 1280, "height": 900})
    yield context.new_page()
    context.close()


def shot(page, name: str) -> None:
    page.screenshot(path=str(SHOTS / f"{name}.png"), full_page=True)


def sign_in(page, user: str) -> None:
    page.goto("/")
    assert "/login" in page.url
    page.fill("input[name=name]", user)
    page.fill("input[name=password]", demo.DEMO_PASSWORD)
    page.click("form[action='/login'] button[type=submit]")  # not the language menu's button before it
    page.wait_for_selector("[data-testid=user]")


def save_over_warnings(page, visit: str) -> None:
    """Save a visit form; the test enters day 90 on the day of randomization, so the protocol's edit checks warn
    that it is outside its window: the user confirms the values with a reason, as the page asks, and saves."""
    page.click(f"[data-testid=save-{visit}]")
    page.wait_for_load_state()
    confirm = page.locator(f"[data-testid=confirm-{visit}]")
    if confirm.count():
        confirm.check()
        page.fill(f"[data-testid=confirm-reason-{visit}]", "test patient: day 90 entered on the day of randomization")
        page.click(f"[data-testid=save-{visit}]")


def fill_screening(page, trial: str, patient: dict, code: str, overrides: dict | None = None) -> None:
    protocol = load_builtin(trial)
    page.fill("[data-testid=patient_id]", code)
    page.select_option("[data-testid=site]", "S1")
    data = {**patient, **(overrides or {})}
    for field in screening_fields(protocol):
        value = data.get(field.name)
        if value is None:
            continue
        if field.kind == "flag":
            page.check(f"input[name={field.name}][value={'yes' if value else 'no'}]")
        elif field.kind in ("category", "grade"):
            page.select_option(f"select[name={field.name}]", str(value))
        elif field.kind == "timestamp":
            page.fill(f"input[name={field.name}]", str(value)[:16])
        elif isinstance(value, dict):
            page.fill(f"input[name={field.name}]", str(value["value"]))
            page.select_option(f"select[name={field.name}__unit]", value["unit"])
        else:
            page.fill(f"input[name={field.name}]", str(value))
    for criterion, answer in patient.get("attestations", {}).items():
        page.check(f"input[name=attest_{criterion}][value={'yes' if answer else 'no'}]")


def allocations_of(url: str, code: str) -> list[Allocation]:
    db = Database(url)
    with db.read() as session:
        rows = list(session.execute(select(Allocation).join(Patient, Patient.id == Allocation.patient_id)
                                    .where(Patient.code == code)).scalars())
    db.dispose()
    return rows


def enter_the_mrs_as_the_blinded_assessor(page, code: str, arm: str) -> None:
    """Sign out; as the outcome assessor enter the day-90 mRS (a typing error first) on pages that never show
    the arm (`arm`: its name as the coordinator saw it); sign in again as the coordinator, who sees it read-only."""
    page.click("button:has-text('Sign out')")
    page.wait_for_selector("input[name=password]")
    sign_in(page, "assessor")
    page.goto(f"/trials/amass-2/patients/{code}/visits")
    assert page.locator("[data-testid=schedule] tbody tr[id]").count() == 1  # the day-90 visit alone
    assert page.locator("[data-testid=form-d90] input[name=death]").count() == 0
    assert page.locator("text=Serious adverse events").count() == 0
    page.click("summary:has-text('Enter Day 90')")
    page.fill("[data-testid=d90-mrs]", "7")
    page.click("[data-testid=save-d90]")
    page.wait_for_selector("text=modified Rankin Scale")
    assert "out of range" in page.content()
    shot(page, "10-assessor-visit-error")
    page.fill("[data-testid=d90-mrs]", "2")
    save_over_warnings(page, "d90")
    page.wait_for_selector("[data-testid=status-d90]:has-text('done')")
    shot(page, "10-assessor-d90-done")
    for path in (f"/trials/amass-2/patients/{code}/visits", f"/trials/amass-2/patients/{code}",
                 f"/trials/amass-2/patients/{code}/allocation", "/trials/amass-2", "/trials/amass-2/dashboard"):
        page.goto(path)
        page.wait_for_load_state()
        text = page.content()
        assert page.locator("[data-arm]").count() == 0 and page.locator("[data-testid=dose-link]").count() == 0, path
        assert arm not in text and "Albumin Group" not in text and "Control Group" not in text, path
    page.goto(f"/trials/amass-2/patients/{code}/dose")
    assert "Not allowed" in page.content()
    page.click("button:has-text('Sign out')")
    page.wait_for_selector("input[name=password]")
    sign_in(page, "coordinator")
    page.goto(f"/trials/amass-2/patients/{code}/visits")
    assert "modified Rankin Scale 2" in page.inner_text("tr#d90")  # the label, never the code
    page.click("summary:has-text('Correct Day 90')")
    assert page.inner_text("[data-testid=d90-mrs-reserved] .control") == "2"  # read-only for the site
    assert page.locator("[data-testid=d90-mrs]").count() == 0
    assert page.locator("[data-testid=awaiting-d90-mrs]").count() == 0


def test_amass2_from_screening_to_the_90_day_visit(page, server):
    _, url = server
    page.goto("/login")
    shot(page, "01-login")
    sign_in(page, "coordinator")
    shot(page, "02-trials")
    page.click("text=AMASS-2")
    page.click("[data-testid=screen-new]")
    patient = happening_now({**amass2.ELIGIBLE, "bridging_thrombolysis": True})
    # A creatinine reported in mg/dL is converted exactly (0.9 mg/dL = 79.6 umol/L).
    fill_screening(page, "amass-2", patient, "WEB-001",
                   {"creatinine_umol_l": {"value": 0.9, "unit": "mg/dL"}, "nihss": 4})
    page.wait_for_selector("[data-testid=eligibility-status]:has-text('INELIGIBLE')")
    shot(page, "03-screening-ineligible-live")
    page.fill("input[name=nihss]", "14")
    page.wait_for_selector("[data-testid=eligibility-status]:has-text('ELIGIBLE'):not(:has-text('IN'))")
    assert "mg/dL" in page.inner_text("[data-testid=eligibility]") or page.is_visible("text=creatinine")
    shot(page, "04-screening-eligible-live")
    page.click("button:has-text('Register patient')")
    page.wait_for_selector("[data-testid=patient-status]")
    assert page.inner_text("[data-testid=patient-status]") == "ELIGIBLE"
    shot(page, "05-patient-eligible")
    page.click("[data-testid=randomize]")
    page.wait_for_selector("[data-testid=confirm]")
    assert "WEB-001" in page.inner_text("h1") and "nihss" in page.inner_text("table.facts").lower()
    shot(page, "06-randomize-confirm")
    page.check("[data-testid=confirm]")
    page.dblclick("[data-testid=randomize-now]")  # a double click must not randomize twice
    page.wait_for_selector("[data-testid=allocation]")
    sequence = page.inner_text("[data-testid=sequence]")
    arm = page.inner_text("[data-testid=arm]")
    assert arm in ("Intra-arterial albumin", "Control Group") or arm
    shot(page, "07-allocation")
    page.reload()
    assert page.inner_text("[data-testid=sequence]") == sequence
    page.go_back()  # back to the confirmation: it sends the user on to the allocation, never again
    page.wait_for_load_state()
    assert len(allocations_of(url, "WEB-001")) == 1
    page.goto("/trials/amass-2/patients/WEB-001/allocation")
    page.click("[data-testid=dose-link]")
    page.wait_for_selector("[data-testid=dose-sheet]")
    if page.locator("[data-testid=dose-amount]").count():
        assert page.inner_text("[data-testid=dose-amount]").startswith("38.4")  # 0.6 g/kg x 64 kg
        assert page.inner_text("[data-testid=dose-volume]") == "192 mL"
    shot(page, "08-dose-sheet")
    # Day 90: the site records death and SAEs; the mRS is the blinded outcome assessor's (amass-2.yaml,
    # assessor_only), shown to the site read-only.
    page.goto("/trials/amass-2/patients/WEB-001/visits")
    page.click("summary:has-text('Enter Day 90')")
    assert page.locator("[data-testid=d90-mrs]").count() == 0
    assert "recorded by the blinded outcome assessor" in page.inner_text("[data-testid=d90-mrs-reserved]")
    page.check("[data-testid=form-d90] input[name=death][value=no]")
    page.check("[data-testid=form-d90] input[name=sae][value=no]")
    save_over_warnings(page, "d90")
    page.wait_for_selector("[data-testid=status-d90]:has-text('done')")
    assert "awaiting the blinded outcome assessor" in page.inner_text("[data-testid=awaiting-d90-mrs]")
    shot(page, "09-visits-d90-site-part")
    enter_the_mrs_as_the_blinded_assessor(page, "WEB-001", arm)
    page.goto("/trials/amass-2/dashboard")
    page.wait_for_selector("[data-testid=consort]")
    shot(page, "11-dashboard")
    assert len(allocations_of(url, "WEB-001")) == 1


def test_impact_lvo_blinded_coordinator_never_sees_the_arm(page, server):
    _, url = server
    sign_in(page, "coordinator")
    page.goto("/trials/impact-lvo/screen")
    fill_screening(page, "impact-lvo", happening_now(impact_lvo.ELIGIBLE), "BLIND-001")
    page.wait_for_selector("[data-testid=eligibility-status]:has-text('ELIGIBLE'):not(:has-text('IN'))")
    page.click("button:has-text('Register patient')")
    page.wait_for_selector("[data-testid=randomize]")
    page.click("[data-testid=randomize]")
    page.check("[data-testid=confirm]")
    page.click("[data-testid=randomize-now]")
    page.wait_for_selector("[data-testid=kit]")
    kit = page.inner_text("[data-testid=kit]")
    assert len(kit) == 6 and page.locator("[data-testid=arm]").count() == 0
    shot(page, "12-blinded-allocation-kit")
    patient_pages = ("/trials/impact-lvo/patients/BLIND-001/allocation", "/trials/impact-lvo/patients/BLIND-001",
                     "/trials/impact-lvo/patients/BLIND-001/dose", "/trials/impact-lvo/patients/BLIND-001/visits")
    for path in (*patient_pages, "/trials/impact-lvo", "/trials/impact-lvo/dashboard", "/"):
        page.goto(path)
        page.wait_for_load_state()
        assert page.locator("[data-arm]").count() == 0, path
        if path in patient_pages:
            # The protocol says "placebo-controlled" and its criteria name methylprednisolone (allergy);
            # the patient's own pages never name the control treatment.
            # The kit label says "<drug> or placebo" on both arms' kits alike (test_placebo_preparation.py): it
            # is the blinded wording, not the arm.
            text = page.content().lower().replace("methylprednisolone sodium succinate or placebo", "")
            assert "placebo" not in text and "sterile water" not in text, path
    page.goto("/trials/impact-lvo")
    row = page.inner_text("tr:has(a:text-is('BLIND-001'))").lower()
    assert kit in row and "placebo" not in row and "methylprednisolone" not in row
    page.goto("/trials/impact-lvo/patients/BLIND-001/dose")
    assert f"study drug from kit {kit}" in page.content()
    shot(page, "13-blinded-dose-sheet")
    page.goto("/trials/impact-lvo/dashboard")
    shot(page, "14-blinded-dashboard")
    assert [a.kit for a in allocations_of(url, "BLIND-001")] == [kit]


def test_signing_out_and_a_forged_form_are_refused(page, server):
    sign_in(page, "coordinator")
    page.click("button:has-text('Sign out')")
    page.wait_for_selector("input[name=password]")
    page.goto("/trials/amass-2")
    assert "/login" in page.url
    sign_in(page, "coordinator")
    response = page.request.post("/trials/amass-2/patients/AMASS-033/randomize",
                                 form={"csrf": "forged", "key": "k", "confirm": "yes"})
    assert response.status == 403 and "CSRF" in response.text()
