"""The platform API on SQLite and PostgreSQL: the workflow, what each role sees, and bad input."""

from __future__ import annotations

import datetime as dt
import json

import pytest
from sqlalchemy import text

from stroketrial.service import SYSTEM, access
from stroketrial.store import verify

from ..trials import amass2, angel_rescue, impact_lvo, isis_hermes
from ..trials.helpers import happening_now

PATIENTS = {"amass-2": happening_now({**amass2.ELIGIBLE, "bridging_thrombolysis": True}),
            "impact-lvo": happening_now(impact_lvo.ELIGIBLE), "isis-hermes": happening_now(isis_hermes.ELIGIBLE),
            "angel-rescue": happening_now({**angel_rescue.ELIGIBLE, "bridging_thrombolysis": False})}


def register(platform, trial="amass-2", code="P1", site="S1", role="coordinator", **changes):
    data = {**PATIENTS[trial], **changes}
    attestations = data.pop("attestations", None)
    data = {k: v for k, v in data.items() if v is not None}
    return platform.call("POST", f"/trials/{trial}/patients", role,
                         json={"patient_id": code, "site": site, "data": data, "attestations": attestations})


def randomize(platform, trial="amass-2", code="P1", key="key-1", role="coordinator"):
    return platform.call("POST", f"/trials/{trial}/patients/{code}/randomization", role,
                         headers={"Idempotency-Key": key})


def contains_arm(document, arms) -> bool:
    text_ = json.dumps(document)
    return '"arm"' in text_ or any(f'"{a}"' in text_ for a in arms)


# ---- screening ------------------------------------------------------------------------------------
def test_register_answers_with_the_eligibility_result(platform):
    response = register(platform)
    assert response.status_code == 201, response.text
    body = response.json()
    assert body["status"] == "eligible" and body["randomized"] is False
    assert {c["id"] for c in body["screening"]["criteria"]} >= {"age", "nihss", "aspects"}
    response = register(platform, code="P2", nihss=4)
    assert response.status_code == 201
    assert response.json()["status"] == "ineligible" and response.json()["failing"] == ["nihss"]
    listed = platform.call("GET", "/trials/amass-2/patients").json()
    assert [(p["patient_id"], p["status"], p["randomized"]) for p in listed] == [("P1", "eligible", False),
                                                                                ("P2", "ineligible", False)]


@pytest.mark.parametrize("changes, field, fragment", [
    ({"nihss": "12"}, "nihss", "not a number"),
    ({"nihss": 43}, "nihss", "0 to 42"),
    ({"nihs": 12}, "nihs", "did you mean 'nihss'"),
    ({"creatinine_umol_l": {"value": 2.0, "unit": "mmol/dL"}}, "creatinine_umol_l", "unit"),
    ({"age": True}, "age", ""),
])
def test_bad_screening_data_is_refused_naming_the_field(platform, changes, field, fragment):
    response = register(platform, **changes)
    assert response.status_code == 422
    errors = response.json()["errors"]
    assert any(e["field"] == field and fragment in e["message"] for e in errors), errors
    assert platform.call("GET", "/trials/amass-2/patients").json() == []  # nothing half-stored


@pytest.mark.parametrize("body, status", [
    (b"{not json", 422), (b"[1, 2]", 422), (b'{"patient_id": "P1"}', 422),
    (b'{"patient_id": "P1", "site": "S1", "data": [], "attestations": null}', 422),
    (b'{"patient_id": "P1", "site": "S1", "data": {"age": 1e400}}', 422),
    (b'{"patient_id": "P1", "site": "S1", "data": {}, "extra": 1}', 422),
    (b'{"patient_id": "' + b"x" * 100 + b'", "site": "S1", "data": {}}', 422),
])
def test_malformed_requests_get_4xx_never_500(platform, body, status):
    response = platform.client.post("/api/v1/trials/amass-2/patients", content=body,
                                    headers=platform.headers("coordinator", **{"Content-Type": "application/json"}))
    assert response.status_code == status, response.text
    assert response.json()["detail"]


