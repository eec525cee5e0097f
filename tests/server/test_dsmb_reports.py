"""The DSMB's closed and open reports from the live database (issue 21), on SQLite and PostgreSQL: IMPACT-LVO with
its plan scaled down to 60 patients, 40 randomized, 30 followed to day 90, an sICH and a death reported as SAEs, a
non-serious AE and an emergency unblinding.

The closed report gives the numbers by arm that the service computes (safety counts, the look's boundary), keeps
its HTML and PDF with their hashes, and is audited; the open report holds no arm, nothing per arm and the same data
hash whoever generates it; every role that may not see arms gets 403 from every closed route."""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import re

import pandas as pd
import pytest
from sqlalchemy import select, update
from fastapi.testclient import TestClient
from scipy import stats

from stroketrial.analysis.result import AnalysisInputError
from stroketrial.report import dsmb
from stroketrial.service import (SYSTEM, accounts, adverse_events, audit_trail, dsmb_reports, interim_analyses,
                                 reconcile, safety, serious_adverse_events, trials, unblinding)
from stroketrial.service.accounts import Actor
from stroketrial.service.errors import Forbidden, Invalid
from stroketrial.service.roles import ROLES
from stroketrial.store import Database
from stroketrial.store.models import AuditEvent, DsmbReportFile, InterimLook
from stroketrial.web import create_app

from .test_interim_analyses import (BLINDED, DSMB, INVESTIGATOR, SITE, STATISTICIAN, TRIAL, enrol, freeze,
                                    scaled_protocol)

PASSWORD = "dsmb-password-1"
CLOSED_READERS = {"dsmb", "unblinded_statistician"}
ARM_NAMES = ("Methylprednisolone", "methylprednisolone", "placebo", "Placebo")
# Overlapping day-90 mRS by arm, cycled: a modest difference (the models stay well inside their range).
MIXED = {"methylprednisolone": [0, 1, 2, 3, 4, 2, 1, 5], "placebo": [1, 2, 3, 4, 5, 3, 2, 6]}


def seed_look(database: Database, folder) -> dict[str, str]:
    """IMPACT-LVO scaled to 60 patients: 40 randomized, 30 followed, an sICH and a death reported, an AE, an
    unblinding; frozen, and the first look run. Returns the arms by patient."""
    with database.write() as session:
        accounts.create_site(session, SYSTEM, SITE, "Tianjin")
        trials.create_trial(session, SYSTEM, scaled_protocol(folder), [SITE])
    arms = enrol(database, 40, followed=30, scores=MIXED)
    codes = list(arms)
    today = dt.date.today().isoformat()
    with database.write() as session:
        serious_adverse_events.report_sae(session, INVESTIGATOR, TRIAL, codes[0], {
            "term": "symptomatic intracranial haemorrhage", "system_organ_class": "Nervous system disorders",
            "onset_date": today, "criteria": ["life_threatening"], "outcome": "recovering", "relatedness": "possible"})
        serious_adverse_events.report_sae(session, INVESTIGATOR, TRIAL, codes[1], {
            "term": "aspiration pneumonia", "system_organ_class": "Infections and infestations",
            "onset_date": today, "criteria": ["death"], "outcome": "fatal", "relatedness": "unlikely"})
        adverse_events.record_ae(session, INVESTIGATOR, TRIAL, codes[2], {
            "term": "headache", "system_organ_class": "Nervous system disorders", "onset_date": today,
            "severity": "mild", "relatedness": "unlikely", "action_taken": "none", "outcome": "recovered"})
        unblinding.unblind(session, INVESTIGATOR, TRIAL, codes[3], "anaphylaxis: the treating team needs the arm")
    freeze(database)
    with database.write() as session:
        interim_analyses.run_look(session, STATISTICIAN, TRIAL)
    return arms


@pytest.fixture
def db(database_url, tmp_path):
    database = Database(database_url)
    database.migrate()
    seed_look(database, tmp_path)
    yield database
    database.dispose()


def generate(db: Database, actor: Actor, kind: str) -> dict:
    with db.write() as session:
        return dsmb_reports.generate(session, actor, TRIAL, kind)


def download(db: Database, actor: Actor, number: int, fmt: str) -> bytes:
    with db.read() as session:
        return dsmb_reports.document(session, actor, TRIAL, number, fmt)[0]


