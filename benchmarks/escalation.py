"""Dose-escalation speed: 100,000 simulated trials of BOIN and CRM, 3+3 and BOIN exact, 3+3 simulated.

    python benchmarks/escalation.py [--trials 100000] [--tox 0.05,0.10,0.20,0.35] [--target 0.25]

Prints a table of wall-clock seconds (best of --repeat runs) and the selection probabilities.
"""

from __future__ import annotations

import argparse
import time

import numpy as np
from rich.console import Console
from rich.table import Table

from stroketrial.dosing.escalation import three_plus_three
from stroketrial.dosing.escalation.boin import Boin
from stroketrial.dosing.escalation.crm import Crm, calibrated_skeleton


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--trials", type=int, default=100_000)
    parser.add_argument("--tox", default="0.05,0.10,0.20,0.35")
    parser.add_argument("--target", type=float, default=0.25)
    parser.add_argument("--cohorts", type=int, default=10)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    tox = [float(x) for x in args.tox.split(",")]
    runs = {
        "3+3 exact": lambda: three_plus_three.exact(tox),
        f"3+3 simulated, {args.trials:,} trials": lambda: three_plus_three.simulate(tox, args.trials,
                                                                                    np.random.default_rng(1)),
        f"BOIN, {args.trials:,} trials": lambda: Boin(args.target, n_cohorts=args.cohorts).simulate(
            tox, args.trials, np.random.default_rng(1)),
        "BOIN exact (every outcome enumerated)": lambda: Boin(args.target, n_cohorts=args.cohorts).exact(tox),
        f"CRM, {args.trials:,} trials": lambda: Crm(args.target, calibrated_skeleton(args.target, len(tox)),
                                                    n_cohorts=args.cohorts).simulate(tox, args.trials,
                                                                                     np.random.default_rng(1)),
    }
    table = Table(title=f"dose escalation, true DLT rates {args.tox}, target {args.target:g}")
    for col in ("run", "seconds", "P(select) % per level", "none %"):
        table.add_column(col, justify="left" if col == "run" else "right")
    for name, fn in runs.items():
        best, result = float("inf"), None
        for _ in range(args.repeat):
            started = time.perf_counter()
            result = fn()
            best = min(best, time.perf_counter() - started)
        table.add_row(name, f"{best:.3f}", " ".join(f"{100 * p:.1f}" for p in result.p_select),
                      f"{100 * result.p_none:.1f}")
    Console().print(table)


if __name__ == "__main__":
    main()