def test_sites_wrong_or_not_yours_and_duplicates(platform):
    assert register(platform, site="S9").status_code == 422
    assert register(platform, site="S2").status_code == 403  # the coordinator works at S1
    assert register(platform).status_code == 201
    assert register(platform).status_code == 409
    assert platform.call("GET", "/trials/amass-2/patients/P1", "coordinator_s2").status_code == 404
    assert platform.call("GET", "/trials/no-such-trial/patients").status_code == 404


def test_a_correction_before_randomization_needs_a_reason_and_is_audited(platform):
    register(platform, code="P1", nihss=4)
    change = {"data": {"nihss": 14}, "reason": ""}
    assert platform.call("PATCH", "/trials/amass-2/patients/P1", json=change).status_code == 422
    change["reason"] = "NIHSS re-scored by the stroke fellow"
    response = platform.call("PATCH", "/trials/amass-2/patients/P1", json=change)
    assert response.status_code == 200 and response.json()["status"] == "eligible"
    with platform.db.read() as session:
        event = session.execute(text("SELECT before_json, after_json, reason FROM audit_events "
                                     "WHERE action = 'update_screening'")).one()
    assert json.loads(event[0])["nihss"] == 4 and json.loads(event[1])["nihss"] == 14
    assert event[2] == "NIHSS re-scored by the stroke fellow"


# ---- randomization ----------------------------------------------------------------------------------
def test_randomize_once_and_the_same_key_gives_the_same_answer(platform):
    register(platform)
    first = randomize(platform)
    assert first.status_code == 201, first.text
    body = first.json()
    assert body["sequence"] == 1 and body["arm"] in ("albumin", "control") and body["kit"] is None
    again = randomize(platform)
    assert again.status_code == 201 and again.json() == body and again.headers["Idempotent-Replay"] == "true"
    other = randomize(platform, key="key-2")
    assert other.status_code == 409 and "randomized already" in other.json()["detail"]
    register(platform, code="P2")
    assert randomize(platform, code="P2", key="key-1").status_code == 409  # a key belongs to one patient
    assert randomize(platform, code="P2", key="key-3").json()["sequence"] == 2


def test_ineligible_or_incomplete_patients_are_not_randomized(platform):
    register(platform, code="P1", nihss=4, aspects=5)
    response = randomize(platform, code="P1")
    assert response.status_code == 422
    assert {e["field"] for e in response.json()["errors"]} == {"nihss", "aspects"}
    register(platform, code="P2", nihss=None)
    response = randomize(platform, code="P2", key="k2")
    assert response.status_code == 422 and response.json()["status"] == "incomplete"
    assert [e["field"] for e in response.json()["errors"]] == ["nihss"]
    register(platform, code="P3", bridging_thrombolysis=None)  # every criterion met, a minimization factor missing
    response = randomize(platform, code="P3", key="k3")
    assert response.status_code == 422 and response.json()["status"] == "incomplete"
    [error] = response.json()["errors"]
    assert error["field"] == "randomization_factor_bridging_ivt" and "bridging_thrombolysis" in error["message"]
    assert platform.call("POST", "/trials/amass-2/patients/P1/randomization").status_code == 422  # no key
    assert randomize(platform, trial="amass-1", code="X").status_code in (404, 409)


def test_a_blinded_coordinator_sees_kits_never_arms(platform):
    assert register(platform, trial="impact-lvo").status_code == 201
    response = randomize(platform, trial="impact-lvo")
    assert response.status_code == 201, response.text
    body = response.json()
    assert body["kit"] and len(body["kit"]) == 6 and "arm" not in body
    arms = ["methylprednisolone", "placebo"]
    for path in ("/trials/impact-lvo/patients", "/trials/impact-lvo/patients/P1",
                 "/trials/impact-lvo/patients/P1/randomization", "/trials/impact-lvo/patients/P1/dose",
                 "/trials/impact-lvo/patients/P1/visits", "/trials/impact-lvo/safety"):
        for role in ("coordinator", "investigator", "blinded_statistician", "monitor", "admin"):
            response = platform.call("GET", path, role)
            assert response.status_code == 200, (path, role, response.text)
            assert not contains_arm(response.json(), arms), (path, role)
    dose = platform.call("GET", "/trials/impact-lvo/patients/P1/dose").json()
    intra_arterial = dose["administrations"][1]
    assert intra_arterial["name"] == f"study drug from kit {body['kit']}" and intra_arterial["amount"] == 40
    pharmacist = platform.call("GET", "/trials/impact-lvo/patients/P1/randomization", "unblinded_pharmacist").json()
    assert pharmacist["arm"] in arms
    with platform.db.read() as session:
        kit_arm = session.execute(text("SELECT arm FROM concealed_kits WHERE trial_id = 'impact-lvo' "
                                       "AND kit_number = :kit"), {"kit": body["kit"]}).scalar_one()
    assert kit_arm == pharmacist["arm"]


