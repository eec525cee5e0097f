"""Issue 20, defects 1 and 3, on the pages without a browser, on SQLite and PostgreSQL.

1. A patient the screen calls eligible can always be randomized: every field randomization reads is required on the
   screening form; a record that lacks one shows, instead of the Randomize button, what is missing in words with a
   link to correct it; the screening data are corrected on the pages with a reason (prefilled with what is stored,
   keeping what was typed on a refusal) and the patient is screened again.
3. Validation says everything at once in the user's words: one invalid value leaves the live panel screening the rest;
   problems are named by the field's label, with the value in the unit typed; help text shows no code; nothing typed
   is lost.
"""

from __future__ import annotations

import json
import re

import pytest
from sqlalchemy import select

from stroketrial.protocol import load_builtin
from stroketrial.service import SYSTEM, accounts, patients, trials
from stroketrial.store import Database
from stroketrial.store.models import Patient
from stroketrial.web.forms import screening_fields

from ..trials import amass2
from ..trials.helpers import happening_now
from .test_consent_pages import COORDINATOR, PASSWORD, client_for, csrf_of
from .test_consent_pages import visible as _visible


TRIAL = "amass-2"
FIELD_CODES = [f.name for f in screening_fields(load_builtin(TRIAL)) if f.name != f.label]  # "age" is both


@pytest.fixture
def db(database_url):
    database = Database(database_url)
    database.migrate()
    with database.write() as session:
        trials.create_trial(session, SYSTEM, TRIAL, ["S1"])
        accounts.create_user(session, SYSTEM, "coordinator", "coordinator", ["S1"], password=PASSWORD)
    yield database
    database.dispose()


def form_of(record: dict, code: str = "", **overrides: str | None) -> dict[str, str]:
    """A patient record as the screening form sends it (overrides: form names to text, None to leave blank)."""
    form: dict[str, str] = {"patient_id": code, "site": "S1"}
    for name, value in record.items():
        if name == "attestations":
            form.update({f"attest_{k}": "yes" if v else "no" for k, v in value.items()})
        elif isinstance(value, bool):
            form[name] = "yes" if value else "no"
        elif name in ("last_known_well", "arterial_puncture", "recanalization", "randomization"):
            form[name] = str(value)[:16]
        elif isinstance(value, dict):
            form[name], form[name + "__unit"] = str(value["value"]), value["unit"]
        else:
            form[name] = str(value)
    for name, value in overrides.items():
        if value is None:
            form.pop(name, None)
        else:
            form[name] = value
    return form


def eligible_now() -> dict:
    return happening_now(amass2.ELIGIBLE)


def without_bridging() -> dict:
    return {k: v for k, v in eligible_now().items() if k != "bridging_thrombolysis"}


def register_through_the_api_layer(db: Database, code: str, record: dict) -> None:
    data = dict(record)
    attestations = data.pop("attestations")
    with db.write() as session:
        patients.register(session, COORDINATOR, TRIAL, code, "S1", data, attestations)


def visible(html: str) -> str:
    """The page's text as read: tags gone, quotes unescaped, no space before a colon."""
    return re.sub(r"\s+:", ":", _visible(html)).replace("&#39;", "'").replace("&quot;", '"')


def codes_shown(text: str) -> list[str]:
    return [name for name in FIELD_CODES if re.search(rf"\b{name}\b", text)]


# ---- defect 1: an eligible patient can always be randomized ------------------------------------------------------

def test_the_screening_form_requires_every_field_randomization_needs(db):
    client = client_for(db, "coordinator")
    page = client.get(f"/trials/{TRIAL}/screen").text
    for name in ("bridging_thrombolysis", "age", "nihss", "aspects", "occlusion_site"):  # amass-2's factors
        assert f'data-testid="required-{name}"' in page, name
    assert 'data-testid="required-sbp"' not in page  # read by a criterion only
    token = csrf_of(page)
    response = client.post(f"/trials/{TRIAL}/screen", data={"csrf": token, **form_of(without_bridging(), "R-1")})
    assert response.status_code == 422, "an eligible patient without bridging IVT was registered"
    text = visible(response.text)
    assert "bridging intravenous thrombolysis: required: randomization needs it" in text
    assert 'name="nihss" inputmode="decimal" autocomplete="off" value="14"' in response.text  # nothing typed lost
    with db.read() as session:
        assert session.execute(select(Patient).where(Patient.code == "R-1")).scalar_one_or_none() is None
    # A patient a criterion already excludes is registered for the screening log without it.
    excluded = form_of(without_bridging(), "R-2", nihss="4")
    response = client.post(f"/trials/{TRIAL}/screen", data={"csrf": token, **excluded}, follow_redirects=False)
    assert response.status_code == 303
    # The live panel says in words what randomization still needs.
    panel = client.post(f"/trials/{TRIAL}/screen/preview", data={"csrf": token, **form_of(without_bridging())}).text
    assert "Required to randomize:" in visible(panel) and "bridging intravenous thrombolysis" in visible(panel)
    assert codes_shown(visible(panel)) == []


