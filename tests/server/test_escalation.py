"""AMASS-1 on the platform through the API alone: 3+3 cohorts enrolled at the open level, DLTs recorded by the
investigator, each decision signed by the safety review committee, the MTD declared and the expansion cohort
filled. Enrolment is refused while a cohort is observed or a decision waits; the committee's signature and
reason are required and a departure from the rule is marked in the audit trail."""

from __future__ import annotations

import datetime as dt
import threading
import uuid
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest
from sqlalchemy import select

from stroketrial.service import patients
from stroketrial.service.accounts import Actor
from stroketrial.store import verify
from stroketrial.store.models import AuditEvent, EscalationAssignment

from ..process import ServerProcess
from ..trials import amass1
from ..trials.helpers import happening_now
from .conftest import Platform

TRIAL = amass1.TRIAL
SRC = "safety_review_committee"
PASSWORD = "password-1"
COORDINATOR = Actor("coordinator", "coordinator", frozenset({"S1"}))


def _data():
    data = dict(happening_now(amass1.ELIGIBLE))
    return data, data.pop("attestations")


def register(platform, code):
    data, attestations = _data()
    answer = platform.call("POST", f"/trials/{TRIAL}/patients", "coordinator",
                           json={"patient_id": code, "site": "S1", "data": data, "attestations": attestations})
    assert answer.status_code == 201, answer.text
    return answer.json()


def enrol(platform, code, key=None, **expected):
    return platform.call("POST", f"/trials/{TRIAL}/patients/{code}/enrolment", "coordinator",
                         headers={"Idempotency-Key": key or f"key-{code}"}, json=expected or None)


def dlt(platform, code, yes=False, role="investigator", **fields):
    body = {"dlt": yes, **({"criterion": "infusion_reaction", "event": "urticaria needing antihistamine",
                            "onset": dt.date.today().isoformat()} if yes else {}), **fields}
    return platform.call("PUT", f"/trials/{TRIAL}/patients/{code}/dlt", role, json=body)


def table(platform, role="investigator"):
    answer = platform.call("GET", f"/trials/{TRIAL}/escalation", role)
    assert answer.status_code == 200, answer.text
    return answer.json()


def confirm(platform, after, action, level=None, mtd=None, reason="the committee reviewed the cohort's safety data",
            password=PASSWORD, role=SRC):
    return platform.call("POST", f"/trials/{TRIAL}/escalation/decisions", role,
                         json={"after_cohort": after, "action": action, "level": level, "mtd": mtd, "reason": reason,
                               "password": password})


def windows_pass(platform, hours=49):
    """The DLT observation windows of everyone enrolled so far end (the clock moves on)."""
    with platform.db.write() as session:
        for row in session.execute(select(EscalationAssignment)).scalars():
            row.enrolled_at = row.enrolled_at - dt.timedelta(hours=hours)


def run_cohort(platform, codes, dlts=(), level=None):
    for code in codes:
        register(platform, code)
        answer = enrol(platform, code, level=level) if level else enrol(platform, code)
        assert answer.status_code == 201, answer.text
    for code in dlts:  # recorded when they happen, in the window
        assert dlt(platform, code, yes=True).status_code == 200
    windows_pass(platform)
    for code in codes:
        if code not in dlts:
            assert dlt(platform, code).status_code == 200


