"""The platform's command line: admin commands, tokens, audit verification, and bad input."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import text
from typer.testing import CliRunner

from stroketrial.cli import app
from stroketrial.protocol import load_builtin
from stroketrial.store import Database
from stroketrial.web import create_app

from ..trials import angel_rescue
from ..trials.helpers import happening_now

runner = CliRunner()


def run(*args, input=None):
    return runner.invoke(app, list(args), input=input)


def test_admin_creates_a_trial_and_users_whose_token_works(database_url):
    assert run("admin", "create-trial", "amass-2", "--site", "S1", "--site", "S2", "--db", database_url).exit_code == 0
    result = run("admin", "create-user", "wang", "--role", "coordinator", "--site", "S1", "--db", database_url)
    assert result.exit_code == 0, result.output
    token = result.stdout.strip().splitlines()[-1]
    assert token.startswith("st_") and len(token) > 40
    admin = run("admin", "create-user", "root", "--role", "admin", "--db", database_url, "--password-stdin",
                input="a-long-password\n")
    assert admin.exit_code == 0
    db = Database(database_url)
    client = TestClient(create_app(db))
    me = client.get("/api/v1/me", headers={"Authorization": f"Bearer {token}"}).json()
    assert me == {"name": "wang", "role": "coordinator", "sites": ["S1"]}
    assert [t["id"] for t in client.get("/api/v1/trials", headers={"Authorization": f"Bearer {token}"}).json()] == \
        ["amass-2"]
    db.dispose()


def test_admin_add_site_opens_a_site_where_patients_can_then_be_randomized(database_url):
    assert run("admin", "create-trial", "angel-rescue", "--site", "S1", "--db", database_url).exit_code == 0
    added = run("admin", "add-site", "angel-rescue", "--site", "S3", "--site", "S4", "--db", database_url)
    assert added.exit_code == 0, added.output
    assert "angel-rescue: sites S3, S4 open" in added.output
    assert run("admin", "add-site", "angel-rescue", "--site", "S3", "--db", database_url).exit_code == 0  # again: no-op
    user = run("admin", "create-user", "li", "--role", "coordinator", "--site", "S3", "--db", database_url)
    assert user.exit_code == 0, user.output
    token = user.stdout.strip().splitlines()[-1]
    db = Database(database_url)
    client = TestClient(create_app(db), raise_server_exceptions=False)
    headers = {"Authorization": f"Bearer {token}"}
    data = happening_now({**angel_rescue.ELIGIBLE, "bridging_thrombolysis": False})
    attestations = data.pop("attestations", None)
    registered = client.post("/api/v1/trials/angel-rescue/patients", headers=headers,
                             json={"patient_id": "S3-001", "site": "S3", "data": data, "attestations": attestations})
    assert registered.status_code == 201, registered.text
    allocation = client.post("/api/v1/trials/angel-rescue/patients/S3-001/randomization",
                             headers=headers | {"Idempotency-Key": "k1"})
    assert allocation.status_code in (200, 201), allocation.text
    assert allocation.json()["arm"] in {a.id for a in load_builtin("angel-rescue").arms}
    with db.read() as session:
        events = session.execute(text("SELECT site_code FROM audit_events WHERE action = 'add_site' ORDER BY seq")
                                 ).scalars().all()
        opened = session.execute(text("SELECT site_code FROM trial_sites WHERE trial_id = 'angel-rescue' "
                                      "ORDER BY site_code")).scalars().all()
    db.dispose()
    assert events == ["S1", "S3", "S4"] and opened == ["S1", "S3", "S4"]  # the repeat added nothing
    unknown = run("admin", "add-site", "amass-9", "--site", "S3", "--db", database_url)
    assert unknown.exit_code == 2 and "no trial 'amass-9'" in unknown.output and "Traceback" not in unknown.output


@pytest.mark.parametrize("args, message", [
    (("admin", "create-user", "x", "--role", "surgeon", "--site", "S1"), "role 'surgeon' is not one of"),
    (("admin", "create-user", "x", "--role", "admin", "--site", "S1"), "an admin sees every site"),
    (("admin", "create-user", "x", "--role", "coordinator"), "give --site"),
    (("admin", "create-user", "x", "--role", "coordinator", "--site", "S9"), "no site S9"),
    (("admin", "create-trial", "amass-9", "--site", "S1"), "unknown trial 'amass-9'"),
    (("admin", "create-trial", "amass-2"), "give --site"),
])
def test_bad_admin_input_exits_2_with_one_line(database_url, args, message):
    result = run(*args, "--db", database_url)
    assert result.exit_code == 2, result.output
    assert message in result.output and "Traceback" not in result.output


@pytest.mark.sqlite_only
def test_a_bad_database_url_exits_2(tmp_path):
    result = run("audit", "verify", "--db", "mysql://x@y/z")
    assert result.exit_code == 2 and "only SQLite and PostgreSQL" in result.output
    result = run("audit", "verify", "--db", "not a url")
    assert result.exit_code == 2 and "not a database URL" in result.output


def test_audit_verify_exits_1_when_the_trail_was_edited(database_url):
    assert run("admin", "create-trial", "amass-2", "--site", "S1", "--db", database_url).exit_code == 0
    ok = run("audit", "verify", "--db", database_url, "--json")
    assert ok.exit_code == 0 and '"ok": true' in ok.stdout
    db = Database(database_url)
    with db.engine.begin() as conn:
        if db.backend == "sqlite":
            conn.execute(text("DROP TRIGGER audit_events_no_update"))
        else:
            conn.execute(text("DROP TRIGGER audit_events_append_only ON audit_events"))
        conn.execute(text("UPDATE audit_events SET actor = 'mallory' WHERE seq = 1"))
    db.dispose()
    broken = run("audit", "verify", "--db", database_url)
    assert broken.exit_code == 1 and "event 1" in broken.output and "changed" in broken.output


@pytest.mark.sqlite_only
def test_the_database_url_comes_from_stroketrial_db(tmp_path, monkeypatch):
    url = f"sqlite:///{tmp_path / 'env.db'}"
    monkeypatch.setenv("STROKETRIAL_DB", url)
    assert run("admin", "create-site", "S7").exit_code == 0
    assert (tmp_path / "env.db").exists()


def test_admin_notify_add_keeps_a_recipients_language_and_refuses_one_not_offered(database_url):
    assert run("admin", "create-trial", "amass-2", "--site", "S1", "--db", database_url).exit_code == 0
    chinese = run("admin", "notify-add", "amass-2", "pv@sponsor.test", "--role", "pharmacovigilance", "--language",
                  "zh_Hans", "--db", database_url, "--json")
    assert chinese.exit_code == 0 and '"language": "zh_Hans"' in chinese.output, chinese.output
    both = run("admin", "notify-add", "amass-2", "dsmb@board.test", "--role", "dsmb", "--db", database_url)
    assert both.exit_code == 0 and "in English then Chinese" in both.output
    refused = run("admin", "notify-add", "amass-2", "x@board.test", "--role", "dsmb", "--language", "fr", "--db",
                  database_url)
    assert refused.exit_code != 0 and "zh_Hans" in refused.output
