"""Does a password-guessing attack slow everyone else down? A patient GET timed idle and under attack.

Against a real server process (`stroketrial serve`) on each database, one client reads a patient
through the API (GET /api/v1/trials/amass-2/patients/{p}) for --seconds, idle, then while --attackers
loops (in a process of their own) post wrong passwords to /login as fast as the answers come back:

- "as configured": the lockouts on (5 failures per user name, 20 per address in 15 minutes), so
  after a few hashes the attack meets 429s, answered without hashing;
- "lifted": STROKETRIAL_LOGIN_MAX_FAILURES and _PER_ADDRESS set to 1,000,000 for the server, so every
  attempt costs one Argon2 verification and the hashing itself is what is measured.

Argon2 runs off the event loop on a limiter of max(1, cores - 1) hashes, so the goal is a p50 under
attack within 2x of idle. Prints a table (no assertion: a benchmark, not a test).

    python benchmarks/login.py [--sqlite /tmp/login.db] [--pg postgresql+psycopg://user@host/db]
                               [--attackers 4] [--seconds 10]

PostgreSQL is used when --pg or STROKETRIAL_TEST_PG gives a server; a fresh database is made on it.
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import re
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path
from contextlib import contextmanager

import httpx
from rich.console import Console
from rich.table import Table

from stroketrial.service import SYSTEM, accounts, patients, trials
from stroketrial.service.accounts import Actor
from stroketrial.service.passwords import hashing_slots
from stroketrial.store import Database
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the test harness's server process
from tests.process import ServerProcess

from databases import fresh  # benchmarks/, beside this script
from platform_data import ATTESTATIONS, PATIENT

LIFTED = {"STROKETRIAL_LOGIN_MAX_FAILURES": "1000000", "STROKETRIAL_LOGIN_MAX_FAILURES_PER_ADDRESS": "1000000"}
CSRF = re.compile(r'name="csrf" value="([^"]+)"')


def prepare(url: str) -> str:
    """AMASS-2 at one site, a coordinator with a password and a token, one registered patient; the token."""
    db = Database(url)
    db.migrate()
    with db.write() as session:
        trials.create_trial(session, SYSTEM, "amass-2", ["S1"])
        _, token = accounts.create_user(session, SYSTEM, "bench", "coordinator", ["S1"], password="the-right-one")
    with db.write() as session:
        patients.register(session, Actor("bench", "coordinator", frozenset({"S1"})), "amass-2", "B00001", "S1",
                          PATIENT, ATTESTATIONS)
    db.dispose()
    return token


def timed_gets(base: str, token: str, seconds: float) -> list[float]:
    """Latencies (ms) of patient GETs, one after another with a short pause, for `seconds`."""
    latencies = []
    with httpx.Client(base_url=base, headers={"Authorization": f"Bearer {token}"}, timeout=120) as http:
        http.get("/api/v1/trials/amass-2/patients/B00001").raise_for_status()  # connection open, caches warm
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            started = time.perf_counter()
            http.get("/api/v1/trials/amass-2/patients/B00001").raise_for_status()
            latencies.append((time.perf_counter() - started) * 1000)
            time.sleep(0.02)
    return latencies


def _attack_loop(base: str, stop, counts, lock, n: int) -> None:
    with httpx.Client(base_url=base, timeout=120) as http:
        csrf = CSRF.search(http.get("/login").text).group(1)
        i = 0
        while not stop.is_set():
            response = http.post("/login", data={"csrf": csrf, "name": "bench", "password": f"guess-{n}-{i}",
                                                 "next": "/"})
            i += 1
            with lock:
                counts[response.status_code] = counts.get(response.status_code, 0) + 1


def attackers(base: str, loops: int, stop, counts) -> None:
    """`loops` threads posting wrong passwords until told to stop (run in a process of its own, so the
    attackers' own work does not slow the measuring client)."""
    lock = threading.Lock()
    local: dict[int, int] = {}
    threads = [threading.Thread(target=_attack_loop, args=(base, stop, local, lock, n)) for n in range(loops)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    counts.update(local)


@contextmanager
def environment(extra: dict[str, str]):
    saved = {k: os.environ.get(k) for k in extra}
    os.environ.update(extra)
    try:
        yield
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def percentile(values: list[float], q: int) -> float:
    return statistics.quantiles(values, n=100, method="inclusive")[q - 1]


def run(url: str, label: str, throttling: str, loops: int, seconds: float, log: str) -> dict:
    url = fresh(url)
    token = prepare(url)
    with environment(LIFTED if throttling == "lifted" else {}), ServerProcess(url, log_path=log) as server:
        idle = timed_gets(server.url, token, seconds)
        ctx = multiprocessing.get_context("spawn")
        stop, counts = ctx.Event(), ctx.Manager().dict()
        attack = ctx.Process(target=attackers, args=(server.url, loops, stop, counts))
        attack.start()
        time.sleep(1.0)  # the attack is under way
        started = time.monotonic()
        busy = timed_gets(server.url, token, seconds)
        elapsed = time.monotonic() - started + 1.0
        stop.set()
        attack.join(120)
        answered = dict(counts)
    return {"database": label, "throttling": throttling, "idle": idle, "busy": busy, "answered": answered,
            "elapsed": elapsed}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sqlite", default=os.path.join(tempfile.gettempdir(), "stroketrial-bench-login.db"))
    parser.add_argument("--pg", default=os.environ.get("STROKETRIAL_TEST_PG"),
                        help="PostgreSQL server URL (default: $STROKETRIAL_TEST_PG); a fresh database is made")
    parser.add_argument("--attackers", type=int, default=4)
    parser.add_argument("--seconds", type=float, default=10.0, help="how long each phase is timed")
    args = parser.parse_args()
    backends = [("SQLite", f"sqlite:///{args.sqlite}")] + ([("PostgreSQL", args.pg)] if args.pg else [])
    log = os.path.join(tempfile.gettempdir(), "stroketrial-bench-login.log")
    console = Console(width=150)
    rows = []
    for label, url in backends:
        for throttling in ("as configured", "lifted"):
            with console.status(f"{label}, throttling {throttling}"):
                rows.append(run(url, label, throttling, args.attackers, args.seconds, log))
    table = Table(title=f"Patient GET latency (ms), idle and while {args.attackers} loops post wrong passwords "
                        f"to /login ({os.cpu_count()} cores, {hashing_slots()} hashing slot(s), "
                        f"{args.seconds:g} s per phase)")
    for column in ("database", "throttling", "idle p50", "idle p95", "attack p50", "attack p95", "p50 ratio",
                   "GETs idle/attack", "login answers per second"):
        table.add_column(column, justify="left" if column in ("database", "throttling") else "right")
    for r in rows:
        idle50, busy50 = statistics.median(r["idle"]), statistics.median(r["busy"])
        answers = ", ".join(f"{status}: {n / r['elapsed']:.1f}" for status, n in sorted(r["answered"].items()))
        table.add_row(r["database"], r["throttling"], f"{idle50:.1f}", f"{percentile(r['idle'], 95):.1f}",
                      f"{busy50:.1f}", f"{percentile(r['busy'], 95):.1f}", f"{busy50 / idle50:.2f}x",
                      f"{len(r['idle'])}/{len(r['busy'])}", answers)
    console.print(table)


if __name__ == "__main__":
    main()
