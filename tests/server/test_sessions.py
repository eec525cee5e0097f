"""Sessions live on the server (issue 14, point 9): signing out, deactivation and a password reset end them at
once, a captured cookie is worth nothing afterwards, and a session has an idle timeout and an absolute
lifetime. The admin commands that withdraw access are audited and refuse bad input with exit code 2."""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import json
import re
import time

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select, text
from typer.testing import CliRunner

from stroketrial.cli import app as cli
from stroketrial.store import Database
from stroketrial.store.models import AuditEvent
from stroketrial.web import create_app, pages

CSRF = re.compile(r'name="csrf" value="([^"]+)"')
COOKIE = "stroketrial_session"
runner = CliRunner()


def signed_in(db: Database, name: str = "coordinator", password: str = "password-1") -> TestClient:
    client = TestClient(create_app(db), raise_server_exceptions=False)
    token = CSRF.search(client.get("/login").text).group(1)
    response = client.post("/login", data={"csrf": token, "name": name, "password": password, "next": "/"},
                           follow_redirects=False)
    assert response.status_code == 303, response.text
    assert client.get("/trials/amass-2").status_code == 200
    return client


def refused(client: TestClient, path: str = "/trials/amass-2") -> str:
    response = client.get(path, follow_redirects=False)
    assert response.status_code == 303 and response.headers["location"].startswith("/login"), response.status_code
    return response.headers["location"]


def admin(*args, input=None):
    return runner.invoke(cli, ["admin", *args], input=input)


def actions(db: Database, action: str) -> list[AuditEvent]:
    with db.read() as session:
        return list(session.execute(select(AuditEvent).where(AuditEvent.action == action)).scalars())


def session_id(client: TestClient) -> str:
    """The session id inside the (signed, not encrypted) cookie."""
    payload = client.cookies[COOKIE].split(".")[0]
    return json.loads(base64.b64decode(payload + "=" * (-len(payload) % 4)))["sid"]


def test_a_cookie_captured_before_signing_out_is_refused_after(platform):
    client = signed_in(platform.db)
    captured = client.cookies[COOKIE]
    csrf = CSRF.search(client.get("/").text).group(1)
    assert client.post("/logout", data={"csrf": csrf}, follow_redirects=False).status_code == 303
    replay = TestClient(create_app(platform.db), cookies={COOKIE: captured}, raise_server_exceptions=False)
    refused(replay)
    refused(replay, "/trials/amass-2/export/csv")
    assert [e.entity_id for e in actions(platform.db, "sign_out")] == ["coordinator"]


def test_the_session_id_is_stored_as_its_sha256_only(platform):
    sid = session_id(signed_in(platform.db))
    with platform.db.engine.connect() as conn:
        rows = conn.execute(text("SELECT * FROM user_sessions")).mappings().all()
    assert len(rows) == 1 and rows[0]["token_hash"] == hashlib.sha256(sid.encode()).hexdigest()
    assert sid not in json.dumps([dict(r) for r in rows], default=str)


def test_a_deactivated_user_is_refused_at_once_on_pages_and_api(platform):
    client = signed_in(platform.db)
    api = platform.call("GET", "/trials/amass-2/patients")
    assert api.status_code == 200
    result = admin("deactivate-user", "coordinator", "--db", platform.db.url, "--json")
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout) == {"user": "coordinator", "active": False, "sessions_ended": 1}
    refused(client)
    csrf = CSRF.search(client.get("/login").text).group(1)
    registered = client.post("/trials/amass-2/screen", data={"csrf": csrf, "patient_id": "LATE-1", "site": "S1"},
                             follow_redirects=False)
    assert registered.status_code == 303 and registered.headers["location"].startswith("/login")
    assert platform.call("GET", "/trials/amass-2/patients").status_code == 401
    assert platform.call("POST", "/trials/amass-2/patients", json={"patient_id": "LATE-2", "site": "S1", "data": {}}
                         ).status_code == 401
    again = TestClient(create_app(platform.db), raise_server_exceptions=False)
    csrf = CSRF.search(again.get("/login").text).group(1)
    assert again.post("/login", data={"csrf": csrf, "name": "coordinator", "password": "password-1"}
                      ).status_code == 401
    assert [e.entity_id for e in actions(platform.db, "deactivate")] == ["coordinator"]


def test_a_session_ends_after_its_absolute_lifetime_however_busy(platform, monkeypatch):
    client = signed_in(platform.db)
    monkeypatch.setattr(pages, "SESSION_MAX_HOURS", 1.5 / 3600, raising=False)  # 1.5 seconds
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        response = client.get("/trials/amass-2", follow_redirects=False)
        if response.status_code != 200:
            break
        time.sleep(0.25)  # busy: never idle for long
    assert response.status_code == 303 and "limit" in response.headers["location"], response.status_code


