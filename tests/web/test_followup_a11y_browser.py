"""Issue 20, defects 4, 6 and 11, on the follow-up and safety pages in a real browser: AMASS-2 (open label,
blinded endpoint) and IMPACT-LVO (double blind, kits) with randomized patients; the dose sheets, the visits and a
visit form showing an edit-check warning, the adverse-event log, the SAE form and the SAE list with its clocks,
emergency unblinding and its recorded result, the DSMB's unblinding log and the inbox. In English and in
Simplified Chinese, on a desktop (1280x900), a tablet (820x1180) and a phone (390x844): axe finds nothing, nothing
is wider than the screen, one h1, targets at least 44 px high, and no English phrase left on a Chinese page."""

from __future__ import annotations

import datetime as dt
import html
import re
from collections.abc import Callable
from pathlib import Path

import pytest

from stroketrial import i18n
from stroketrial.clinical.assessments import ASSESSMENTS
from stroketrial.clinical.scales import MRS_GRADES
from stroketrial.protocol import load_builtin
from stroketrial.service import SYSTEM, accounts, adverse_events, patients, randomize, serious_adverse_events, trials
from stroketrial.service import unblinding
from stroketrial.service.accounts import Actor
from stroketrial.service.adverse_events import AE_ACTION_LABELS, AE_SEVERITY_LABELS
from stroketrial.store import Database
from stroketrial.web.forms import visit_fields
from stroketrial.web.pages import base
from stroketrial.web.pages.followup import mrs_grades

from ..process import ServerProcess
from ..trials import amass2, impact_lvo
from ..trials.helpers import happening_now
from .axe import violations
from .test_browser import SHOTS, require_chromium
from .visible_english import english_left as shared_english_left

PASSWORD = "password-1"
OPEN, BLIND = amass2.TRIAL, impact_lvo.TRIAL
VIEWPORTS = {"desktop": {"width": 1280, "height": 900}, "tablet": {"width": 820, "height": 1180},
             "phone": {"width": 390, "height": 844}}
BROWSER_LANGUAGE = {"en": "en-GB,en;q=0.9", "zh_Hans": "zh-CN,zh;q=0.9"}
SITE_STAFF = Actor("coordinator", "coordinator", frozenset({"S1"}))
INVESTIGATOR = Actor("investigator", "investigator", frozenset({"S1"}))
TODAY = dt.datetime.now(dt.UTC).date().isoformat()
# What the users typed: data, shown as typed in either language.
TYPED = ("acute pancreatitis", "suspected GI bleeding, steroid decision", "headache")


def enrol(db: Database, trial: str, record: dict, code: str) -> None:
    data = dict(happening_now(record))
    attestations = data.pop("attestations")
    with db.write() as session:
        patients.register(session, SITE_STAFF, trial, code, "S1", data, attestations)
    with db.write() as session:
        randomize.randomize(session, SITE_STAFF, trial, code, f"key-{trial}-{code}")


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    require_chromium()
    url = f"sqlite:///{tmp_path_factory.mktemp('followup-web') / 'web.db'}"
    db = Database(url)
    db.migrate()
    with db.write() as session:
        for trial in (OPEN, BLIND):
            trials.create_trial(session, SYSTEM, trial, ["S1"])
        for role in ("coordinator", "investigator", "dsmb"):
            accounts.create_user(session, SYSTEM, role, role, ["S1"], password=PASSWORD)
    enrol(db, OPEN, amass2.ELIGIBLE, "A1")
    enrol(db, BLIND, impact_lvo.ELIGIBLE, "I1")
    enrol(db, BLIND, impact_lvo.ELIGIBLE, "I2")
    sae = {"term": TYPED[0], "onset_date": TODAY, "criteria": ["hospitalization"], "outcome": "recovering",
           "relatedness": "possible"}
    with db.write() as session:
        adverse_events.record_ae(session, SITE_STAFF, OPEN, "A1", {
            "term": TYPED[2], "onset_date": TODAY, "severity": "mild", "relatedness": "possible",
            "action_taken": "none", "outcome": "recovered"})
        serious_adverse_events.report_sae(session, INVESTIGATOR, OPEN, "A1", sae)
        serious_adverse_events.report_sae(session, INVESTIGATOR, BLIND, "I1", sae)
    with db.write() as session:
        revealed, _new = unblinding.unblind_once(session, INVESTIGATOR, BLIND, "I1", TYPED[1])
    db.dispose()
    with ServerProcess(url, log_path=str(tmp_path_factory.getbasetemp() / "followup-web-server.log")) as process:
        yield process, revealed["unblinding_id"]


def warn_on_the_day_90_form(page) -> None:
    """mRS 6 with no death on IMPACT-LVO's day-90 form: the protocol's edit check warns as the field is left."""
    page.fill("[data-testid=d90-mrs]", "6")
    page.check("form[data-testid=form-d90] input[name=death][value=no]")
    page.locator("[data-testid=d90-mrs]").focus()
    page.locator("[data-testid=checks-d90] [data-testid=check-warnings]").wait_for()


