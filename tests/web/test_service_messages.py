"""The platform's refusals in the reader's language (issue 20): a page in Chinese says why an operation was refused
in Chinese, whichever service refuses it (an unknown patient or trial, a role that may not, a refused SAE report, a
frozen record, a consent withdrawal that would narrow); an English page and the JSON API say it in English, as
before, word for word."""

from __future__ import annotations

import html
import os
import re
import uuid

import psycopg
import pytest
from fastapi.testclient import TestClient
from sqlalchemy.engine import make_url

from sqlalchemy import select

from stroketrial.service import SYSTEM, accounts, demo, notifications, unblinding
from stroketrial.store import Database
from stroketrial.store.models import Notification
from stroketrial.web import create_app

CJK = re.compile(r"[\u4e00-\u9fff]")


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def demo_db(request, tmp_path_factory):
    """The demo platform, loaded once per backend for the module (the checks below change different patients)."""
    admin = name = None
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path_factory.mktemp('messages') / 'messages.db'}"
    else:
        server_url = os.environ.get("STROKETRIAL_TEST_PG")
        if not server_url:
            pytest.skip("no PostgreSQL: run `make test`, which starts a throw-away server")
        server = make_url(server_url)
        name = f"t_{uuid.uuid4().hex[:12]}"
        admin = server.set(drivername="postgresql").render_as_string(hide_password=False)
        with psycopg.connect(admin, autocommit=True) as conn:
            conn.execute(f"CREATE DATABASE {name}")
        url = server.set(database=name).render_as_string(hide_password=False)
    db = Database(url)
    db.migrate()
    demo.load(db, interim_look=False)  # the DSMB look is not needed here (and takes a minute)
    yield db
    db.dispose()
    if admin is not None:
        with psycopg.connect(admin, autocommit=True) as conn:
            conn.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")


def client_for(db: Database, user: str, accept_language: str = "en-GB") -> TestClient:
    client = TestClient(create_app(db), headers={"Accept-Language": accept_language})
    token = re.search(r'name="csrf" value="([^"]+)"', client.get("/login").text).group(1)
    response = client.post("/login", data={"csrf": token, "name": user, "password": demo.DEMO_PASSWORD, "next": "/"})
    assert response.status_code == 200
    return client


def csrf(client: TestClient) -> str:
    return re.search(r'name="csrf" value="([^"]+)"', client.get("/").text).group(1)


def said(response) -> str:
    return html.unescape(response.text)


