"""The forms the analysis plan reads, on the platform: AMASS-2's infusion monitoring for albumin patients only, and
sICH counted for the DSMB by the Heidelberg classification from its components on the 24-hour form."""

from __future__ import annotations

import datetime as dt

from stroketrial.service import export
from stroketrial.service.accounts import Actor

from .test_api import randomize, register

INFUSION = {"infusion_completed": True, "infusion_minutes": 20, "sbp_max_mmhg": 165, "heart_rate_max": 92,
            "temperature_max_c": 37.4, "infusion_reaction": False}
SICH = {"haemorrhage_class": "ph2", "nihss_increase": 6, "nihss_item_increase": False, "major_intervention": False,
        "haemorrhage_causal": True}


def _patients_by_arm(platform, trial="amass-2", n=6):
    """Randomize until each arm has a patient: {arm: patient code}."""
    by_arm: dict[str, str] = {}
    for i in range(n):
        code = f"P{i + 1}"
        assert register(platform, trial=trial, code=code).status_code == 201
        arm = randomize(platform, trial=trial, code=code, key=f"key-{code}").json()["arm"]
        by_arm.setdefault(arm, code)
        if len(by_arm) == 2:
            break
    assert len(by_arm) == 2, "both arms after a few randomizations"
    return by_arm


def test_the_infusion_monitoring_form_is_for_albumin_patients_only(platform):
    by_arm = _patients_by_arm(platform)
    today = dt.datetime.now(dt.UTC).date().isoformat()
    albumin, control = by_arm["albumin"], by_arm["control"]
    schedule = {v["visit"] for v in platform.call("GET", f"/trials/amass-2/patients/{albumin}/visits").json()["visits"]}
    assert "infusion_monitoring" in schedule
    schedule = {v["visit"] for v in platform.call("GET", f"/trials/amass-2/patients/{control}/visits").json()["visits"]}
    assert "infusion_monitoring" not in schedule and "h24" in schedule
    # the blinded statistician, who may not know arms, sees the same schedule for both patients
    seen = [[v["visit"] for v in platform.call("GET", f"/trials/amass-2/patients/{code}/visits",
                                                "blinded_statistician").json()["visits"]]
            for code in (albumin, control)]
    assert seen[0] == seen[1] and "infusion_monitoring" not in seen[0]
    entered = platform.call("PUT", f"/trials/amass-2/patients/{albumin}/visits/infusion_monitoring",
                            json={"visit_date": today, "values": INFUSION})
    assert entered.status_code == 200, entered.text
    refused = platform.call("PUT", f"/trials/amass-2/patients/{control}/visits/infusion_monitoring",
                            json={"visit_date": today, "values": INFUSION})
    assert refused.status_code == 409 and "for patients of Albumin Group only" in refused.json()["detail"]
    # out of range: the field, the value and what is allowed
    bad = platform.call("PUT", f"/trials/amass-2/patients/{albumin}/visits/infusion_monitoring",
                        json={"visit_date": today, "values": {**INFUSION, "sbp_max_mmhg": 400}, "reason": "typo"})
    assert bad.status_code == 422 and "50 to 300 mmHg" in bad.text
    # the blinded statistician's export holds no infusion form (its rows would tell who had albumin); the DSMB's does
    with platform.db.read() as session:
        blinded = export.tables(session, Actor("bs", "blinded_statistician", frozenset({"S1"})), "amass-2")
        dsmb = export.tables(session, Actor("dsmb", "dsmb", frozenset({"S1"})), "amass-2")
    assert "visit_infusion_monitoring" not in blinded and "visit_h24" in blinded
    assert [r["patient_id"] for r in dsmb["visit_infusion_monitoring"]] == [albumin]


def test_the_dsmb_counts_sich_by_the_heidelberg_classification(platform):
    by_arm = _patients_by_arm(platform)
    today = dt.datetime.now(dt.UTC).date().isoformat()
    albumin, control = by_arm["albumin"], by_arm["control"]
    # a PH2 with NIHSS +6, judged causal: sICH; a PH1 without deterioration: a haemorrhage, not an sICH
    assert platform.call("PUT", f"/trials/amass-2/patients/{albumin}/visits/h24",
                         json={"visit_date": today, "values": SICH}).status_code == 200
    assert platform.call("PUT", f"/trials/amass-2/patients/{control}/visits/h24",
                         json={"visit_date": today, "values": {**SICH, "haemorrhage_class": "ph1",
                                                                "nihss_increase": 1}}).status_code == 200
    groups = platform.call("GET", "/trials/amass-2/safety", "dsmb").json()["groups"]
    assert groups["albumin"]["sich"] == 1 and groups["control"]["sich"] == 0
    # a category the classification does not have is refused, naming the classes
    bad = platform.call("PUT", f"/trials/amass-2/patients/{albumin}/visits/h24",
                        json={"visit_date": today, "values": {**SICH, "haemorrhage_class": "ph3"},
                              "reason": "correction"})
    assert bad.status_code == 422 and "haemorrhage_class" in bad.text and "ph2" in bad.text


def test_an_sae_reported_as_sich_counts_before_its_imaging_form(platform):
    """Issue 21: the DSMB's sICH count stayed 0 after an SAE "symptomatic intracranial haemorrhage" was reported.
    An SAE under the endpoint's `reported_as` term (or a synonym of it) with onset within the 48 h counts; one with
    onset on day 10 is an SAE, not the 48-hour endpoint; an unrelated SAE counts for nothing."""
    by_arm = _patients_by_arm(platform)
    today = dt.datetime.now(dt.UTC).date()
    albumin, control = by_arm["albumin"], by_arm["control"]

    def report(code, term, onset):
        answer = platform.call("POST", f"/trials/amass-2/patients/{code}/saes", "investigator",
                               json={"term": term, "onset_date": onset.isoformat(), "criteria": ["hospitalization"],
                                     "outcome": "recovering", "relatedness": "possible"})
        assert answer.status_code == 201, answer.text

    report(albumin, "Symptomatic intracranial hemorrhage", today)  # a synonym, in another case
    report(control, "aspiration pneumonia", today)
    groups = platform.call("GET", "/trials/amass-2/safety", "dsmb").json()["groups"]
    assert groups["albumin"]["sich"] == 1 and groups["control"]["sich"] == 0
    assert groups["control"]["patients_with_sae"] == 1
    pooled = platform.call("GET", "/trials/amass-2/safety", "blinded_statistician").json()["groups"]
    assert pooled["all"]["sich"] == 1
    from stroketrial.service.safety import reported_within

    later = dt.datetime.combine(today, dt.time(8), tzinfo=dt.UTC)
    terms = {"symptomatic intracranial haemorrhage", "sich"}
    assert reported_within({"term": "sICH", "onset_date": (today + dt.timedelta(days=2)).isoformat()}, terms,
                           later, 2.0)
    assert not reported_within({"term": "sICH", "onset_date": (today + dt.timedelta(days=10)).isoformat()}, terms,
                               later, 2.0)
