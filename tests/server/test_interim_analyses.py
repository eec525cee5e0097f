"""The DSMB's interim analysis on the live database (issue 21), on SQLite and PostgreSQL: IMPACT-LVO with its plan's
full information scaled down to 60 patients (the look at half of it, 30), a day-90 mRS clearly better with
methylprednisolone. The look needs frozen data, gives "stop for efficacy" with the z of the adjusted mRS shift,
and the DSMB records its decision signed; blinded roles get 403 and the audit trail shows them nothing computed
from the arms."""

from __future__ import annotations

import datetime as dt
import json
from importlib import resources
from pathlib import Path

import pytest
import yaml
from sqlalchemy import select

from stroketrial.design import interim
from stroketrial.service import SYSTEM, accounts, audit_trail, interim_analyses, locks, patients, randomize, trials
from stroketrial.service import visits
from stroketrial.service.accounts import Actor
from stroketrial.service.errors import Conflict, Forbidden, Invalid
from stroketrial.service.signatures import Signature
from stroketrial.store import Database
from stroketrial.store.models import Allocation, Patient

from ..trials import impact_lvo
from ..trials.helpers import happening_now

TRIAL = impact_lvo.TRIAL
SITE = "S1"
COORDINATOR = Actor("coordinator", "coordinator", frozenset({SITE}))
INVESTIGATOR = Actor("investigator", "investigator", frozenset({SITE}))
DATA_MANAGER = Actor("data_manager", "data_manager", frozenset({SITE}))
STATISTICIAN = Actor("unblinded_stat", "unblinded_statistician", frozenset({SITE}))
DSMB = Actor("dsmb", "dsmb", frozenset({SITE}))
BLINDED = [Actor("statistician", "blinded_statistician", frozenset({SITE})), COORDINATOR,
           Actor("investigator", "investigator", frozenset({SITE})), Actor("monitor", "monitor", frozenset({SITE})),
           Actor("admin", "admin", frozenset())]
# The day-90 mRS by arm, cycled: methylprednisolone's patients mostly 0-1, placebo's mostly 4-6 (overlapping, so
# the model has a finite estimate), far enough apart to cross O'Brien-Fleming's 2.96 at half the information.
MRS = {"methylprednisolone": [0, 1, 0, 1, 3, 0, 1, 2], "placebo": [4, 5, 2, 6, 4, 5, 3, 4]}


def scaled_protocol(folder: Path, total: int = 60) -> str:
    builtin = resources.files("stroketrial.protocol").joinpath("builtin", f"{TRIAL}.yaml")
    data = yaml.safe_load(builtin.read_text(encoding="utf-8"))
    data["interim"]["information_total"] = total
    path = folder / f"{TRIAL}.yaml"
    path.write_text(yaml.safe_dump(data, allow_unicode=True), encoding="utf-8")
    return str(path)


def enrol(db: Database, n: int, followed: int, scores: dict[str, list[int]] = MRS) -> dict[str, str]:
    for k in range(n):
        code = f"P{k + 1:03d}"
        data = happening_now({**impact_lvo.ELIGIBLE, "age": 45 + (7 * k) % 30, "nihss": 8 + (5 * k) % 12,
                              "aspects": 5 + k % 4})
        attestations = data.pop("attestations")
        with db.write() as session:
            patients.register(session, COORDINATOR, TRIAL, code, SITE, data, attestations)
        with db.write() as session:
            randomize.randomize(session, INVESTIGATOR, TRIAL, code, f"key-{code}")
    with db.read() as session:  # the arms, from the allocations table (the site, blinded, sees kit numbers)
        arms = dict(session.execute(select(Patient.code, Allocation.arm).join(
            Allocation, Allocation.patient_id == Patient.id)).all())
    counts = {arm: 0 for arm in scores}
    for code in list(arms)[:followed]:
        arm = arms[code]
        mrs = scores[arm][counts[arm] % len(scores[arm])]
        counts[arm] += 1
        with db.write() as session:
            visits.record_visit(session, COORDINATOR, TRIAL, code, "d90", dt.date.today().isoformat(),
                                {"mrs": mrs, "death": mrs == 6, "sae": False})
    return arms


@pytest.fixture
def db(database_url, tmp_path):
    database = Database(database_url)
    database.migrate()
    with database.write() as session:
        accounts.create_site(session, SYSTEM, SITE, "Tianjin")
        trials.create_trial(session, SYSTEM, scaled_protocol(tmp_path), [SITE])
    enrol(database, 36, followed=30)
    yield database
    database.dispose()


def freeze(db: Database) -> None:
    with db.write() as session:
        locks.lock(session, DATA_MANAGER, TRIAL, "freeze", "interim analysis 1: data as of today")


def test_a_look_needs_frozen_data_and_the_rule_says_stop_for_efficacy(db):
    with pytest.raises(Conflict, match="runs on frozen or locked data"), db.write() as session:
        interim_analyses.run_look(session, STATISTICIAN, TRIAL)
    freeze(db)
    with db.write() as session:
        look = interim_analyses.run_look(session, STATISTICIAN, TRIAL)
    assert look["look"] == 1 and look["patients_observed"] == 30 and look["information"] == pytest.approx(0.5)
    result = look["look_result"]
    assert look["z"] > result["efficacy_bound"] and look["recommendation"] == interim.EFFICACY
    assert look["primary_analysis"]["common_odds_ratio"] > 1
    # the boundary is the plan's (two-sided 0.05, O'Brien-Fleming type) at the fraction observed
    assert result["efficacy_bound"] == pytest.approx(
        interim.analyse_look([0.5], 0.0, [0.5, 1.0], 0.05, 2, "obf").efficacy_bound)
    with pytest.raises(Conflict, match="no new information since look 1"), db.write() as session:
        interim_analyses.run_look(session, DSMB, TRIAL)


