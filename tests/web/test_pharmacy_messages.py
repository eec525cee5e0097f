"""The refusals of investigational product supply, emergency envelopes and dose escalation in the reader's language
(issue 20), without a browser, on SQLite and PostgreSQL: a Chinese user's pages show each refusal in Chinese, with
the values it names as they are (a kit number, a patient, a date), and no English; the JSON API answers the same
refusal in English, byte for byte what it always said. The lines the supply reconciliation and the escalation
table put together (a discrepancy, what the escalation waits for), the dose sheet's working and what a protocol
amendment changed are Chinese too."""

from __future__ import annotations

import datetime as dt
import html
import re

import pytest
from fastapi.testclient import TestClient

from stroketrial import i18n
from stroketrial.protocol import load_builtin
from stroketrial.service import SYSTEM, accounts, amendments, escalation, patients, randomize, supply, trials
from stroketrial.service.accounts import Actor
from stroketrial.store import Database
from stroketrial.web import create_app

from ..trials import amass1, amass2, angel_rescue, impact_lvo
from ..trials.helpers import happening_now

PASSWORD = "password-1"
SUPPLY_TRIAL = impact_lvo.TRIAL
ENVELOPE_TRIAL = angel_rescue.TRIAL
ESCALATION_TRIAL = amass1.TRIAL
DRUG, PLACEBO = (a.id for a in load_builtin(SUPPLY_TRIAL).arms)
SUPPLIER = Actor("supplier", "supply_manager", frozenset({"S1"}))
COORDINATOR = Actor("coordinator", "coordinator", frozenset({"S1"}))
CJK = re.compile(r"[\u4e00-\u9fff]")


@pytest.fixture
def db(database_url):
    database = Database(database_url)
    database.migrate()
    with database.write() as session:
        for trial in (SUPPLY_TRIAL, ENVELOPE_TRIAL, ESCALATION_TRIAL, amass2.TRIAL):
            trials.create_trial(session, SYSTEM, trial, ["S1"])
        accounts.create_user(session, SYSTEM, "yao", "unblinded_pharmacist", ["S1"], password=PASSWORD,
                             language="zh_Hans")
        accounts.create_user(session, SYSTEM, "zhang", "investigator", ["S1"], password=PASSWORD, language="zh_Hans")
        accounts.create_user(session, SYSTEM, "chen", "coordinator", ["S1"], password=PASSWORD, language="zh_Hans")
        accounts.create_user(session, SYSTEM, "supplier", "supply_manager", ["S1"], password=PASSWORD)
    yield database
    database.dispose()


def client_for(db: Database, user: str) -> TestClient:
    client = TestClient(create_app(db))
    token = csrf_of(client.get("/login").text)
    response = client.post("/login", data={"csrf": token, "name": user, "password": PASSWORD, "next": "/"})
    assert response.status_code == 200 and '<html lang="zh-Hans">' in response.text
    return client


def api_for(db: Database, role: str) -> TestClient:
    """A program that asks for Chinese: the API answers in English whatever the headers say."""
    with db.write() as session:
        _user, token = accounts.create_user(session, SYSTEM, f"robot-{role}", role, ["S1"])
    return TestClient(create_app(db), headers={"Accept-Language": "zh-CN", "Authorization": f"Bearer {token}"})


def csrf_of(page: str) -> str:
    return re.search(r'name="csrf" value="([^"]+)"', page).group(1)


def text_of(page: str) -> str:
    """What a reader sees: no style, no script, no tags, entities read."""
    page = re.sub(r"<(style|script)\b.*?</\1>", " ", page, flags=re.S)
    return html.unescape(re.sub(r"<[^>]+>", " ", page))


def expiry(days: int) -> str:
    return (dt.datetime.now(dt.UTC).date() + dt.timedelta(days=days)).isoformat()


def kits_in_the_depot(db: Database, per_arm: int) -> None:
    rows = "".join(f"{j}{i:02d},{arm},LOT-{j},{expiry(200 + i)}\n" for j, arm in enumerate((DRUG, PLACEBO), 1)
                   for i in range(per_arm))
    with db.write() as session:
        supply.import_kits(session, SUPPLIER, SUPPLY_TRIAL, "kit_number,arm,lot,expiry\n" + rows)


