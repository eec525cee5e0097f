"""Accounts over their life: the password policy (NIST SP 800-63B: length, not a common password, not the user
name), and role and site changes by the admin, audited with a reason, ending the user's page sessions."""

from __future__ import annotations

import json

import pytest
from sqlalchemy import select
from typer.testing import CliRunner

from stroketrial.cli import app
from stroketrial.service import access, accounts, sessions
from stroketrial.service.accounts import SYSTEM
from stroketrial.service.errors import Forbidden, Invalid, NotFound
from stroketrial.store.models import AuditEvent, User


@pytest.mark.parametrize(("password", "why"), [
    ("short-1", "at least 10 characters"), ("Password123", "most often guessed"), ("aaaaaaaaaaaa", "one character"),
    ("chen-wei-2026!", "user name"), ("x" * 129, "at most 128"),
])
def test_a_weak_password_is_refused_naming_the_rule(platform, password, why):
    with platform.db.write() as session, pytest.raises(Invalid, match=why) as refused:
        accounts.create_user(session, SYSTEM, "chen-wei", "coordinator", ["S1"], password=password)
    assert refused.value.errors[0]["value"] == "***"  # never echoed
    with platform.db.write() as session, pytest.raises(Invalid, match=why):
        access.reset_password(session, SYSTEM, "coordinator", password.replace("chen-wei", "coordinator"))


def test_a_reset_refuses_the_current_password(platform):
    with platform.db.write() as session, pytest.raises(Invalid, match="current one"):
        access.reset_password(session, SYSTEM, "coordinator", "password-1")


def test_role_and_site_changes_are_audited_and_end_sessions(platform):
    with platform.db.write() as session:
        user = session.execute(select(User).where(User.name == "coordinator")).scalar_one()
        sessions.start(session, user)
        changed = access.change_role(session, SYSTEM, "coordinator", "investigator", "delegation log entry 12")
        moved = access.set_sites(session, SYSTEM, "coordinator", ["S1", "S2"], "covers site S2 from today")
    assert changed == {"user": "coordinator", "role": "investigator", "was": "coordinator", "sessions_ended": 1}
    assert moved["sites"] == ["S1", "S2"] and moved["was"] == ["S1"]
    me = platform.call("GET", "/me", "coordinator").json()  # the API token reads the new role at once
    assert me["role"] == "investigator" and sorted(me["sites"]) == ["S1", "S2"]
    with platform.db.read() as session:
        events = {e.action: e for e in session.execute(select(AuditEvent).where(
            AuditEvent.entity_id == "coordinator")).scalars()}
    assert json.loads(events["change_role"].before_json) == {"role": "coordinator"}
    assert events["set_sites"].reason == "covers site S2 from today"


def test_role_and_site_changes_are_refused_when_wrong(platform):
    coordinator = accounts.Actor("coordinator", "coordinator", frozenset({"S1"}))
    with platform.db.write() as session:
        with pytest.raises(Forbidden):
            access.change_role(session, coordinator, "monitor", "investigator", "no")
        with pytest.raises(Invalid, match="not one of"):
            access.change_role(session, SYSTEM, "monitor", "chief", "typo")
        with pytest.raises(Invalid, match="from admin"):
            access.change_role(session, SYSTEM, "monitor", "admin", "promotion")
        with pytest.raises(Invalid, match="needs a reason"):
            access.change_role(session, SYSTEM, "monitor", "investigator", " ")
        with pytest.raises(NotFound, match="no site S9"):
            access.set_sites(session, SYSTEM, "monitor", ["S9"], "new site")
        with pytest.raises(Invalid, match="one or more sites"):
            access.set_sites(session, SYSTEM, "monitor", [], "none")


def test_the_commands_change_role_and_sites(database_url):
    runner = CliRunner()
    for args in (["admin", "create-site", "S1"], ["admin", "create-site", "S2"]):
        assert runner.invoke(app, [*args, "--db", database_url]).exit_code == 0
    made = runner.invoke(app, ["admin", "create-user", "li", "--role", "coordinator", "--site", "S1",
                               "--db", database_url, "--json"])
    assert made.exit_code == 0, made.output
    role = runner.invoke(app, ["admin", "change-role", "li", "--role", "monitor", "--reason", "now monitoring",
                               "--db", database_url, "--json"])
    assert role.exit_code == 0 and json.loads(role.output)["role"] == "monitor"
    sites = runner.invoke(app, ["admin", "set-sites", "li", "--site", "S2", "--reason", "moved", "--db",
                                database_url])
    assert sites.exit_code == 0 and "li works at S2 (was S1)" in sites.output
    bad = runner.invoke(app, ["admin", "change-role", "li", "--role", "boss", "--reason", "x", "--db", database_url])
    assert bad.exit_code == 2 and "not one of" in bad.output