def refuse_a_grade_of_7(page) -> None:
    """An mRS of 7 saved: refused, the page back with the error tied to its field."""
    page.fill("[data-testid=d90-mrs]", "7")
    page.click("[data-testid=save-d90]")
    page.wait_for_load_state()
    assert page.get_attribute("[data-testid=d90-mrs]", "aria-invalid") == "true"
    described = page.get_attribute("[data-testid=d90-mrs]", "aria-describedby") or ""
    assert "d90-mrs-error" in described.split() and page.locator("#d90-mrs-error").is_visible()


def pages(result: int) -> dict[str, list[tuple[str, str, Callable | None]]]:
    """By user: (name, address, what to do on the page before it is checked)."""
    return {
        "coordinator": [
            ("dose-open", f"/trials/{OPEN}/patients/A1/dose", None),
            ("dose-blinded", f"/trials/{BLIND}/patients/I1/dose", None),
            ("visits-open", f"/trials/{OPEN}/patients/A1/visits", None),
            ("visit-warning", f"/trials/{BLIND}/patients/I1/visits?visit=d90", warn_on_the_day_90_form),
            ("visit-error", f"/trials/{BLIND}/patients/I1/visits?visit=d90", refuse_a_grade_of_7),
            ("ae-log", f"/trials/{OPEN}/patients/A1/adverse-events", None),
            ("sae-list", f"/trials/{BLIND}/saes", None),
            ("inbox-coordinator", "/inbox", None),
        ],
        "investigator": [
            ("unblind-form", f"/trials/{BLIND}/patients/I2/unblind", None),
            ("unblind-done", f"/trials/{BLIND}/patients/I1/unblind", None),
            ("unblinding-result", f"/trials/{BLIND}/patients/I1/unblindings/{result}", None),
        ],
        "dsmb": [
            ("unblinding-log", f"/trials/{BLIND}/unblindings", None),
            ("inbox-dsmb", "/inbox", None),
        ],
    }


# ---- English left on a Chinese page ------------------------------------------------------------------------
# Runs of two or more English words; what other parts of the platform still show in English until their
# translations land (the protocol's and the dictionary's words: each allowed only while it has no Chinese) and
# what the users typed are taken out first.


def _untranslated_data_words() -> set[str]:
    """The protocol's and the dictionary's words that have no Chinese yet (their translators' part)."""
    allowed: set[str] = set(TYPED)
    with i18n.use(i18n.CHINESE):
        for trial in (OPEN, BLIND):
            protocol = load_builtin(trial)
            parts = [*protocol.arms, *protocol.interventions, *protocol.visits, *protocol.edit_checks,
                     *(s for i in protocol.interventions for s in i.steps)]
            for part in parts:
                for attribute in ("name", "text", "timing", "diluent", "reconstitution"):
                    original = getattr(part, attribute, None)
                    if isinstance(original, str) and i18n.protocol_text(part, attribute) == original:
                        allowed.add(original)
            for visit in protocol.visits:
                for f in visit_fields(visit.assessments):
                    allowed.update(t for t in (f.label, f.help, *f.choice_labels) if i18n.gettext(t) == t)
        words = [a.label for a in ASSESSMENTS.values()] + [c for a in ASSESSMENTS.values() for c in a.choice_labels]
        words += [w for labels in base.CHOICE_LABELS.values() for w in labels.values()]
        words += [*AE_SEVERITY_LABELS.values(), *AE_ACTION_LABELS.values()]
        allowed.update(w for w in words if i18n.gettext(w) == w)
    return {a for a in allowed if a}


def english_left(text: str, allowed: set[str]) -> list[str]:
    """The shared check (visible_english.py), each word of the allowed phrases breaking a run."""
    return shared_english_left(text, {word for phrase in allowed for word in re.split(r"\s+", phrase) if word})


# ---- one page, checked ---------------------------------------------------------------------------------------
PROBLEMS_JS = """() => {
    const shown = e => e.offsetParent !== null || e.getClientRects().length > 0;
    const targets = 'main input, main select, main textarea, main button, main summary, main a.button';
    const small = [...document.querySelectorAll(targets)]
      .filter(e => e.type !== 'hidden' && shown(e))
      .map(e => { const target = (e.type === 'radio' || e.type === 'checkbox') ? (e.closest('label') || e) : e;
                  return [(e.name || e.tagName) + (e.value ? '=' + e.value : ''),
                          Math.round(target.getBoundingClientRect().height)]; })
      .filter(([, h]) => h < 44);
    return {wide: document.documentElement.scrollWidth, h1: document.querySelectorAll('h1').length, small: small};
}"""
TEXT_JS = """() => {
    const main = document.querySelector('main').cloneNode(true);
    main.querySelectorAll('[lang="en"], script, [hidden]').forEach(e => e.remove());
    document.body.appendChild(main);
    main.style.position = 'absolute';
    const text = main.innerText;
    main.remove();
    return text;
}"""


