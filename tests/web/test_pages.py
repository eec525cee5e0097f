"""The pages without a browser: sessions expire, forms need their CSRF token, exports hold what a role may see."""

from __future__ import annotations

import csv
import gc
import io
import os
import re
import warnings
import zipfile

import odmlib
import pytest
import xmlschema
from fastapi.testclient import TestClient

from stroketrial.service import demo
from stroketrial.store import Database
from stroketrial.web import create_app, pages


@pytest.fixture(scope="module")
def app_db(tmp_path_factory):
    db = Database(f"sqlite:///{tmp_path_factory.mktemp('pages') / 'pages.db'}")
    db.migrate()
    demo.load(db, interim_look=False)  # no DSMB look: loads in seconds
    yield db
    db.dispose()


def client_for(app_db, user: str | None) -> TestClient:
    client = TestClient(create_app(app_db))
    if user:
        token = re.search(r'name="csrf" value="([^"]+)"', client.get("/login").text).group(1)
        response = client.post("/login", data={"csrf": token, "name": user, "password": demo.DEMO_PASSWORD,
                                               "next": "/"})
        assert response.status_code == 200 and "Your trials" in response.text
    return client


def csrf(client: TestClient) -> str:
    return re.search(r'name="csrf" value="([^"]+)"', client.get("/").text).group(1)


def test_pages_need_a_signed_in_user_and_a_wrong_password_is_refused(app_db):
    client = client_for(app_db, None)
    response = client.get("/trials/amass-2", follow_redirects=False)
    assert response.status_code == 303 and response.headers["location"].startswith("/login")
    token = re.search(r'name="csrf" value="([^"]+)"', client.get("/login").text).group(1)
    response = client.post("/login", data={"csrf": token, "name": "coordinator", "password": "wrong-one"})
    assert response.status_code == 401 and "wrong password" in response.text
    response = client.post("/login", data={"csrf": "forged", "name": "coordinator", "password": demo.DEMO_PASSWORD})
    assert response.status_code == 403


def test_a_session_expires_after_inactivity(app_db, monkeypatch):
    client = client_for(app_db, "coordinator")
    assert client.get("/trials/amass-2").status_code == 200
    monkeypatch.setattr(pages, "SESSION_MINUTES", 0.0001)
    import time
    time.sleep(0.05)
    response = client.get("/trials/amass-2", follow_redirects=False)
    assert response.status_code == 303 and "expired" in response.headers["location"]


def test_screening_form_errors_name_the_field_and_keep_the_values(app_db):
    client = client_for(app_db, "coordinator")
    response = client.post("/trials/amass-2/screen", data={"csrf": csrf(client), "patient_id": "FORM-1",
                                                           "site": "S1", "age": "sixty", "nihss": "12"})
    assert response.status_code == 422
    assert "&#39;sixty&#39; is not a whole number" in response.text or "'sixty' is not a whole number" in response.text
    assert 'value="12"' in response.text  # nothing typed is lost


def test_a_role_that_may_not_randomize_gets_a_clear_page(app_db):
    client = client_for(app_db, "statistician")
    response = client.get("/trials/amass-2/patients/AMASS-040/randomize")
    assert response.status_code == 403 and "randomizing is for investigator, coordinator" in response.text


def _tables(content: bytes) -> dict[str, list[dict]]:
    with zipfile.ZipFile(io.BytesIO(content)) as archive:
        return {name.split("/")[-1][:-4]: list(csv.DictReader(io.StringIO(archive.read(name).decode())))
                for name in archive.namelist()}


def test_csv_export_is_one_table_per_form_and_blinded_users_get_no_arm(app_db):
    open_label = _tables(client_for(app_db, "admin").get("/trials/amass-2/export/csv").content)
    assert {"screening", "eligibility", "randomization", "visit_baseline", "visit_d90", "sae"} <= set(open_label)
    assert {r["arm"] for r in open_label["randomization"]} <= {"albumin", "control"}
    assert len(open_label["randomization"]) >= 30
    # Those who enrol in a minimized trial get no table of arms: it would give them the margins.
    recruiter = _tables(client_for(app_db, "coordinator").get("/trials/amass-2/export/csv").content)
    assert len(recruiter["randomization"]) >= 30 and "arm" not in recruiter["randomization"][0]
    blinded = _tables(client_for(app_db, "coordinator").get("/trials/impact-lvo/export/csv").content)
    assert "arm" not in blinded["randomization"][0] and blinded["randomization"][0]["kit"]
    statistician = _tables(client_for(app_db, "statistician").get("/trials/amass-2/export/csv").content)
    assert "arm" not in statistician["randomization"][0]
    dsmb = _tables(client_for(app_db, "dsmb").get("/trials/impact-lvo/export/csv").content)
    assert {r["arm"] for r in dsmb["randomization"]} == {"methylprednisolone", "placebo"}


