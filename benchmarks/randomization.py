"""Randomization speed: the method comparison for each randomized trial, and one live allocation.

- compare: every method on the trial's own factors, --trials simulated trials of the
  protocol's sample size (the issue asks for amass-2 at 10,000 trials of 306);
- allocate: one `Randomizer.allocate` (state in, allocation and state out) with 300
  patients already randomized, the server's hot path, and `rebuild` of that state
  from its history.

    python benchmarks/randomization.py [--trials 10000] [--trial amass-2 ...]

Prints a table of wall-clock seconds.
"""

from __future__ import annotations

import argparse
import random
import time

from rich.console import Console
from rich.table import Table

from stroketrial.protocol import load_builtin
from stroketrial.randomization import Randomizer, SeededDraw, SystemDraw, compare, generate_kit_list
from stroketrial.randomization.compare import candidates


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--trials", type=int, default=10_000)
    parser.add_argument("--trial", action="append", help="trial id (repeat); default: the four randomized trials")
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    trials = args.trial or ["amass-2", "impact-lvo", "isis-hermes", "angel-rescue"]
    console = Console()

    table = Table(title=f"randomization compare: {args.trials:,} simulated trials per method")
    for col in ("trial", "patients", "methods", "seconds", "ms per method per 1,000 trials"):
        table.add_column(col, justify="left" if col == "trial" else "right")
    for trial in trials:
        protocol = load_builtin(trial)
        n_methods = len(candidates(protocol))
        start = time.perf_counter()
        result = compare(protocol, args.trials, args.seed)
        seconds = time.perf_counter() - start
        table.add_row(trial, str(result.patients), str(n_methods), f"{seconds:.1f}",
                      f"{1000 * seconds / n_methods / (args.trials / 1000):.0f}")
    console.print(table)

    table = Table(title="one live allocation, 300 patients already randomized (CSPRNG draws)")
    for col in ("trial", "method", "allocate (ms)", "rebuild 300 (ms)"):
        table.add_column(col, justify="left" if col in ("trial", "method") else "right")
    for trial in trials:
        protocol = load_builtin(trial)
        randomizer = Randomizer.for_protocol(protocol)
        rng = random.Random(args.seed)
        patients = []
        for i in range(301):
            levels = {f.name: rng.choice(["S1", "S2", "S3", "S4"]) if f.field == "site" else rng.choice(f.levels)
                      for f in protocol.randomization.factors}
            patients.append((f"P{i}", levels, levels.get("site", "S1")))
        kits = generate_kit_list(randomizer.arms, ["S1", "S2", "S3", "S4"], 400, [2, 4], SeededDraw(1)) \
            if protocol.randomization.blinded_kits else None
        allocations, _, blocks = randomizer.run(patients, SeededDraw(args.seed), kit_list=kits)
        start = time.perf_counter()
        state = randomizer.rebuild(allocations[:300])
        rebuild_ms = 1000 * (time.perf_counter() - start)
        pid, levels, site = patients[300]
        repeats = 200
        start = time.perf_counter()
        for _ in range(repeats):
            randomizer.allocate(state, pid, levels, SystemDraw(), block_list=blocks, kit_list=kits, site=site)
        allocate_ms = 1000 * (time.perf_counter() - start) / repeats
        table.add_row(trial, protocol.randomization.method, f"{allocate_ms:.2f}", f"{rebuild_ms:.1f}")
    console.print(table)


if __name__ == "__main__":
    main()