def test_a_record_without_a_randomization_field_says_what_is_missing_and_is_corrected_on_the_pages(db):
    register_through_the_api_layer(db, "P-1", without_bridging())
    client = client_for(db, "coordinator")
    page = client.get(f"/trials/{TRIAL}/patients/P-1").text
    assert 'data-testid="randomize"' not in page
    text = visible(page)
    assert "bridging intravenous thrombolysis" in text, "the page does not say what randomization needs in words"
    assert codes_shown(text) == [] and "randomization_factor_" not in text
    assert f'href="/trials/{TRIAL}/patients/P-1/screening"' in page

    # The correction form holds what is stored.
    form_page = client.get(f"/trials/{TRIAL}/patients/P-1/screening")
    assert form_page.status_code == 200
    html = form_page.text
    assert 'name="nihss" inputmode="decimal" autocomplete="off" value="14"' in html
    assert 'name="occlusion_site"' in html and '<option value="m1" selected>' in html
    assert 'name="pregnant" value="no" checked' in html
    assert 'name="attest_informed_consent" value="yes" checked' in html
    assert re.search(r'name="last_known_well" value="\d{4}-\d\d-\d\dT\d\d:\d\d"', html)
    assert 'name="bridging_thrombolysis" value="yes" checked' not in html

    # Refused without a reason and with an invalid value: every problem at once, what was typed kept.
    token = csrf_of(html)
    typed = form_of(eligible_now(), "", bridging_thrombolysis="yes", age="sixty", patient_id=None)
    response = client.post(f"/trials/{TRIAL}/patients/P-1/screening", data={"csrf": token, **typed, "reason": ""})
    assert response.status_code == 422
    text = visible(response.text)
    assert "reason for the correction" in text and "age: 'sixty' is not a whole number" in text
    assert 'name="bridging_thrombolysis" value="yes" checked' in response.text
    assert 'value="sixty"' in response.text
    with db.read() as session:
        row = session.execute(select(Patient).where(Patient.code == "P-1")).scalar_one()
        assert "bridging_thrombolysis" not in json.loads(row.data_json)  # nothing stored

    # Corrected with a reason: screened again, now randomizable.
    typed["age"] = "67"
    response = client.post(f"/trials/{TRIAL}/patients/P-1/screening",
                           data={"csrf": token, **typed, "reason": "bridging IVT was given; omitted at screening"},
                           follow_redirects=False)
    assert response.status_code == 303 and response.headers["location"] == f"/trials/{TRIAL}/patients/P-1"
    page = client.get(f"/trials/{TRIAL}/patients/P-1").text
    assert 'data-testid="randomize"' in page and "Screening data corrected" in page
    confirm = client.get(f"/trials/{TRIAL}/patients/P-1/randomize").text
    key = re.search(r'name="key" value="([^"]+)"', confirm).group(1)
    response = client.post(f"/trials/{TRIAL}/patients/P-1/randomize",
                           data={"csrf": csrf_of(confirm), "key": key, "confirm": "yes"}, follow_redirects=False)
    assert response.status_code == 303 and response.headers["location"].endswith("/allocation")
    with db.read() as session:
        row = session.execute(select(Patient).where(Patient.code == "P-1")).scalar_one()
        assert json.loads(row.data_json)["bridging_thrombolysis"] is True and row.status == "eligible"
    # Randomized: screening data are no longer corrected here (a data query is the way).
    assert 'data-testid="correct-screening"' not in client.get(f"/trials/{TRIAL}/patients/P-1").text