def cell(html: str, row: str) -> list[str]:
    """The cells of the first table row whose first cell is `row`."""
    found = re.search(rf"<tr><td>{re.escape(row)}</td>(.*?)</tr>", html, re.S)
    assert found, row
    return re.findall(r"<td>(.*?)</td>", found.group(1), re.S)


def test_the_closed_report_gives_the_dsmb_the_numbers_by_arm_and_is_kept_with_its_hashes(db):
    made = generate(db, DSMB, "closed")
    html = download(db, DSMB, made["number"], "html").decode("utf-8")
    pdf = download(db, DSMB, made["number"], "pdf")
    assert pdf.startswith(b"%PDF") and hashlib.sha256(pdf).hexdigest() == made["pdf_sha256"]
    assert hashlib.sha256(html.encode("utf-8")).hexdigest() == made["html_sha256"]
    assert made["kind"] == "closed" and made["look"] == 1 and made["patients"] == 40
    assert made["data_sha256"] in html and "confidential" in html
    # safety by arm: the service's counts, with exact (Clopper-Pearson) intervals
    with db.read() as session:
        protocol = trials.get_trial(session, DSMB, TRIAL)[1]
        counts = safety.counts_by_arm(session, protocol, TRIAL)
    for row, key in (("Death", "deaths"), ("Symptomatic intracranial haemorrhage", "sich")):
        cells = cell(html, row)
        for arm, text in zip([a.id for a in protocol.arms], cells, strict=False):
            c = counts[arm]
            ci = stats.binomtest(c[key], c["randomized"]).proportion_ci(method="exact")
            assert text == f"{c[key]}/{c['randomized']} ({100 * ci.low:.0f} to {100 * ci.high:.0f}%)"
        assert cells[-1].startswith(f"{sum(c[key] for c in counts.values())}/40 ")
    assert sum(c["sich"] for c in counts.values()) == 1 and sum(c["deaths"] for c in counts.values()) >= 1
    # the interim look as stored: z, the boundary, the recommendation
    with db.read() as session:
        look = interim_analyses.list_looks(session, DSMB, TRIAL)[0]
    assert f"<span data-z>{look['z']:.3f}</span>" in html
    assert f"<span data-boundary>{look['look_result']['efficacy_bound']:.3f}</span>" in html
    assert f"<strong>{look['recommendation']}</strong>" in html
    # listings, the unblinding log, system organ classes, the arms by name
    assert "aspiration pneumonia" in html and "headache" in html and "Infections and infestations" in html
    assert "anaphylaxis: the treating team needs the arm" in html
    assert all(arm.name in html for arm in protocol.arms)
    with db.read() as session:  # the audit event, as the trail holds it
        event = session.execute(select(AuditEvent).where(AuditEvent.entity == "dsmb_report")).scalar_one()
    assert json.loads(event.after_json)["data_sha256"] == made["data_sha256"] and event.actor == DSMB.name


def test_the_open_report_pools_every_patient_and_is_the_same_whoever_generates_it(db):
    blinded = BLINDED[0]  # the blinded statistician
    by_blinded = generate(db, blinded, "open")
    by_dsmb = generate(db, DSMB, "open")
    # computed from nothing hidden: the unblinded DSMB's open report reads exactly the blinded statistician's data
    assert by_blinded["data_sha256"] == by_dsmb["data_sha256"]
    html = download(db, blinded, by_blinded["number"], "html").decode("utf-8")
    with db.read() as session:
        protocol = trials.get_trial(session, DSMB, TRIAL)[1]
        closed_look = interim_analyses.list_looks(session, DSMB, TRIAL)[0]
    for arm in protocol.arms:
        assert arm.name not in html and f">{arm.id}<" not in html
    assert f"{closed_look['z']:.3f}" not in html and "data-z" not in html and "data-recommendation" not in html
    assert "anaphylaxis" not in html  # the unblinding log is closed
    assert "All patients" in html and "aspiration pneumonia" in html
    with db.read() as session:
        deaths = sum(c["deaths"] for c in safety.counts_by_arm(session, protocol, TRIAL).values())
    assert cell(html, "Death") == [cell(html, "Death")[0]] and cell(html, "Death")[0].startswith(f"{deaths}/40 ")
    assert download(db, blinded, by_blinded["number"], "pdf").startswith(b"%PDF")