def test_the_dsmb_records_its_decision_signed_once(db):
    freeze(db)
    with db.write() as session:
        interim_analyses.run_look(session, STATISTICIAN, TRIAL)
    signed = Signature(DSMB.name, dt.datetime.now(dt.UTC))
    with pytest.raises(Invalid, match="decision 'pause' is not one of"), db.write() as session:
        interim_analyses.record_decision(session, DSMB, TRIAL, 1, "pause", "why", signed)
    with pytest.raises(Invalid, match="needs its reason"), db.write() as session:
        interim_analyses.record_decision(session, DSMB, TRIAL, 1, "stop for efficacy", "  ", signed)
    with db.write() as session:
        decided = interim_analyses.record_decision(session, DSMB, TRIAL, 1, "stop for efficacy",
                                                   "the boundary is crossed; the safety profile is acceptable",
                                                   signed)
    assert decided["decision"]["decision"] == "stop for efficacy" and decided["decision"]["decided_by"] == "dsmb"
    with pytest.raises(Conflict, match="recorded already"), db.write() as session:
        interim_analyses.record_decision(session, DSMB, TRIAL, 1, "continue", "second thoughts", signed)
    with db.read() as session:
        [listed] = interim_analyses.list_looks(session, DSMB, TRIAL)
    assert listed["decision"]["decision"] == "stop for efficacy"


def test_blinded_roles_can_neither_run_nor_read_a_look_nor_see_it_in_the_audit_trail(db):
    freeze(db)
    with db.write() as session:
        look = interim_analyses.run_look(session, STATISTICIAN, TRIAL)
        interim_analyses.record_decision(session, DSMB, TRIAL, 1, "continue", "z = 3.1 but early",
                                         Signature(DSMB.name, dt.datetime.now(dt.UTC)))
    for actor in BLINDED:
        with pytest.raises(Forbidden), db.read() as session:
            interim_analyses.list_looks(session, actor, TRIAL)
        with pytest.raises(Forbidden), db.write() as session:
            interim_analyses.run_look(session, actor, TRIAL)
    for reader in (Actor("admin", "admin", frozenset()), Actor("monitor", "monitor", frozenset({SITE}))):
        with db.read() as session:
            rows, columns = audit_trail.audit_rows(session, reader)
        closed = [r for r in rows if r["entity"] in ("interim_look", "dsmb_decision")]
        assert len(closed) == 2 and "hash" not in columns
        for row in closed:
            shown = json.loads(row["after"])
            assert set(shown) <= set(interim_analyses.OPEN_KEYS), shown
            assert str(round(look["z"], 3))[:4] not in row["after"] and "3.1" not in row["after"]
    with db.read() as session:  # the DSMB's statistician is not an audit reader; the DSMB reads the look itself
        assert interim_analyses.list_looks(session, STATISTICIAN, TRIAL)[0]["z"] == pytest.approx(look["z"])


def test_every_interim_route_refuses_the_roles_that_may_not_see_it(db):
    """Through the API: 403 for every blinded role on every route (nothing run, nothing read); the DSMB's decision
    needs the member's own password."""
    from fastapi.testclient import TestClient

    from stroketrial.web import create_app

    tokens = {}
    with db.write() as session:
        for name, role in (("statistician", "blinded_statistician"), ("coordinator", "coordinator"),
                           ("investigator", "investigator"), ("monitor", "monitor"), ("assessor", "outcome_assessor"),
                           ("pharmacist", "unblinded_pharmacist"), ("unblinded_stat", "unblinded_statistician"),
                           ("dsmb", "dsmb")):
            _, tokens[name] = accounts.create_user(session, SYSTEM, name, role, [SITE], password="password-1")
    freeze(db)
    client = TestClient(create_app(db))
    base = f"/api/v1/trials/{TRIAL}/interim-looks"

    def call(method, path, name, **kw):
        return client.request(method, path, headers={"Authorization": f"Bearer {tokens[name]}"}, **kw)

    decision = {"decision": "continue", "reason": "keep going", "password": "password-1"}
    for name in ("statistician", "coordinator", "investigator", "monitor", "assessor", "pharmacist"):
        assert call("POST", base, name).status_code == 403, name
        assert call("GET", base, name).status_code == 403, name
        assert call("POST", f"{base}/1/decision", name, json=decision).status_code == 403, name
    ran = call("POST", base, "unblinded_stat")
    assert ran.status_code == 201 and ran.json()["recommendation"] == interim.EFFICACY, ran.text
    assert call("POST", f"{base}/1/decision", "unblinded_stat", json=decision).status_code == 403
    wrong = call("POST", f"{base}/1/decision", "dsmb", json={**decision, "password": "not-mine"})
    assert wrong.status_code == 401
    made = call("POST", f"{base}/1/decision", "dsmb", json=decision)
    assert made.status_code == 201 and made.json()["decision"]["decision"] == "continue", made.text
    assert [look["look"] for look in call("GET", base, "dsmb").json()] == [1]
