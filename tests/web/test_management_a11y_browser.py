"""Issue 20, defects 6 and 11, for the data-management, supply, envelope and dose-escalation pages, in a real
browser (Debian's Chromium, headless) against one real server: each page in English and in Simplified Chinese at
a desktop (1280x900), a tablet (820x1180) and a phone (390x844). axe-core finds nothing, nothing makes the page
scroll sideways or spills out of its card, and a Chinese page shows no English phrase the interface forgot to
translate (the protocol's own wording aside: it is translated in the protocol file). The sealed-envelope PDF's
wording is checked against the catalogs here too, its template being outside the pages' extraction."""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from babel.messages.extract import extract_from_file
from sqlalchemy import update

from stroketrial import i18n
from stroketrial.clinical import VARIABLES
from stroketrial.protocol import load_builtin
from stroketrial.service import (SYSTEM, accounts, envelopes, escalation, locks, patients, queries, randomize, supply,
                                 trials)
from stroketrial.service.accounts import Actor
from stroketrial.store import Database
from stroketrial.store.models import Site

from ..process import ServerProcess
from ..trials import amass1, amass2, angel_rescue
from ..trials.helpers import happening_now
from .axe import page_problems
from .test_browser import SHOTS, require_chromium

PASSWORD = "password-1"
KITS = "impact-lvo"
VIEWPORTS = {"desktop": {"width": 1280, "height": 900}, "tablet": {"width": 820, "height": 1180},
             "phone": {"width": 390, "height": 844}}
USERS = {"dm": "data_manager", "monitor": "monitor", "investigator": "investigator", "coordinator": "coordinator",
         "pharmacist": "unblinded_pharmacist"}
# (what, the user who opens it, the page)
PAGES = [
    ("data queries", "dm", f"/trials/{amass2.TRIAL}/queries"),
    ("patient's data queries", "dm", f"/trials/{amass2.TRIAL}/patients/P1/queries"),
    ("source data verification", "monitor", f"/trials/{amass2.TRIAL}/verification"),
    ("casebook signing", "investigator", f"/trials/{amass2.TRIAL}/patients/P1/sign"),
    ("freezes and locks", "dm", f"/trials/{amass2.TRIAL}/locks"),
    ("protocol versions", "dm", f"/trials/{amass2.TRIAL}/protocol"),
    ("supply", "pharmacist", f"/trials/{KITS}/supply"),
    ("kit reconciliation", "pharmacist", f"/trials/{KITS}/supply/sites/S1/reconciliation"),
    ("emergency envelopes", "pharmacist", f"/trials/{angel_rescue.TRIAL}/envelopes"),
    ("escalation table", "investigator", f"/trials/{amass1.TRIAL}/escalation"),
    ("escalation enrolment", "coordinator", f"/trials/{amass1.TRIAL}/patients/W2/enrol"),
    ("DLT assessment", "investigator", f"/trials/{amass1.TRIAL}/patients/W1/dlt"),
]
# The tablet sees every page; the desktop and the phone a subset, to keep the module's runtime reasonable.
SUBSET = {"data queries", "patient's data queries", "supply", "emergency envelopes", "escalation table",
          "DLT assessment", "freezes and locks"}

# What may stay in Latin letters on a Chinese page: scale and unit abbreviations, acronyms, codes, names.
ALLOWED = {"NIHSS", "ASPECTS", "mRS", "eTICI", "MTD", "DLT", "DLTs", "SAE", "SUSAR", "PDF", "CSV", "UTC", "CST",
           "SHA", "BOIN", "CRM", "ICA", "MCA", "ISIS", "HERMES", "AMASS", "IMPACT", "LVO", "ANGEL", "RESCUE",
           "English", "Asia", "Shanghai", "YYYY", "stroketrial", "admin", "amend", "protocol", "kit_number", "arm",
           "lot", "expiry", "pharmacist", "investigator", "coordinator", "monitor", "ABCD", "EFGH"}
PHRASE = re.compile(r"\b[A-Za-z][A-Za-z'\u2019]{2,}(?:[ -][A-Za-z][A-Za-z'\u2019]{2,})+\b")


def protocol_wording(*trial_ids: str) -> list[str]:
    """Every string of these protocols (criteria, arms, visits, DLTs, the envelope procedure...), longest first:
    the protocol's own wording, which the protocol file translates, not the catalogs."""
    found: set[str] = set()

    def walk(value: Any) -> None:
        if isinstance(value, str):
            if " " in value.strip():
                found.add(value.strip())
        elif isinstance(value, dict):
            for v in value.values():
                walk(v)
        elif isinstance(value, (list, tuple)):
            for v in value:
                walk(v)

    for trial_id in trial_ids:
        walk(load_builtin(trial_id).model_dump(mode="json"))
    return sorted(found, key=len, reverse=True)


def dictionary_wording() -> list[str]:
    """The data dictionary's labels and choices that the catalogs do not translate yet: translated through
    dictionary.po (the label filter's catalog), not this module's pages."""
    found = set()
    for var in VARIABLES.values():
        found.add(var.label)
        if var.kind in ("category", "grade"):
            found.update(m.label for m in var.enum_scale())
    return [w for w in found if " " in w and not i18n.has_translation(w)]


WORDING = sorted({*protocol_wording(amass2.TRIAL, KITS, angel_rescue.TRIAL, amass1.TRIAL), *dictionary_wording()},
                 key=len, reverse=True)