def test_a_blinded_role_paging_the_patient_list_learns_no_arm_from_pages_headers_or_order(platform):
    arms = ["methylprednisolone", "placebo"]
    for i in range(4):
        assert register(platform, trial="impact-lvo", code=f"P{i}").status_code == 201
        assert randomize(platform, trial="impact-lvo", code=f"P{i}", key=f"k{i}").status_code == 201
    for role in ("coordinator", "investigator", "blinded_statistician", "monitor"):
        whole = platform.call("GET", "/trials/impact-lvo/patients", role).json()
        pages = []
        for offset in range(len(whole) + 1):
            page = platform.call("GET", f"/trials/impact-lvo/patients?limit=1&offset={offset}", role)
            assert page.status_code == 200, (role, page.text)
            assert not contains_arm(page.json(), arms) and not contains_arm(dict(page.headers), arms), role
            assert page.headers["X-Total-Count"] == str(len(whole))  # a count of the role's patients, not per arm
            pages += page.json()
        # the pages are the whole list cut in order of registration: nothing the list withholds, no other order
        assert pages == whole and [p["patient_id"] for p in whole] == ["P0", "P1", "P2", "P3"], role


def test_the_blinded_statistician_never_sees_an_arm_even_open_label(platform):
    register(platform)
    randomize(platform)
    for path in ("/trials/amass-2/patients", "/trials/amass-2/patients/P1/randomization", "/trials/amass-2/safety"):
        assert not contains_arm(platform.call("GET", path, "blinded_statistician").json(), ["albumin", "control"])
    assert "arm" in platform.call("GET", "/trials/amass-2/patients/P1/randomization", "coordinator").json()


@pytest.mark.parametrize("trial", ["isis-hermes", "angel-rescue"])
def test_every_randomized_trial_randomizes_through_the_api(platform, trial):
    for i in range(6):
        assert register(platform, trial=trial, code=f"P{i}").status_code == 201
        response = randomize(platform, trial=trial, code=f"P{i}", key=f"k{i}")
        assert response.status_code == 201, response.text
        assert response.json()["sequence"] == i + 1


# ---- after randomization -------------------------------------------------------------------------------
def test_dose_sheet_for_albumin(platform):
    register(platform)
    randomize(platform)
    sheet = platform.call("GET", "/trials/amass-2/patients/P1/dose").json()
    if sheet["arm"] == "albumin":
        albumin = next(a for a in sheet["administrations"] if a["route"] == "intra_arterial")
        assert albumin["amount"] == pytest.approx(38.4)  # 0.6 g/kg x 64 kg
        assert albumin["volume_ml"] == pytest.approx(192.0)  # 20% = 20 g per 100 mL
        assert albumin["rate_ml_min"] == pytest.approx(9.6) and albumin["rate_ml_h"] == pytest.approx(576.0)
    else:
        assert all(a["route"] == "procedure" for a in sheet["administrations"])