def test_every_role_that_does_not_see_arms_is_refused_every_closed_route(db):
    closed = generate(db, STATISTICIAN, "closed")
    for role in ROLES:
        actor = Actor(f"a-{role}", role, frozenset({SITE}))
        if role in CLOSED_READERS:
            assert download(db, actor, closed["number"], "pdf").startswith(b"%PDF")
            continue
        with pytest.raises(Forbidden), db.write() as session:
            dsmb_reports.generate(session, actor, TRIAL, "closed")
        for fmt in ("html", "pdf"):
            with pytest.raises(Forbidden), db.read() as session:
                dsmb_reports.document(session, actor, TRIAL, closed["number"], fmt)
        if actor.may(dsmb_reports.READING["open"]):
            with db.read() as session:
                assert all(r["kind"] == "open" for r in dsmb_reports.list_reports(session, actor, TRIAL))
    with pytest.raises(Invalid, match="report kind 'secret' is not one of closed, open"), db.write() as session:
        dsmb_reports.generate(session, DSMB, TRIAL, "secret")


def test_the_audit_trail_shows_a_blinded_reader_no_hash_of_a_closed_report(db):
    generate(db, DSMB, "closed")
    for reader in (Actor("admin", "admin", frozenset()), Actor("monitor", "monitor", frozenset({SITE}))):
        with db.read() as session:
            rows, columns = audit_trail.audit_rows(session, reader)
        shown = [json.loads(r["after"]) for r in rows if r["entity"] == "dsmb_report"]
        assert shown and "hash" not in columns
        assert all(set(s) <= set(dsmb_reports.OPEN_KEYS) and s["kind"] == "closed" for s in shown), shown


def api(db: Database) -> TestClient:
    with db.write() as session:
        for role in ROLES:
            accounts.create_user(session, SYSTEM, f"u-{role}", role, [] if role == "admin" else [SITE],
                                 password=PASSWORD)
    return TestClient(create_app(db))


def signed_in(client: TestClient, name: str) -> TestClient:
    client.cookies.clear()
    page = client.get("/login")
    token = re.search(r'name="csrf" value="([^"]+)"', page.text).group(1)
    assert client.post("/login", data={"name": name, "password": PASSWORD, "csrf": token},
                       follow_redirects=False).status_code == 303
    return client


def csrf(client: TestClient, path: str) -> str:
    return re.search(r'name="csrf" value="([^"]+)"', client.get(path).text).group(1)


def test_the_closed_routes_answer_403_to_every_blinded_role_on_the_api_and_the_pages(db):
    client = api(db)
    closed = generate(db, DSMB, "closed")["number"]
    base = f"/api/v1/trials/{TRIAL}"
    for role in ROLES:
        with db.write() as session:
            _, token = accounts.create_user(session, SYSTEM, f"t-{role}", role, [] if role == "admin" else [SITE])
        headers = {"Authorization": f"Bearer {token}"}
        answers = [client.post(f"{base}/dsmb-reports", json={"kind": "closed"}, headers=headers),
                   client.get(f"{base}/dsmb-reports/{closed}.html", headers=headers),
                   client.get(f"{base}/dsmb-reports/{closed}.pdf", headers=headers),
                   client.get(f"{base}/interim-looks", headers=headers),
                   client.get(f"{base}/safety-monitoring", headers=headers)]
        signed_in(client, f"u-{role}")
        answers.append(client.get(f"/trials/{TRIAL}/dsmb/reports/{closed}.pdf"))
        if role in CLOSED_READERS:
            assert [a.status_code for a in answers[1:]] == [200] * 5, role
            continue
        assert [a.status_code for a in answers] == [403] * 6, (role, [a.status_code for a in answers])
        page = client.get(f"/trials/{TRIAL}/dsmb")
        assert page.status_code in (200, 403), role
        if page.status_code == 200:
            assert 'data-kind="closed"' not in page.text and "data-z" not in page.text
            assert not any(name in page.text for name in ARM_NAMES), role
            refused = client.post(f"/trials/{TRIAL}/dsmb/reports",
                                  data={"kind": "closed", "csrf": csrf(client, f"/trials/{TRIAL}/dsmb")})
            assert refused.status_code == 403, role


