"""The dashboard's numbers (enrolment per site over time, the screening funnel) against the patients registered
here, on SQLite and PostgreSQL: each count is known from what the test did, not computed by the code under test."""

from __future__ import annotations

import datetime as dt

from sqlalchemy import text

from stroketrial.service import accounts
from stroketrial.service.dashboard import enrolment, funnel

from .test_api import randomize, register

# (patient, site, changes, randomize?): 5 randomized (3 at S1, 2 at S2), 1 eligible waiting at S1,
# 3 ineligible (NIHSS twice, age once: each first-failing criterion counted), 1 incomplete (no NIHSS)
PATIENTS = [
    ("A1", "S1", {}, True), ("A2", "S1", {}, True), ("A3", "S1", {}, True), ("A4", "S1", {}, False),
    ("B1", "S2", {}, True), ("B2", "S2", {}, True),
    ("X1", "S1", {"nihss": 4}, False), ("X2", "S2", {"nihss": 5}, False), ("X3", "S1", {"age": 17}, False),
    ("M1", "S1", {"nihss": None}, False),
]


def _enrol(platform) -> dict[str, str]:
    arms = {}
    for code, site, changes, go in PATIENTS:
        role = "coordinator" if site == "S1" else "coordinator_s2"
        response = register(platform, code=code, site=site, role=role, **changes)
        assert response.status_code == 201, response.text
        if go:
            allocation = randomize(platform, code=code, key=f"k-{code}", role=role)
            assert allocation.status_code in (200, 201), allocation.text
            arms[code] = allocation.json()["arm"]
    # A1 was randomized two days ago and B1 yesterday (the allocation time, moved here in the database)
    today = dt.datetime.now(dt.UTC)
    with platform.db.engine.begin() as conn:
        for code, days in (("A1", 2), ("B1", 1)):
            conn.execute(text("UPDATE allocations SET created_at = :at WHERE patient_id = "
                              "(SELECT id FROM patients WHERE code = :code)"),
                         {"at": (today - dt.timedelta(days=days)).replace(tzinfo=None), "code": code})
    return arms


def test_enrolment_and_funnel_count_the_registered_patients(platform):
    arms = _enrol(platform)
    visit = platform.call("PUT", "/trials/amass-2/patients/A2/visits/d90",
                          json={"visit_date": dt.datetime.now(dt.UTC).date().isoformat(), "values": {"death": False}})
    assert visit.status_code == 200, visit.text
    day = [(dt.datetime.now(dt.UTC) - dt.timedelta(days=k)).date().isoformat() for k in (2, 1, 0)]
    with platform.db.read() as session:
        dsmb = accounts.actor_named(session, "dsmb")  # both sites, counts per arm
        coordinator = accounts.actor_named(session, "coordinator")  # S1 only, no counts per arm (minimization)
        assert enrolment(session, dsmb, "amass-2") == {
            "days": day, "cumulative_by_site": {"S1": [1, 1, 3], "S2": [0, 1, 2]}, "total": 5}
        assert enrolment(session, coordinator, "amass-2") == {
            "days": [day[0], day[2]], "cumulative_by_site": {"S1": [1, 3]}, "total": 3}
        both = funnel(session, dsmb, "amass-2")
        s1 = funnel(session, coordinator, "amass-2")
    assert {k: both[k] for k in ("assessed", "excluded", "excluded_by", "incomplete", "eligible", "randomized",
                                 "awaiting_randomization")} == {
        "assessed": 10, "excluded": 3, "excluded_by": {"nihss": 2, "age": 1}, "incomplete": 1, "eligible": 6,
        "randomized": 5, "awaiting_randomization": 1}
    per_arm = {arm: sum(a == arm for a in arms.values()) for arm in ("albumin", "control")}
    assert both["by_arm"] is True and both["allocated"] == per_arm
    assert both["completed_last_visit"] == {arm: int(arms["A2"] == arm) for arm in ("albumin", "control")}
    assert {k: s1[k] for k in ("assessed", "excluded", "excluded_by", "incomplete", "eligible", "randomized",
                               "awaiting_randomization", "allocated", "completed_last_visit")} == {
        "assessed": 7, "excluded": 2, "excluded_by": {"nihss": 1, "age": 1}, "incomplete": 1, "eligible": 4,
        "randomized": 3, "awaiting_randomization": 1, "allocated": {"all": 3}, "completed_last_visit": {"all": 1}}