def test_visit_schedule_and_forms(platform):
    register(platform)
    arm = randomize(platform).json()["arm"]
    schedule = platform.call("GET", "/trials/amass-2/patients/P1/visits").json()["visits"]
    # the infusion monitoring form is for albumin patients only (amass-2.yaml: arms)
    infusion = ["infusion_monitoring"] if arm == "albumin" else []
    assert [v["visit"] for v in schedule] == ["baseline", *infusion, "h24", "d7", "d90"]
    assert schedule[0]["status"] == "due" and schedule[-1]["status"] == "upcoming"
    reserved = {v["visit"]: v["assessor_only"] for v in schedule if "assessor_only" in v}
    assert reserved == {"d90": ["mrs"]}
    today = dt.date.today().isoformat()
    # The day-90 mRS is the blinded outcome assessor's (amass-2.yaml: assessor_only); the site records the rest.
    assessor = "outcome_assessor"
    bad = platform.call("PUT", "/trials/amass-2/patients/P1/visits/d90", assessor,
                        json={"visit_date": today, "values": {"mrs": 7, "nihss": 3}})
    assert bad.status_code == 422
    assert {e["field"] for e in bad.json()["errors"]} == {"mrs", "nihss"}  # out of range; not a d90 assessment
    assert platform.call("PUT", "/trials/amass-2/patients/P1/visits/d90", assessor,
                         json={"visit_date": "2020-01-01", "values": {"mrs": 2}}).status_code == 422
    for spelling in (today.replace("-", ""), dt.date.today().strftime("%G-W%V-%u"), today + "T00:00"):
        odd = platform.call("PUT", "/trials/amass-2/patients/P1/visits/d90", assessor,
                            json={"visit_date": spelling, "values": {"mrs": 2}})
        assert odd.status_code == 422 and odd.json()["errors"][0]["field"] == "visit_date", (spelling, odd.text)
    assert platform.call("PUT", "/trials/amass-2/patients/P1/visits/d91", assessor,
                         json={"visit_date": today, "values": {"mrs": 2}}).status_code == 404
    ok = platform.call("PUT", "/trials/amass-2/patients/P1/visits/d90", assessor,
                       json={"visit_date": today, "values": {"mrs": 2}})
    assert ok.status_code == 200, ok.text
    site = platform.call("PUT", "/trials/amass-2/patients/P1/visits/d90",
                         json={"visit_date": today, "values": {"death": False}})
    assert site.status_code == 200 and site.json()["values"] == {"mrs": 2, "death": False}, site.text
    again = platform.call("PUT", "/trials/amass-2/patients/P1/visits/d90", assessor,
                          json={"visit_date": today, "values": {"mrs": 3}})
    assert again.status_code == 422 and "needs a reason" in again.json()["detail"]
    corrected = platform.call("PUT", "/trials/amass-2/patients/P1/visits/d90", assessor,
                              json={"visit_date": today, "values": {"mrs": 3}, "reason": "source document says 3"})
    assert corrected.status_code == 200 and corrected.json()["values"] == {"mrs": 3}
    d90 = next(v for v in platform.call("GET", "/trials/amass-2/patients/P1/visits").json()["visits"]
               if v["visit"] == "d90")
    assert d90["status"] == "done" and d90["values"] == {"mrs": 3, "death": False} and d90["in_window"] is False


def test_the_day_90_window_on_the_schedule_is_day_76_to_day_104_from_the_randomization_date(platform):
    register(platform)
    randomize(platform)
    body = platform.call("GET", "/trials/amass-2/patients/P1/visits").json()
    randomized_on = dt.datetime.fromisoformat(body["randomized_at"]).astimezone(dt.UTC).date()
    on_day = {n: (randomized_on + dt.timedelta(days=n)).isoformat() for n in (0, 76, 90, 104)}
    baseline, d90 = body["visits"][0], next(v for v in body["visits"] if v["visit"] == "d90")
    assert (d90["target_date"], d90["window"]) == (on_day[90], [on_day[76], on_day[104]])
    assert baseline["window"] == [on_day[0], on_day[0]] and baseline["status"] == "due"
    entered = platform.call("PUT", "/trials/amass-2/patients/P1/visits/baseline",
                            json={"visit_date": on_day[0], "values": {"nihss": 12}})
    assert entered.status_code == 200, entered.text
    baseline = platform.call("GET", "/trials/amass-2/patients/P1/visits").json()["visits"][0]
    assert baseline["status"] == "done" and baseline["in_window"] is True


def test_isis_hermes_two_year_schedule(platform):
    register(platform, trial="isis-hermes")
    arm = randomize(platform, trial="isis-hermes").json()["arm"]
    schedule = platform.call("GET", "/trials/isis-hermes/patients/P1/visits").json()["visits"]
    infusion = [21] if arm == "msc" else []  # the MSC infusion form: MSC patients only
    assert [v["day"] for v in schedule] == [0, 14, *infusion, 30, 60, 120, 180, 365, 730]
    assert "fugl_meyer" in schedule[-1]["assessments"]


