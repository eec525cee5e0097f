"""The pages of randomization during the procedure (issue 20, defect 5), on SQLite and PostgreSQL: the screening
form saves an ANGEL-RESCUE patient before the procedure (a trial that randomizes before it has no such button);
the procedure page records what the table says, names a failed criterion and randomizes nothing, and randomizes
once when eligible, however often the page is sent."""

from __future__ import annotations

import datetime as dt
import html
import re

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select

from stroketrial.service import SYSTEM, accounts, trials
from stroketrial.store import Database
from stroketrial.store.models import Allocation
from stroketrial.web import create_app

from ..trials import angel_rescue

TRIAL = angel_rescue.TRIAL
PASSWORD = "password-1"


@pytest.fixture
def client(database_url):
    db = Database(database_url)
    db.migrate()
    with db.write() as session:
        for trial in (TRIAL, "amass-2"):
            trials.create_trial(session, SYSTEM, trial, ["S1"])
        accounts.create_user(session, SYSTEM, "nurse", "coordinator", ["S1"], password=PASSWORD)
    client = TestClient(create_app(db))
    token = re.search(r'name="csrf" value="([^"]+)"', client.get("/login").text).group(1)
    assert client.post("/login", data={"csrf": token, "name": "nurse", "password": PASSWORD,
                                       "next": "/"}).status_code == 200
    client.db = db  # type: ignore[attr-defined]
    yield client
    db.dispose()


def csrf(client: TestClient, page: str = "/") -> str:
    return re.search(r'name="csrf" value="([^"]+)"', client.get(page).text).group(1)


def wall_clock(hours_ago: float) -> str:
    return (dt.datetime.now(dt.UTC) - dt.timedelta(hours=hours_ago)).replace(tzinfo=None).isoformat(timespec="minutes")


def before_procedure_form(code: str = "AR-1") -> dict[str, str]:
    """The screening form as a nurse sends it before the procedure (the test site's clock is UTC)."""
    during = {"arterial_puncture", "thrombectomy_passes", "contact_aspiration_attempted", "stent_retriever_attempted",
              "etici", "intraprocedural_hemorrhage", "randomization", "recanalization", "weight_kg", "attestations"}
    form = {k: ("yes" if v else "no") if isinstance(v, bool) else str(v)
            for k, v in angel_rescue.ELIGIBLE.items() if k not in during and v is not None}
    form |= {f"attest_{k}": "yes" if v else "no" for k, v in angel_rescue.ELIGIBLE["attestations"].items()
             if k != "vascular_access"}
    return form | {"patient_id": code, "site": "S1", "last_known_well": wall_clock(6)}


def procedure_form(client: TestClient, code: str = "AR-1", **changes: str) -> dict[str, str]:
    page = client.get(f"/trials/{TRIAL}/patients/{code}/procedure").text
    key = re.search(r'name="key" value="([^"]+)"', page).group(1)
    form = {"csrf": csrf(client), "key": key, "arterial_puncture": wall_clock(1), "thrombectomy_passes": "3",
            "contact_aspiration_attempted": "yes", "stent_retriever_attempted": "yes", "etici": "1",
            "intraprocedural_hemorrhage": "no", "attest_vascular_access": "no"}
    return {k: v for k, v in (form | changes).items() if v}


def allocations(client: TestClient) -> int:
    with client.db.read() as session:  # type: ignore[attr-defined]
        return session.execute(select(func.count()).select_from(Allocation)).scalar_one()


def test_the_screening_form_saves_a_patient_before_the_procedure(client):
    assert "save-before-procedure" in client.get(f"/trials/{TRIAL}/screen").text
    assert "save-before-procedure" not in client.get("/trials/amass-2/screen").text  # randomized before it
    form = before_procedure_form()
    del form["nihss"]
    refused = client.post(f"/trials/{TRIAL}/screen/before-procedure", data={"csrf": csrf(client), **form},
                          follow_redirects=False)
    assert refused.status_code == 422
    assert re.search(r'id="f-nihss"[^>]*aria-invalid="true"', refused.text)
    assert 'value="65"' in refused.text  # what was typed is kept
    saved = client.post(f"/trials/{TRIAL}/screen/before-procedure",
                        data={"csrf": csrf(client), **before_procedure_form()}, follow_redirects=False)
    assert saved.status_code == 303, html.unescape(saved.text)
    page = client.get(saved.headers["location"]).text
    assert 'data-testid="waiting-for-procedure"' in page and 'data-testid="procedure-link"' in page


def test_the_procedure_page_names_a_failed_criterion_then_randomizes_once(client):
    client.post(f"/trials/{TRIAL}/screen/before-procedure", data={"csrf": csrf(client), **before_procedure_form()})
    page = client.get(f"/trials/{TRIAL}/patients/AR-1/procedure").text
    assert 'name="thrombectomy_passes"' in page and 'name="nihss"' not in page  # only what is new
    assert 'value="2b"' not in page  # ANGEL-RESCUE takes eTICI grades, not a bare mTICI 2b
    two_passes = client.post(f"/trials/{TRIAL}/patients/AR-1/procedure",
                             data=procedure_form(client, thrombectomy_passes="2"), follow_redirects=False)
    assert two_passes.status_code == 200
    assert "nothing was randomized" in two_passes.text and "after 3 thrombectomy attempts" in two_passes.text
    assert allocations(client) == 0
    form = procedure_form(client)
    first = client.post(f"/trials/{TRIAL}/patients/AR-1/procedure", data=form, follow_redirects=False)
    assert first.status_code == 303 and first.headers["location"].endswith("/allocation")
    again = client.post(f"/trials/{TRIAL}/patients/AR-1/procedure", data=form, follow_redirects=False)
    assert again.status_code == 303 and again.headers["location"].endswith("/allocation")
    assert allocations(client) == 1


def test_a_trial_randomized_before_the_procedure_has_no_procedure_page(client):
    assert client.get("/trials/amass-2/patients/X/procedure").status_code in (404, 409)
