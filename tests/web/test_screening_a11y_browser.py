"""Issue 20 (defects 4, 6 and 11) in a real browser: the screening, randomization and patient pages of an AMASS-2
coordinator (sign-in, trials, the trial, the screening form empty and with a value it refuses, the randomization
check, the allocation, the patient, the dashboard) in English and in Simplified Chinese, at a desktop, a tablet and
a phone. On each: axe finds nothing, nothing spills out sideways, and in Chinese no English phrase is left."""

from __future__ import annotations

import pytest

from stroketrial.service import SYSTEM, accounts, patients, randomize, trials
from stroketrial.service.accounts import Actor
from stroketrial.store import Database

from ..process import ServerProcess
from ..trials import amass2
from ..trials.helpers import happening_now
from .axe import violations
from .test_browser import SHOTS, require_chromium
from .visible_english import english_left

PASSWORD = "password-1"
TRIAL = amass2.TRIAL
USERS = {"en": "nurse", "zh_Hans": "hushi"}
VIEWPORTS = {"desktop": {"width": 1280, "height": 900}, "tablet": {"width": 820, "height": 1180},
             "phone": {"width": 390, "height": 844}}
# What stays in Latin letters on a Chinese page: the trial, its registry number, people and codes.
ALLOWED = ("AMASS", "NCT", *USERS.values(), "coordinator")
COORDINATOR = Actor("nurse", "coordinator", frozenset({"S1"}))
PAGES = {
    "trials": "/",
    "trial": f"/trials/{TRIAL}",
    "screening": f"/trials/{TRIAL}/screen",
    "screening with an invalid value": f"/trials/{TRIAL}/screen",
    "randomization check": f"/trials/{TRIAL}/patients/E1/randomize",
    "allocation": f"/trials/{TRIAL}/patients/R1/allocation",
    "randomized patient": f"/trials/{TRIAL}/patients/R1",
    "patient to randomize": f"/trials/{TRIAL}/patients/E1",
    "dashboard": f"/trials/{TRIAL}/dashboard",
}


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    require_chromium()
    url = f"sqlite:///{tmp_path_factory.mktemp('screening-a11y') / 'web.db'}"
    db = Database(url)
    db.migrate()
    data = dict(happening_now(amass2.ELIGIBLE))
    attestations = data.pop("attestations")
    with db.write() as session:
        trials.create_trial(session, SYSTEM, TRIAL, ["S1"])
        accounts.create_user(session, SYSTEM, "nurse", "coordinator", ["S1"], password=PASSWORD)
        accounts.create_user(session, SYSTEM, "hushi", "coordinator", ["S1"], password=PASSWORD, language="zh_Hans")
        for code in ("E1", "R1"):
            patients.register(session, COORDINATOR, TRIAL, code, "S1", data, attestations)
    with db.write() as session:
        randomize.randomize(session, COORDINATOR, TRIAL, "R1", "a11y-r1")
    db.dispose()
    with ServerProcess(url, log_path=str(tmp_path_factory.getbasetemp() / "screening-a11y-server.log")) as process:
        yield process, url


def problems_of(page, what: str, width: int, language: str) -> list[str]:
    """What is wrong with the page as it is now: axe's violations, a sideways spill, English left in Chinese."""
    found = [f"{what}: {v}" for v in violations(page)]
    scroll = page.evaluate("document.documentElement.scrollWidth")
    if scroll > width:
        wide = page.evaluate("""(width) => [...document.querySelectorAll('main *')]
            .filter(e => e.getBoundingClientRect().right > width + 1)
            .slice(0, 3).map(e => e.tagName + '.' + e.className + ' ' + (e.textContent || '').slice(0, 40))""", width)
        found.append(f"{what}: {scroll} px wide in a {width} px viewport: {wide}")
    if language != "en":
        left = english_left(page.evaluate("document.body.innerText"), ALLOWED)
        if left:
            found.append(f"{what}: English left: {left[:12]}")
    return found


@pytest.mark.parametrize("viewport", list(VIEWPORTS))
@pytest.mark.parametrize("language", list(USERS))
def test_the_screening_and_patient_pages_are_accessible_and_translated(browser, server, language, viewport):
    size = VIEWPORTS[viewport]
    context = browser.new_context(base_url=server[0].url, viewport=size,
                                  locale="zh-CN" if language != "en" else "en-GB")
    page = context.new_page()
    found: list[str] = []
    try:
        page.goto("/login")
        found += problems_of(page, "sign-in", size["width"], language)
        page.fill("input[name=name]", USERS[language])
        page.fill("input[name=password]", PASSWORD)
        page.click("form[action='/login'] button[type=submit]")
        page.wait_for_url("**/")
        for what, path in PAGES.items():
            page.goto(path)
            if what == "screening with an invalid value":
                page.fill("input[name=age]", "12a")
                page.press("input[name=age]", "Tab")
                page.locator("[data-testid=error-age]").wait_for(state="visible")
                assert page.get_attribute("input[name=age]", "aria-invalid") == "true"
                # the live region says the verdict in a few words, not the 23 criteria
                page.wait_for_function("document.getElementById('eligibility-live').textContent.length > 0")
                said = page.inner_text("#eligibility-live")
                assert len(said) < 60 and ("field" in said or "字段" in said), said
            found += problems_of(page, what, size["width"], language)
            if language != "en" and viewport != "desktop" and what in (
                    "screening with an invalid value", "randomized patient", "allocation", "trial"):
                SHOTS.mkdir(parents=True, exist_ok=True)
                page.screenshot(path=str(SHOTS / f"85-{what.replace(' ', '-')}-{language}-{viewport}.png"),
                                full_page=True)
    finally:
        context.close()
    assert not found, f"{language} at {viewport}: {len(found)} problem(s):\n" + "\n".join(found)