def test_serious_adverse_events_and_safety_counts(platform):
    register(platform)
    randomize(platform)
    bad = platform.call("POST", "/trials/amass-2/patients/P1/saes", json={"term": "", "criteria": ["sad"]})
    assert bad.status_code == 422
    assert {e["field"] for e in bad.json()["errors"]} == {"term", "onset_date", "criteria", "outcome", "relatedness"}
    sae = {"term": "aspiration pneumonia", "onset_date": dt.date.today().isoformat(),
           "criteria": ["hospitalization"], "outcome": "recovering", "relatedness": "unlikely"}
    assert platform.call("POST", "/trials/amass-2/patients/P1/saes", json=sae).status_code == 201
    assert platform.call("GET", "/trials/amass-2/patients/P1/saes").json()[0]["term"] == "aspiration pneumonia"
    dsmb = platform.call("GET", "/trials/amass-2/safety", "dsmb").json()
    assert dsmb["by_arm"] and sum(g["saes"] for g in dsmb["groups"].values()) == 1
    pooled = platform.call("GET", "/trials/amass-2/safety", "blinded_statistician").json()
    assert not pooled["by_arm"] and pooled["groups"] == {"all": {"randomized": 1, "deaths": 0, "sich": 0,
                                                                 "patients_with_sae": 1, "saes": 1}}


def test_emergency_unblinding_is_for_the_investigator_with_a_reason(platform):
    register(platform, trial="impact-lvo")
    kit = randomize(platform, trial="impact-lvo").json()["kit"]
    path = "/trials/impact-lvo/patients/P1/unblinding"
    assert platform.call("POST", path, "coordinator", json={"reason": "suspected GI bleeding"}).status_code == 403
    assert platform.call("POST", path, "investigator", json={"reason": "why"}).status_code == 422
    response = platform.call("POST", path, "investigator", json={"reason": "upper GI bleeding, steroid decision"})
    assert response.status_code == 201 and response.json()["arm"] in ("methylprednisolone", "placebo")
    log = platform.call("GET", "/trials/impact-lvo/unblindings", "dsmb").json()
    assert log[0]["kit"] == kit and log[0]["arm"] == response.json()["arm"]
    assert log[0]["reason"] == "upper GI bleeding, steroid decision"
    admin_log = platform.call("GET", "/trials/impact-lvo/unblindings", "admin").json()
    assert admin_log[0]["unblinded_by"] == "investigator" and "arm" not in admin_log[0]
    assert platform.call("GET", "/trials/impact-lvo/unblindings", "coordinator").status_code == 403


# ---- access ---------------------------------------------------------------------------------------------
WRITE = {"admin": 201, "investigator": 201, "coordinator": 201, "unblinded_pharmacist": 403,
         "blinded_statistician": 403, "dsmb": 403, "monitor": 403, "outcome_assessor": 403}


@pytest.mark.parametrize("role", list(WRITE))
def test_access_for_every_role(platform, role):
    assert register(platform, code="SEED").status_code == 201
    assert randomize(platform, code="SEED", key="seed").status_code == 201
    response = register(platform, code=f"P-{role}", role=role)
    assert response.status_code == WRITE[role], response.text
    if response.status_code == 201:
        # The admin, who may read allocation margins, registers but never randomizes.
        assert randomize(platform, code=f"P-{role}", key=role, role=role).status_code == \
            (403 if role == "admin" else 201)
    else:
        assert randomize(platform, code="SEED", key=role, role=role).status_code == 403
    assert platform.call("GET", "/trials/amass-2/patients", role).status_code == 200
    assert platform.call("GET", "/trials/amass-2/patients/SEED", role).status_code == 200
    # At day 90 site staff record death and SAEs, the blinded outcome assessor the mRS, and no one the other's.
    today = dt.date.today().isoformat()
    site_part = platform.call("PUT", "/trials/amass-2/patients/SEED/visits/d90", role,
                              json={"visit_date": today, "values": {"death": False}, "reason": "r"})
    assert site_part.status_code == (200 if WRITE[role] == 201 else 403), site_part.text
    mrs = platform.call("PUT", "/trials/amass-2/patients/SEED/visits/d90", role,
                        json={"visit_date": today, "values": {"mrs": 1}, "reason": "r"})
    assert mrs.status_code == (200 if role == "outcome_assessor" else 403), mrs.text
    reads = {"dose": "/trials/amass-2/patients/SEED/dose", "saes": "/trials/amass-2/patients/SEED/saes",
             "safety": "/trials/amass-2/safety", "visits": "/trials/amass-2/patients/SEED/visits"}
    for what, path in reads.items():
        status = platform.call("GET", path, role).status_code
        if role == "outcome_assessor" and what != "visits":
            assert status == 403, (what, role)
        else:  # (the blinded statistician gets 409 for an open-label dose sheet: there is no kit to name)
            assert status in (200, 409) and (status == 200 or what == "dose"), (what, role, status)
    unblind = platform.call("POST", "/trials/amass-2/patients/SEED/unblinding", role,
                            json={"reason": "emergency: clinical decision needed"})
    assert unblind.status_code == (201 if role == "investigator" else 403)
    log = platform.call("GET", "/trials/amass-2/unblindings", role)
    assert log.status_code == (200 if role in ("admin", "dsmb") else 403)
    audit = platform.call("GET", "/audit/verify", role)
    assert audit.status_code == (200 if role in ("admin", "monitor") else 403)
    assert platform.call("GET", "/me", role).json()["role"] == role