def test_a_record_stored_as_eligible_without_a_factor_is_never_offered_randomization(db):
    """A patient registered before the screen counted randomization factors (or under a protocol version without
    one) may be stored as eligible without one: the pages check the record, not the stored status."""
    register_through_the_api_layer(db, "P-2", without_bridging())
    with db.write() as session:
        row = session.execute(select(Patient).where(Patient.code == "P-2")).scalar_one()
        screening = json.loads(row.screening_json)
        screening["criteria"] = [c for c in screening["criteria"] if not c["id"].startswith("randomization_factor")]
        screening["status"] = "eligible"
        row.status, row.screening_json = "eligible", json.dumps(screening)
    client = client_for(db, "coordinator")
    page = client.get(f"/trials/{TRIAL}/patients/P-2").text
    assert 'data-testid="randomize"' not in page, "Randomize offered for a record that cannot be randomized"
    assert "bridging intravenous thrombolysis" in visible(page)
    response = client.get(f"/trials/{TRIAL}/patients/P-2/randomize", follow_redirects=False)
    assert response.status_code == 303 and response.headers["location"] == f"/trials/{TRIAL}/patients/P-2"


# ---- defect 3: validation says everything at once, in the user's words ------------------------------------------

def test_one_invalid_value_leaves_the_live_panel_screening_the_rest(db):
    client = client_for(db, "coordinator")
    token = csrf_of(client.get(f"/trials/{TRIAL}/screen").text)
    form = form_of(eligible_now(), creatinine_umol_l="88", creatinine_umol_l__unit="mg/dL")
    panel = client.post(f"/trials/{TRIAL}/screen/preview", data={"csrf": token, **form}).text
    assert 'data-testid="eligibility-status"' in panel, "one invalid value blanked the live panel"
    text = visible(panel)
    assert "serum creatinine" in text and "88 mg/dL is out of range" in text
    assert "7779" not in text and codes_shown(text) == []
    assert 'data-field="creatinine_umol_l"' in panel  # the field is marked for the form
    assert "waiting for a valid serum creatinine" in text  # the criterion that reads it waits on it
    # the unit that would fit is suggested
    assert "88 µmol/L would be in range" in text


def test_every_problem_is_listed_at_once_with_labels_and_the_unit_typed(db):
    client = client_for(db, "coordinator")
    token = csrf_of(client.get(f"/trials/{TRIAL}/screen").text)
    form = form_of(eligible_now(), "V-1", age="sixty", creatinine_umol_l="88", creatinine_umol_l__unit="mg/dL",
                   sbp="999", weight_kg="400", weight_kg__unit="lb")
    response = client.post(f"/trials/{TRIAL}/screen", data={"csrf": token, **form})
    assert response.status_code == 422
    text = visible(response.text)
    assert "'sixty' is not a whole number" in text
    assert "88 mg/dL is out of range" in text, "a range error appears only on a second submit"
    assert "999 mmHg is out of range" in text and "systolic blood pressure" in text
    assert "400 lb is out of range" not in text  # 400 lb (181 kg) is a weight
    assert "7779" not in text and codes_shown(text) == []
    assert "3 problems to correct" in text
    # nothing typed is lost: the values, the unit switch, the radio answers and the attestations
    html = response.text
    assert 'value="sixty"' in html and 'value="88"' in html and 'value="999"' in html
    assert '<option selected>mg/dL</option>' in html and '<option selected>lb</option>' in html
    assert 'name="bridging_thrombolysis" value="yes" checked' in html
    assert 'name="attest_informed_consent" value="yes" checked' in html


def test_clock_times_in_the_wrong_order_are_named_by_their_labels(db):
    client = client_for(db, "coordinator")
    token = csrf_of(client.get(f"/trials/{TRIAL}/screen").text)
    record = eligible_now()
    form = form_of(record, "V-2", arterial_puncture=form_of(record)["last_known_well"][:11] + "00:00")
    form["last_known_well"] = form["arterial_puncture"][:11] + "01:00"
    response = client.post(f"/trials/{TRIAL}/screen", data={"csrf": token, **form})
    assert response.status_code == 422
    problems = visible(re.search(r'data-testid="problems".*?</section>', response.text, flags=re.S).group(0))
    assert re.search(r"arterial puncture \S+ is before last known well", problems), problems
    assert codes_shown(visible(response.text)) == []


def test_help_text_shows_no_code(db):
    client = client_for(db, "coordinator")
    html = client.get(f"/trials/{TRIAL}/screen").text
    helps = re.findall(r'<span class="help"[^>]*>(.*?)</span>', html, flags=re.S)
    assert len(helps) >= len(FIELD_CODES)
    for text in helps:
        assert "{" not in text and "&#39;value&#39;" not in text and "'value'" not in text, text
        assert codes_shown(text) == [], text
    assert "or 0.0566 to 33.9 mg/dL" in html  # the creatinine switch's range in its other unit