def test_a_3_3_escalation_reaches_the_mtd_and_fills_the_expansion_cohort(platform):
    """27 patients in 9 cohorts (1/3 then 0/3 at levels 3 and 5), the top level tolerated, then 20 in expansion."""
    plan = [(1, ()), (2, ()), (3, (0,)), (3, ()), (4, ()), (5, (0,)), (5, ()), (6, ()), (7, ())]
    n = 0
    for number, (level, dlt_at) in enumerate(plan, 1):
        codes = [f"A{n + i + 1:02d}" for i in range(3)]
        n += 3
        state = table(platform)
        assert (state["status"], state["open_cohort"], state["open_level"]) == ("enrolling", number, level)
        run_cohort(platform, codes, {codes[i] for i in dlt_at}, level=level)
        state = table(platform)
        assert state["status"] == "awaiting_confirmation"
        pending = state["pending"]
        if number < len(plan):
            assert (pending["action"], pending["level"]) == ("treat", plan[number][0])
            assert confirm(platform, number, "treat", level=plan[number][0]).status_code == 201
    assert (pending["action"], pending["mtd"], pending["rule"]) == ("stop", 7, "top_tolerated")
    signed = confirm(platform, 9, "stop", mtd=7).json()
    assert (signed["deviation"], signed["signed_by"]) == (False, SRC)
    state = table(platform)
    assert (state["status"], state["mtd"], state["open_phase"], state["free_places"]) == ("expansion", 7, "expansion",
                                                                                          20)
    assert sum(len(c["patients"]) for c in state["cohorts"]) == 27
    for i in range(20):
        code = f"X{i + 1:02d}"
        register(platform, code)
        answer = enrol(platform, code).json()
        assert (answer["phase"], answer["level"], answer["dose"], answer["cohort"]) == ("expansion", 7, 0.60, 10)
    register(platform, "X21")
    full = enrol(platform, "X21")
    assert full.status_code == 409 and "closed" in full.json()["detail"]
    assert table(platform)["status"] == "complete"
    with platform.db.read() as session:
        assert verify(session).ok


def test_enrolment_waits_for_the_dlt_window_and_for_the_committee(platform):
    for code in ("B1", "B2", "B3", "B4"):
        register(platform, code)
    for code in ("B1", "B2", "B3"):
        assert enrol(platform, code).status_code == 201
    refused = enrol(platform, "B4")  # cohort 1 is full, its patients are being observed
    assert refused.status_code == 409
    assert "DLT observation of B1, B2, B3" in refused.json()["detail"]
    assert dlt(platform, "B1").status_code == 200  # "no DLT" before the window ends does not end it
    assert table(platform)["status"] == "observing"
    windows_pass(platform)
    state = table(platform)
    assert state["status"] == "observing" and "assessment of B2, B3" in state["waiting"][0]
    dlt(platform, "B2")
    dlt(platform, "B3")
    state = table(platform)
    assert state["status"] == "awaiting_confirmation" and state["pending"]["rule"] == "escalate_0_of_3"
    refused = enrol(platform, "B4")  # the rule says escalate; nothing happens until the committee signs
    assert refused.status_code == 409 and "safety review committee" in refused.json()["detail"]
    assert confirm(platform, 1, "treat", level=2, password="wrong").status_code == 401
    assert confirm(platform, 1, "treat", level=2, role="investigator").status_code == 403
    assert confirm(platform, 1, "treat", level=2, role="dsmb").status_code == 403
    assert confirm(platform, 1, "treat", level=2, reason="  ").status_code == 422
    assert confirm(platform, 2, "treat", level=2).status_code == 409
    stale = enrol(platform, "B4", level=1)  # a page read before the decision
    assert stale.status_code == 409
    assert confirm(platform, 1, "treat", level=2).status_code == 201
    assert confirm(platform, 1, "treat", level=2).status_code == 409  # signed once
    stale = enrol(platform, "B4", level=1)
    assert stale.status_code == 409 and "level 1 is closed; enrolment is open at level 2" in stale.json()["detail"]
    answer = enrol(platform, "B4", level=2, cohort=2)
    assert answer.status_code == 201 and (answer.json()["level"], answer.json()["dose"]) == (2, 0.35)


