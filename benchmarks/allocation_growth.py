"""Does an allocation cost more as the trial grows? Randomize --patients patients one by one, each in its own
transaction as the server does, and compare the median time of the first 2,000 with the last 2,000.

    python benchmarks/allocation_growth.py [--db URL ...] [--patients 20000] [--trial amass-2]
                                           [--baseline GIT_REF]

AMASS-2 (minimization) registers one made-up patient varied by number; other trials (ANGEL-RESCUE's and
IMPACT-LVO's permuted blocks, IMPACT-LVO's concealed kit list) register eligible patients of the demo's
synthetic cohort.

--baseline runs the same measurement, in the same run, against the code of an earlier commit (a
`git archive` of it on PYTHONPATH), so the table shows the figure before and after a change.
The issue's goal: the last 2,000 within 1.2x of the first 2,000, on SQLite and on PostgreSQL.
Prints a table; `--json` prints the rows.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

from rich.console import Console
from rich.progress import Progress
from rich.table import Table

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))
WINDOW = 2_000


def measure(url: str, trial: str, n: int) -> dict:
    from stroketrial.service import SYSTEM, accounts, patients, randomize, trials
    from stroketrial.service.accounts import Actor
    from stroketrial.store import Database

    from databases import fresh  # benchmarks/, beside this script
    from platform_data import ATTESTATIONS, PATIENT, eligible_records

    url = fresh(url)
    db = Database(url, keys=tempfile.mkdtemp())
    db.migrate()
    sites = ["S1", "S2", "S3", "S4"]
    with db.write() as session:
        trials.create_trial(session, SYSTEM, trial, sites)
        accounts.create_user(session, SYSTEM, "bench", "coordinator", sites)
    actor = Actor("bench", "coordinator", frozenset(sites))
    codes = [f"B{i:05d}" for i in range(n)]
    times: list[float] = []
    with Progress(transient=True) as progress:
        task = progress.add_task(f"{trial}: register and randomize", total=2 * n)
        # registered 500 at a time just before they are randomized, so that windows ending at randomization
        # (measured by the server's clock) are met however long the run takes
        for start in range(0, n, 500):
            chunk = range(start, min(n, start + 500))
            synthetic = None if trial == "amass-2" else eligible_records(trial, len(chunk))
            with db.write() as session:
                for k, i in enumerate(chunk):
                    if synthetic is None:
                        data, attested = {**PATIENT, "age": 45 + i % 40, "nihss": 6 + i % 20, "aspects": 6 + i % 5,
                                          "occlusion_site": ("m1", "tandem_ica_m1")[i % 2],
                                          "bridging_thrombolysis": bool(i % 3)}, ATTESTATIONS
                    else:
                        data, attested = synthetic[k]
                    patients.register(session, actor, trial, codes[i], sites[i % 4], data, attested)
            progress.advance(task, len(chunk))
            for i in chunk:
                began = time.perf_counter()
                with db.write() as session:
                    randomize.randomize(session, actor, trial, codes[i], str(uuid.uuid4()))
                times.append(time.perf_counter() - began)
                progress.advance(task)
    db.dispose()
    first, last = statistics.median(times[:WINDOW]), statistics.median(times[-WINDOW:])
    return {"backend": url.split(":", 1)[0].split("+")[0], "patients": n, "first_ms": 1000 * first,
            "last_ms": 1000 * last, "ratio": last / first}


def baseline(ref: str, urls: list[str], trial: str, n: int) -> list[dict]:
    """The same measurement with the code of `ref`, in a child process."""
    from baseline import baseline_source

    rows = []
    with baseline_source(ref) as src:
        for url in urls:
            out = subprocess.run([sys.executable, __file__, "--child", "--db", url, "--trial", trial,
                                  "--patients", str(n)], check=True, capture_output=True, text=True,
                                 env={**os.environ, "PYTHONPATH": str(src)})
            rows.append(json.loads(out.stdout.splitlines()[-1]))
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--db", action="append", help="database URL (repeat); default: a temporary SQLite file")
    parser.add_argument("--patients", type=int, default=20_000)
    parser.add_argument("--trial", default="amass-2")
    parser.add_argument("--baseline", help="a git ref whose code is measured the same way, for comparison")
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    urls = args.db or [f"sqlite:///{tempfile.mkdtemp()}/bench.db"]
    if args.child:
        print(json.dumps(measure(urls[0], args.trial, args.patients)))
        return
    rows = [{"code": args.baseline, **r} for r in baseline(args.baseline, urls, args.trial, args.patients)] \
        if args.baseline else []
    rows += [{"code": "this tree", **measure(url, args.trial, args.patients)} for url in urls]
    if args.json:
        print(json.dumps(rows))
        return
    table = Table(title=f"{args.trial}: one allocation per transaction, median of the first and the last "
                        f"{WINDOW:,} of {args.patients:,} patients")
    for col in ("code", "database", f"first {WINDOW:,} (ms)", f"last {WINDOW:,} (ms)", "last / first"):
        table.add_column(col, justify="left" if col in ("code", "database") else "right")
    for r in rows:
        table.add_row(r["code"], r["backend"], f"{r['first_ms']:.2f}", f"{r['last_ms']:.2f}", f"{r['ratio']:.2f}")
    Console().print(table)


if __name__ == "__main__":
    main()
