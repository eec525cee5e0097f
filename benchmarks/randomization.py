"""Randomization speed: the method comparison for each randomized trial, and one live allocation.

- compare: every method on the trial's own factors, --trials simulated trials of the
  protocol's sample size (issue 22 asks for amass-2 at 10,000 trials of 306 in under 10 s),
  by the code before issue 22 (`compare_reference`, run once: it is slow) and by today's
  (median of --repeat runs), with whether both give the same figures; `--no-reference`
  skips the old code. No other software compares these methods on a trial's own factors
  from the command line; the peer column names the R packages that simulate minimization
  (carat, Minirand) and says whether they are installed here;
- the whole `stroketrial randomization compare amass-2 --trials N --json` process
  (imports, synthetic cohort, simulation, JSON), median of --repeat runs;
- allocate: one `Randomizer.allocate` (state in, allocation and state out) with 300
  patients already randomized, the server's hot path, and `rebuild` of that state
  from its history.

    python benchmarks/randomization.py [--trials 10000] [--trial amass-2 ...] [--repeat 3] [--no-reference]

Prints tables of wall-clock seconds and the machine's load average (on a shared machine wall
times are noisy).
"""

from __future__ import annotations

import argparse
import os
import random
import resource
import shutil
import subprocess
import sys
import time
from dataclasses import fields
from pathlib import Path
from statistics import median

import numpy as np

from rich.console import Console
from rich.table import Table

from stroketrial.protocol import load_builtin
from stroketrial.randomization import Randomizer, SeededDraw, SystemDraw, compare, generate_kit_list
from stroketrial.randomization.compare import candidates
from stroketrial.randomization.compare_reference import compare_reference

SRC = Path(__file__).resolve().parents[1] / "src"


def timed(fn, *args):
    """Wall and CPU seconds of one call, and its result."""
    started, cpu = time.perf_counter(), time.process_time()
    result = fn(*args)
    return time.perf_counter() - started, time.process_time() - cpu, result


def same_figures(new, old) -> bool:
    """Every BalanceSummary value equal, arrays included (the JSON and the table then are too)."""
    return all(np.array_equal(getattr(a, f.name), getattr(b, f.name)) if isinstance(getattr(b, f.name), np.ndarray)
               else getattr(a, f.name) == getattr(b, f.name)
               for a, b in zip(new.results, old.results, strict=True) for f in fields(b))


def peer() -> str:
    if not shutil.which("Rscript"):
        return "R not installed"
    check = subprocess.run(["Rscript", "-e", "cat(sapply(c('carat', 'Minirand'), requireNamespace, quietly = TRUE))"],
                           capture_output=True, text=True)
    found = [name for name, ok in zip(("carat", "Minirand"), check.stdout.split(), strict=False) if ok == "TRUE"]
    return f"R {', '.join(found)} installed, not timed" if found else "R carat, Minirand not installed"


def cli_seconds(trial: str, trials: int, seed: int, repeat: int) -> tuple[float, float]:
    """Median wall seconds of the process, and its median CPU seconds (user + system), which a busy machine
    changes less."""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(SRC), os.environ.get("PYTHONPATH")]))}
    command = [sys.executable, "-m", "stroketrial.cli", "randomization", "compare", trial, "--trials", str(trials),
               "--seed", str(seed), "--json"]
    wall, cpu = [], []
    for _ in range(repeat):
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        started = time.perf_counter()
        subprocess.run(command, capture_output=True, check=True, env=env)
        wall.append(time.perf_counter() - started)
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        cpu.append(after.ru_utime - before.ru_utime + after.ru_stime - before.ru_stime)
    return median(wall), median(cpu)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--trials", type=int, default=10_000)
    parser.add_argument("--trial", action="append", help="trial id (repeat); default: the four randomized trials")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--repeat", type=int, default=3, help="runs of today's code and of the CLI (median)")
    parser.add_argument("--no-reference", action="store_true", help="skip the code before issue 22 (slow)")
    args = parser.parse_args()
    trials = args.trial or ["amass-2", "impact-lvo", "isis-hermes", "angel-rescue"]
    console = Console(width=max(Console().width, 150))  # wide tables stay whole when piped
    console.print(f"load average {' '.join(f'{x:.2f}' for x in os.getloadavg())} on {os.cpu_count()} CPUs")

    table = Table(title=f"randomization compare: {args.trials:,} simulated trials per method, seed {args.seed} "
                        "(wall seconds in this process, CPU seconds in brackets)")
    for col in ("trial", "patients", "methods", "before issue 22", "now (median)", "speed-up", "same figures",
                "peer"):
        table.add_column(col, justify="left" if col in ("trial", "peer") else "right")
    peer_note = peer()
    for trial in trials:
        protocol = load_builtin(trial)
        n_methods = len(candidates(protocol))
        now = [timed(compare, protocol, args.trials, args.seed) for _ in range(args.repeat)]
        seconds, cpu, result = median(t for t, _, _ in now), median(c for _, c, _ in now), now[0][2]
        if args.no_reference:
            old, same, speed_up = "not run", "-", "-"
        else:
            old_seconds, old_cpu, old_result = timed(compare_reference, protocol, args.trials, args.seed)
            old, same = f"{old_seconds:.1f} ({old_cpu:.1f})", "yes" if same_figures(result, old_result) else "NO"
            speed_up = f"{old_seconds / seconds:.1f}x ({old_cpu / cpu:.1f}x)"
        table.add_row(trial, str(result.patients), str(n_methods), old, f"{seconds:.1f} ({cpu:.1f})", speed_up,
                      same, peer_note)
    console.print(table)

    table = Table(title=f"the whole command as a process, median of {args.repeat} runs")
    for col in ("command", "wall seconds", "CPU seconds", "target"):
        table.add_column(col, justify="left" if col == "command" else "right")
    wall, cpu = cli_seconds("amass-2", args.trials, args.seed, args.repeat)
    table.add_row(f"stroketrial randomization compare amass-2 --trials {args.trials} --json", f"{wall:.1f}",
                  f"{cpu:.1f}", "under 10 s" if args.trials == 10_000 else "-")
    console.print(table)
    console.print(f"load average {' '.join(f'{x:.2f}' for x in os.getloadavg())} after the runs")

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
