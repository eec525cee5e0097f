"""Fixtures for the platform tests: a fresh database on each backend, and users of every role.

PostgreSQL tests run against the throw-away server `make test` starts
(scripts/test-postgres); STROKETRIAL_TEST_PG holds its URL. Without it they are
skipped, unless STROKETRIAL_REQUIRE_PG is set (as `make test` does), when they fail.
"""

from __future__ import annotations

import os
import uuid

import psycopg
import pytest
from fastapi.testclient import TestClient
from sqlalchemy.engine import make_url

from stroketrial.service import SYSTEM, accounts, trials
from stroketrial.store import Database
from stroketrial.web import create_app

BACKENDS = ["sqlite", "postgresql"]


def _pg_server_url() -> str | None:
    url = os.environ.get("STROKETRIAL_TEST_PG")
    if not url:
        if os.environ.get("STROKETRIAL_REQUIRE_PG"):
            pytest.fail("STROKETRIAL_REQUIRE_PG is set but STROKETRIAL_TEST_PG is not: PostgreSQL did not start")
        pytest.skip("no PostgreSQL: run `make test`, which starts a throw-away server")
    return url


@pytest.fixture
def database_url(request, tmp_path):
    backend = getattr(request, "param", "sqlite")
    if backend == "sqlite":
        yield f"sqlite:///{tmp_path / 'platform.db'}"
        return
    server = make_url(_pg_server_url())
    name = f"t_{uuid.uuid4().hex[:12]}"
    admin = server.set(drivername="postgresql").render_as_string(hide_password=False)
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f"CREATE DATABASE {name}")
    yield server.set(database=name).render_as_string(hide_password=False)
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")


def pytest_generate_tests(metafunc):
    if "database_url" in metafunc.fixturenames and not any(m.name == "sqlite_only"
                                                          for m in metafunc.definition.iter_markers()):
        metafunc.parametrize("database_url", BACKENDS, indirect=True)


SITES = ["S1", "S2"]
ROLE_USERS = {"admin": [], "investigator": ["S1"], "coordinator": ["S1"], "unblinded_pharmacist": ["S1"],
              "blinded_statistician": ["S1", "S2"], "dsmb": ["S1", "S2"], "monitor": ["S1"],
              "outcome_assessor": ["S1", "S2"], "safety_review_committee": ["S1", "S2"]}


class Platform:
    def __init__(self, url: str):
        self.db = Database(url)
        self.db.migrate()
        self.tokens: dict[str, str] = {}
        with self.db.write() as session:
            for trial in ("amass-2", "impact-lvo", "isis-hermes", "angel-rescue", "amass-1"):
                trials.create_trial(session, SYSTEM, trial, SITES)
            for role, sites in ROLE_USERS.items():
                _, self.tokens[role] = accounts.create_user(session, SYSTEM, role, role, sites, password="password-1")
            _, self.tokens["coordinator_s2"] = accounts.create_user(session, SYSTEM, "coordinator_s2", "coordinator",
                                                                    ["S2"])
        self.client = TestClient(create_app(self.db), raise_server_exceptions=False)

    def headers(self, role: str, **extra) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.tokens[role]}", **extra}

    def call(self, method: str, path: str, role: str = "coordinator", **kw):
        headers = self.headers(role, **kw.pop("headers", {}))
        return self.client.request(method, "/api/v1" + path, headers=headers, **kw)


@pytest.fixture
def platform(database_url):
    p = Platform(database_url)
    yield p
    p.db.dispose()
