"""Page and export latency with a trial of 1,000 patients, against real server processes: before and after.

The demo (`demo.load(interim_look=False)`) plus AMASS-2 patients randomized in the past to reach --patients in
that trial, written through the demo's own operations (`demo_interim.enrol_history`: registration,
randomization, the baseline visit, the 24-hour and day-7 forms, SAEs, AEs), then data queries raised by the
monitor on some of them. The database is built once and copied, so both servers read the same data:

- "before": a server started from the source of --baseline-ref (default: the merge-base with `main`), taken
  with `git archive` into a temporary folder (the repository's worktrees are left alone);
- "after": a server from this checkout;

both running at once and asked in turn, request by request, so that a change in the machine's load falls on both.

Each page is fetched --repeats times by the user who reaches it (signed in through the login form; the API with
the user's token), one request at a time; exports also report the server's peak resident memory growth during
the request (VmHWM after minus RSS before, the peak reset through /proc/PID/clear_refs), over a third of the
repeats (at least 3): an export takes seconds before the change. The target column is
the issue's: every page under 50 ms at p50.

    python benchmarks/pages.py [--patients 1000] [--repeats 15] [--baseline-ref REF] [--db postgresql+psycopg://...]
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from importlib import resources
from pathlib import Path

import httpx
import psutil
import yaml
from rich.console import Console
from rich.table import Table
from sqlalchemy import func, select
from sqlalchemy.engine import make_url

from stroketrial.cohort import synthesize
from stroketrial.eligibility import encode_cohort, statuses
from stroketrial.protocol import load_builtin
from stroketrial.service import demo, queries
from stroketrial.service.accounts import Actor
from stroketrial.service.demo_interim import enrol_history
from stroketrial.store import Database
from stroketrial.store.models import Patient

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # the test harness's server process
from tests.process import ServerProcess  # noqa: E402

from baseline import baseline_source  # noqa: E402  (benchmarks/, beside this script)
from databases import fresh  # noqa: E402

TRIAL = "amass-2"
TARGET_MS = 50.0
CSRF = re.compile(r'name="csrf" value="([^"]+)"')


def build(url: str, n_patients: int, seed: int = 2026) -> dict[str, str]:
    """The demo, then AMASS-2 filled to `n_patients` the demo's way; the demo users' names -> API tokens."""
    db = Database(url)
    db.migrate()
    logins = demo.load(db, seed=seed, interim_look=False)
    protocol = load_builtin(TRIAL)
    with db.read() as session:
        have = session.execute(select(func.count()).select_from(Patient).where(Patient.trial_id == TRIAL)).scalar_one()
    extra = n_patients - have
    platform = yaml.safe_load(resources.files("stroketrial.service").joinpath("demo_platform.yaml").read_text("utf-8"))
    # IMPACT-LVO's history, less its interim look's z: AMASS-2's primary analysis (binary) has no interim z to aim at
    history = {k: v for k, v in platform["trials"]["impact-lvo"]["history"].items() if k != "look_z"}
    spec = {**history, "randomized": extra, "followed": max(extra - 20, 1),
            "days": 400, "forms": ["h24", "d7"],
            "adverse_events": [{"day": 2, "data": {"term": "headache", "coded_term": "Headache",
                                                   "system_organ_class": "Nervous system disorders",
                                                   "severity": "mild", "relatedness": "unlikely",
                                                   "action_taken": "none", "outcome": "recovered"}}] * 40}
    if "unblinding" in spec:  # one emergency unblinding, on a patient of this trial
        spec["unblinding"] = {**spec["unblinding"], "patient": min(spec["unblinding"]["patient"], extra)}
    frame = synthesize(20 * extra, seed + 99, protocol)
    status = statuses(protocol, encode_cohort(protocol, frame))
    fields = [f.field for f in protocol.randomization.factors if f.field != "site"]
    complete = frame[fields].notna().all(axis=1).to_numpy()
    eligible = frame[(status == "eligible") & complete].head(extra)
    assert len(eligible) == extra, f"{len(eligible)} eligible synthetic patients, not {extra}"
    coordinator = Actor("coordinator", "coordinator", frozenset(demo.SITES))
    codes = [demo.patient_code(protocol.acronym, have + i + 1) for i in range(extra)]
    enrol_history(db, coordinator, TRIAL, spec, eligible, demo.TRIAL_SITES[TRIAL], seed, codes)
    monitor = Actor("monitor", "monitor", frozenset(demo.SITES))
    for k, code in enumerate(codes[::10]):  # a data query on every tenth patient, some answered
        with db.write() as session:
            raised = queries.raise_query(session, monitor, TRIAL, code, "h24", "nihss",
                                         "The 24-hour NIHSS differs from the nursing chart; please check the source.")
        if k % 2:
            with db.write() as session:
                queries.answer_query(session, coordinator, TRIAL, raised["id"], "Checked against the source.")
    db.dispose()
    return {login["name"]: login["token"] for login in logins}


def copy_database(url: str, folder: Path, label: str) -> str:
    parsed = make_url(url)
    if parsed.get_backend_name() != "sqlite":
        return url  # PostgreSQL: both servers read the one database, one after the other
    target = folder / f"{label}.db"
    shutil.copyfile(parsed.database, target)
    keys = Path(parsed.database + ".keys")  # the audit chain's key, beside the database
    if keys.is_dir():
        shutil.copytree(keys, folder / f"{label}.db.keys")
    return f"sqlite:///{target}"


@contextlib.contextmanager
def server(url: str, src: Path) -> Iterator[ServerProcess]:
    saved = os.environ.get("PYTHONPATH")
    os.environ["PYTHONPATH"] = str(src)
    process = ServerProcess(url, log_path=os.path.join(tempfile.gettempdir(), "stroketrial-bench-pages.log"))
    try:
        yield process.start(timeout=300)  # a loaded machine takes a while to start a server
    finally:
        process.stop()
        if saved is None:
            os.environ.pop("PYTHONPATH", None)
        else:
            os.environ["PYTHONPATH"] = saved


def signed_in(base: str, name: str) -> httpx.Client:
    http = httpx.Client(base_url=base, timeout=120)
    csrf = CSRF.search(http.get("/login").text).group(1)
    answer = http.post("/login", data={"csrf": csrf, "name": name, "password": demo.DEMO_PASSWORD, "next": "/"})
    assert answer.status_code == 303, answer.text[:300]
    return http


def routes(patient: str) -> list[tuple[str, str, str]]:
    """(kind, user, path): what each user reaches for the trial; 'api' paths with the user's token."""
    t, p = f"/trials/{TRIAL}", f"/trials/{TRIAL}/patients/{patient}"
    return [("page", "coordinator", "/"), ("page", "coordinator", t), ("page", "coordinator", f"{t}/dashboard"),
            ("page", "coordinator", p), ("page", "coordinator", f"{p}/visits"),
            ("page", "coordinator", f"{p}/dose"), ("page", "coordinator", f"{p}/screening"),
            ("page", "coordinator", f"{p}/allocation"), ("page", "coordinator", f"{p}/queries"),
            ("page", "coordinator", f"{p}/adverse-events"), ("page", "coordinator", f"{t}/screen"),
            ("page", "coordinator", f"{t}/consents"), ("page", "coordinator", f"{t}/saes"),
            ("page", "coordinator", "/inbox"), ("page", "monitor", f"{t}/queries"),
            ("page", "monitor", f"{t}/verification"), ("page", "monitor", f"{t}/verification?status=never&page=10"),
            ("page", "data_manager", f"{t}/locks"),
            ("page", "coordinator", f"{t}/protocol"), ("page", "pharmacist", f"{t}/envelopes"),
            ("page", "investigator", f"{p}/sign"), ("page", "dsmb", f"{t}/dsmb"),
            ("page", "dsmb", f"{t}/dashboard"),
            ("api", "coordinator", f"/api/v1{t}/patients"), ("api", "coordinator", f"/api/v1{p}"),
            ("api", "coordinator", f"/api/v1{p}/visits"), ("api", "monitor", f"/api/v1{t}/queries"),
            ("api", "coordinator", f"/api/v1{t}/safety"), ("api", "dsmb", f"/api/v1{t}/safety"),
            # the audit trail first: after a whole-in-memory export a server's heap has room to spare for it
            ("export", "admin", "/audit.csv"), ("export", "statistician", f"{t}/export/csv"),
            ("export", "statistician", f"{t}/export/odm"), ("export", "dsmb", f"{t}/export/odm")]


