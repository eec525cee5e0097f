"""Sealed emergency envelopes on the pages, without a browser, on SQLite and PostgreSQL: the pharmacist makes and
prints ANGEL-RESCUE's set for a site; the randomize confirmation page names the patient's next envelope and loads
the static script that shows it when the platform cannot be reached; the coordinator records an opened envelope
and lands on the patient's allocation; a blinded statistician sees no arm and may not print the set."""

from __future__ import annotations

import datetime as dt
import re
import shutil
import subprocess

from sqlalchemy import select

from stroketrial.randomization.envelopes import check_code, envelope_label
from stroketrial.service import SYSTEM, accounts, patients, trials
from stroketrial.service.accounts import Actor
from stroketrial.store import Database
from stroketrial.store.models import Allocation, Envelope, EnvelopeSet

from ..trials import angel_rescue
from ..trials.helpers import happening_now
from .test_signatures_locks_pages import PASSWORD, client_for, csrf_of

import pytest

TRIAL = angel_rescue.TRIAL
USERS = {"coordinator": "coordinator", "pharmacist": "unblinded_pharmacist", "statistician": "blinded_statistician"}
COORDINATOR = Actor("coordinator", "coordinator", frozenset({"S1"}))
PAGE = f"/trials/{TRIAL}/envelopes"


@pytest.fixture
def db(database_url):
    database = Database(database_url)
    database.migrate()
    with database.write() as session:
        trials.create_trial(session, SYSTEM, TRIAL, ["S1"])
        for name, role in USERS.items():
            accounts.create_user(session, SYSTEM, name, role, ["S1"], password=PASSWORD)
    data = dict(happening_now({**angel_rescue.ELIGIBLE, "bridging_thrombolysis": False}))
    attestations = data.pop("attestations", None)
    with database.write() as session:
        patients.register(session, COORDINATOR, TRIAL, "P1", "S1", data, attestations)
    yield database
    database.dispose()


def test_the_pharmacist_makes_and_prints_a_set_and_the_site_records_an_opened_envelope(db):
    pharmacist = client_for(db, "pharmacist")
    page = pharmacist.get(PAGE)
    assert page.status_code == 200 and 'data-testid="generate-S1"' in page.text
    made = pharmacist.post(f"{PAGE}/sets", data={"csrf": csrf_of(page.text), "site": "S1"}, follow_redirects=True)
    assert made.status_code == 200 and 'data-testid="next-envelopes-S1"' in made.text
    with db.write() as session:  # made the day before it is opened
        envelope_set = session.execute(select(EnvelopeSet)).scalar_one()
        envelope_set.created_at -= dt.timedelta(days=1)
    printed = pharmacist.post(f"{PAGE}/sets/{envelope_set.id}/print", data={"csrf": csrf_of(made.text)})
    assert printed.status_code == 200 and printed.content.startswith(b"%PDF")

    coordinator = client_for(db, "coordinator")
    confirm = coordinator.get(f"/trials/{TRIAL}/patients/P1/randomize").text
    with db.read() as session:
        first = session.execute(select(Envelope).where(Envelope.stratum == "circulation=anterior")
                                .order_by(Envelope.number)).scalars().first()
    label = envelope_label("S1", first.number)
    assert 'data-testid="envelope-procedure"' in confirm and f'data-testid="next-envelope">{label}<' in confirm
    assert '<script src="/static/envelopes.js"' in confirm and "data-envelope-panel" in confirm
    assert "<script>" not in confirm  # no inline script (CSP)
    assert coordinator.get("/static/envelopes.js").status_code == 200
    assert first.arm not in confirm

    page = coordinator.get(PAGE).text
    assert 'data-testid="generate-S1"' not in page and 'data-testid="record-envelope"' in page
    opened = (dt.datetime.now(dt.UTC) - dt.timedelta(minutes=5)).replace(tzinfo=None).isoformat(timespec="minutes")
    code = check_code(db.audit_key(), TRIAL, "S1", first.number, first.set_id, first.stratum, first.arm)
    recorded = coordinator.post(f"{PAGE}/opened", data={"csrf": csrf_of(page), "envelope": label, "check_code": code,
                                                        "patient_id": "P1", "opened_at": opened, "allocation": ""})
    assert recorded.status_code == 200 and "/patients/P1/allocation" in str(recorded.url)
    with db.read() as session:
        assert session.execute(select(Allocation)).scalar_one().arm == first.arm
    # the set's page gives the opening time in the site's zone, named (S1 keeps UTC here), never a bare ISO text
    row = coordinator.get(PAGE).text
    row = row[row.index(f'data-testid="envelope-{label}"'):]
    row = row[:row.index("</tr>")]
    assert opened.replace("T", " ") + " UTC" in row and "T" + opened[11:] not in row


def test_a_blinded_statistician_sees_no_arm_and_cannot_print(db):
    pharmacist = client_for(db, "pharmacist")
    page = pharmacist.get(PAGE).text
    pharmacist.post(f"{PAGE}/sets", data={"csrf": page and csrf_of(page), "site": "S1"})
    statistician = client_for(db, "statistician")
    page = statistician.get(PAGE)
    assert page.status_code == 200
    assert "print-" not in page.text and 'data-testid="generate-S1"' not in page.text
    assert not re.search(r"Stenting|Continued thrombectomy|Treatment</th>", page.text)
    with db.read() as session:
        set_id = session.execute(select(EnvelopeSet.id)).scalar_one()
    refused = statistician.post(f"{PAGE}/sets/{set_id}/print", data={"csrf": csrf_of(page.text)})
    assert refused.status_code == 403


def _pdf_text(pdf: bytes, tmp_path) -> str:
    path = tmp_path / "set.pdf"
    path.write_bytes(pdf)
    return subprocess.run(["pdftotext", "-layout", str(path), "-"], check=True, capture_output=True,
                          text=True).stdout


@pytest.mark.skipif(shutil.which("pdftotext") is None, reason="pdftotext (poppler-utils) is not installed")
def test_a_set_is_printed_in_chinese_for_a_chinese_site_and_in_english_otherwise(db, tmp_path):
    pharmacist = client_for(db, "pharmacist")
    page = pharmacist.get(PAGE)
    made = pharmacist.post(f"{PAGE}/sets", data={"csrf": csrf_of(page.text), "site": "S1"}, follow_redirects=True)
    with db.read() as session:
        set_id = session.execute(select(EnvelopeSet)).scalar_one().id
    assert f'data-testid="print-language-{set_id}"' in made.text and 'lang="zh-Hans"' in made.text
    chinese = pharmacist.post(f"{PAGE}/sets/{set_id}/print", data={"csrf": csrf_of(made.text), "language": "zh_Hans"})
    assert chinese.status_code == 200 and chinese.content.startswith(b"%PDF")
    text = _pdf_text(chinese.content, tmp_path)
    for words in ("密封应急随机信封", "仅在无法连接平台时拆开", "校验码", "沿此处剪开", "拆开人"):
        assert words in text, (words, text[:2000])
    assert re.search(r"第 1 页，共 \d+ 页", text), text[-500:]  # noqa: RUF001  (the footer's page counter)
    assert "Open only when the platform cannot be reached" not in text and "inside envelope" not in text
    english = _pdf_text(pharmacist.post(f"{PAGE}/sets/{set_id}/print",
                                        data={"csrf": csrf_of(made.text), "language": "en"}).content, tmp_path)
    assert "Open only when the platform cannot be reached" in english and "校验码" not in english