def test_no_token_or_a_bad_token_is_401(platform):
    assert platform.client.get("/api/v1/trials").status_code == 401
    assert platform.client.get("/api/v1/trials", headers={"Authorization": "Bearer nope"}).status_code == 401
    assert platform.client.get("/api/v1/trials", headers={"Authorization": "Basic abc"}).status_code == 401


def test_randomization_needs_a_valid_token_and_records_nothing_without_one(platform):
    """The randomization route looks its token's user up itself (in its own worker thread), so it is attacked on
    its own: no token, a wrong scheme, an unknown token and a revoked user's token each get a 401 and leave the
    patient unrandomized; the operation still declares the bearer scheme."""
    register(platform, code="P1")
    path = "/api/v1/trials/amass-2/patients/P1/randomization"
    key = {"Idempotency-Key": "k-1"}
    for authorization in (None, "Basic abc", "Bearer nope", "Bearer "):
        headers = key if authorization is None else {**key, "Authorization": authorization}
        answer = platform.client.post(path, headers=headers)
        assert answer.status_code == 401, (authorization, answer.text)
        assert "token" in answer.json()["detail"]
    with platform.db.write() as session:
        access.revoke_tokens(session, SYSTEM, "coordinator")
    assert platform.call("POST", "/trials/amass-2/patients/P1/randomization", headers=key).status_code == 401
    assert platform.call("GET", "/trials/amass-2/patients/P1", "admin").json()["randomization"] is None
    operation = platform.client.get("/openapi.json").json()["paths"][
        "/api/v1/trials/{trial}/patients/{patient}/randomization"]["post"]
    assert operation["security"] == [{"HTTPBearer": []}]


@pytest.mark.parametrize("role", ["blinded_statistician", "outcome_assessor", "dsmb", "monitor"])
def test_a_blinded_role_replaying_the_randomization_key_learns_no_arm(platform, role):
    """The coordinator's own Idempotency-Key replays the first answer, arm included, to the coordinator; a
    blinded user who sends the same key for the same patient is refused before any allocation is read."""
    arms = ["albumin", "control"]
    register(platform, code="P1")
    assert randomize(platform, key="seen-key").status_code == 201
    answer = randomize(platform, key="seen-key", role=role)
    assert answer.status_code == 403, answer.text
    assert not contains_arm(answer.json(), arms) and "Idempotent-Replay" not in answer.headers


def test_a_site_user_sees_only_their_sites(platform):
    register(platform, code="A1")
    assert platform.call("POST", "/trials/amass-2/patients", "coordinator_s2",
                         json={"patient_id": "B1", "site": "S2", "data": {"age": 70}}).status_code == 201
    assert [p["patient_id"] for p in platform.call("GET", "/trials/amass-2/patients").json()] == ["A1"]
    assert [p["patient_id"] for p in platform.call("GET", "/trials/amass-2/patients", "coordinator_s2").json()] == \
        ["B1"]
    assert len(platform.call("GET", "/trials/amass-2/patients", "admin").json()) == 2


