"""Sign-in under attack (issue 14, points 7 and 8): hashing off the event loop, lockouts, no user-name oracle.

Each test plays the attack from the report against the pages and checks the defence; they run on
SQLite and on PostgreSQL (the failed attempts live in the database, so a lockout holds across
server processes and restarts).
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import statistics
import threading
import time

import httpx
import pytest
from argon2 import PasswordHasher
from fastapi.testclient import TestClient
from sqlalchemy import select
from typer.testing import CliRunner

from stroketrial.cli import app as cli
from stroketrial.store import Database
from stroketrial.store.models import AuditEvent, User
from stroketrial.web import create_app

CSRF = re.compile(r'name="csrf" value="([^"]+)"')


def page_client(db: Database) -> TestClient:
    """A browser of its own (its own cookie jar) against an app on this database."""
    return TestClient(create_app(db), raise_server_exceptions=False)


def sign_in(client: TestClient, name: str, password: str):
    token = CSRF.search(client.get("/login").text).group(1)
    return client.post("/login", data={"csrf": token, "name": name, "password": password, "next": "/"},
                       follow_redirects=False)


def events(db: Database, action: str) -> list[AuditEvent]:
    with db.read() as session:
        return list(session.execute(select(AuditEvent).where(AuditEvent.action == action)
                                    .order_by(AuditEvent.seq)).scalars())


class VerifySpy:
    """Counts every Argon2 verification (whichever hasher instance runs it) and the hashes it was given."""

    def __init__(self, monkeypatch, delay: float = 0.0):
        self.hashes: list[str] = []
        self.threads: list[int] = []
        self.running = self.peak = 0
        self._lock = threading.Lock()
        real = PasswordHasher.verify
        spy = self

        def verify(hasher, hash, password):
            with spy._lock:
                spy.hashes.append(hash if isinstance(hash, str) else hash.decode())
                spy.threads.append(threading.get_ident())
                spy.running += 1
                spy.peak = max(spy.peak, spy.running)
            try:
                time.sleep(delay)
                return real(hasher, hash, password)
            finally:
                with spy._lock:
                    spy.running -= 1

        monkeypatch.setattr(PasswordHasher, "verify", verify)


# ---- point 7: Argon2 never runs on the event loop ------------------------------------------------------------
def test_password_hashing_does_not_stall_other_requests(platform, monkeypatch):
    """Four wrong-password logins at once, each hash slowed to a second: an API call made meanwhile is
    answered before any of them (on the event loop the hashes queued every other request behind them),
    and no more than max(1, cores - 1) hashes run at once, never on the event loop's thread."""
    spy = VerifySpy(monkeypatch, delay=1.0)
    app = create_app(platform.db)
    slots = max(1, (os.cpu_count() or 1) - 1)

    async def attack() -> tuple[float, list[bool], list[int], int]:
        loop_thread = threading.get_ident()
        transport = httpx.ASGITransport(app=app)
        browsers = [httpx.AsyncClient(transport=transport, base_url="http://testserver") for _ in range(4)]
        tokens = [CSRF.search((await b.get("/login")).text).group(1) for b in browsers]
        began = time.perf_counter()
        logins = [asyncio.create_task(b.post("/login", data={"csrf": t, "name": "coordinator",
                                                              "password": f"guess-{i}", "next": "/"}))
                  for i, (b, t) in enumerate(zip(browsers, tokens, strict=False))]
        await asyncio.sleep(0.2)  # the first hashes are running
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as api:
            answer = await api.get("/api/v1/trials/amass-2/patients", headers=platform.headers("coordinator"))
            took = time.perf_counter() - began
        assert answer.status_code == 200
        pending = [not task.done() for task in logins]
        statuses = [r.status_code for r in await asyncio.gather(*logins)]
        for b in browsers:
            await b.aclose()
        return took, pending, statuses, loop_thread

    took, pending, statuses, loop_thread = asyncio.run(attack())
    assert statuses == [401] * 4
    assert all(pending), f"the API call was answered only after password hashes ({took:.2f} s after the logins)"
    assert loop_thread not in spy.threads, "Argon2 ran on the event loop's thread"
    assert len(spy.hashes) == 4 and spy.peak <= slots