def test_a_departure_from_the_rule_needs_a_reason_and_is_marked_in_the_trail(platform):
    run_cohort(platform, ["D1", "D2", "D3"])
    skip = confirm(platform, 1, "treat", level=3)
    assert skip.status_code == 422 and "skip level 2" in skip.json()["detail"]
    above = confirm(platform, 1, "stop", mtd=2)
    assert above.status_code == 422 and "was not given to any patient" in above.json()["detail"]
    stay = confirm(platform, 1, "treat", level=1, reason="a borderline infusion reaction; 3 more at level 1")
    assert stay.status_code == 201 and stay.json()["deviation"] is True
    with platform.db.read() as session:
        event = session.execute(select(AuditEvent).where(AuditEvent.action == "deviate_escalation")).scalar_one()
    assert event.actor == SRC and "borderline" in event.reason
    state = table(platform)
    assert (state["open_cohort"], state["open_level"]) == (2, 1)
    # after the departure the rule starts again at level 1: 0/3 there escalates to level 2
    run_cohort(platform, ["D4", "D5", "D6"])
    assert table(platform)["pending"]["level"] == 2


def test_two_dlts_stop_escalation_and_declare_the_level_below(platform):
    run_cohort(platform, ["E1", "E2", "E3"])
    confirm(platform, 1, "treat", level=2)
    run_cohort(platform, ["E4", "E5", "E6"], dlts={"E4", "E5"})
    pending = table(platform)["pending"]
    assert (pending["action"], pending["mtd"], pending["rule"]) == ("stop", 1, "stop_2_plus")
    assert "expansion cohort of 20 patients at level 1" in pending["expansion"]
    confirm(platform, 2, "stop", mtd=1)
    register(platform, "E7")
    assert enrol(platform, "E7").json()["level"] == 1


def test_dlt_assessments_are_the_investigators_and_name_what_is_wrong(platform):
    register(platform, "F1")
    assert dlt(platform, "F1").status_code == 409  # not enrolled
    enrol(platform, "F1")
    assert dlt(platform, "F1", role="coordinator").status_code == 403
    bad = dlt(platform, "F1", yes=True, criterion="headache", onset="2001-01-01", event="")
    assert bad.status_code == 422
    assert {e["field"] for e in bad.json()["errors"]} == {"criterion", "event", "onset"}
    assert "infusion_reaction" in bad.json()["errors"][0]["message"]
    assert dlt(platform, "F1", criterion="sich").status_code == 422  # no DLT, yet a criterion
    assert dlt(platform, "F1", yes=True).status_code == 200
    again = dlt(platform, "F1")
    assert again.status_code == 422 and "reason" in again.json()["detail"]
    assert dlt(platform, "F1", reason="the reaction was to contrast, not albumin").json()["dlt"] is False


def test_an_enrolled_patient_has_a_dose_sheet_visits_and_saes(platform):
    register(platform, "G1")
    before = platform.call("GET", f"/trials/{TRIAL}/patients/G1/visits", "coordinator")
    assert before.status_code == 409 and "not enrolled in a dose cohort" in before.json()["detail"]
    assert enrol(platform, "G1").status_code == 201
    sheet = platform.call("GET", f"/trials/{TRIAL}/patients/G1/dose", "investigator").json()
    albumin = next(a for a in sheet["administrations"] if a["route"] == "intra_arterial")
    assert albumin["amount"] == pytest.approx(0.25 * 70)  # level 1, 0.25 g/kg, 70 kg: no cap
    assert platform.call("GET", f"/trials/{TRIAL}/patients/G1/visits", "coordinator").status_code == 200
    sae = platform.call("POST", f"/trials/{TRIAL}/patients/G1/saes", "investigator",
                        json={"term": "pneumonia", "onset_date": dt.date.today().isoformat(),
                              "criteria": ["hospitalization"], "outcome": "recovering", "relatedness": "unlikely"})
    assert sae.status_code == 201, sae.text


