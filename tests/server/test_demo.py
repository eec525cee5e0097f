"""`stroketrial serve --demo`: five trials, a user per role, AMASS-2 patients waiting to be randomized,
AMASS-1's escalation done (27 patients, the MTD declared) with its expansion cohort open, and IMPACT-LVO at the
DSMB's first interim look (about 530 of 560 patients with their day-90 mRS; the look says continue)."""

from __future__ import annotations

import re
from importlib import resources

import pytest
import yaml
from fastapi.testclient import TestClient
from sqlalchemy import func, select

from stroketrial.protocol import load_builtin
from stroketrial.service import accounts, demo, locks
from stroketrial.service.safety import counts_by_arm
from stroketrial.store.models import Patient, Unblinding, VisitRecord
from stroketrial.service.reconcile import reconcile
from stroketrial.store import Database, verify
from stroketrial.web import create_app


def test_demo_data_lets_a_newcomer_randomize_at_once(database_url):
    db = Database(database_url)
    db.migrate()
    logins = demo.load(db)
    assert demo.has_data(db)
    assert {login["role"] for login in logins} == set(accounts.ROLES)
    token = next(login["token"] for login in logins if login["role"] == "coordinator")
    client = TestClient(create_app(db))
    headers = {"Authorization": f"Bearer {token}"}
    assert len(client.get("/api/v1/trials", headers=headers).json()) == 5
    amass2 = client.get("/api/v1/trials/amass-2/patients", headers=headers).json()
    waiting = [p for p in amass2 if p["status"] == "eligible" and not p["randomized"]]
    assert len(waiting) >= 20
    assert any(p["status"] == "ineligible" for p in amass2)
    for trial in ("amass-2", "impact-lvo", "isis-hermes", "angel-rescue"):
        listed = client.get(f"/api/v1/trials/{trial}/patients", headers=headers).json()
        assert sum(p["randomized"] for p in listed) >= 10, trial
    response = client.post(f"/api/v1/trials/amass-2/patients/{waiting[0]['patient_id']}/randomization",
                           headers={**headers, "Idempotency-Key": "demo-try"})
    assert response.status_code == 201, response.text
    from stroketrial.service import registry
    with db.read() as session:
        assert registry.registry_summary(session, accounts.SYSTEM)["patients"] == 600  # the matched-control pool
    escalation = client.get("/api/v1/trials/amass-1/escalation", headers=headers).json()
    escalated = [c for c in escalation["cohorts"] if c["phase"] == "escalation"]
    assert sum(len(c["patients"]) for c in escalated) == 27
    assert all(c["confirmation"] for c in escalated) and escalation["mtd"] == 7
    assert (escalation["status"], escalation["open_level"]) == ("expansion", 7) and escalation["free_places"] > 0
    amass1 = client.get("/api/v1/trials/amass-1/patients", headers=headers).json()
    newcomer = next(p for p in amass1 if p["status"] == "eligible" and not p["randomized"])
    enrolled = client.post(f"/api/v1/trials/amass-1/patients/{newcomer['patient_id']}/enrolment",
                           headers={**headers, "Idempotency-Key": "demo-enrol"})
    assert enrolled.status_code == 201 and enrolled.json()["phase"] == "expansion", enrolled.text
    _the_demo_shows_a_trial_run_under_gcp(client, logins)
    _the_chinese_speaking_coordinator_reads_chinese_pages(db, logins)
    _the_dsmb_has_its_first_look_to_decide_on(db, client, logins)
    with db.read() as session:
        assert verify(session).ok
        assert reconcile(session) == []  # every table, the escalation's included, agrees with the trail
    db.dispose()


