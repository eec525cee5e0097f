"""Whatever JSON a client sends, the API answers 2xx or 4xx with a message, never 500 (Hypothesis)."""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from stroketrial.clinical import VARIABLES

from .conftest import Platform

JSON = st.recursive(st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False, allow_infinity=False)
                    | st.text(max_size=20),
                    lambda children: st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=8), children,
                                                                                     max_size=3), max_leaves=6)
FIELDS = st.sampled_from(sorted(VARIABLES) + ["attestations", "nihs", ""])


@pytest.fixture(scope="module")
def platform(tmp_path_factory):
    p = Platform(f"sqlite:///{tmp_path_factory.mktemp('fuzz') / 'fuzz.db'}")
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


@pytest.mark.sqlite_only
@given(values=st.dictionaries(st.sampled_from(["mrs", "death", "sae", "nihss", "x"]), JSON, max_size=4),
       visit_date=JSON)
@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture,
                                                                 HealthCheck.too_slow])
def test_visit_forms_of_any_shape_never_give_500(platform, values, visit_date):
    response = platform.call("PUT", "/trials/amass-2/patients/NOBODY/visits/d90",
                             json={"visit_date": visit_date, "values": values})
    assert response.status_code in (404, 422), response.text
