"""Simulated power speed, and the batched proportional-odds fitter against statsmodels and R's MASS::polr.

    python benchmarks/power.py [--trials 10000] [--compare 50] [--workers 0]

1. 10,000 simulated IMPACT-LVO trials (1,060 patients, blocks by site, adjusted proportional-odds
   analysis), one process (and on a local Dask cluster with --workers N);
2. the same --compare simulated datasets fitted by the batched Newton fitter, by a loop over
   statsmodels' OrderedModel, and by a loop over MASS::polr when Rscript is installed: time per
   trial, the ratios, and the largest difference between the estimates.
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
from rich.console import Console
from rich.table import Table
from statsmodels.miscmodels.ordinal_model import OrderedModel

from stroketrial.design import batched_po_fit
from stroketrial.design.power import PowerSettings, simulate_power
from stroketrial.protocol import load_builtin


def datasets(trials: int, n: int, seed: int = 3):
    rng = np.random.default_rng(seed)
    X = np.stack([rng.integers(0, 2, (trials, n)).astype(float), rng.normal(0, 13, (trials, n)),
                  rng.normal(0, 6, (trials, n)), rng.normal(0, 1.5, (trials, n))], axis=2)
    eta = X @ np.array([-0.26, 0.035, 0.08, -0.15])
    cuts = np.log(np.cumsum([0.10, 0.14, 0.16, 0.17, 0.15, 0.08])) - np.log(1 - np.cumsum([0.10, 0.14, 0.16, 0.17,
                                                                                            0.15, 0.08]))
    y = (rng.random((trials, n))[..., None] > 1 / (1 + np.exp(-(cuts - eta[..., None])))).sum(axis=-1)
    return y, X


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--trials", type=int, default=10_000)
    parser.add_argument("--compare", type=int, default=50)
    parser.add_argument("--workers", type=int, default=0)
    args = parser.parse_args()
    console = Console()
    protocol = load_builtin("impact-lvo")
    table = Table(title=f"simulated power, IMPACT-LVO: {args.trials:,} trials of 1,060, adjusted PO analysis")
    for col in ("run", "seconds", "power", "MC SE"):
        table.add_column(col, justify="left" if col == "run" else "right")
    settings = PowerSettings("impact-lvo", 1060, args.trials, 1, 1.3)
    result = simulate_power(protocol, settings)
    table.add_row("one process", f"{result.seconds:.1f}", f"{result.power:.4f}", f"{result.mc_se:.4f}")
    if args.workers:
        distributed = simulate_power(protocol, settings, workers=args.workers)
        table.add_row(f"Dask LocalCluster, {args.workers} workers", f"{distributed.seconds:.1f}",
                      f"{distributed.power:.4f}", f"{distributed.mc_se:.4f}")
    console.print(table)

    y, X = datasets(args.compare, 1060)
    started = time.perf_counter()
    batch = batched_po_fit.fit(y, X, 7)
    t_batch = (time.perf_counter() - started) / args.compare
    warnings.simplefilter("ignore")
    started = time.perf_counter()
    sm_beta = np.array([OrderedModel(pd.Series(y[t]), pd.DataFrame(X[t]), distr="logit").fit(
        method="newton", disp=False, maxiter=200).params.to_numpy()[:4] for t in range(args.compare)])
    t_sm = (time.perf_counter() - started) / args.compare
    rows = [("batched Newton (stroketrial)", t_batch, 0.0), ("statsmodels OrderedModel, loop", t_sm,
                                                             float(np.abs(sm_beta - batch.beta).max()))]
    if shutil.which("Rscript"):
        with tempfile.TemporaryDirectory() as tmp:
            frame = pd.DataFrame({"trial": np.repeat(np.arange(args.compare), 1060), "y": y.ravel(),
                                  **{f"x{j}": X[..., j].ravel() for j in range(4)}})
            frame.to_csv(Path(tmp) / "d.csv", index=False)
            script = ("suppressPackageStartupMessages(library(MASS)); d <- read.csv(commandArgs(TRUE)[1]); "
                      "t0 <- Sys.time(); out <- t(sapply(split(d, d$trial), function(s) coef(polr(factor(y) ~ x0 + x1 + "
                      "x2 + x3, data = s, method = 'logistic', control = list(reltol = 1e-14, maxit = 1000))))); el <- as.numeric(Sys.time() - t0, units = 'secs'); "
                      "write.csv(out, commandArgs(TRUE)[2], row.names = FALSE); cat(el)")
            elapsed = float(subprocess.run(["Rscript", "-e", script, str(Path(tmp) / "d.csv"),
                                            str(Path(tmp) / "b.csv")], capture_output=True, text=True,
                                           check=True).stdout.strip())
            r_beta = pd.read_csv(Path(tmp) / "b.csv").to_numpy()
            rows.append(("R MASS::polr, loop", elapsed / args.compare, float(np.abs(r_beta - batch.beta).max())))
    table = Table(title=f"the same {args.compare} datasets (1,060 patients, 4 covariates)")
    for col in ("fitter", "ms per trial", "x slower than batched", "max |difference in beta|"):
        table.add_column(col, justify="left" if col == "fitter" else "right")
    for name, seconds, diff in rows:
        table.add_row(name, f"{1000 * seconds:.2f}", f"{seconds / t_batch:.1f}", f"{diff:.1e}")
    console.print(table)


if __name__ == "__main__":
    main()