def untranslated(text: str) -> list[str]:
    """Runs of two or more English words of three letters or more, outside the allowlist and the protocol's
    wording."""
    for wording in WORDING:
        text = text.replace(wording, " ¶ ")
    for word in ALLOWED:
        text = re.sub(rf"(?<![A-Za-z]){re.escape(word)}(?![A-Za-z])", " ¶ ", text)
    return PHRASE.findall(text)


def test_the_private_check_finds_english_and_passes_chinese_codes_and_units():
    assert untranslated("下一组 treat the next cohort 于 0.25 g/kg") == ["treat the next cohort"]
    assert untranslated("NIHSS 评分 14 · MTD · 2026-11-30 05:02 CST (Asia/Shanghai) · S1-004") == []


def test_the_envelope_pdf_wording_is_all_in_the_catalogs():
    template = Path(i18n.__file__).parent / "report" / "templates" / "envelopes.html"
    messages = [m for _line, m, *_ in extract_from_file(
        "jinja2.ext:babel_extract", str(template), keywords={"_": None},
        options={"extensions": "jinja2.ext.i18n", "newstyle_gettext": "true"})]
    assert len(messages) > 20
    assert [m for m in messages if not i18n.has_translation(m)] == []


def _seed(db: Database) -> None:
    with db.write() as session:
        for trial_id in (amass2.TRIAL, KITS, angel_rescue.TRIAL, amass1.TRIAL):
            trials.create_trial(session, SYSTEM, trial_id, ["S1"])
        session.execute(update(Site).where(Site.code == "S1").values(timezone="Asia/Shanghai"))
        for name, role in USERS.items():
            accounts.create_user(session, SYSTEM, name, role, ["S1"], password=PASSWORD)
    coordinator = Actor("coordinator", "coordinator", frozenset({"S1"}))
    dm = Actor("dm", "data_manager", frozenset({"S1"}))
    pharmacist = Actor("pharmacist", "unblinded_pharmacist", frozenset({"S1"}))
    with db.write() as session:
        data = dict(happening_now(amass2.ELIGIBLE))
        attestations = data.pop("attestations", None)
        patients.register(session, coordinator, amass2.TRIAL, "P1", "S1", data, attestations)
        randomize.randomize(session, coordinator, amass2.TRIAL, "P1", "key-P1")
    with db.write() as session:
        queries.raise_query(session, dm, amass2.TRIAL, "P1", "screening", "nihss",
                            "NIHSS 评分与病历记录不一致，请核对。")  # noqa: RUF001
        locks.lock(session, dm, amass2.TRIAL, "freeze", "期中分析前的数据清理", "P1", None)
    with db.write() as session:
        expiry = (dt.date.today() + dt.timedelta(days=200)).isoformat()
        supply.generate_kits(session, pharmacist, KITS, 4, "L1", expiry)
    with db.write() as session:
        supply.ship(session, pharmacist, KITS, "S1", kits_per_arm=2)
    with db.write() as session:
        envelopes.generate(session, pharmacist, angel_rescue.TRIAL, "S1")
    with db.write() as session:
        data = dict(happening_now(amass1.ELIGIBLE))
        attestations = data.pop("attestations")
        for code in ("W1", "W2"):
            patients.register(session, coordinator, amass1.TRIAL, code, "S1", data, attestations)
    with db.write() as session:
        escalation.enrol(session, coordinator, amass1.TRIAL, "W1", "key-W1")


@pytest.fixture(scope="module")
def server(tmp_path_factory) -> Iterator[Any]:
    require_chromium()
    url = f"sqlite:///{tmp_path_factory.mktemp('management-web') / 'web.db'}"
    db = Database(url)
    db.migrate()
    _seed(db)
    db.dispose()
    with ServerProcess(url, log_path=str(tmp_path_factory.getbasetemp() / "management-web-server.log")) as process:
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
def test_the_management_pages_are_accessible_fit_the_screen_and_are_translated(browser, server, viewport, language):
    problems: list[str] = []
    contexts: dict[str, Any] = {}
    try:
        for what, user, path in PAGES:
            if viewport != "tablet" and what not in SUBSET:
                continue
            if user not in contexts:
                contexts[user] = _signed_in(browser, server, user, language, VIEWPORTS[viewport])
            page = contexts[user][1]
            response = page.goto(path)
            assert response is not None and response.status == 200, f"{what}: {response and response.status}"
            if what == "DLT assessment":
                page.check("[data-testid=dlt-yes]")  # the DLT's own fields, shown
            where = f"{what} ({language}, {viewport})"
            assert page.locator("h1").count() == 1, f"{where}: {page.locator('h1').count()} h1"
            problems += page_problems(page, where)
            if language == i18n.CHINESE:
                assert page.locator("html").get_attribute("lang") == "zh-Hans"
                english = untranslated(page.locator("main").inner_text())
                if english:
                    problems.append(f"{where}: English left: {english[:8]}")
                if viewport in ("phone", "tablet"):
                    SHOTS.mkdir(parents=True, exist_ok=True)
                    name = re.sub(r"\W+", "-", what)
                    page.screenshot(path=str(SHOTS / f"90-{name}-zh-{viewport}.png"), full_page=True)
    finally:
        for context, _page in contexts.values():
            context.close()
    assert not problems, "\n".join(problems)
