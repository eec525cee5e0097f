"""Randomizations per second and latency under concurrent clients, against a real server process.

Each database gets a fresh AMASS-2 (minimization, six factors) with --patients
eligible patients registered; --clients threads then randomize them through the
HTTP API (POST .../randomization with an Idempotency-Key), each request timed from
send to answer. Every allocation is one transaction holding the write lock with the
minimization state and the audit event.

    python benchmarks/server.py --db sqlite:///tmp/bench.db [--db postgresql+psycopg://...]
                                [--clients 16] [--patients 800]

`scripts/bench-server` runs it on SQLite and on a throw-away PostgreSQL. Prints a table.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path
from concurrent.futures import ThreadPoolExecutor

import httpx
import psycopg
from rich.console import Console
from rich.table import Table
from sqlalchemy.engine import make_url

from stroketrial.service import SYSTEM, accounts, patients, trials
from stroketrial.service.accounts import Actor
from stroketrial.store import Database
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the test harness's server process
from tests.process import ServerProcess

from platform_data import ATTESTATIONS, PATIENT  # benchmarks/, beside this script



def fresh(url: str) -> str:
    """A new empty database for this run (a new file, or a new PostgreSQL database)."""
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        path = parsed.database
        for suffix in ("", "-wal", "-shm"):
            if os.path.exists(path + suffix):
                os.remove(path + suffix)
        return url
    name = f"bench_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(parsed.set(drivername="postgresql").render_as_string(hide_password=False),
                         autocommit=True) as conn:
        conn.execute(f"CREATE DATABASE {name}")
    return parsed.set(database=name).render_as_string(hide_password=False)


def prepare(url: str, n: int) -> tuple[list[str], str]:
    db = Database(url)
    db.migrate()
    sites = ["S1", "S2", "S3", "S4"]
    with db.write() as session:
        trials.create_trial(session, SYSTEM, "amass-2", sites)
        _, token = accounts.create_user(session, SYSTEM, "bench", "coordinator", sites)
    actor = Actor("bench", "coordinator", frozenset(sites))
    codes = []
    with db.write() as session:
        for i in range(n):
            code = f"B{i:05d}"
            data = {**PATIENT, "age": 45 + i % 40, "nihss": 6 + i % 20, "aspects": 6 + i % 5,
                    "occlusion_site": ("m1", "tandem_ica_m1")[i % 2], "bridging_thrombolysis": bool(i % 3)}
            patients.register(session, actor, "amass-2", code, sites[i % 4], data, ATTESTATIONS)
            codes.append(code)
    db.dispose()
    return codes, token


def run(url: str, clients: int, n: int) -> dict:
    url = fresh(url)
    codes, token = prepare(url, n)
    latencies: list[float] = []
    lock = threading.Lock()
    with ServerProcess(url) as server:
        def client(chunk: list[str]) -> None:
            with httpx.Client(base_url=server.url, timeout=60, headers={"Authorization": f"Bearer {token}"}) as http:
                for code in chunk:
                    start = time.perf_counter()
                    response = http.post(f"/api/v1/trials/amass-2/patients/{code}/randomization",
                                         headers={"Idempotency-Key": str(uuid.uuid4())})
                    elapsed = time.perf_counter() - start
                    if response.status_code != 201:
                        raise RuntimeError(response.text)
                    with lock:
                        latencies.append(elapsed)

        began = time.perf_counter()
        with ThreadPoolExecutor(clients) as pool:
            list(pool.map(client, [codes[i::clients] for i in range(clients)]))
        wall = time.perf_counter() - began
    latencies.sort()
    return {"backend": make_url(url).get_backend_name(), "allocations": len(latencies), "seconds": wall,
            "per_second": len(latencies) / wall, "p50_ms": 1000 * statistics.median(latencies),
            "p99_ms": 1000 * latencies[int(0.99 * (len(latencies) - 1))]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--db", action="append", help="database URL (repeat); default: a temporary SQLite file")
    parser.add_argument("--clients", type=int, default=16)
    parser.add_argument("--patients", type=int, default=800)
    args = parser.parse_args()
    urls = args.db or [f"sqlite:///{tempfile.mkdtemp()}/bench.db"]
    table = Table(title=f"randomization over HTTP: {args.clients} concurrent clients, AMASS-2 minimization")
    for col in ("database", "allocations", "seconds", "allocations/s", "p50 ms", "p99 ms"):
        table.add_column(col, justify="left" if col == "database" else "right")
    for url in urls:
        r = run(url, args.clients, args.patients)
        table.add_row(r["backend"], str(r["allocations"]), f"{r['seconds']:.1f}", f"{r['per_second']:.0f}",
                      f"{r['p50_ms']:.1f}", f"{r['p99_ms']:.1f}")
    Console().print(table)


if __name__ == "__main__":
    main()