def test_enrolment_is_once_per_patient_and_per_key(platform):
    register(platform, "H1")
    register(platform, "H2")
    first = enrol(platform, "H1", key="k1")
    replay = enrol(platform, "H1", key="k1")
    assert replay.status_code == 201 and replay.headers["Idempotent-Replay"] == "true"
    assert replay.json() == first.json()
    assert enrol(platform, "H2", key="k1").status_code == 409
    assert enrol(platform, "H1", key="k2").status_code == 409
    missing = platform.call("POST", f"/trials/{TRIAL}/patients/H2/enrolment", "coordinator")
    assert missing.status_code == 422 and missing.json()["errors"][0]["field"] == "Idempotency-Key"
    randomized = platform.call("POST", f"/trials/{TRIAL}/patients/H2/randomization", "coordinator",
                               headers={"Idempotency-Key": "r"})
    assert randomized.status_code == 409 and "not randomized" in randomized.json()["detail"]
    assert platform.call("GET", "/trials/amass-2/escalation", "coordinator").status_code == 409


def test_ten_clients_at_once_fill_a_cohort_of_three_exactly(database_url, tmp_path):
    platform = Platform(database_url)
    data, attestations = _data()
    codes = [f"C{i:02d}" for i in range(10)]
    with platform.db.write() as session:
        for code in codes:
            patients.register(session, COORDINATOR, TRIAL, code, "S1", data, attestations)
    token = platform.tokens["coordinator"]
    platform.db.dispose()
    answers: dict[str, int] = {}
    lock = threading.Lock()
    with ServerProcess(database_url, log_path=str(tmp_path / "server.log")) as server:
        def client(code: str) -> None:
            with httpx.Client(base_url=server.url, timeout=60, headers={"Authorization": f"Bearer {token}"}) as http:
                answer = http.post(f"/api/v1/trials/{TRIAL}/patients/{code}/enrolment",
                                   headers={"Idempotency-Key": str(uuid.uuid4())})
                with lock:
                    answers[code] = answer.status_code

        with ThreadPoolExecutor(10) as pool:
            list(pool.map(client, codes))
    assert sorted(answers.values()) == [201] * 3 + [409] * 7
    check = Platform.__new__(Platform)
    from stroketrial.store import Database
    check.db = Database(database_url)
    with check.db.read() as session:
        rows = session.execute(select(EscalationAssignment)).scalars().all()
        assert [r.cohort for r in rows] == [1, 1, 1] and verify(session).ok
    check.db.dispose()


def test_the_escalation_tables_agree_with_the_audit_trail_and_an_edit_is_named(platform):
    from sqlalchemy import text

    from stroketrial.service.reconcile import reconcile

    for code in ("R1", "R2", "R3"):  # (no time travel here: moving enrolled_at is itself an edit around the trail)
        register(platform, code)
        assert enrol(platform, code).status_code == 201
        assert dlt(platform, code, yes=True).status_code == 200
    assert confirm(platform, 1, "stop", mtd=None).status_code == 201
    with platform.db.read() as session:
        assert reconcile(session) == []
    with platform.db.write() as session:  # someone with database access, around the platform
        session.execute(text("UPDATE dlt_assessments SET dlt = false"))
        session.execute(text("UPDATE escalation_assignments SET level = 2"))
        session.execute(text("UPDATE escalation_decisions SET reason = 'nothing to see'"))
    with platform.db.read() as session:
        problems = reconcile(session)
    assert any(p.startswith("DLT assessment of amass-1/R2: dlt differ") for p in problems), problems
    assert any(p.startswith("dose cohort of amass-1/R1: level differ") for p in problems), problems
    assert any(p.startswith("escalation decision amass-1/after-cohort-1: reason differ") for p in problems), problems


def test_guessing_the_signature_password_locks_the_account_as_at_sign_in(platform):
    run_cohort(platform, ["L1", "L2", "L3"])
    for _ in range(5):
        assert confirm(platform, 1, "treat", level=2, password="guess").status_code == 401
    locked = confirm(platform, 1, "treat", level=2)  # the right password, too late
    assert locked.status_code == 429 and "Too many failed" in locked.json()["detail"]
    with platform.db.read() as session:
        failed = session.execute(select(AuditEvent).where(AuditEvent.action == "login_failed")).scalars().all()
        assert len(failed) == 5 and {e.entity_id for e in failed} == {SRC}
