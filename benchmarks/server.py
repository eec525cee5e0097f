"""Randomizations per second and latency under concurrent clients, against a real server process.

Each database gets fresh trials (AMASS-2: minimization, six factors; with --trials 8, eight copies of it
under their own ids) with --patients eligible patients registered among them; --clients threads then
randomize them through the HTTP API (POST .../randomization with an Idempotency-Key), client i working on
trial i mod T, each request timed from send to answer. Every allocation is one transaction holding its
trial's write lock with the minimization state and the audit event.

    python benchmarks/server.py --db sqlite:///tmp/bench.db [--db postgresql+psycopg://...]
                                [--clients 16] [--patients 800] [--trials 1 --trials 8] [--baseline GIT_REF]

Three ways to load the server, each a row (its "traffic" column: closed loop, R/s offered, TRIAL held S s):
- closed loop (the default): each client sends its next request as soon as the last is answered, so the
  server is saturated and the latency is what 16 queued clients wait (Little's law: clients / throughput);
- `--rate R` (repeat): open loop, R allocations per second offered by all clients together at Poisson
  times; each latency runs from the moment the request was due, not sent, so a late answer also delays the
  requests queued behind it (no coordinated omission);
- `--hold S`: with two trials or more, a write on the first trial is kept open for S seconds when the
  clients start, as a slow write of one trial would be, while the clients randomize in the other trials:
  with one lock for the platform they all wait for it; with a lock per trial they do not.

Each trial's first 3 patients per server are randomized one by one before the clock starts, to warm the
servers' caches as any running server's are.

Server processes: `--servers N` (repeat) starts N `stroketrial serve` processes on the one database, client c
sending to server c mod N, as behind a load balancer; the baseline's code runs the same way, so its single lock
is measured with as many processes. `--workers N` instead runs one `stroketrial serve --workers N` (this
tree's code only: the single lock's server had no --workers). Beside each row, "CPUs allow" is the rate this
machine's cores could reach at the CPU time the row measured per allocation (server, clients and PostgreSQL
together): cores x 1000 / ms. A closed-loop row near it is bound by the CPUs; one far below it waits, on a
lock. (PostgreSQL's own background processes, the WAL writer and checkpointer, are not counted, nor a database
on another machine: the column is then "-".)

--baseline measures the same with the code of an earlier commit (a `git archive` of it; the server and
the set-up run from it), in the same run. `scripts/bench-server` runs it on SQLite and on a throw-away
PostgreSQL. Prints a table.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack
from pathlib import Path

import httpx
import psutil
import psycopg
from rich.console import Console
from rich.table import Table
from sqlalchemy.engine import make_url

from stroketrial.service import SYSTEM, accounts, patients, trials
from stroketrial.service.accounts import Actor
from stroketrial.store import Database
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the test harness's server process
from tests.process import ServerProcess

from databases import fresh  # benchmarks/, beside this script
from platform_data import ATTESTATIONS, PATIENT



def _trial_files(n_trials: int, folder: Path) -> list[str]:
    """AMASS-2, and copies of its protocol under other ids: as many trials as asked, all alike."""
    from stroketrial.protocol import loader

    if n_trials == 1:
        return ["amass-2"]
    text = (Path(loader.__file__).parent / "builtin" / "amass-2.yaml").read_text()
    paths = []
    for t in range(n_trials):
        path = folder / f"bench-{t + 1}.yaml"
        path.write_text(text.replace("\nid: amass-2\n", f"\nid: bench-{t + 1}\n", 1))
        paths.append(str(path))
    return paths


def prepare(url: str, n: int, n_trials: int) -> tuple[dict[str, list[str]], str]:
    """The trials' ids, each with its registered patients, and a coordinator's token."""
    db = Database(url)
    db.migrate()
    sites = ["S1", "S2", "S3", "S4"]
    ids = []
    with db.write() as session:
        for source in _trial_files(n_trials, Path(tempfile.mkdtemp())):
            ids.append(trials.create_trial(session, SYSTEM, source, sites).id)
        _, token = accounts.create_user(session, SYSTEM, "bench", "coordinator", sites)
    actor = Actor("bench", "coordinator", frozenset(sites))
    codes: dict[str, list[str]] = {t: [] for t in ids}
    with db.write() as session:
        for i in range(n):
            trial, code = ids[i % len(ids)], f"B{i:05d}"
            data = {**PATIENT, "age": 45 + i % 40, "nihss": 6 + i % 20, "aspects": 6 + i % 5,
                    "occlusion_site": ("m1", "tandem_ica_m1")[i % 2], "bridging_thrombolysis": bool(i % 3)}
            patients.register(session, actor, trial, code, sites[i % 4], data, ATTESTATIONS)
            codes[trial].append(code)
    db.dispose()
    return codes, token


def _cpu_seconds(process: psutil.Process) -> float:
    """User + system CPU time of a process and its children (a server's uvicorn workers)."""
    total = 0.0
    for p in (process, *process.children(recursive=True)):
        try:
            times = p.cpu_times()
        except psutil.NoSuchProcess:
            continue
        total += times.user + times.system
    return total


def _postgres_cpu(url: str) -> dict[int, float] | None:
    """CPU seconds of each PostgreSQL backend serving the database, by process id; None when the server is
    not on this machine (its processes cannot be read)."""
    parsed = make_url(url)
    if parsed.get_backend_name() != "postgresql":
        return None
    with psycopg.connect(parsed.set(drivername="postgresql").render_as_string(hide_password=False),
                         autocommit=True) as conn:
        pids = [r[0] for r in conn.execute("SELECT pid FROM pg_stat_activity WHERE datname = current_database() "
                                           "AND pid <> pg_backend_pid()")]
    seconds = {}
    for pid in pids:
        try:
            times = psutil.Process(pid).cpu_times()
        except (psutil.NoSuchProcess, psutil.AccessDenied):
            return None
        seconds[pid] = times.user + times.system
    return seconds


WARM_UP = 3  # a fresh server's first allocations of a trial fill its caches: not what a running platform sees


def _start_holding(url: str, trial: str, seconds: float) -> threading.Thread:
    """A thread that keeps a write of `trial` open for `seconds` (as a slow write of that trial would), from
    another connection than the server's; returns once the write is open."""
    held = threading.Event()

    def hold() -> None:
        db = Database(url)
        try:
            try:
                opened = db.write(trial)
            except TypeError:  # code from before a write named its trial: its one write lock is the platform's
                opened = db.write()
            with opened:
                held.set()
                time.sleep(seconds)
        finally:
            held.set()
            db.dispose()

    holder = threading.Thread(target=hold)
    holder.start()
    held.wait()
    return holder


def _randomize(http: httpx.Client, trial: str, code: str) -> None:
    response = http.post(f"/api/v1/trials/{trial}/patients/{code}/randomization",
                         headers={"Idempotency-Key": str(uuid.uuid4())})
    if response.status_code != 201:
        raise RuntimeError(response.text)


def run(url: str, clients: int, n: int, n_trials: int, workers: int = 1, rate: float | None = None,
        hold: float | None = None, servers: int = 1) -> dict:
    """One row: closed loop, or open loop at `rate` allocations/s, or with a write of the first trial held open
    for `hold` seconds while the clients work in the others; `servers` processes of `stroketrial serve` (each
    with `workers`) on the one database, client c sending to server c mod `servers`."""
    url = fresh(url)
    codes, token = prepare(url, n, n_trials)
    latencies: list[float] = []
    lock = threading.Lock()
    ids = list(codes)
    held_trial = ids.pop(0) if hold is not None else None
    warming = WARM_UP * servers  # each server warms each trial
    warm_up = {t: codes[t][:warming] for t in ids}  # randomized before the clock starts, one by one
    codes = {t: codes[t][warming:] for t in ids}
    work = []  # client c works on trial c mod T, sharing its patients with the other clients of that trial
    for c in range(clients):
        mates = [k for k in range(clients) if k % len(ids) == c % len(ids)]
        trial = ids[c % len(ids)]
        work.append((trial, codes[trial][mates.index(c)::len(mates)]))
    extra = ("--workers", str(workers)) if workers > 1 else ()
    with ExitStack() as running_servers:
        # one after the other: each migrates the database as it starts
        started = [running_servers.enter_context(ServerProcess(url, extra_args=extra, start_timeout=120))
                   for _ in range(servers)]
        assert all(s.process is not None for s in started)
        serving = [psutil.Process(s.process.pid) for s in started if s.process is not None]

        ready, go = threading.Barrier(clients + 1, timeout=120), threading.Barrier(clients + 1, timeout=120)

        def client(job: tuple[str, list[str], str]) -> None:
            trial, chunk, server_url = job
            arrivals = random.Random(f"{trial}/{chunk[:1]}")
            with httpx.Client(base_url=server_url, timeout=60, headers={"Authorization": f"Bearer {token}"}) as http:
                # connected, and the server's database connections as many as the clients, before the clock starts
                http.get(f"/api/v1/trials/{trial}").raise_for_status()
                ready.wait()
                go.wait()
                due = time.perf_counter()
                for code in chunk:
                    if rate is None:
                        start = time.perf_counter()
                    else:  # due at Poisson times; timed from when due, however late it is sent
                        due += arrivals.expovariate(rate / clients)
                        time.sleep(max(0.0, due - time.perf_counter()))
                        start = due
                    _randomize(http, trial, code)
                    elapsed = time.perf_counter() - start
                    with lock:
                        latencies.append(elapsed)

        for trial, first in warm_up.items():
            for i, code in enumerate(first):
                with httpx.Client(base_url=started[i % servers].url, timeout=60,
                                  headers={"Authorization": f"Bearer {token}"}) as http:
                    _randomize(http, trial, code)
        with ThreadPoolExecutor(clients) as pool:
            running = [pool.submit(client, (trial, chunk, started[c % servers].url))
                       for c, (trial, chunk) in enumerate(work)]
            ready.wait()
            pg_before = _postgres_cpu(url)
            server_before, clients_before = sum(map(_cpu_seconds, serving)), time.process_time()
            holder = None if held_trial is None or hold is None else _start_holding(url, held_trial, hold)
            began = time.perf_counter()
            go.wait()
            for job in running:
                job.result()
            wall = time.perf_counter() - began
        if holder is not None:
            holder.join()
        server_cpu = sum(map(_cpu_seconds, serving)) - server_before
        clients_cpu = time.process_time() - clients_before
        pg_after = _postgres_cpu(url)
    pg_cpu = (None if pg_before is None or pg_after is None
              else sum(after - pg_before.get(pid, 0.0) for pid, after in pg_after.items()))
    latencies.sort()
    k = len(latencies)
    mode = ("closed loop" if rate is None and hold is None else f"{rate:g}/s offered" if rate is not None
            else f"{held_trial} held {hold:g} s")
    return {"backend": make_url(url).get_backend_name(), "servers": servers, "workers": workers, "trials": n_trials,
            "mode": mode,
            "allocations": k,
            "seconds": wall, "per_second": k / wall, "p50_ms": 1000 * statistics.median(latencies),
            "p99_ms": 1000 * latencies[int(0.99 * (k - 1))], "server_cpu_ms": 1000 * server_cpu / k,
            "clients_cpu_ms": 1000 * clients_cpu / k, "postgres_cpu_ms": None if pg_cpu is None else 1000 * pg_cpu / k,
            "load_1min": os.getloadavg()[0],
            "cpus_allow": None if pg_cpu is None and make_url(url).get_backend_name() == "postgresql"
            else _cpus_allow(server_cpu + clients_cpu + (pg_cpu or 0.0), k)}


def _cpus_allow(cpu_seconds: float, allocations: int) -> float:
    """Allocations per second this machine's cores could make at this CPU time per allocation."""
    return (psutil.cpu_count() or 1) * allocations / cpu_seconds


def _loads(rates: list[float], hold: float | None, n_trials: int) -> list[tuple[float | None, float | None]]:
    """(rate, hold) of each row for this many trials: closed loop, each open-loop rate, the held trial."""
    return [(None, None), *((r, None) for r in rates), *([(None, hold)] if hold is not None and n_trials > 1 else [])]


def baseline(ref: str, urls: list[str], clients: int, n: int, trial_counts: list[int], server_counts: list[int],
             rates: list[float], hold: float | None) -> list[dict]:
    """The same measurement with the code of `ref` (its server, its schema), in a child process."""
    from baseline import baseline_source

    rows = []
    with baseline_source(ref) as src:
        for url in urls:
            for servers, n_trials in ((s, t) for s in server_counts for t in trial_counts):
                for rate, held in _loads(rates, hold, n_trials):
                    load = [*(["--rate", str(rate)] if rate is not None else []),
                            *(["--hold", str(held)] if held is not None else [])]
                    out = subprocess.run([sys.executable, __file__, "--child", "--db", url, "--clients", str(clients),
                                          "--patients", str(n), "--trials", str(n_trials), "--servers", str(servers),
                                          *load], check=True, capture_output=True, text=True,
                                         env={**os.environ, "PYTHONPATH": str(src)})
                    rows.append({"code": ref, **json.loads(out.stdout.splitlines()[-1])})
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--db", action="append", help="database URL (repeat); default: a temporary SQLite file")
    parser.add_argument("--clients", type=int, default=16)
    parser.add_argument("--patients", type=int, default=800)
    parser.add_argument("--trials", type=int, action="append", help="trials the clients spread over (repeat); "
                                                                     "default: 1 and 8")
    parser.add_argument("--servers", type=int, action="append",
                        help="stroketrial serve processes on the one database (repeat); default: 1")
    parser.add_argument("--workers", type=int, default=1,
                        help="uvicorn workers of each server (stroketrial serve --workers N; this tree only)")
    parser.add_argument("--baseline", action="append", default=[],
                        help="a git ref whose code is measured the same way, for comparison (repeat)")
    parser.add_argument("--rate", type=float, action="append", default=[],
                        help="also an open-loop row at this many allocations/s offered, all clients together (repeat)")
    parser.add_argument("--hold", type=float, help="also a row with the first trial's write held open this many "
                                                   "seconds while the clients work in the other trials")
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    urls = args.db or [f"sqlite:///{tempfile.mkdtemp()}/bench.db"]
    trial_counts = args.trials or [1, 8]
    server_counts = args.servers or [1]
    if min(server_counts) < 1 or args.workers < 1:
        parser.error("--servers and --workers take 1 or more")
    if args.workers > 1 and args.baseline:
        parser.error("--workers is this tree's only (the single lock's server had none); with --baseline, run "
                     "several server processes with --servers N")
    if max(server_counts) > args.clients:
        parser.error(f"--servers {max(server_counts)} with --clients {args.clients}: a server without a client "
                     "measures nothing")
    for t, s in ((t, s) for t in trial_counts for s in server_counts):
        needed = WARM_UP * s + -(-args.clients // t)  # the warm-up, then one patient for each client of a trial
        if args.patients // t < needed:
            parser.error(f"--patients {args.patients} gives {args.patients // t} to each of {t} trials; with "
                         f"{s} server(s) and {args.clients} clients each trial needs at least {needed}")
    if any(r <= 0 for r in args.rate) or (args.hold is not None and args.hold <= 0):
        parser.error("--rate and --hold take a positive number")
    if args.hold is not None and max(trial_counts) < 2:
        parser.error("--hold needs --trials 2 or more: the clients randomize in the trials not held")
    if args.child:
        print(json.dumps(run(urls[0], args.clients, args.patients, trial_counts[0], args.workers,
                             args.rate[0] if args.rate else None, args.hold, server_counts[0])))
        return
    rows = [row for ref in args.baseline
            for row in baseline(ref, urls, args.clients, args.patients, trial_counts, server_counts, args.rate,
                                args.hold)]
    rows += [{"code": "this tree", **run(url, args.clients, args.patients, t, args.workers, rate, hold, servers)}
             for url in urls for servers in server_counts for t in trial_counts
             for rate, hold in _loads(args.rate, args.hold, t)]
    if args.json:
        print(json.dumps(rows))
        return
    table = Table(title=f"randomization over HTTP: {args.clients} concurrent clients, AMASS-2 minimization")
    for col in ("code", "database", "servers x workers", "trials", "traffic", "allocations", "seconds",
                "allocations/s", "p50 ms", "p99 ms", "server CPU ms/alloc", "clients CPU ms/alloc",
                "PostgreSQL CPU ms/alloc", f"CPUs allow /s ({psutil.cpu_count()} cores)", "load (1 min)"):
        table.add_column(col, justify="left" if col in ("code", "database", "traffic") else "right")
    for r in rows:
        pg = r.get("postgres_cpu_ms")
        table.add_row(r["code"], r["backend"], f"{r.get('servers', 1)} x {r.get('workers', 1)}", str(r["trials"]),
                      r.get("mode", "closed loop"), str(r["allocations"]), f"{r['seconds']:.1f}",
                      f"{r['per_second']:.0f}", f"{r['p50_ms']:.1f}", f"{r['p99_ms']:.1f}",
                      f"{r['server_cpu_ms']:.1f}", f"{r['clients_cpu_ms']:.1f}", "-" if pg is None else f"{pg:.1f}",
                      "-" if r.get("cpus_allow") is None else f"{r['cpus_allow']:.0f}", f"{r['load_1min']:.2f}")
    Console(width=200).print(table)


if __name__ == "__main__":
    main()