def test_the_supply_pages_refuse_in_chinese_and_the_api_in_english(db):
    yao = client_for(db, "yao")
    page = f"/trials/{SUPPLY_TRIAL}/supply"
    token = csrf_of(yao.get(page).text)
    # a kit list with a bad row: the summary and each field's message
    bad = f"kit_number,arm,lot,expiry\n1,{DRUG},L1,not-a-date\n"
    refused = yao.post(f"{page}/import", data={"csrf": token, "csv": bad})
    words = text_of(refused.text)
    assert refused.status_code == 422
    assert "药盒清单中有 1 个错误值，分布在 1 行；未保存任何内容" in words and "日期，YYYY-MM-DD" in words  # noqa: RUF001
    assert "bad value(s)" not in words and "a date, YYYY-MM-DD" not in words
    kits_in_the_depot(db, 8)
    # more kits than the depot holds: the number kept, the treatment named as the reader reads it
    too_many = yao.post(f"{page}/ship", data={"csrf": token, "site": "S1", f"arm:{DRUG}": "9"})
    words = text_of(too_many.text)
    with i18n.use(i18n.CHINESE):
        drug = i18n.protocol_text(next(a for a in load_builtin(SUPPLY_TRIAL).arms if a.id == DRUG), "name")
    assert too_many.status_code == 409
    assert f"中心仓库中{drug}可发放的药盒有 8 个，需要 9 个；请先导入或生成更多药盒" in words  # noqa: RUF001
    assert "dispensable kit(s) of" not in words and "generate more kits first" not in words
    # kits named that are not in the kit list, then a kit released that is not quarantined
    unknown = yao.post(f"{page}/quarantine", data={"csrf": token, "action": "quarantine", "kits": "nope",
                                                   "reason": "fridge at 14 C"})
    words = text_of(unknown.text)
    assert unknown.status_code == 422 and "本试验的药盒清单中没有该药盒" in words
    assert "1 个药盒被拒绝；未隔离任何药盒" in words and "no such kit" not in words and "refused" not in words  # noqa: RUF001
    not_quarantined = yao.post(f"{page}/quarantine", data={"csrf": token, "action": "release", "kits": "101",
                                                           "reason": "recall withdrawn"})
    words = text_of(not_quarantined.text)
    assert not_quarantined.status_code == 422 and "未隔离（在中心仓库）" in words  # noqa: RUF001
    assert "not quarantined" not in words and "in the depot" not in words
    # a site's levels that cannot be (the protocol model's own check is quoted as it is)
    levels = yao.post(f"{page}/levels", data={"csrf": token, "site": "S1", "trigger": "5", "target": "5"})
    words = text_of(levels.text)
    assert levels.status_code == 422 and "研究中心补货水平被拒绝：" in words  # noqa: RUF001
    assert "须高于 trigger_per_arm；两者均为 >= 0 的整数" in words and "site levels refused" not in words  # noqa: RUF001
    assert "both whole numbers" not in words
    # the same refusal through the API: English, as it always was
    api = api_for(db, "unblinded_pharmacist")
    answer = api.post(f"/api/v1/trials/{SUPPLY_TRIAL}/supply/shipments", json={"site": "S1", "kits_by_arm": {DRUG: 9}})
    assert answer.status_code == 409
    assert answer.json()["detail"] == (f"the depot holds 8 dispensable kit(s) of {DRUG}, 9 wanted; import or "
                                       "generate more kits first")
    assert not CJK.search(answer.text), answer.text
    answer = api.post(f"/api/v1/trials/{SUPPLY_TRIAL}/supply/kits/import", json={"csv": bad})
    assert answer.status_code == 422 and not CJK.search(answer.text)
    assert answer.json()["errors"][0]["message"] == "a date, YYYY-MM-DD"


def test_the_reconciliation_names_each_discrepancy_in_chinese(db):
    kits_in_the_depot(db, 2)
    with db.write() as session:
        supply.ship(session, Actor("yao", "unblinded_pharmacist", frozenset({"S1"})), SUPPLY_TRIAL, "S1",
                    kits_per_arm=1)
    report = client_for(db, "yao").get(f"/trials/{SUPPLY_TRIAL}/supply/sites/S1/reconciliation")
    words = text_of(report.text)
    assert report.status_code == 200 and "药盒 100：运输中，既未退回也未销毁" in words  # noqa: RUF001
    assert "neither returned nor destroyed" not in words and "in transit" not in words
    with db.read() as session:  # the service, outside any page: English, as the API and the CLI give it
        lines = supply.reconciliation(session, SUPPLIER, SUPPLY_TRIAL, "S1")["discrepancies"]
    assert "kit 100: in transit, neither returned nor destroyed" in lines


def test_the_envelope_pages_refuse_in_chinese_and_the_api_in_english(db):
    yao = client_for(db, "yao")
    page = f"/trials/{ENVELOPE_TRIAL}/envelopes"
    token = csrf_of(yao.get(page).text)
    made = yao.post(f"{page}/sets", data={"csrf": token, "site": "S1"}, follow_redirects=False)
    assert made.status_code == 303
    again = yao.post(f"{page}/sets", data={"csrf": token, "site": "S1"})
    words = text_of(again.text)
    assert again.status_code == 409 and "研究中心 S1 仍有第 1 套的密封信封（第一个：S1-001）" in words  # noqa: RUF001
    assert "still holds sealed envelopes" not in words
    chen = client_for(db, "chen")  # the site records an envelope it opened
    not_a_number = chen.post(f"{page}/opened", data={"csrf": csrf_of(chen.get(page).text), "envelope": "nonsense",
                                                     "check_code": "X", "patient_id": "P1",
                                                     "opened_at": "2026-01-01T10:00"})
    words = text_of(not_a_number.text)
    assert not_a_number.status_code == 422 and "不是印刷格式的信封编号（中心-编号，例如 S1-004）" in words  # noqa: RUF001
    assert "is not an envelope number as printed" not in words
    api = api_for(db, "unblinded_pharmacist")
    answer = api.post(f"/api/v1/trials/{ENVELOPE_TRIAL}/envelope-sets", json={"site": "S1"})
    assert answer.status_code == 409 and not CJK.search(answer.text)
    assert answer.json()["detail"] == ("site S1 still holds sealed envelopes of set 1 (the first: S1-001); use them, "
                                       "or void that set, before making another")