def test_the_default_lifetime_is_12_hours_measured_in_the_database(platform):
    assert pages.SESSION_MAX_HOURS == 12
    client = signed_in(platform.db)
    with platform.db.engine.begin() as conn:
        conn.execute(text("UPDATE user_sessions SET created_at = :t"),
                     {"t": dt.datetime.now(dt.UTC) - dt.timedelta(hours=12, minutes=1)})
    location = refused(client)
    assert "12-hour" in location.replace("%20", " ").replace("+", " ")
    with platform.db.engine.connect() as conn:
        assert conn.execute(text("SELECT ended_why FROM user_sessions")).scalar_one() == "lifetime"


def test_last_seen_is_written_at_most_once_a_minute(platform):
    client = signed_in(platform.db)

    def last_seen():
        with platform.db.engine.connect() as conn:
            return conn.execute(text("SELECT last_seen_at FROM user_sessions")).scalar_one()

    first = last_seen()
    for _ in range(3):
        assert client.get("/").status_code == 200
    assert last_seen() == first
    with platform.db.engine.begin() as conn:
        conn.execute(text("UPDATE user_sessions SET last_seen_at = :t"),
                     {"t": dt.datetime.now(dt.UTC) - dt.timedelta(minutes=2)})
    moved = last_seen()
    assert client.get("/").status_code == 200
    assert last_seen() > moved


def test_revoke_token_revokes_one_token_or_all_of_them(platform):
    url = platform.db.url
    issued = admin("create-user", "wang", "--role", "coordinator", "--site", "S1", "--db", url)
    wang = issued.stdout.strip().splitlines()[-1]
    me = lambda token: platform.client.get("/api/v1/me", headers={"Authorization": f"Bearer {token}"})  # noqa: E731
    assert me(wang).status_code == 200
    wrong = admin("revoke-token", "coordinator", "--token", wang, "--db", url)
    assert wrong.exit_code == 2 and "not one of coordinator's tokens" in wrong.output
    one = admin("revoke-token", "wang", "--token", wang, "--db", url, "--json")
    assert one.exit_code == 0, one.output
    assert json.loads(one.stdout) == {"user": "wang", "tokens_revoked": 1}
    assert me(wang).status_code == 401 and me(platform.tokens["coordinator"]).status_code == 200
    every = admin("revoke-token", "coordinator", "--db", url)
    assert every.exit_code == 0 and "1 API token" in every.stdout
    assert me(platform.tokens["coordinator"]).status_code == 401
    assert len(actions(platform.db, "revoke_token")) == 2


def test_reset_password_ends_sessions_and_clears_a_lockout(platform):
    client = signed_in(platform.db)
    attacker = TestClient(create_app(platform.db), raise_server_exceptions=False)
    csrf = CSRF.search(attacker.get("/login").text).group(1)
    for _ in range(5):
        attacker.post("/login", data={"csrf": csrf, "name": "coordinator", "password": "guess"})
    assert attacker.post("/login", data={"csrf": csrf, "name": "coordinator", "password": "password-1"}
                         ).status_code == 429
    result = admin("reset-password", "coordinator", "--password-stdin", "--db", platform.db.url, "--json",
                   input="a-new-long-password\n")
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout) == {"user": "coordinator", "sessions_ended": 1, "failures_cleared": 5}
    refused(client)
    fresh = TestClient(create_app(platform.db), raise_server_exceptions=False)
    csrf = CSRF.search(fresh.get("/login").text).group(1)
    assert fresh.post("/login", data={"csrf": csrf, "name": "coordinator", "password": "password-1"}
                      ).status_code == 401
    signed_in(platform.db, password="a-new-long-password")
    (event,) = actions(platform.db, "reset_password")
    assert event.entity_id == "coordinator" and "a-new-long-password" not in (event.after_json or "")


@pytest.mark.parametrize("args, stdin, message", [
    (("deactivate-user", "nobody"), None, "no user 'nobody'"),
    (("revoke-token", "nobody"), None, "no user 'nobody'"),
    (("revoke-token", "coordinator", "--token", "st_not-a-token"), None, "not one of coordinator's tokens"),
    (("reset-password", "nobody", "--password-stdin"), "long-enough-1\n", "no user 'nobody'"),
    (("reset-password", "coordinator"), None, "--password-stdin"),
    (("reset-password", "coordinator", "--password-stdin"), "short\n", "at least 10 characters"),
    (("unlock-user", "nobody"), None, "no user 'nobody'"),
])
def test_bad_access_commands_exit_2_with_one_line(platform, args, stdin, message):
    result = admin(*args, "--db", platform.db.url, input=stdin)
    assert result.exit_code == 2, result.output
    assert message in result.output and "Traceback" not in result.output


@pytest.mark.sqlite_only
@pytest.mark.parametrize("name", ["deactivate-user", "revoke-token", "reset-password", "unlock-user"])
def test_access_commands_have_help_with_an_example(name):
    result = admin(name, "--help")
    assert result.exit_code == 0 and "Example:" in result.output and f"    stroketrial admin {name}" in result.output
    assert "--json" in result.output