def refused(response, status: int, chinese: list[str], english: str) -> None:
    text = said(response)
    assert response.status_code == status, text[:2000]
    assert '<html lang="zh-Hans">' in text
    for words in chinese:
        assert words in text, (words, re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", text))[:3000])
    assert english not in text


def test_a_chinese_page_says_each_refusal_in_chinese(demo_db):
    zhang = client_for(demo_db, "zhang")  # a coordinator who chose Chinese; the browser asks for English
    token = csrf(zhang)
    # patients.py, trials.py: what is not there
    refused(zhang.get("/trials/amass-2/patients/NOPE"), 404, ["您的中心在 amass-2 中没有患者 NOPE"],
            "no patient NOPE")
    refused(zhang.get("/trials/nope"), 404, ["本平台上没有试验 'nope'"], "on this platform")
    # accounts.Actor.require: the operation and the roles in Chinese, the user's name as it is
    refused(zhang.post("/trials/amass-2/patients/AMASS-001/queries",
                       data={"csrf": token, "form": "screening", "field": "age", "text": "please check the age"}),
            403, ["发起数据质疑仅限监查员、数据管理员；zhang 的角色是研究协调员"], "raising a data query is for")  # noqa: RUF001
    statistician = client_for(demo_db, "statistician", "zh-CN,zh;q=0.9")  # Chinese from the browser alone
    refused(statistician.get("/trials/amass-2/patients/AMASS-040/randomize"), 403,
            ["随机化仅限研究者、研究协调员；statistician 的角色是"], "randomizing is for")  # noqa: RUF001
    # serious_adverse_events.py: the report and each field's problem
    refused(zhang.post("/trials/amass-2/patients/AMASS-001/sae",
                       data={"csrf": token, "term": "", "onset_date": "2099-01-01"}),
            422, ["SAE 报告未被接受", "用文字描述事件（例如“肺炎”）", "2099-01-01 晚于今天"], "SAE report refused")  # noqa: RUF001
    # locks.py: a frozen patient's screening data cannot be corrected
    manager = client_for(demo_db, "data_manager")
    response = manager.post("/trials/amass-2/locks", data={"csrf": csrf(manager), "level": "freeze",
                                                           "patient_id": "AMASS-003", "form": "",
                                                           "reason": "interim analysis cut"})
    assert response.status_code == 200 and "freeze #" in response.text  # the data manager reads English
    refused(zhang.post("/trials/amass-2/patients/AMASS-003/screening",
                       data={"csrf": token, "nihss": "3", "reason": "typed 13 for 3"}),
            422, ["数据已冻结", "数据管理员可以解除冻结", "原因：interim analysis cut"], "cannot be changed")  # noqa: RUF001
    # consent.py: a withdrawal is widened, never narrowed
    page = zhang.get("/trials/amass-2/patients/AMASS-005").text
    withdrawal = re.search(r'action="(/trials/amass-2/patients/AMASS-005/consents/\d+/withdrawal)"', page).group(1)
    response = zhang.post(withdrawal, data={"csrf": token, "scope": "data_use", "reason": "the family asked"})
    assert response.status_code == 200, said(response)[:2000]
    refused(zhang.post(withdrawal, data={"csrf": token, "scope": "treatment", "reason": "asked again"}), 409,
            ["撤回范围只能扩大，不能缩小或撤销", "停止治疗和随访，并撤回其数据的使用"], "never narrowed")  # noqa: RUF001


def test_an_english_page_and_the_api_say_the_same_refusals_in_english(demo_db):
    coordinator = client_for(demo_db, "coordinator", "zh-CN;q=0.1, en-GB")
    response = coordinator.get("/trials/amass-2/patients/NOPE")
    assert response.status_code == 404 and "no patient NOPE in amass-2 at your sites" in said(response)
    with demo_db.write() as session:
        _user, api_token = accounts.create_user(session, SYSTEM, "api-zh", "coordinator", ["S1", "S2", "S3"],
                                                language="zh_Hans")
    api = TestClient(create_app(demo_db), headers={"Accept-Language": "zh-CN", "Authorization": f"Bearer {api_token}"})
    response = api.get("/api/v1/trials/amass-2/patients/NOPE")
    assert response.status_code == 404
    assert response.json() == {"detail": "no patient NOPE in amass-2 at your sites"}
    response = api.post("/api/v1/trials/amass-2/patients/AMASS-001/saes", json={"term": "", "onset_date": "2099-01-01"})
    assert response.status_code == 422
    body = response.json()
    assert body["detail"].startswith("SAE report refused: term: the event, in words (e.g. 'pneumonia'); "
                                     "onset_date: 2099-01-01 is after today"), body
    assert {"field": "term", "value": "", "message": "the event, in words (e.g. 'pneumonia')"} in body["errors"]
    response = api.post("/api/v1/trials/amass-2/patients/AMASS-001/queries",
                        json={"form": "screening", "field": "age", "text": "check"})
    assert response.status_code == 403
    assert response.json()["detail"] == ("raising a data query is for monitor, data_manager; api-zh is coordinator")
    assert not CJK.search(response.text)


def test_an_unblinding_email_in_chinese_is_worded_from_the_catalogs_and_the_english_is_as_stored(demo_db):
    with demo_db.write() as session:
        investigator = accounts.actor_named(session, "investigator")
        unblinding.unblind(session, investigator, "amass-2", "AMASS-001", "anaphylaxis: the treating team must know")
    with demo_db.read() as session:
        rows = session.execute(select(Notification).where(Notification.kind == "emergency_unblinding")).scalars().all()
        assert rows
        for row in rows:
            assert notifications.email_text(row, "en") == (row.subject, row.body)
            assert row.subject == "[AMASS-2] Emergency unblinding: patient AMASS-001 (site S1)"
            assert "Unblinded by: investigator\n" in row.body and "Clinical reason: anaphylaxis" in row.body
            assert row.translations_json is not None  # worded when stored, not pattern-matched when sent
            subject, body = notifications.email_text(row, "zh_Hans")
            assert subject == "[AMASS-2] 紧急揭盲：患者 AMASS-001（中心 S1）"  # noqa: RUF001
            assert "试验：AMASS-2（amass-2）" in body and "揭盲人：investigator" in body  # noqa: RUF001
            assert "临床原因：anaphylaxis: the treating team must know" in body  # noqa: RUF001
            assert ("组别：" in body) == ("Arm: " in row.body)  # noqa: RUF001
            assert not re.search(r"^[A-Z][a-z ]+: ", body, re.MULTILINE), body  # no English label left
            both_subject, both_body = notifications.email_text(row, None)
            assert both_subject == f"{row.subject} / {subject}" and both_body == row.body + notifications.BOTH + body