def test_the_dsmb_sees_the_boundary_and_the_recommendation_and_records_its_decision_on_the_page(db):
    client = signed_in(api(db), "u-dsmb")
    page = client.get(f"/trials/{TRIAL}/dsmb")
    assert page.status_code == 200
    with db.read() as session:
        look = interim_analyses.list_looks(session, DSMB, TRIAL)[0]
    assert f"&ge; {look['look_result']['efficacy_bound']:.3f}" in page.text
    assert 'data-testid="decision-form"' in page.text
    token = csrf(client, f"/trials/{TRIAL}/dsmb")
    wrong = client.post(f"/trials/{TRIAL}/dsmb/looks/1/decision",
                        data={"decision": "continue", "reason": "no safety signal", "password": "nope",
                              "csrf": token})
    assert wrong.status_code == 401 and "no safety signal" in wrong.text  # what was typed is kept
    done = client.post(f"/trials/{TRIAL}/dsmb/looks/1/decision",
                       data={"decision": "continue", "reason": "no safety signal; efficacy boundary not crossed",
                             "password": PASSWORD, "csrf": token}, follow_redirects=False)
    assert done.status_code == 303
    page = client.get(f"/trials/{TRIAL}/dsmb")
    assert "no safety signal; efficacy boundary not crossed" in page.text
    assert 'data-testid="decision-form"' not in page.text
    made = client.post(f"/trials/{TRIAL}/dsmb/reports", data={"kind": "closed", "csrf": token},
                       follow_redirects=False)
    assert made.status_code == 303
    report = client.get(made.headers["location"].split("#")[0]).text
    assert 'data-kind="closed"' in report
    html = client.get(f"/trials/{TRIAL}/dsmb/reports/1.html")
    assert html.status_code == 200 and "no safety signal; efficacy boundary not crossed" in html.text


def test_the_open_builder_refuses_data_that_hold_an_arm(db):
    with db.read() as session:
        protocol = trials.get_trial(session, DSMB, TRIAL)[1]
    frame = pd.DataFrame({"patient_id": ["P001"], "arm": ["placebo"]})
    with pytest.raises(AnalysisInputError, match="an open report is made from data without arms; data holds arm"):
        dsmb.open_report(protocol, frame, frame, frame, frame, dt.date.today())


def test_a_kept_report_changed_in_the_database_is_found_by_the_audit_check(db):
    made = generate(db, DSMB, "closed")
    with db.read() as session:
        assert reconcile.reconcile(session) == []
    with db.engine.begin() as connection:  # someone with database access edits the archived closed report
        connection.execute(update(DsmbReportFile).where(DsmbReportFile.number == made["number"])
                           .values(html="<p>nothing to see</p>"))
        connection.execute(update(InterimLook).values(recommendation="stop for efficacy"))
    with db.read() as session:
        problems = reconcile.reconcile(session)
    assert f"DSMB report {TRIAL}/{made['number']}: its kept HTML or PDF is not the document generated " \
           "(changed unseen)" in problems
    assert f"interim look {TRIAL}/1: recommendation differ from the audit trail (changed unseen)" in problems


def test_a_blinded_reader_is_refused_a_closed_report_in_chinese_on_the_page_and_in_english_on_the_api(db):
    client = api(db)
    closed = generate(db, DSMB, "closed")["number"]
    signed_in(client, "u-blinded_statistician")
    page = client.get(f"/trials/{TRIAL}/dsmb/reports/{closed}.pdf", headers={"Accept-Language": "zh-CN"})
    assert page.status_code == 403 and "查看 DSMB 非公开报告仅限" in page.text and "设盲统计师" in page.text
    with db.write() as session:
        _, token = accounts.create_user(session, SYSTEM, "api-reader", "blinded_statistician", [SITE])
    refused = client.get(f"/api/v1/trials/{TRIAL}/dsmb-reports/{closed}.pdf",
                         headers={"Authorization": f"Bearer {token}", "Accept-Language": "zh-CN"})
    assert refused.status_code == 403
    assert refused.json()["detail"].startswith("reading closed DSMB reports is for unblinded_statistician, dsmb")