def test_the_escalation_pages_refuse_in_chinese_and_wait_in_chinese(db):
    data = dict(happening_now(amass1.ELIGIBLE))
    attestations = data.pop("attestations")
    with db.write() as session:
        for code in ("E1", "E2", "E3"):
            patients.register(session, COORDINATOR, ESCALATION_TRIAL, code, "S1", data, attestations)
            escalation.enrol(session, COORDINATOR, ESCALATION_TRIAL, code, f"key-{code}")
    zhang = client_for(db, "zhang")
    url = f"/trials/{ESCALATION_TRIAL}/patients/E1/dlt"
    token = csrf_of(zhang.get(url).text)
    bad = zhang.post(url, data={"csrf": token, "dlt": "yes", "criterion": "", "event": " ", "onset": "2001-01-01"})
    words = text_of(bad.text)
    assert bad.status_code == 422 and "事件，1-2000 个字符" in words and "在 DLT 时间窗内" in words  # noqa: RUF001
    assert "the event, 1-" not in words and "within the DLT's window" not in words
    assert zhang.post(url, data={"csrf": token, "dlt": "no"}, follow_redirects=False).status_code == 303
    no_reason = zhang.post(url, data={"csrf": token, "dlt": "yes", "criterion": "infusion_reaction",
                                      "event": "urticaria", "onset": dt.date.today().isoformat()})
    assert no_reason.status_code == 422 and "更正时必填" in text_of(no_reason.text)
    assert "required for a correction" not in text_of(no_reason.text)
    # the table says what the escalation waits for, in Chinese, the patients named as they are
    table = text_of(zhang.get(f"/trials/{ESCALATION_TRIAL}/escalation").text)
    assert "第 1 组 E1, E2, E3 的 DLT 观察（时间窗为输注开始后" in table  # noqa: RUF001
    assert "DLT observation of" not in table
    # the API: the same correction without a reason, in English
    api = api_for(db, "investigator")
    answer = api.put(f"/api/v1/trials/{ESCALATION_TRIAL}/patients/E1/dlt",
                     json={"dlt": True, "criterion": "infusion_reaction", "event": "urticaria",
                           "onset": dt.date.today().isoformat()})
    assert answer.status_code == 422 and not CJK.search(answer.text)
    assert answer.json()["detail"] == ("E1 has a DLT assessment already; a correction needs a reason (1-2000 "
                                       "characters)")


def test_the_dose_sheet_works_the_dose_out_in_chinese_and_the_api_in_english(db):
    data = dict(happening_now(amass2.ELIGIBLE))
    attestations = data.pop("attestations")
    arms = {}
    for code in ("A1", "A2", "A3", "A4", "A5", "A6", "A7", "A8"):  # a permuted block holds both arms
        with db.write() as session:
            patients.register(session, COORDINATOR, amass2.TRIAL, code, "S1", data, attestations)
        with db.write() as session:
            arms[randomize.randomize(session, COORDINATOR, amass2.TRIAL, code, f"key-{code}")[0]["arm"]] = code
        if "albumin" in arms:
            break
    code = arms["albumin"]  # the control arm's sheet has no working to show
    sheet = text_of(client_for(db, "chen").get(f"/trials/{amass2.TRIAL}/patients/{code}/dose").text)
    assert "% 溶液：" in sheet and " mL/min（" in sheet and " g/kg × " in sheet  # noqa: RUF001
    assert "solution:" not in sheet and " over " not in sheet
    api = api_for(db, "coordinator")
    sheet = api.get(f"/api/v1/trials/{amass2.TRIAL}/patients/{code}/dose").json()
    notes = [n for a in sheet["administrations"] for n in a.get("notes", [])]
    assert any(re.fullmatch(r"20% solution: [\d.]+ g in [\d.]+ mL", n) for n in notes), notes
    assert any(re.fullmatch(r"[\d.]+ mL over 20 min = [\d.]+ mL/min \([\d.]+ mL/h\)", n) for n in notes), notes


def test_the_protocol_versions_page_words_an_amendments_changes_in_chinese(db, tmp_path):
    """What an amendment changed is stored in English (the record); the page words it in the reader's language."""
    from ..server.test_amendments import amended

    with db.write() as session:
        body = amendments.amend_protocol(session, SYSTEM, amass2.TRIAL, amended(tmp_path),
                                         dt.datetime.now(dt.UTC).date())
    assert body["changes"]["eligibility"] == ["criterion nihss changed (rule, text)"]
    page = text_of(client_for(db, "chen").get(f"/trials/{amass2.TRIAL}/protocol").text)
    assert "修改标准 nihss（rule, text）" in page and "新增访视 d30" in page and "入选资格" in page  # noqa: RUF001
    assert "changed (rule, text)" not in page and "d30 added" not in page
