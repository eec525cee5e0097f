"""The DSMB's page in a real browser (Debian's Chromium, headless) against one real server (issues 20 and 21): the
DSMB member sees the look's boundary and the rule's recommendation, records the decision signed with the password,
and generates the closed report; the blinded statistician sees only open reports. Each page in English and in
Simplified Chinese at a desktop, a tablet and a phone: axe-core finds nothing, nothing scrolls sideways, no English
phrase is left on a Chinese page, and no arm's name reaches the blinded statistician."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from stroketrial import i18n
from stroketrial.service import SYSTEM, accounts, interim_analyses
from stroketrial.store import Database

from ..process import ServerProcess
from ..server.test_dsmb_reports import ARM_NAMES, DSMB, SITE, TRIAL, seed_look
from .axe import page_problems
from .test_browser import SHOTS, require_chromium
from .test_management_a11y_browser import PASSWORD, VIEWPORTS, _signed_in
from .visible_english import english_left

USERS = {"dsmb": "dsmb", "statistician": "blinded_statistician"}
# On a Chinese page: the platform's own abbreviations and what the data hold (an SAE's term as the site typed it).
ALLOWED = ("DSMB", "HTML", "PDF", "SHA", "IMPACT", "dsmb", "statistician", "obf", "UTC")


@pytest.fixture(scope="module")
def server(tmp_path_factory) -> Iterator[Any]:
    require_chromium()
    folder = tmp_path_factory.mktemp("dsmb-web")
    url = f"sqlite:///{folder / 'web.db'}"
    db = Database(url)
    db.migrate()
    seed_look(db, folder)
    with db.write() as session:
        for name, role in USERS.items():
            accounts.create_user(session, SYSTEM, name, role, [SITE], password=PASSWORD)
    db.dispose()
    with ServerProcess(url, log_path=str(tmp_path_factory.getbasetemp() / "dsmb-web-server.log")) as process:
        yield process


def check(page, where: str, language: str, problems: list[str]) -> None:
    assert page.locator("h1").count() == 1, where
    problems += page_problems(page, where)
    if language == i18n.CHINESE:
        left = english_left(page.locator("main").inner_text(), ALLOWED)
        if left:
            problems.append(f"{where}: English left: {left[:8]}")


@pytest.mark.parametrize("viewport", list(VIEWPORTS))
@pytest.mark.parametrize("language", [i18n.ENGLISH, i18n.CHINESE])
def test_the_dsmb_page_is_accessible_fits_the_screen_and_is_translated(browser, server, viewport, language):
    problems: list[str] = []
    for user in USERS:
        context, page = _signed_in(browser, server, user, language, VIEWPORTS[viewport])
        try:
            response = page.goto(f"/trials/{TRIAL}/dsmb")
            assert response is not None and response.status == 200
            check(page, f"DSMB page as {user} ({language}, {viewport})", language, problems)
            text = page.locator("main").inner_text()
            if user == "statistician":
                assert page.locator("[data-testid=looks]").count() == 0
                assert not any(name in text for name in ARM_NAMES)
            else:
                assert page.locator("[data-testid=boundary]").count() == 1
            if viewport != "desktop":
                page.screenshot(path=str(SHOTS / f"93-dsmb-{user}-{language}-{viewport}.png"), full_page=True)
        finally:
            context.close()
    assert not problems, "\n".join(problems)


def test_the_dsmb_member_records_the_decision_and_generates_the_closed_report(browser, server):
    context, page = _signed_in(browser, server, "dsmb", i18n.ENGLISH, VIEWPORTS["tablet"])
    try:
        page.goto(f"/trials/{TRIAL}/dsmb")
        recommendation = page.locator("[data-testid=look-1] [data-testid=recommendation]").inner_text()
        db = Database(server.db_url)
        with db.read() as session:
            look = interim_analyses.list_looks(session, DSMB, TRIAL)[0]
        assert recommendation == look["recommendation"]
        page.check("[data-testid=decision-continue]")
        page.fill("[data-testid=reason]", "no safety signal; the efficacy boundary is not crossed")
        page.fill("[data-testid=password]", PASSWORD)
        with page.expect_navigation():
            page.click("[data-testid=record-decision]")
        decision = page.locator("[data-testid=look-1] [data-testid=decision]").inner_text()
        assert decision.startswith("continue: no safety signal; the efficacy boundary is not crossed")
        with page.expect_navigation(timeout=180_000):  # the analyses and the PDF: seconds, more on a busy machine
            page.click("[data-testid=generate-closed]")
        row = page.locator("[data-kind=closed]").first
        assert "closed report (by arm)" in row.inner_text()
        with page.expect_download() as download:
            row.locator("a", has_text="PDF").click()
        assert download.value.suggested_filename.endswith(".pdf")
        check(page, "DSMB page after the decision (en, tablet)", i18n.ENGLISH, problems := [])
        assert not problems, "\n".join(problems)
        page.screenshot(path=str(SHOTS / "93-dsmb-decided-en-tablet.png"), full_page=True)
        db.dispose()
    finally:
        context.close()
