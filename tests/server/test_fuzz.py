"""Whatever JSON a client sends, the API answers 2xx or 4xx with a message, never 500 (Hypothesis)."""

from __future__ import annotations

import datetime as dt

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from stroketrial.clinical import VARIABLES

from ..trials import amass2
from ..trials.helpers import happening_now
from .conftest import Platform

JSON = st.recursive(st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False, allow_infinity=False)
                    | st.text(max_size=20),
                    lambda children: st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=8), children,
                                                                                     max_size=3), max_leaves=6)
FIELDS = st.sampled_from([*sorted(VARIABLES), "attestations", "nihs", ""])


@pytest.fixture(scope="module")
def platform(tmp_path_factory):
    p = Platform(f"sqlite:///{tmp_path_factory.mktemp('fuzz') / 'fuzz.db'}")
    # A real randomized patient, so that a visit form reaches the parser (a patient who does not exist is
    # answered 404 before any value is read).
    data = happening_now({**amass2.ELIGIBLE, "bridging_thrombolysis": True})
    attestations = data.pop("attestations")
    registered = p.call("POST", "/trials/amass-2/patients",
                        json={"patient_id": "FUZZ", "site": "S1", "data": data, "attestations": attestations})
    assert registered.status_code == 201, registered.text
    randomized = p.call("POST", "/trials/amass-2/patients/FUZZ/randomization", headers={"Idempotency-Key": "fuzz"})
    assert randomized.status_code in (200, 201), randomized.text
    yield p
    p.db.dispose()


@pytest.mark.sqlite_only
@given(data=st.dictionaries(FIELDS, JSON, max_size=6), attestations=st.none() | JSON, patient_id=st.text(max_size=70),
       site=st.sampled_from(["S1", "S2", "", "S1; DROP TABLE patients"]))
@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture,
                                                                  HealthCheck.too_slow])
def test_screening_data_of_any_shape_never_gives_500(platform, data, attestations, patient_id, site):
    body = {"patient_id": patient_id, "site": site, "data": data, "attestations": attestations}
    response = platform.call("POST", "/trials/amass-2/patients", json=body)
    assert response.status_code < 500, response.text
    assert response.status_code in (201, 403, 409, 422)
    if response.status_code != 201:
        assert response.json()["detail"]


def _today() -> str:
    return dt.datetime.now(dt.UTC).date().isoformat()  # the server's clock: UTC


D90 = {"mrs", "sae", "death"}  # the AMASS-2 protocol's day-90 assessments (builtin/amass-2.yaml, visits)
# Who records which of them: the blinded outcome assessor the mRS (assessor_only), site staff the rest.
OWN = {"coordinator": {"sae", "death"}, "outcome_assessor": {"mrs"}}
VALUE = JSON | st.integers(-2, 8) | st.booleans() | st.sampled_from(["2", "yes", "true", "", " 3"])


@pytest.mark.sqlite_only
@given(values=st.dictionaries(st.sampled_from(["mrs", "death", "sae", "nihss", "x"]), VALUE, max_size=4),
       visit_date=st.builds(_today) | JSON | st.dates().map(dt.date.isoformat),
       reason=st.none() | st.just("source document verified") | st.text(max_size=12),
       role=st.sampled_from(sorted(OWN)))
@example(values={"death": False}, visit_date="TODAY", reason="source document verified", role="coordinator")
@example(values={"mrs": 2}, visit_date="TODAY", reason="source document verified", role="outcome_assessor")
@example(values={"mrs": 7}, visit_date="TODAY", reason="source document verified", role="outcome_assessor")
@example(values={"mrs": 2, "death": False}, visit_date="TODAY", reason=None, role="coordinator")
@example(values={"mrs": [1], "sae": {"x": None}, "nihss": 3}, visit_date="TODAY", reason=None, role="coordinator")
@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture,
                                                                 HealthCheck.too_slow])
def test_visit_forms_of_any_shape_never_give_500(platform, values, visit_date, reason, role):
    if visit_date == "TODAY":
        visit_date = _today()
    body = {"visit_date": visit_date, "values": values} | ({"reason": reason} if reason is not None else {})
    before = platform.call("GET", "/trials/amass-2/patients/FUZZ/visits", "coordinator").json()["visits"]
    response = platform.call("PUT", "/trials/amass-2/patients/FUZZ/visits/d90", role, json=body)
    # The patient exists and is randomized: never 404, and never 500 however odd the values.
    assert response.status_code in (200, 403, 422), response.text
    if response.status_code != 200:
        assert response.json()["detail"]
    others = (set(values) & D90) - OWN[role]
    # Past the API's types (a string date), an assessment another role records is refused by name (403),
    # whatever else the form holds.
    if isinstance(visit_date, str):
        assert (response.status_code == 403) == bool(others), response.text
    if others and response.status_code == 403:
        assert others == {e["field"] for e in response.json()["errors"]}, response.text
    elif visit_date == _today():
        # Today is a valid date, so the values were parsed: what is not a day-90 assessment is refused by name.
        foreign = set(values) - D90
        if foreign:
            assert response.status_code == 422, response.text
            assert foreign <= {e["field"] for e in response.json()["errors"]}, response.text
        elif type(values.get("mrs", 0)) is int and 0 <= values.get("mrs", 0) <= 6 \
                and all(isinstance(values.get(k, False), bool) for k in ("death", "sae")) \
                and reason == "source document verified":
            # a valid day-90 form, with a reason in case an earlier example entered the visit already
            assert response.status_code == 200, response.text
    after = platform.call("GET", "/trials/amass-2/patients/FUZZ/visits", "coordinator").json()["visits"]
    if response.status_code != 200:
        assert after == before  # nothing half-stored
        return
    # The answer holds the visit as this role may read it: the outcome assessor's part alone for the assessor.
    stored = response.json()["values"]
    entered = {k: v for k, v in stored.items() if k in OWN[role]}
    assert set(stored) <= D90 and set(entered) <= set(values)
    assert role != "outcome_assessor" or stored == entered
    assert all(v is None or isinstance(v, bool) for k, v in stored.items() if k != "mrs")
    assert "mrs" not in stored or (type(stored["mrs"]) is int and 0 <= stored["mrs"] <= 6)
    recorded = next(v for v in after if v["visit"] == "d90")["values"]
    # The entry replaced this role's part and left the other role's part as it was.
    previous = next(v for v in before if v["visit"] == "d90").get("values", {})
    assert recorded == {k: v for k, v in previous.items() if k not in OWN[role]} | entered
    mine = platform.call("GET", "/trials/amass-2/patients/FUZZ/visits", role).json()["visits"]
    assert next(v for v in mine if v["visit"] == "d90")["values"] == stored
