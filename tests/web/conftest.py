"""Fixtures shared by the page tests: each database test runs on SQLite and on PostgreSQL (a throw-away database
per test on the server `make test` starts; skipped without one unless STROKETRIAL_REQUIRE_PG is set)."""

from __future__ import annotations

import os
import uuid

import psycopg
import pytest
from sqlalchemy.engine import make_url


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request, tmp_path):
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'pages.db'}"
        return
    url = os.environ.get("STROKETRIAL_TEST_PG")
    if not url:
        if os.environ.get("STROKETRIAL_REQUIRE_PG"):
            pytest.fail("STROKETRIAL_REQUIRE_PG is set but STROKETRIAL_TEST_PG is not: PostgreSQL did not start")
        pytest.skip("no PostgreSQL: run `make test`, which starts a throw-away server")
    server = make_url(url)
    name = f"t_{uuid.uuid4().hex[:12]}"
    admin = server.set(drivername="postgresql").render_as_string(hide_password=False)
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f"CREATE DATABASE {name}")
    yield server.set(database=name).render_as_string(hide_password=False)
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")



@pytest.fixture(scope="module")
def browser(server):
    """Debian's Chromium, headless, for the browser tests of a module (each module defines its `server`)."""
    from .test_browser import chromium_browser

    yield from chromium_browser()
