"""Labels rather than codes, and times in the site's time zone (issue 20, defects 7 and 8), without a browser, on
SQLite and PostgreSQL: a site in Shanghai, a patient registered and randomized there with a tandem ICA+M1 occlusion,
an SAE reported as life-threatening. The pages show the dictionary's labels and Shanghai time with the zone named."""

from __future__ import annotations

import datetime as dt
import re
from zoneinfo import ZoneInfo

import pytest
from fastapi.testclient import TestClient

from stroketrial.service import SYSTEM, accounts, patients, randomize, serious_adverse_events, trials
from stroketrial.service.accounts import Actor
from stroketrial.store import Database
from stroketrial.web import create_app

from ..trials import amass2
from ..trials.helpers import CLOCK_TIMES, happening_now

TRIAL = "amass-2"
SITE = "SH"
PASSWORD = "password-1"
SHANGHAI = ZoneInfo("Asia/Shanghai")
COORDINATOR = Actor("coordinator", "coordinator", frozenset({SITE}))
INVESTIGATOR = Actor("investigator", "investigator", frozenset({SITE}))
CODES = ("tandem_ica_m1", "life_threatening", "not_related", "recovered_with_sequelae", "anterior_lvo_recanalized")


@pytest.fixture
def db(database_url):
    database = Database(database_url)
    database.migrate()
    with database.write() as session:
        accounts.create_site(session, SYSTEM, SITE, "Shanghai stroke centre", timezone="Asia/Shanghai")
        trials.create_trial(session, SYSTEM, TRIAL, [SITE])
        for name in ("coordinator", "investigator"):
            accounts.create_user(session, SYSTEM, name, name, [SITE], password=PASSWORD)
        accounts.create_user(session, SYSTEM, "assessor", "outcome_assessor", [SITE], password=PASSWORD)
    # The clock times typed with their zone (UTC), so that the Shanghai site reads them as given.
    data = {k: (f"{v}+00:00" if k in CLOCK_TIMES and v else v)
            for k, v in happening_now({**amass2.ELIGIBLE, "occlusion_site": "tandem_ica_m1"}).items()}
    attestations = dict(data.pop("attestations"))
    with database.write() as session:
        patients.register(session, COORDINATOR, TRIAL, "P1", SITE, data, attestations)
    with database.write() as session:
        randomize.randomize(session, COORDINATOR, TRIAL, "P1", "key-P1")
    with database.write() as session:
        serious_adverse_events.report_sae(session, INVESTIGATOR, TRIAL, "P1", {
            "term": "acute pancreatitis", "onset_date": dt.datetime.now(SHANGHAI).date().isoformat(),
            "criteria": ["life_threatening"], "outcome": "recovering", "relatedness": "unlikely"})
    yield database
    database.dispose()


def client_for(db: Database, user: str) -> TestClient:
    client = TestClient(create_app(db))
    token = re.search(r'name="csrf" value="([^"]+)"', client.get("/login").text).group(1)
    response = client.post("/login", data={"csrf": token, "name": user, "password": PASSWORD, "next": "/"})
    assert response.status_code == 200
    return client


def visible(html: str) -> str:
    html = re.sub(r"<(style|script)[^>]*>.*?</\1>", "", html, flags=re.S)
    return re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", html))


def shanghai_now() -> str:
    return dt.datetime.now(SHANGHAI).strftime("%Y-%m-%d")


@pytest.mark.parametrize("page", ["/trials/amass-2/patients/P1", "/trials/amass-2/patients/P1/visits",
                                  "/trials/amass-2/saes", "/trials/amass-2/patients/P1/allocation",
                                  "/trials/amass-2/dashboard"])
def test_pages_show_labels_not_codes(db, page):
    text = visible(client_for(db, "investigator").get(page).text)
    for code in CODES:
        assert code not in text, (page, code)


def test_the_sae_shows_labels_and_shanghai_times(db):
    client = client_for(db, "investigator")
    saes = visible(client.get(f"/trials/{TRIAL}/saes").text)
    assert "life-threatening; recovering/resolving" in saes and "investigator: unlikely related" in saes
    assert "CST (Asia/Shanghai)" in saes and " UTC" not in saes.replace("(UTC)", "")
    visits = visible(client.get(f"/trials/{TRIAL}/patients/P1/visits").text)
    assert "life-threatening" in visits and "CST (Asia/Shanghai)" in visits
    assert re.search(r"due \d{4}-\d\d-\d\d \d\d:\d\d CST \(Asia/Shanghai\)", visits)
    assert not re.search(r"\d\d:\d\d UTC", visits)


def test_the_allocation_and_dose_times_are_in_shanghai_time(db):
    client = client_for(db, "coordinator")
    allocation = visible(client.get(f"/trials/{TRIAL}/patients/P1/allocation").text)
    assert re.search(rf"randomized {shanghai_now()} \d\d:\d\d CST \(Asia/Shanghai\)", allocation), allocation
    dose = client.get(f"/trials/{TRIAL}/patients/P1/dose").text
    assert not re.search(r"\d{4}-\d\d-\d\dT\d\d:\d\d", visible(dose))


def test_the_confirm_page_shows_labels_and_date_help_names_the_zone(db):
    client = client_for(db, "coordinator")
    with db.write() as session:
        data = {k: (f"{v}+00:00" if k in CLOCK_TIMES and v else v)
                for k, v in happening_now({**amass2.ELIGIBLE, "occlusion_site": "tandem_ica_m1"}).items()}
        attestations = dict(data.pop("attestations"))
        patients.register(session, COORDINATOR, TRIAL, "P2", SITE, data, attestations)
    confirm = visible(client.get(f"/trials/{TRIAL}/patients/P2/randomize").text)
    assert "tandem ICA+M1" in confirm and "tandem_ica_m1" not in confirm
    assert "CST (Asia/Shanghai)" in confirm
    screen = visible(client.get(f"/trials/{TRIAL}/screen").text)
    assert "date and time as the hospital clock shows it (Asia/Shanghai)" in screen
    assert "ISO 8601" not in screen


def test_the_mrs_field_defines_each_grade(db):
    text = visible(client_for(db, "assessor").get(f"/trials/{TRIAL}/patients/P1/visits").text)
    assert "0 no symptoms" in text and "6 dead" in text