def peak_growth(pid: int, fetch) -> tuple[httpx.Response, float]:
    """The response and the server's resident memory growth (MiB) at its peak during the request."""
    process = psutil.Process(pid)
    before = process.memory_info().rss
    Path(f"/proc/{pid}/clear_refs").write_text("5")  # VmHWM := RSS now
    response = fetch()
    status = Path(f"/proc/{pid}/status").read_text()
    hwm = int(re.search(r"VmHWM:\s+(\d+) kB", status).group(1)) * 1024
    return response, (hwm - before) / 2**20


def measure(servers: dict[str, ServerProcess], tokens: dict[str, str], patient: str,
            repeats: int) -> dict[str, dict[str, dict]]:
    """Per server, per route: status, bytes, p50, p95 and (exports) peak memory growth. The servers take turns
    request by request, so that a change in the machine's load falls on both alike."""
    clients: dict[tuple[str, str, str], httpx.Client] = {}
    results: dict[str, dict[str, dict]] = {label: {} for label in servers}
    try:
        for kind, user, path in routes(patient):
            times: dict[str, list[float]] = {label: [] for label in servers}
            growth = dict.fromkeys(servers, 0.0)
            first, last = {}, {}
            for label, server in servers.items():
                key = (label, "api" if kind == "api" else "page", user)
                if key not in clients:
                    clients[key] = (httpx.Client(base_url=server.url, timeout=120,
                                                 headers={"Authorization": f"Bearer {tokens[user]}"})
                                    if kind == "api" else signed_in(server.url, user))
                first[label] = clients[key].get(path)  # warm: imports, template compilation, caches
            for _ in range(max(3, repeats // 3) if kind == "export" else repeats):  # an export takes seconds
                for label, server in servers.items():
                    http = clients[(label, "api" if kind == "api" else "page", user)]
                    started = time.perf_counter()
                    if kind == "export":
                        response, grew = peak_growth(server.process.pid, functools.partial(http.get, path))
                        growth[label] = max(growth[label], grew)
                    else:
                        response = http.get(path)
                    times[label].append(1000 * (time.perf_counter() - started))
                    last[label] = response
            for label in servers:
                results[label][f"{user} {path}"] = {
                    "status": first[label].status_code, "bytes": len(last[label].content),
                    "p50": statistics.median(times[label]),
                    "p95": statistics.quantiles(times[label], n=20, method="inclusive")[18],
                    "growth": growth[label] if kind == "export" else None}
    finally:
        for c in clients.values():
            c.close()
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--patients", type=int, default=1000, help="patients in AMASS-2")
    parser.add_argument("--repeats", type=int, default=15)
    parser.add_argument("--baseline-ref", default=None, help="git ref of 'before' (default: merge-base with main)")
    parser.add_argument("--db", default=None, help="a PostgreSQL server URL (a fresh database is made on it)")
    args = parser.parse_args()
    ref = args.baseline_ref or subprocess.run(["git", "-C", str(ROOT), "merge-base", "HEAD", "main"], check=True,
                                              capture_output=True, text=True).stdout.strip()
    console = Console(width=230)
    folder = Path(tempfile.mkdtemp(prefix="stroketrial-bench-pages-"))
    try:
        url = fresh(args.db) if args.db else f"sqlite:///{folder / 'built.db'}"
        with console.status(f"building the demo with {args.patients} {TRIAL} patients"):
            started = time.perf_counter()
            tokens = build(url, args.patients)
            built = time.perf_counter() - started
        patient = demo.patient_code(load_builtin(TRIAL).acronym, args.patients // 2)
        loads = [Path("/proc/loadavg").read_text().split()[0]]
        with baseline_source(ref) as old_src, server(copy_database(url, folder, "before"), old_src) as before, \
                server(copy_database(url, folder, "after"), ROOT / "src") as after, console.status("timing the pages"):
            measured = measure({"before": before, "after": after}, tokens, patient, args.repeats)
        loads.append(Path("/proc/loadavg").read_text().split()[0])
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    backend = make_url(url).get_backend_name()
    table = Table(title=f"GET latency (ms) with {args.patients} {TRIAL} patients, {backend}, {args.repeats} repeats; "
                        f"before = {ref[:10]}, after = this checkout, taking turns (built in {built:.0f} s; "
                        f"load average {' then '.join(loads)} on {os.cpu_count()} cores)")
    for column in ("user", "path", "status", "before p50", "after p50", "target p50", "before p95", "after p95",
                   "bytes before", "bytes after", "peak RSS growth MiB before/after"):
        table.add_column(column, justify="left" if column in ("user", "path") else "right", no_wrap=True)
    for key, after in measured["after"].items():
        before = measured["before"][key]
        user, path = key.split(" ", 1)
        growth = "" if after["growth"] is None else f"{before['growth']:.1f} / {after['growth']:.1f}"
        table.add_row(user, path, f"{before['status']}/{after['status']}", f"{before['p50']:.1f}",
                      f"{after['p50']:.1f}", f"{TARGET_MS:.0f}", f"{before['p95']:.1f}", f"{after['p95']:.1f}",
                      str(before["bytes"]), str(after["bytes"]), growth)
    console.print(table)


if __name__ == "__main__":
    main()