@pytest.mark.sqlite_only
def test_hashing_has_a_limiter_of_its_own_leaving_a_core_free():
    import anyio

    from stroketrial.service import passwords

    async def limiters():
        return passwords.limiter(), anyio.to_thread.current_default_thread_limiter()

    hashing, default = asyncio.run(limiters())
    assert hashing is not default
    assert hashing.total_tokens == max(1, len(os.sched_getaffinity(0)) - 1)


# ---- point 8: lockouts per user name and per address, audited, without hashing --------------------------------
def test_the_sixth_attempt_is_refused_with_retry_after_and_no_hash(platform, monkeypatch):
    spy = VerifySpy(monkeypatch)
    client = page_client(platform.db)
    for i in range(5):
        response = sign_in(client, "coordinator", f"guess-{i}")
        assert response.status_code == 401, response.text
    hashed = len(spy.hashes)
    assert hashed == 5
    response = sign_in(client, "coordinator", "password-1")  # even the right password, while locked
    assert response.status_code == 429
    assert 0 < int(response.headers["Retry-After"]) <= 15 * 60
    assert "Too many failed sign-ins" in response.text and "unlock" in response.text
    assert 'name="password"' in response.text  # the sign-in page, with the message on it
    assert len(spy.hashes) == hashed, "a locked account's password was still hashed"
    # the lockout is in the database: another server process (a restart) sees it
    again = sign_in(page_client(Database(platform.db.url)), "coordinator", "password-1")
    assert again.status_code == 429 and "Retry-After" in again.headers
    # other users are not locked out by it
    assert sign_in(page_client(platform.db), "investigator", "password-1").status_code == 303
    failed = [e for e in events(platform.db, "login_failed") if e.entity_id == "coordinator"]
    assert len(failed) == 5
    locked = events(platform.db, "account_locked")
    assert [e.entity_id for e in locked] == ["coordinator"]
    assert json.loads(locked[0].after_json)["failures"] == 5


def test_an_unknown_user_name_gets_the_same_answers_and_the_same_lockout(platform, monkeypatch):
    spy = VerifySpy(monkeypatch)
    known, unknown = page_client(platform.db), page_client(platform.db)
    answers = {"known": [], "unknown": []}
    for i in range(6):
        answers["known"].append(sign_in(known, "coordinator", f"guess-{i}"))
        answers["unknown"].append(sign_in(unknown, "nobody-here", f"guess-{i}"))
    for kind in answers:
        assert [r.status_code for r in answers[kind]] == [401] * 5 + [429], kind

    def page(kind: str, n: int) -> str:  # the answer, less the name typed and the browser's own CSRF token
        name = "coordinator" if kind == "known" else "nobody-here"
        return CSRF.sub("", answers[kind][n].text).replace(f'value="{name}"', "")

    assert page("known", 0) == page("unknown", 0) and page("known", 5) == page("unknown", 5)
    assert answers["known"][5].headers["Retry-After"] and answers["unknown"][5].headers["Retry-After"]
    assert len(spy.hashes) == 10  # five hashes each: the unknown name was verified too
    assert [e.entity_id for e in events(platform.db, "account_locked")] == ["coordinator", "nobody-here"]


def test_an_unknown_user_is_verified_against_a_dummy_hash_with_the_same_parameters(platform, monkeypatch):
    spy = VerifySpy(monkeypatch)
    client = page_client(platform.db)
    assert sign_in(client, "coordinator", "wrong-password").status_code == 401
    assert sign_in(client, "nobody-here", "wrong-password").status_code == 401
    assert sign_in(client, "coordinator_s2", "wrong-password").status_code == 401  # a user with no password
    assert len(spy.hashes) == 3
    known, dummy, no_password = spy.hashes
    with platform.db.read() as session:
        stored = {u.password_hash for u in session.execute(select(User)).scalars()}
    assert known in stored and dummy not in stored and no_password == dummy

    def parameters(h: str) -> str:
        return h.rsplit("$", 2)[0]  # $argon2id$v=19$m=...,t=...,p=...

    assert parameters(dummy) == parameters(known)


