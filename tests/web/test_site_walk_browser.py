"""Issue 20, done when: a research coordinator walks screening, randomization, the dose sheet, a visit and an SAE
report for AMASS-2 (open, blinded endpoint), IMPACT-LVO (double-blind, kits) and ANGEL-RESCUE (randomized during
the procedure), in English and in Chinese, on a desktop (1280x900), a tablet (820x1180) and a phone (390x844).

On every page of the walk: axe-core finds no accessibility violation, nothing is wider than the screen, and in
Chinese no English phrase is left untranslated. The Chinese walk is the demo's Chinese-speaking coordinator (her
own choice of language), with a browser that asks for Chinese; the English one is the demo coordinator."""

from __future__ import annotations

import datetime as dt

import pytest

from stroketrial import i18n
from stroketrial.protocol import load_builtin
from stroketrial.service import demo

from ..process import ServerProcess
from ..trials import amass2, angel_rescue, impact_lvo
from ..trials.helpers import happening_now
from .axe import violations
from .test_browser import SHOTS, fill_screening, require_chromium
from .visible_english import english_left

TRIALS = {"amass-2": amass2.ELIGIBLE, "impact-lvo": impact_lvo.ELIGIBLE, "angel-rescue": angel_rescue.ELIGIBLE}
VIEWPORTS = {"desktop": {"width": 1280, "height": 900}, "tablet": {"width": 820, "height": 1180},
             "phone": {"width": 390, "height": 844}}
WALKERS = {i18n.ENGLISH: ("coordinator", "en-GB"), i18n.CHINESE: ("zhang", "zh-CN")}


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    require_chromium()
    from stroketrial.store import Database

    url = f"sqlite:///{tmp_path_factory.mktemp('walk') / 'web.db'}"
    db = Database(url)
    db.migrate()
    demo.load(db, interim_look=False)  # no DSMB look: loads in seconds
    db.dispose()
    with ServerProcess(url, log_path=str(tmp_path_factory.getbasetemp() / "walk-server.log")) as process:
        yield process


def allowed_words(trial: str) -> set[str]:
    """What stays in Latin letters in Chinese: the trial's acronym, the scales' and drugs' abbreviations, names."""
    protocol = load_builtin(trial)
    return {protocol.acronym, *protocol.acronym.split("-"), "stroketrial", "English", "coordinator", "zhang",
            "Demo Stroke Centre"}


class Walk:
    def __init__(self, page, trial: str, language: str, viewport: str):
        self.page, self.trial, self.language, self.viewport = page, trial, language, viewport
        self.problems: list[str] = []
        self.allowed = allowed_words(trial)
        protocol = load_builtin(trial)
        # A blinded coordinator (IMPACT-LVO is double-blind) sees no arm, in either language: no arm element and no
        # arm's description (its name may stand in the blinded kit label "<drug> or placebo", which both arms share).
        self.hidden_arms = [] if protocol.design.masking not in ("double_blind", "single_blind") else [
            words for arm in protocol.arms if arm.description
            for words in (arm.description, (arm.translations or {}).get(i18n.CHINESE, {}).get("description"))
            if words]

    def check(self, what: str) -> None:
        page = self.page
        page.wait_for_load_state()
        where = f"{self.trial} {self.language} {self.viewport} {what} ({page.url})"
        self.problems += [f"{where}: {v}" for v in violations(page)]
        if self.hidden_arms:
            content = page.content()
            shown = [w for w in self.hidden_arms if w in content]
            if shown or page.locator("[data-arm]").count():
                self.problems.append(f"{where}: a blinded coordinator sees the arm: {shown or '[data-arm]'}")
        width = page.evaluate("() => [document.documentElement.scrollWidth, window.innerWidth]")
        if width[0] > width[1] + 1:
            self.problems.append(f"{where}: the page is {width[0]} px wide on a {width[1]} px screen")
        if self.language == i18n.CHINESE:
            left = english_left(page.inner_text("body"), self.allowed)
            if left:
                self.problems.append(f"{where}: English left untranslated: {left[:8]}")
        if self.viewport == "tablet" or (self.language == i18n.CHINESE and self.viewport == "phone"):
            SHOTS.mkdir(parents=True, exist_ok=True)
            page.screenshot(path=str(SHOTS / f"walk-{self.trial}-{self.language}-{self.viewport}-{what}.png"),
                            full_page=False)


@pytest.mark.parametrize("viewport", list(VIEWPORTS))
@pytest.mark.parametrize("language", list(WALKERS))
@pytest.mark.parametrize("trial", list(TRIALS))
def test_a_coordinator_walks_the_trial_on_every_screen_in_both_languages(browser, server, trial, language, viewport):
    user, accept = WALKERS[language]
    context = browser.new_context(base_url=server.url, viewport=VIEWPORTS[viewport], locale=accept,
                                  extra_http_headers={"Accept-Language": accept})
    page = context.new_page()
    walk = Walk(page, trial, language, viewport)
    code = f"W{language[:2].upper()}{viewport[:3].upper()}-{trial[:3].upper()}"
    try:
        page.goto("/login")
        walk.check("sign-in")
        page.fill("input[name=name]", user)
        page.fill("input[name=password]", demo.DEMO_PASSWORD)
        page.click("form[action='/login'] button[type=submit]")
        page.wait_for_selector("[data-testid=user]")
        assert page.get_attribute("html", "lang") == i18n.TAGS[language]
        page.goto(f"/trials/{trial}/screen")
        walk.check("screening-empty")
        fill_screening(page, trial, happening_now(TRIALS[trial]), code)
        page.wait_for_selector("[data-testid=eligibility-status].eligible")
        walk.check("screening-eligible")
        page.click("#screening-form button[type=submit]")
        page.wait_for_selector("[data-testid=randomize]")
        walk.check("patient-eligible")
        page.click("[data-testid=randomize]")
        page.wait_for_selector("[data-testid=confirm]")
        walk.check("randomize-confirm")
        page.check("[data-testid=confirm]")
        page.click("[data-testid=randomize-now]")
        page.wait_for_selector("[data-testid=allocation], [data-testid=kit]")
        walk.check("allocation")
        page.goto(f"/trials/{trial}/patients/{code}/dose")
        walk.check("dose-sheet")
        page.goto(f"/trials/{trial}/patients/{code}/visits")
        page.locator("tr.form-row details summary").first.click()
        walk.check("visit-form")
        report = page.locator("details.card:has(form[action$='/sae'])")
        report.locator("summary").click()
        term = "吸入性肺炎" if language == i18n.CHINESE else "aspiration pneumonia"
        report.locator("input[name=term]").fill(term)
        report.locator("input[name=onset_date]").fill(dt.date.today().isoformat())
        report.locator("input[name=criteria]").first.check()
        report.locator("select[name=outcome]").select_option(index=1)
        report.locator("select[name=relatedness]").select_option(index=1)
        walk.check("sae-form")
        report.locator("button[type=submit]").click()
        page.wait_for_load_state()
        assert page.locator("[aria-labelledby=saes] tbody tr", has_text=term).count() == 1, page.url
        walk.check("sae-reported")
    finally:
        context.close()
    assert not walk.problems, "\n".join(walk.problems)