def _the_chinese_speaking_coordinator_reads_chinese_pages(db, logins):
    zhang = next(login for login in logins if login.get("language") == "zh_Hans")
    assert zhang["role"] == "coordinator"
    browser = TestClient(create_app(db), headers={"Accept-Language": "en-GB"})  # her own choice wins
    token = re.search(r'name="csrf" value="([^"]+)"', browser.get("/login").text).group(1)
    browser.post("/login", data={"csrf": token, "name": zhang["name"], "password": demo.DEMO_PASSWORD, "next": "/"})
    page = browser.get("/trials/amass-2").text
    assert '<html lang="zh-Hans">' in page and "退出登录" in page


def _the_demo_shows_a_trial_run_under_gcp(client, logins):
    """Open queries, a pending deferred consent, an overdue SAE report, a signed casebook, an amendment with
    patients on two versions: each through the API the pages read."""
    def get(role, path):
        token = next(login["token"] for login in logins if login["role"] == role)
        answer = client.get(f"/api/v1{path}", headers={"Authorization": f"Bearer {token}"})
        assert answer.status_code == 200, (path, answer.text)
        return answer.json()

    queries = get("monitor", "/trials/amass-1/queries")
    assert sum(q["status"] == "open" for q in queries["queries"]) >= 2
    assert {q["status"] for q in queries["queries"]} == {"open", "answered", "closed"}
    pending = get("coordinator", "/trials/angel-rescue/consents/pending")["pending"]
    assert [(c["route"], c["status"]) for c in pending] == [("deferred", "awaiting_confirmation")]
    saes = get("pharmacovigilance", "/trials/amass-1/saes")
    assert [s["overdue"] for s in saes] == [True]
    casebooks = get("investigator", "/trials/amass-1/patients/AMASS-003/signatures")
    assert [(s["form"], s["state"]) for s in casebooks] == [("casebook", "valid")]
    versions = get("coordinator", "/trials/angel-rescue/protocol/versions")
    assert [(v["version"], v["patients_screened"] > 0, v["in_force"]) for v in versions] == [(1, True, False),
                                                                                               (2, True, True)]
    assert versions[1]["changes"]["consent"]
    sets = get("unblinded_pharmacist", "/trials/angel-rescue/envelope-sets")
    assert [(s["site"], s["voided"]) for s in sets] == [("S1", False)]
    assert sets[0]["count"] > 0 and {e["status"] for e in sets[0]["envelopes"]} == {"sealed"}
    _the_trial_pages_show_what_waits(client)


def _the_trial_pages_show_what_waits(client):
    """Each role's to-do list on the trial page, with links to where the work is done, and the versions page."""
    def page(user, path):
        client.cookies.clear()
        token = re.search(r'name="csrf" value="([^"]+)"', client.get("/login").text).group(1)
        signed = client.post("/login", data={"csrf": token, "name": user, "password": demo.DEMO_PASSWORD, "next": "/"},
                             follow_redirects=False)
        assert signed.status_code == 303, signed.text
        answer = client.get(path)
        assert answer.status_code == 200, answer.text
        return re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", answer.text))

    monitor = page("monitor", "/trials/amass-1")
    assert "3 data queries open (the site answers) or answered (the monitor closes) 2 open" in monitor
    assert "1 SAE with a report overdue or made late 1 overdue" in monitor
    coordinator = page("coordinator", "/trials/angel-rescue")
    assert "1 deferred consent awaiting confirmation" in coordinator and "Protocol version 2 in force" in coordinator
    assert "data queries open" not in coordinator  # nothing is queried in ANGEL-RESCUE
    assessor = page("assessor", "/trials/amass-1")
    assert "SAE" not in assessor.split("To do")[1].split("Protocol version")[0]  # no safety data for the assessor
    versions = page("coordinator", "/trials/angel-rescue/protocol")
    assert "2 in force" in versions and "routes changed" in versions
    assert "the protocol the trial was created with" in versions