def test_odm_export_is_valid_cdisc_odm_1_3_2(app_db, tmp_path):
    response = client_for(app_db, "coordinator").get("/trials/amass-2/export/odm")
    assert response.status_code == 200
    path = tmp_path / "odm.xml"
    path.write_bytes(response.content)
    schema = xmlschema.XMLSchema(os.path.join(os.path.dirname(odmlib.__file__), "schemas", "odm", "1.3.2",
                                              "ODM1-3-2.xsd"))
    errors = list(schema.iter_errors(str(path)))
    assert errors == []
    text = response.text
    assert 'ODMVersion="1.3.2"' in text and "<SubjectData" in text and 'SubjectKey="AMASS-001"' in text


def test_the_audit_trail_csv_is_for_admin_and_monitor(app_db):
    rows = list(csv.DictReader(io.StringIO(client_for(app_db, "monitor").get("/audit.csv").text)))
    # The demo monitor reads a double-blind trial: its arms are dropped, and a redacted export carries no hashes.
    assert rows and {"seq", "actor", "action", "site", "before", "after"} <= set(rows[0]) and "hash" not in rows[0]
    blinded = [r for r in rows if r["action"] == "randomize" and r["trial"] == "impact-lvo"]
    assert blinded and all('"arm"' not in r["after"] and '"block"' not in r["after"] for r in blinded)
    assert client_for(app_db, "coordinator").get("/audit.csv").status_code == 403


def test_a_file_sent_as_the_csrf_token_is_refused_like_a_forged_token(app_db):
    client = client_for(app_db, "coordinator")
    response = client.post("/logout", files={"csrf": ("token.txt", csrf(client).encode())})
    assert response.status_code == 403 and "CSRF check" in response.text
    assert client.get("/trials/amass-2", follow_redirects=False).status_code == 200  # still signed in


@pytest.mark.parametrize("path", ["/logout", "/language"])
def test_the_files_of_a_posted_form_are_closed_when_the_answer_is_sent(app_db, path):
    # A multipart form's files wait in temporary files; left open, each stayed open until garbage collection.
    client = client_for(app_db, "coordinator")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", ResourceWarning)
        response = client.post(path, files={"csrf": ("token.txt", b"not the token"),
                                            "attachment": ("notes.txt", b"x" * 2048)})
        del response
        gc.collect()
    assert [str(w.message) for w in caught if issubclass(w.category, ResourceWarning)] == []


PAGE_URLS = [("GET", "/trials/amass-2"), ("GET", "/trials/amass-2/screen"), ("POST", "/trials/amass-2/screen/preview"),
             ("POST", "/trials/amass-2/screen"), ("GET", "/trials/amass-2/patients/P1"),
             ("GET", "/trials/amass-2/patients/P1/randomize"), ("POST", "/trials/amass-2/patients/P1/randomize"),
             ("GET", "/trials/amass-2/patients/P1/allocation"), ("GET", "/trials/amass-2/patients/P1/dose"),
             ("GET", "/trials/amass-2/patients/P1/visits"), ("POST", "/trials/amass-2/patients/P1/visits/d90"),
             ("POST", "/trials/amass-2/patients/P1/sae"), ("GET", "/trials/amass-2/patients/P1/unblind"),
             ("POST", "/trials/amass-2/patients/P1/unblind"), ("GET", "/trials/amass-2/dashboard"),
             ("GET", "/trials/amass-2/export/csv"), ("GET", "/trials/amass-2/export/odm"), ("GET", "/audit.csv"),
             ("GET", "/")]


@pytest.mark.parametrize(("method", "url"), PAGE_URLS)
def test_every_page_asks_a_signed_out_user_to_sign_in(app_db, method, url):
    response = client_for(app_db, None).request(method, url, follow_redirects=False)
    assert response.status_code == 303 and response.headers["location"].startswith("/login?next=")


def test_signing_in_and_out_need_the_form_token(app_db):
    client = client_for(app_db, None)
    assert client.get("/login").status_code == 200
    assert client.post("/login", data={"name": "coordinator", "password": demo.DEMO_PASSWORD}).status_code == 403
    assert client.post("/logout").status_code == 403
