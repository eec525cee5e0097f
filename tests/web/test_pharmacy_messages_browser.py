"""Issue 20 for the refusals of supply, emergency envelopes and dose escalation, in a real browser: a page that
refuses (a shipment the depot cannot fill, a kit list with a bad row, a second envelope set, a DLT form in error)
is accessible (axe-core: WCAG 2.1 A/AA and best practices), fits a phone, a tablet and a desktop without spilling
out of its card, and on a Chinese page says the refusal in Chinese. One server and one browser for the module;
the pages are visited in a loop per language and viewport."""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from stroketrial import i18n
from stroketrial.protocol import load_builtin
from stroketrial.service import SYSTEM, accounts, envelopes, escalation, patients, supply, trials
from stroketrial.service.accounts import Actor
from stroketrial.store import Database

from ..process import ServerProcess
from ..trials import amass1, angel_rescue, impact_lvo
from ..trials.helpers import happening_now
from .axe import page_problems
from .test_browser import SHOTS, require_chromium
from .test_management_a11y_browser import untranslated

PASSWORD = "password-1"
VIEWPORTS = {"desktop": {"width": 1280, "height": 900}, "tablet": {"width": 820, "height": 1180},
             "phone": {"width": 390, "height": 844}}
USERS = {"pharmacist": "unblinded_pharmacist", "investigator": "investigator"}
DRUG = next(a.id for a in load_builtin(impact_lvo.TRIAL).arms if a.role == "experimental")


def _ship_too_many(page) -> None:
    page.goto(f"/trials/{impact_lvo.TRIAL}/supply")
    page.fill(f"[data-testid=ship-form] [name='arm:{DRUG}']", "99")
    page.click("[data-testid=ship-form] button[type=submit]")


def _import_a_bad_list(page) -> None:
    page.goto(f"/trials/{impact_lvo.TRIAL}/supply")
    page.fill("[data-testid=import-form] textarea[name=csv]", f"kit_number,arm,lot,expiry\n1,{DRUG},L1,not-a-date\n")
    page.click("[data-testid=import-form] button[type=submit]")


def _a_second_envelope_set(page) -> None:
    page.goto(f"/trials/{angel_rescue.TRIAL}/envelopes")
    page.click("[data-testid=generate-S1] button[type=submit]")


def _a_dlt_form_in_error(page) -> None:
    page.goto(f"/trials/{amass1.TRIAL}/patients/W1/dlt")
    page.check("[data-testid=dlt-yes]")
    page.select_option("[data-testid=criterion]", index=1)
    page.fill("[data-testid=onset]", dt.date.today().isoformat())
    page.click("[data-testid=save-dlt]")  # no event: the service names the field


# (what, the user, how the refusal is reached, the words of the refusal on the Chinese page, a field in error)
REFUSALS: list[tuple[str, str, Callable[[Any], None], str, str | None]] = [
    ("shipment refused", "pharmacist", _ship_too_many, "可发放的药盒有 8 个，需要 99 个", None),  # noqa: RUF001
    ("kit list refused", "pharmacist", _import_a_bad_list, "药盒清单中有 1 个错误值", None),
    ("envelope set refused", "pharmacist", _a_second_envelope_set, "仍有第 1 套的密封信封", None),
    ("DLT assessment refused", "investigator", _a_dlt_form_in_error, "事件，1-2000 个字符", "event"),  # noqa: RUF001
]


def _seed(db: Database) -> None:
    with db.write() as session:
        for trial_id in (impact_lvo.TRIAL, angel_rescue.TRIAL, amass1.TRIAL):
            trials.create_trial(session, SYSTEM, trial_id, ["S1"])
        for name, role in USERS.items():
            accounts.create_user(session, SYSTEM, name, role, ["S1"], password=PASSWORD)
    pharmacist = Actor("pharmacist", "unblinded_pharmacist", frozenset({"S1"}))
    coordinator = Actor("coordinator", "coordinator", frozenset({"S1"}))
    with db.write() as session:
        supply.generate_kits(session, pharmacist, impact_lvo.TRIAL, 8, "L1",
                             (dt.date.today() + dt.timedelta(days=200)).isoformat())
    with db.write() as session:
        envelopes.generate(session, pharmacist, angel_rescue.TRIAL, "S1")
    data = dict(happening_now(amass1.ELIGIBLE))
    attestations = data.pop("attestations")
    with db.write() as session:
        patients.register(session, coordinator, amass1.TRIAL, "W1", "S1", data, attestations)
    with db.write() as session:
        escalation.enrol(session, coordinator, amass1.TRIAL, "W1", "key-W1")


@pytest.fixture(scope="module")
def server(tmp_path_factory) -> Iterator[Any]:
    require_chromium()
    url = f"sqlite:///{tmp_path_factory.mktemp('pharmacy-web') / 'web.db'}"
    db = Database(url)
    db.migrate()
    _seed(db)
    db.dispose()
    with ServerProcess(url, log_path=str(tmp_path_factory.getbasetemp() / "pharmacy-web-server.log")) as process:
        yield process


def _signed_in(browser, server, user: str, language: str, viewport: dict[str, int]):
    tag = "zh-CN" if language == i18n.CHINESE else "en-GB"
    context = browser.new_context(base_url=server.url, viewport=viewport, locale=tag,
                                  extra_http_headers={"Accept-Language": tag})
    page = context.new_page()
    page.goto("/login")
    page.fill("input[name=name]", user)
    page.fill("input[name=password]", PASSWORD)
    page.click("form[action='/login'] button[type=submit]")
    page.wait_for_load_state()
    return context, page


@pytest.mark.parametrize("viewport", list(VIEWPORTS))
@pytest.mark.parametrize("language", [i18n.ENGLISH, i18n.CHINESE])
def test_a_refusal_is_accessible_fits_the_screen_and_is_in_the_readers_language(browser, server, viewport, language):
    problems: list[str] = []
    contexts: dict[str, Any] = {}
    try:
        for what, user, refuse, chinese, field in REFUSALS:
            if user not in contexts:
                contexts[user] = _signed_in(browser, server, user, language, VIEWPORTS[viewport])
            page = contexts[user][1]
            refuse(page)
            page.wait_for_load_state()
            where = f"{what} ({language}, {viewport})"
            assert page.locator("h1").count() == 1, f"{where}: {page.locator('h1').count()} h1"
            if field is not None:
                control = page.locator(f"[name={field}]")
                assert control.get_attribute("aria-invalid") == "true", where
                described = (control.get_attribute("aria-describedby") or "").split()
                assert f"error-{field}" in described and page.locator(f"#error-{field}").is_visible(), where
            problems += page_problems(page, where)
            text = page.locator("main").inner_text()
            if language == i18n.CHINESE:
                if chinese not in text:
                    problems.append(f"{where}: the refusal is not in Chinese: {text[:300]!r}")
                english = untranslated(text)
                if english:
                    problems.append(f"{where}: English left: {english[:8]}")
                if viewport in ("phone", "tablet"):
                    SHOTS.mkdir(parents=True, exist_ok=True)
                    name = re.sub(r"\W+", "-", what)
                    page.screenshot(path=str(SHOTS / f"95-{name}-zh-{viewport}.png"), full_page=True)
            elif chinese in text:
                problems.append(f"{where}: Chinese on an English page")
    finally:
        for context, _page in contexts.values():
            context.close()
    assert not problems, "\n".join(problems)