def test_the_patient_list_comes_in_pages_of_the_sites_own_patients(platform):
    for i in range(7):  # S1, S2, S1, ...: a site's pages count only its own patients
        site = ("S1", "S2")[i % 2]
        assert register(platform, code=f"Q{i}", site=site,
                        role="coordinator" if site == "S1" else "coordinator_s2").status_code == 201
    assert randomize(platform, code="Q2").status_code == 201
    first = platform.call("GET", "/trials/amass-2/patients?limit=2")
    assert [p["patient_id"] for p in first.json()] == ["Q0", "Q2"]
    assert first.headers["X-Total-Count"] == "4"
    assert first.headers["Link"] == '</api/v1/trials/amass-2/patients?limit=2&offset=2>; rel="next"'
    assert first.json()[1]["randomization"]["sequence"] == 1  # the page's allocations, as on the whole list
    last = platform.call("GET", "/trials/amass-2/patients?limit=2&offset=2")
    assert [p["patient_id"] for p in last.json()] == ["Q4", "Q6"] and "Link" not in last.headers
    assert platform.call("GET", "/trials/amass-2/patients?limit=3&offset=1", "coordinator_s2").json() == \
        platform.call("GET", "/trials/amass-2/patients", "coordinator_s2").json()[1:]
    assert platform.call("GET", "/trials/amass-2/patients?offset=9").json() == []
    everyone = platform.call("GET", "/trials/amass-2/patients")
    assert len(everyone.json()) == 4 and "X-Total-Count" not in everyone.headers  # no limit: the whole list


@pytest.mark.parametrize("query, field", [("limit=0", "limit"), ("limit=1001", "limit"), ("limit=ten", "limit"),
                                          ("offset=-1", "offset"), ("offset=1.5", "offset"),
                                          ("offset=1000000001", "offset"),
                                          ("offset=99999999999999999999999", "offset")])  # past a 64-bit integer
def test_a_bad_page_is_refused_by_name(platform, query, field):
    answer = platform.call("GET", f"/trials/amass-2/patients?{query}")
    assert answer.status_code == 422, answer.text
    assert answer.json()["errors"][0]["field"] == field and "Traceback" not in answer.text


# ---- audit trail ----------------------------------------------------------------------------------------
def test_the_audit_trail_is_append_only_and_tampering_is_detected(platform):
    register(platform)
    randomize(platform)
    with platform.db.read() as session:
        assert verify(session).ok
    with pytest.raises(Exception, match="append-only"), platform.db.engine.begin() as conn:
        conn.execute(text("UPDATE audit_events SET actor = 'someone' WHERE seq = 3"))
    _drop_audit_triggers(platform)
    with platform.db.engine.begin() as conn:
        conn.execute(text("UPDATE audit_events SET reason = 'edited' WHERE action = 'randomize'"))
    with platform.db.read() as session:
        result = verify(session)
    assert not result.ok and "was changed" in result.message
    assert platform.call("GET", "/audit/verify", "admin").json()["ok"] is False


def test_deleting_the_last_events_is_detected(platform):
    register(platform)
    randomize(platform)
    _drop_audit_triggers(platform)
    with platform.db.engine.begin() as conn:
        conn.execute(text("DELETE FROM audit_events WHERE seq = (SELECT MAX(seq) FROM audit_events)"))
    with platform.db.read() as session:
        result = verify(session)
    assert not result.ok and "deleted" in result.message


def _drop_audit_triggers(platform):
    with platform.db.engine.begin() as conn:
        if platform.db.backend == "sqlite":
            conn.execute(text("DROP TRIGGER audit_events_no_update"))
            conn.execute(text("DROP TRIGGER audit_events_no_delete"))
        else:
            conn.execute(text("DROP TRIGGER audit_events_append_only ON audit_events"))


def test_openapi_documents_the_versioned_api(platform):
    schema = platform.client.get("/openapi.json").json()
    assert "/api/v1/trials/{trial}/patients/{patient}/randomization" in schema["paths"]


def test_the_migrations_build_the_schema_the_models_describe(platform):
    from alembic.autogenerate import compare_metadata
    from alembic.migration import MigrationContext

    from stroketrial.store.models import Base

    with platform.db.engine.connect() as conn:
        diff = compare_metadata(MigrationContext.configure(conn), Base.metadata)
    assert diff == []