def check_page(page, name: str, viewport: str, language: str, allowed: set[str]) -> list[str]:
    page.evaluate("document.querySelectorAll('main details').forEach(d => d.open = true)")
    found = [f"{name}: {v}" for v in violations(page)]
    width = VIEWPORTS[viewport]["width"]
    measured = page.evaluate(PROBLEMS_JS)
    if measured["wide"] > width:
        found.append(f"{name}: the page is {measured['wide']} px wide on a {width} px screen")
    if measured["h1"] != 1:
        found.append(f"{name}: {measured['h1']} h1")
    if measured["small"]:
        found.append(f"{name}: targets under 44 px: {measured['small'][:6]}")
    if language == i18n.CHINESE:
        left = english_left(page.evaluate(TEXT_JS), allowed)
        if left:
            found.append(f"{name}: English left: {sorted(set(left))[:12]}")
    return found


def sign_in(page, user: str) -> None:
    page.goto("/login")
    page.fill("input[name=name]", user)
    page.fill("input[name=password]", PASSWORD)
    page.click("form[action='/login'] button[type=submit]")
    page.wait_for_selector("[data-testid=user]")


@pytest.mark.parametrize("viewport", list(VIEWPORTS))
@pytest.mark.parametrize("language", list(BROWSER_LANGUAGE))
def test_the_follow_up_and_safety_pages_are_accessible_and_in_the_users_language(browser, server, language,
                                                                                  viewport):
    process, result = server
    allowed = _untranslated_data_words()
    problems: list[str] = []
    for user, visited in pages(result).items():
        context = browser.new_context(base_url=process.url, viewport=VIEWPORTS[viewport],
                                      extra_http_headers={"Accept-Language": BROWSER_LANGUAGE[language]})
        page = context.new_page()
        sign_in(page, user)
        for name, address, action in visited:
            response = page.goto(address)
            assert response is not None and response.status == 200, f"{name}: {response and response.status}"
            assert page.locator("html").get_attribute("lang") == i18n.TAGS[language]
            if action is not None:
                action(page)
            problems += check_page(page, name, viewport, language, allowed)
            if language == i18n.CHINESE and viewport != "desktop":
                page.screenshot(path=str(SHOTS / f"90-{name}-{language}-{viewport}.png"), full_page=True)
        context.close()
    assert not problems, f"{language} {viewport}: {len(problems)} problem(s):\n" + "\n".join(problems)


def test_the_mrs_grades_shown_on_the_visit_form_are_the_scales_words():
    with i18n.use(i18n.ENGLISH):
        assert mrs_grades() == MRS_GRADES
    with i18n.use(i18n.CHINESE):
        assert all(i18n.has_translation(words) for words in MRS_GRADES.values())
        assert mrs_grades()[6] == "死亡"


def test_the_session_warnings_words_are_given_to_the_script_in_the_pages_language():
    from stroketrial.web.pages.base import templates

    with i18n.use(i18n.CHINESE):
        element = templates.get_template("_session_strings.html").render()
    words = {re.sub(r"-(\w)", lambda m: m.group(1).upper(), name): html.unescape(said)
             for name, said in re.findall(r'data-([\w-]+)="([^"]*)"', element)}
    assert words["stay"] == "保持登录" and "{minutes}" in words["endsIn"] and "{user}" in words["signedInAgain"]
    script = (Path(base.__file__).parents[1] / "static" / "session.js").read_text()
    assert set(words) == set(re.findall(r"^    (\w+): \"", script, re.M))  # every word the script says


def test_the_inbox_says_what_happened_to_each_email_in_chinese():
    from stroketrial.web.pages.safety_reporting import email_in_words

    with i18n.use(i18n.CHINESE):
        assert email_in_words("emailed to 2 addresses at 2026-11-30T10:00:00+00:00") == (
            "已于 2026-11-30T10:00:00+00:00 发送邮件至 2 个地址")
        assert email_in_words("email failed: 550 mailbox unavailable") == "邮件发送失败\uff1a550 mailbox unavailable"
    assert email_in_words("email pending") == "email pending"


def test_a_refused_visit_value_or_date_is_said_in_chinese():
    from stroketrial.web.pages.followup import _refusal_in_words, _visit_date_in_words

    mrs = visit_fields(["mrs"])[0]
    refused = "modified Rankin Scale: mrs: 7 is out of range; modified Rankin Scale is a whole number from 0 to 6"
    with i18n.use(i18n.CHINESE):
        assert _refusal_in_words(refused, mrs, with_label=False) == "7 超出范围\uff1b应为 0 至 6 的整数"
        assert _visit_date_in_words("the visit date 2999-01-01 is in the future") == "访视日期 2999-01-01 晚于今天"
    assert _refusal_in_words(refused, mrs) == refused  # English: as the service says it