def _the_dsmb_has_its_first_look_to_decide_on(db, client, logins):
    """IMPACT-LVO ten months in: the look run on frozen data by the unblinded statistician, the freeze released,
    the decision left to the DSMB; the blinded statistician gets no look."""
    def call(role, path):
        token = next(login["token"] for login in logins if login["role"] == role)
        return client.get(f"/api/v1{path}", headers={"Authorization": f"Bearer {token}"})

    looks = call("dsmb", "/trials/impact-lvo/interim-looks")
    assert looks.status_code == 200, looks.text
    [look] = looks.json()
    assert look["recommendation"] == "continue" and look["decision"] is None
    assert 520 <= look["patients_observed"] <= 540 and look["information"] == pytest.approx(0.52, abs=0.01)
    assert 0 < look["z"] < look["look_result"]["efficacy_bound"]
    # the same look at every load, whatever the allocation: the z the demo's plan asks for
    plan = yaml.safe_load(resources.files("stroketrial.service").joinpath("demo_platform.yaml").read_text("utf-8"))
    assert look["z"] == pytest.approx(plan["trials"]["impact-lvo"]["history"]["look_z"], abs=0.05)
    assert look["run_by"] == "unblinded_stat" and look["lock_reason"].startswith("DSMB first interim look")
    assert call("blinded_statistician", "/trials/impact-lvo/interim-looks").status_code == 403
    patients = call("coordinator", "/trials/impact-lvo/patients").json()
    assert sum(p["randomized"] for p in patients) == 560
    with db.read() as session:
        assert locks.trial_lock_in_force(session, "impact-lvo") is None  # released: data entry goes on
        counts = counts_by_arm(session, load_builtin("impact-lvo"), "impact-lvo")
        followed = session.execute(select(func.count()).select_from(VisitRecord).join(
            Patient, Patient.id == VisitRecord.patient_id).where(Patient.trial_id == "impact-lvo",
                                                                  VisitRecord.visit_id == "d90")).scalar_one()
        unblinded = session.execute(select(func.count()).select_from(Unblinding)).scalar_one()
    assert followed == look["patients_observed"]
    assert all(c["sich"] >= 3 and c["deaths"] >= 10 and c["saes"] >= c["deaths"] for c in counts.values()), counts
    assert unblinded == 1


def test_a_demo_patient_is_randomized_at_its_own_time_in_the_past(database_url):
    """`randomize(now=...)`, the demo's alone: the allocation is dated then, and the window that ends at
    randomization is measured to then (the server's clock would put this patient 200 days out of it)."""
    import datetime as dt
    import json
    import uuid

    from stroketrial.service import patients, randomize, trials
    from stroketrial.service.errors import Invalid
    from stroketrial.store.models import Allocation

    from ..trials import impact_lvo

    db = Database(database_url)
    db.migrate()
    coordinator = accounts.Actor("coordinator", "coordinator", frozenset({"S1"}))
    then = dt.datetime.now(dt.UTC).replace(microsecond=0) - dt.timedelta(days=200)
    with db.write() as session:
        accounts.create_site(session, accounts.SYSTEM, "S1", "Demo Stroke Centre 1")
        trials.create_trial(session, accounts.SYSTEM, "impact-lvo", ["S1"])
        for code in ("PAST-1", "PAST-2"):
            record, attestations = demo.shifted_screening(dict(impact_lvo.ELIGIBLE), then)
            patients.register(session, coordinator, "impact-lvo", code, "S1", record, attestations)
    with pytest.raises(Invalid, match="not eligible at the time of randomization"), db.write() as session:
        randomize.randomize(session, coordinator, "impact-lvo", "PAST-1", str(uuid.uuid4()))
    with db.write() as session:
        randomize.randomize(session, coordinator, "impact-lvo", "PAST-2", str(uuid.uuid4()), now=then)
    with db.read() as session:
        allocation, data = session.execute(select(Allocation.created_at, Patient.data_json).join(
            Patient, Patient.id == Allocation.patient_id)).one()
        assert verify(session).ok
    assert allocation.replace(tzinfo=dt.UTC) == then
    assert json.loads(data)["randomization"].startswith(then.replace(tzinfo=None).isoformat()[:16])
    db.dispose()
