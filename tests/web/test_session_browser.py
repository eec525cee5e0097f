"""Issue 20, defect 2, in a real browser (Debian's Chromium, headless) against a real server: a research nurse types
a patient's screening data, the session ends for want of activity, and she presses Register. The sign-in page
appears; after signing in she is back on the screening form with what she typed filled in again, and told so. No
"Method Not Allowed", no blank form. A second tab: while she types, the live panel meets the ended session and the
page says so with a link to sign in again, keeping the form as it is."""

from __future__ import annotations

import datetime as dt

import pytest
from sqlalchemy import create_engine, text

from stroketrial.service import SYSTEM, accounts, trials
from stroketrial.store import Database

from ..process import ServerProcess
from .test_browser import SHOTS, require_chromium

PASSWORD = "password-1"
SCREEN = "/trials/amass-2/screen"
PHONE_TABLET = {"width": 820, "height": 1180}


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    require_chromium()
    url = f"sqlite:///{tmp_path_factory.mktemp('session-web') / 'web.db'}"
    db = Database(url)
    db.migrate()
    with db.write() as session:
        trials.create_trial(session, SYSTEM, "amass-2", ["S1"])
        accounts.create_user(session, SYSTEM, "nurse", "coordinator", ["S1"], password=PASSWORD)
    db.dispose()
    with ServerProcess(url, log_path=str(tmp_path_factory.getbasetemp() / "session-web-server.log")) as process:
        yield process, url


@pytest.fixture
def page(browser, server):
    context = browser.new_context(base_url=server[0].url, viewport=PHONE_TABLET)
    yield context.new_page()
    context.close()


def sign_in(page) -> None:
    page.fill("input[name=name]", "nurse")
    page.fill("input[name=password]", PASSWORD)
    page.click("form[action='/login'] button[type=submit]")


def end_the_session(url: str) -> None:
    engine = create_engine(url)
    with engine.begin() as conn:
        conn.execute(text("UPDATE user_sessions SET last_seen_at = :t"),
                     {"t": dt.datetime.now(dt.UTC) - dt.timedelta(hours=2)})
    engine.dispose()


def test_what_was_typed_comes_back_after_signing_in_again(page, server):
    page.goto(SCREEN)
    sign_in(page)
    page.wait_for_url(f"**{SCREEN}")
    page.fill("[data-testid=patient_id]", "SLEEPY-01")
    page.fill("input[name=age]", "67")
    page.fill("input[name=nihss]", "14")
    end_the_session(server[1])
    page.click("#screening-form button[type=submit]")
    page.wait_for_url("**/login**")
    assert "sign in" in page.locator("main .notice").inner_text()  # why: the sign-in page says
    sign_in(page)
    page.wait_for_url(f"**{SCREEN}")
    assert "Method Not Allowed" not in page.content()
    assert page.input_value("[data-testid=patient_id]") == "SLEEPY-01"
    assert page.input_value("input[name=age]") == "67" and page.input_value("input[name=nihss]") == "14"
    warning = page.locator("[data-testid=session-warning]")
    assert warning.is_visible() and "back in the form" in warning.inner_text()
    SHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SHOTS / "70-session-restored.png"), full_page=True)
    # an ordinary visit later starts from a blank form
    page.goto("/")
    page.goto(SCREEN)
    assert page.input_value("[data-testid=patient_id]") == ""


def test_the_live_panel_says_the_session_ended_and_keeps_the_form(page, server):
    page.goto(SCREEN)
    sign_in(page)
    page.wait_for_url(f"**{SCREEN}")
    page.fill("[data-testid=patient_id]", "SLEEPY-02")
    end_the_session(server[1])
    page.fill("input[name=age]", "71")  # the panel asks the server, which finds the session ended
    warning = page.locator("[data-testid=session-warning]")
    warning.wait_for(state="visible")
    assert "Your session has ended" in warning.inner_text()
    assert page.locator("[data-testid=sign-in-again]").get_attribute("href").startswith("/login?")
    assert page.input_value("[data-testid=patient_id]") == "SLEEPY-02" and page.input_value("input[name=age]") == "71"
    page.wait_for_timeout(500)  # the panel's answer has come back: it must not be shown in the panel
    assert "session_ended" not in page.locator("main").inner_text()
    assert "Sign in" not in page.locator("main").inner_text()
    page.screenshot(path=str(SHOTS / "71-session-ended-panel.png"), full_page=True)
