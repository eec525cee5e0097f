"""Screening speed: 1,000,000 synthetic patients against amass-2, vectorised,
beside the one-patient-at-a-time path over a 10,000-patient sample.

Target (issue 2): the million-patient screen under 10 s on a 2-core machine.

    python benchmarks/screening.py [--n 1000000] [--loop-n 10000] [--trial amass-2]

Prints a table; the figures are wall-clock seconds of the best of --repeat runs.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time

from rich.console import Console
from rich.table import Table

from stroketrial.clinical.cohort_records import records_from_frame
from stroketrial.cohort import synthesize, write_cohort
from stroketrial.eligibility import encode_cohort, funnel, read_cohort, screen
from stroketrial.protocol import load_builtin


def best_of(repeat: int, fn):
    times, result = [], None
    for _ in range(repeat):
        start = time.perf_counter()
        result = fn()
        times.append(time.perf_counter() - start)
    return min(times), result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n", type=int, default=1_000_000)
    parser.add_argument("--loop-n", type=int, default=10_000)
    parser.add_argument("--trial", default="amass-2")
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()

    console = Console()
    protocol = load_builtin(args.trial)
    with console.status(f"synthesizing {args.n:,} patients"):
        t_synth, frame = best_of(1, lambda: synthesize(args.n, seed=2026, protocol=protocol))

    def vectorised():
        return funnel(protocol, encode_cohort(protocol, frame))

    t_vec, result = best_of(args.repeat, vectorised)

    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "cohort.parquet")
        write_cohort(frame, path)
        t_parquet, _ = best_of(args.repeat, lambda: funnel(protocol, encode_cohort(protocol, read_cohort(path))))
        csv_path = os.path.join(tmp, "cohort.csv")
        write_cohort(frame, csv_path)
        t_csv, _ = best_of(1, lambda: funnel(protocol, encode_cohort(protocol, read_cohort(csv_path))))

    sample = records_from_frame(frame.head(args.loop_n))
    t_loop, statuses = best_of(1, lambda: [screen(protocol, r).status for r in sample])
    per_patient_loop = t_loop / len(sample)
    per_patient_vec = t_vec / args.n

    table = Table(title=f"Screening against {args.trial} ({os.cpu_count()} CPU cores)")
    for col, justify in (("path", "left"), ("patients", "right"), ("seconds", "right"),
                         ("µs / patient", "right"), ("patients / s", "right")):
        table.add_column(col, justify=justify)
    table.add_row("synthesize cohort (setup, not timed against the target)", f"{args.n:,}", f"{t_synth:.2f}",
                  f"{t_synth / args.n * 1e6:.2f}", f"{args.n / t_synth:,.0f}")
    table.add_row("vectorised: validate + screen + funnel (DataFrame in memory)", f"{args.n:,}", f"{t_vec:.2f}",
                  f"{per_patient_vec * 1e6:.2f}", f"{args.n / t_vec:,.0f}")
    table.add_row("vectorised, reading the cohort from Parquet", f"{args.n:,}", f"{t_parquet:.2f}",
                  f"{t_parquet / args.n * 1e6:.2f}", f"{args.n / t_parquet:,.0f}")
    table.add_row("vectorised, reading and parsing the cohort from CSV", f"{args.n:,}", f"{t_csv:.2f}",
                  f"{t_csv / args.n * 1e6:.2f}", f"{args.n / t_csv:,.0f}")
    table.add_row("one patient at a time: parse + screen with reasons", f"{len(sample):,}", f"{t_loop:.2f}",
                  f"{per_patient_loop * 1e6:.0f}", f"{len(sample) / t_loop:,.0f}")
    console.print(table)
    console.print(f"vectorised is {per_patient_loop / per_patient_vec:,.0f}x faster per patient; "
                  f"target < 10 s for 1,000,000: {'MET' if t_vec < 10 and args.n >= 1_000_000 else 'see n'} "
                  f"({t_vec:.2f} s)")
    console.print(f"funnel: assessed {result.assessed:,}, excluded {result.excluded:,}, incomplete "
                  f"{result.incomplete:,}, eligible {result.eligible:,}; loop sample eligible "
                  f"{statuses.count('eligible'):,} of {len(sample):,}")


if __name__ == "__main__":
    main()
