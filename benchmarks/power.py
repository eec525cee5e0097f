"""Simulated power speed: today's code against the fast path, and the PO fitter against statsmodels and R.

    python benchmarks/power.py [--trials 10000] [--compare 50] [--workers 2] [--repeat 3]

1. --trials simulated IMPACT-LVO trials (1,060 patients, blocks by site, adjusted proportional-odds
   analysis, seed 1) in one process, by the code before issue 22 (`power_reference`, kept for this
   and for the tests) and by the fast path; medians of --repeat runs, wall and CPU time, and the
   largest difference between the two paths' estimates (the same seed gives the same trials);
2. with --workers N, the same on a Dask LocalCluster: started by the call (`--workers`, what the CLI
   does) and already running and warm (what `--scheduler` meets), against the one-process wall time;
3. the first --compare of those simulated trials fitted by the batched Newton fitter (fast and
   today's), by a loop over statsmodels' OrderedModel, and by a loop over MASS::polr when Rscript and
   MASS are installed: time per trial, the ratios, and the largest difference in the estimates.
The machine's load average is printed: on a shared machine wall times are noisy; CPU times less so.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import tempfile
import time
import warnings
from pathlib import Path
from statistics import median

import numpy as np
import pandas as pd
from rich.console import Console
from rich.table import Table
from statsmodels.miscmodels.ordinal_model import OrderedModel

from stroketrial.design import batched_po_fit
from stroketrial.design.power import PowerSettings, _pool, chunk_seeds, run_chunk, simulate_power, simulate_trials
from stroketrial.design.power_reference import fit_reference, run_chunk_reference
from stroketrial.protocol import load_builtin


def one_process(protocol, settings, chunk_fn):
    """Wall and CPU seconds of the chunks in this process (the eligible cohort built beforehand), and the results."""
    _pool(protocol)
    wall, cpu = time.perf_counter(), time.process_time()
    results = [chunk_fn(protocol, settings, seed, size) for seed, size in chunk_seeds(settings.seed, settings.trials,
                                                                                       settings.chunk)]
    return time.perf_counter() - wall, time.process_time() - cpu, {
        key: np.concatenate([r[key] for r in results]) for key in ("reject", "log_or", "converged")}


def on_dask(protocol, settings, workers, repeat):
    """Medians of wall seconds: a cluster started by each call, and a warm one (with its workers' CPU seconds)."""
    from dask.distributed import Client, LocalCluster

    cold = median(simulate_power(protocol, settings, workers=workers).seconds for _ in range(repeat))
    with LocalCluster(n_workers=workers, threads_per_worker=1, processes=True, dashboard_address=None) as cluster, \
            Client(cluster) as client:
        simulate_power(protocol, PowerSettings(settings.trial, settings.n, 2, 0, 1.3, chunk=1),
                       scheduler=cluster.scheduler_address)  # imports and the cohort on every worker
        warm, worker_cpu = [], []
        for _ in range(repeat):
            before = client.run(time.process_time)
            warm.append(simulate_power(protocol, settings, scheduler=cluster.scheduler_address).seconds)
            after = client.run(time.process_time)
            worker_cpu.append(sum(after[w] - before[w] for w in after))
    return cold, median(warm), median(worker_cpu)


def timed(fn, *args) -> float:
    started = time.perf_counter()
    fn(*args)
    return time.perf_counter() - started


def polr(y, X):
    """Seconds per trial and the coefficients from MASS::polr, or the reason it could not run."""
    if not shutil.which("Rscript"):
        return "Rscript not installed (Debian: r-base-core, r-cran-mass)"
    trials, n, p = X.shape
    with tempfile.TemporaryDirectory() as tmp:
        frame = pd.DataFrame({"trial": np.repeat(np.arange(trials), n), "y": y.ravel(),
                              **{f"x{j}": X[..., j].ravel() for j in range(p)}})
        frame.to_csv(Path(tmp) / "d.csv", index=False)
        formula = "factor(y) ~ " + " + ".join(f"x{j}" for j in range(p))
        script = ("suppressPackageStartupMessages(library(MASS)); d <- read.csv(commandArgs(TRUE)[1]); "
                  f"t0 <- Sys.time(); out <- t(sapply(split(d, d$trial), function(s) coef(polr({formula}, data = s, "
                  "method = 'logistic', control = list(reltol = 1e-14, maxit = 1000))))); "
                  "el <- as.numeric(Sys.time() - t0, units = 'secs'); "
                  "write.csv(out, commandArgs(TRUE)[2], row.names = FALSE); cat(el)")
        run = subprocess.run(["Rscript", "-e", script, str(Path(tmp) / "d.csv"), str(Path(tmp) / "b.csv")],
                             capture_output=True, text=True)
        if run.returncode != 0:
            return "MASS::polr did not run: " + (run.stderr.strip().splitlines() or ["?"])[-1]
        return float(run.stdout.strip()) / trials, pd.read_csv(Path(tmp) / "b.csv").to_numpy()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--trials", type=int, default=10_000)
    parser.add_argument("--compare", type=int, default=50)
    parser.add_argument("--workers", type=int, default=0)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    console = Console(width=120)
    console.print(f"load average {' '.join(f'{x:.2f}' for x in os.getloadavg())} on {os.cpu_count()} CPUs; "
                  f"medians of {args.repeat} runs")
    protocol = load_builtin("impact-lvo")
    settings = PowerSettings("impact-lvo", 1060, args.trials, 1, 1.3)

    runs = {}
    for name, fn in (("today (power_reference)", run_chunk_reference), ("fast path", run_chunk)):
        timings = [one_process(protocol, settings, fn) for _ in range(args.repeat)]
        runs[name] = (median(t[0] for t in timings), median(t[1] for t in timings), timings[0][2])
    old, new = runs["today (power_reference)"][2], runs["fast path"][2]
    ok = old["converged"] & new["converged"]
    table = Table(title=f"simulated power, IMPACT-LVO: {args.trials:,} trials of 1,060, adjusted PO analysis, "
                        "one process")
    for col in ("code", "wall s", "CPU s", "CPU ms per trial", "power", "x faster (CPU)"):
        table.add_column(col, justify="left" if col == "code" else "right")
    for name, (wall, cpu, res) in runs.items():
        table.add_row(name, f"{wall:.2f}", f"{cpu:.2f}", f"{1000 * cpu / args.trials:.3f}",
                      f"{res['reject'].mean():.4f}", f"{runs['today (power_reference)'][1] / cpu:.1f}")
    console.print(table)
    console.print(f"same seed, both paths: rejections identical: {bool((old['reject'] == new['reject']).all())}, "
                  f"convergence identical: {bool((old['converged'] == new['converged']).all())}, "
                  f"max |difference in log OR| {np.abs(old['log_or'][ok] - new['log_or'][ok]).max():.1e}")

    (seed, _), = chunk_seeds(1, 1, 1)
    cpu = time.process_time()
    y, X, k = simulate_trials(protocol, PowerSettings("impact-lvo", 1060, 500, 1, 1.3), seed, 500)
    sim_cpu = time.process_time() - cpu
    cpu = time.process_time()
    batched_po_fit.fit(y, X, k)
    fit_cpu = time.process_time() - cpu
    console.print(f"fast path, where the time goes (500 trials): simulation and randomization "
                  f"{1000 * sim_cpu / 500:.3f} CPU ms per trial, the fit {1000 * fit_cpu / 500:.3f}")

    if args.workers:
        one_wall = runs["fast path"][0]
        cold, warm, worker_cpu = on_dask(protocol, settings, args.workers, args.repeat)
        table = Table(title=f"the fast path on Dask, {args.workers} worker processes, {args.trials:,} trials")
        for col in ("cluster", "wall s", "x one-process wall", "workers' CPU s"):
            table.add_column(col, justify="left" if col == "cluster" else "right")
        table.add_row("one process (above)", f"{one_wall:.2f}", "1.00", f"{runs['fast path'][1]:.2f}")
        table.add_row("LocalCluster started by the call (--workers)", f"{cold:.2f}", f"{cold / one_wall:.2f}", "")
        table.add_row("LocalCluster already running (--scheduler)", f"{warm:.2f}", f"{warm / one_wall:.2f}",
                      f"{worker_cpu:.2f}")
        console.print(table)

    n = min(args.compare, len(y))
    y, X = y[:n], X[:n]
    fast = batched_po_fit.fit(y, X, k)
    t_fast, t_today = (median(timed(fit, y, X, k) for _ in range(args.repeat)) / n
                       for fit in (batched_po_fit.fit, fit_reference))
    warnings.simplefilter("ignore")
    started = time.perf_counter()
    sm_beta = np.array([OrderedModel(pd.Series(y[t]), pd.DataFrame(X[t]), distr="logit").fit(
        method="newton", disp=False, maxiter=200).params.to_numpy()[:X.shape[2]] for t in range(n)])
    t_sm = (time.perf_counter() - started) / n
    rows = [("batched Newton, fast (stroketrial)", t_fast, 0.0), ("batched Newton, today's", t_today, None),
            ("statsmodels OrderedModel, loop", t_sm, float(np.abs(sm_beta - fast.beta).max()))]
    r = polr(y, X)
    if isinstance(r, str):
        console.print(f"R MASS::polr column skipped: {r}")
    else:
        rows.append(("R MASS::polr, loop", r[0], float(np.abs(r[1] - fast.beta).max())))
    table = Table(title=f"the first {n} of those simulated IMPACT-LVO trials ({y.shape[1]} analysed patients, "
                        f"treatment + {X.shape[2] - 1} covariates), wall time "
                        "(the batched fits: medians)")
    for col in ("fitter", "ms per trial", "x slower than fast", "max |difference in beta|"):
        table.add_column(col, justify="left" if col == "fitter" else "right")
    for name, seconds, diff in rows:
        table.add_row(name, f"{1000 * seconds:.2f}", f"{seconds / t_fast:.1f}", "" if diff is None else f"{diff:.1e}")
    console.print(table)


if __name__ == "__main__":
    main()