def test_a_known_and_an_unknown_user_name_take_about_as_long(platform):
    """The report measured 456 ms for a known name and 1.4 ms for an unknown one; now both pay one Argon2 hash."""
    client = page_client(platform.db)
    took = {"coordinator": [], "nobody-here": []}
    for _ in range(3):
        for name in took:
            token = CSRF.search(client.get("/login").text).group(1)
            started = time.perf_counter()
            response = client.post("/login", data={"csrf": token, "name": name, "password": "wrong-password"})
            took[name].append(time.perf_counter() - started)
            assert response.status_code == 401
    known, unknown = statistics.median(took["coordinator"]), statistics.median(took["nobody-here"])
    assert unknown > known / 3, f"known {known * 1000:.0f} ms, unknown {unknown * 1000:.0f} ms"


def test_an_address_with_too_many_failures_is_throttled_whatever_the_name(platform, monkeypatch):
    monkeypatch.setenv("STROKETRIAL_LOGIN_MAX_FAILURES_PER_ADDRESS", "3")
    client = page_client(platform.db)
    for name in ("coordinator", "investigator", "monitor"):
        assert sign_in(client, name, "guess").status_code == 401
    response = sign_in(client, "dsmb", "password-1")
    assert response.status_code == 429 and int(response.headers["Retry-After"]) > 0
    assert "from this address" in response.text
    assert [e.entity for e in events(platform.db, "address_locked")] == ["address"]


def test_a_lockout_ends_after_the_window(platform, monkeypatch):
    monkeypatch.setenv("STROKETRIAL_LOGIN_MAX_FAILURES", "2")
    monkeypatch.setenv("STROKETRIAL_LOGIN_WINDOW_MINUTES", "0.02")  # 1.2 s
    client = page_client(platform.db)
    assert [sign_in(client, "coordinator", "guess").status_code for _ in range(3)] == [401, 401, 429]
    time.sleep(1.3)
    assert sign_in(client, "coordinator", "password-1").status_code == 303


def test_a_successful_sign_in_is_audited_and_clears_the_users_failures(platform, monkeypatch):
    monkeypatch.setenv("STROKETRIAL_LOGIN_MAX_FAILURES", "3")
    client = page_client(platform.db)
    for _ in range(2):
        assert sign_in(client, "coordinator", "guess").status_code == 401
    assert sign_in(client, "coordinator", "password-1").status_code == 303
    signed_in = events(platform.db, "sign_in")
    assert [e.entity_id for e in signed_in] == ["coordinator"] and json.loads(signed_in[0].after_json)["address"]
    for _ in range(2):  # the count started again after the success
        assert sign_in(page_client(platform.db), "coordinator", "guess").status_code == 401
    assert sign_in(page_client(platform.db), "coordinator", "password-1").status_code == 303


def test_an_admin_unlocks_a_locked_account(platform):
    client = page_client(platform.db)
    for _ in range(5):
        sign_in(client, "coordinator", "guess")
    assert sign_in(client, "coordinator", "password-1").status_code == 429
    result = CliRunner().invoke(cli, ["admin", "unlock-user", "coordinator", "--db", platform.db.url, "--json"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout) == {"user": "coordinator", "failures_cleared": 5}
    assert sign_in(client, "coordinator", "password-1").status_code == 303
    assert [(e.actor, e.entity_id) for e in events(platform.db, "unlock")] == [("system", "coordinator")]
    unknown = CliRunner().invoke(cli, ["admin", "unlock-user", "nobody-here", "--db", platform.db.url])
    assert unknown.exit_code == 2 and "no user 'nobody-here'" in unknown.output
