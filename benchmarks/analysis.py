"""Analysis speed (issue 23): `stroketrial analyze` as whole processes, before and after, beside R.

    python benchmarks/analysis.py [--runs 5] [--old 7ac5968] [--demo]

1. `stroketrial analyze ordinal DATA --adjust age,nihss,aspects` (the adjusted proportional-odds model with its
   profile-likelihood interval, on tests/reference/amass2_trial.csv) as a fresh process: the code at --old (the
   commit before issue 23, unpacked from git into a temporary folder), this checkout, and `Rscript` fitting the
   same model with MASS::polr and its profile interval by MASS's confint (left out, with a message, without
   Rscript and MASS); medians of --runs wall times, and each one's answer;
   and the same analysis inside one process (the imports left out: what the fit and the interval take),
   median of 15 after a first call, by the code before, this checkout, and R (MASS::polr + confint);
2. `stroketrial analyze impact-lvo DATA --out DIR` (1,060 simulated patients, seed 1: 20 imputations, 500
   bootstrap resamples per adjusted binary outcome, figures, HTML and PDF): wall time and peak memory (the
   process's maximum resident set, from getrusage(RUSAGE_CHILDREN) in a process that runs only it), old and new,
   beside the issue's goal (5 s and 400 MB);
3. with --demo, `stroketrial demo TRIAL` for each seed trial, old and new, beside the goal of 10 s.
The machine's load average is printed: on a shared machine wall times are noisy, so each whole process's CPU
seconds (user + system, with the processes it starts, such as the report's PDF writer) are printed beside them.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from statistics import median

from rich.console import Console
from rich.table import Table

from baseline import baseline_source  # benchmarks/, beside this script

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT / "tests" / "reference" / "amass2_trial.csv"
ORDINAL = ["analyze", "ordinal", str(DATA), "--treatment", "albumin", "--control", "control",
           "--adjust", "age,nihss,aspects"]
POLR = """suppressPackageStartupMessages(library(MASS))
d <- read.csv(commandArgs(TRUE)[1])
d <- d[!is.na(d$mrs_90d) & d$arm %in% c("albumin", "control"), ]
d$treated <- as.numeric(d$arm == "albumin")
d$mrs <- factor(d$mrs_90d, ordered = TRUE)
fit <- polr(mrs ~ treated + age + nihss + aspects, data = d, method = "logistic", Hess = TRUE)
ci <- suppressMessages(confint(fit, "treated"))
cat(sprintf("common OR %.4f (95%% CI %.4f to %.4f)\\n", exp(-coef(fit)[["treated"]]), exp(-ci[2]), exp(-ci[1])))
"""
INSIDE = """import statistics, sys, time, warnings
import pandas as pd
from stroketrial.analysis import ordinal
warnings.simplefilter("ignore")  # statsmodels' convergence notes, in the code before
data = pd.read_csv(sys.argv[1])
def once():
    ordinal.proportional_odds(data, "mrs_90d", "arm", "albumin", "control", ["age", "nihss", "aspects"])
once()
times = []
for _ in range(15):
    started = time.perf_counter()
    once()
    times.append(time.perf_counter() - started)
print(f"{1000 * statistics.median(times):.1f}")
"""
POLR_INSIDE = """suppressPackageStartupMessages(library(MASS))
d <- read.csv(commandArgs(TRUE)[1])
d <- d[!is.na(d$mrs_90d) & d$arm %in% c("albumin", "control"), ]
d$treated <- as.numeric(d$arm == "albumin")
d$mrs <- factor(d$mrs_90d, ordered = TRUE)
once <- function() {
  fit <- polr(mrs ~ treated + age + nihss + aspects, data = d, method = "logistic", Hess = TRUE)
  suppressMessages(confint(fit, "treated"))
}
invisible(once())
cat(sprintf("%.1f\n", 1000 * median(replicate(15, system.time(once())[["elapsed"]]))))
"""
# run a command and print its peak resident set (KiB on Linux): RUSAGE_CHILDREN of a process that ran only it
PEAK = ("import resource, subprocess, sys; done = subprocess.run(sys.argv[1:], capture_output=True); "
        "sys.stderr.write(done.stderr.decode()[-2000:]) if done.returncode else None; "
        "sys.stdout.write(done.stdout.decode().strip().splitlines()[0] + chr(10) if done.stdout.strip() else ''); "
        "used = resource.getrusage(resource.RUSAGE_CHILDREN); "
        "print(used.ru_maxrss, used.ru_utime + used.ru_stime, done.returncode)")


def stroketrial(args: list[str]) -> list[str]:
    return [sys.executable, "-m", "stroketrial.cli", *args]  # the checkout given by PYTHONPATH


def timed(command: list[str], env: dict[str, str]) -> tuple[float, int, str, float]:
    """Wall seconds, peak memory (MiB), the last line of the output and the CPU seconds (user + system, the
    processes it started included: a busy machine changes them less than the wall time) of one fresh process."""
    started = time.perf_counter()
    done = subprocess.run([sys.executable, "-c", PEAK, *command], capture_output=True, text=True, env=env)
    seconds = time.perf_counter() - started
    peak, cpu, code = done.stdout.split()[-3:]
    if code != "0":
        raise SystemExit(f"{' '.join(command)} failed:\n{done.stderr}")
    lines = done.stdout.strip().splitlines()[:-1]
    return seconds, int(peak) // 1024, lines[0].split(": ", 1)[-1] if lines else "", float(cpu)


def env_for(src: Path) -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": str(src), "MPLBACKEND": "Agg", "COLUMNS": "200"}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--old", default="7ac5968", help="git ref of the code before (default: before issue 23)")
    parser.add_argument("--demo", action="store_true", help="also time `demo TRIAL` for every seed trial")
    parser.add_argument("--no-report", action="store_true", help="leave out `analyze impact-lvo` (the single "
                        "analysis only, and the demos with --demo)")
    options = parser.parse_args()
    console = Console(width=150)
    console.print(f"load average before: {Path('/proc/loadavg').read_text().split()[:3]}")
    with tempfile.TemporaryDirectory() as tmp, baseline_source(options.old) as old:
        work, new = Path(tmp), ROOT / "src"
        paths = {f"before ({options.old})": old, "now": new}

        table = Table(title=f"analyze ordinal, adjusted, with the profile interval ({options.runs} fresh processes "
                            "each, taken in turn so that a change in the machine's load falls on all)")
        for column in ("", "median s", "fastest s", "median CPU s", "peak MiB", "answer"):
            table.add_column(column, justify="left" if column in ("", "answer") else "right")
        rscript = shutil.which("Rscript")
        has_mass = rscript and subprocess.run([rscript, "-e", "library(MASS)"], capture_output=True).returncode == 0
        commands = {f"stroketrial {label}": (stroketrial(ORDINAL), env_for(src)) for label, src in paths.items()}
        if has_mass:
            script = work / "polr.R"
            script.write_text(POLR)
            commands["R: MASS::polr + confint"] = ([rscript, str(script), str(DATA)], dict(os.environ))
        runs: dict[str, list[tuple[float, int, str, float]]] = {label: [] for label in commands}
        for _ in range(options.runs):
            for label, (command, env) in commands.items():
                runs[label].append(timed(command, env))
        for label, done in runs.items():
            table.add_row(label, f"{median(r[0] for r in done):.2f}", f"{min(r[0] for r in done):.2f}",
                          f"{median(r[3] for r in done):.2f}", str(max(r[1] for r in done)), done[-1][2][:80])
        if not has_mass:
            table.add_row("R: MASS::polr + confint", "-", "-", "-", "-", "Rscript with MASS is not installed: left out")
        console.print(table)

        table = Table(title="the same analysis inside one process (median of 15, ms)")
        for column in ("", "ms"):
            table.add_column(column, justify="left" if not column else "right")
        for label, src in paths.items():
            inside = subprocess.run([sys.executable, "-c", INSIDE, str(DATA)], capture_output=True, text=True,
                                    env=env_for(src), check=True)
            table.add_row(f"stroketrial {label}", inside.stdout.strip())
        if has_mass:
            script = work / "polr_inside.R"
            script.write_text(POLR_INSIDE)
            inside = subprocess.run([rscript, str(script), str(DATA)], capture_output=True, text=True, check=True)
            table.add_row("R: MASS::polr + confint", inside.stdout.strip())
        console.print(table)

        if not options.no_report:
            report(options, paths, work, new, console)
        if options.demo:
            demos(paths, work, console)
    console.print(f"load average after: {Path('/proc/loadavg').read_text().split()[:3]}")


def report(options: argparse.Namespace, paths: dict[str, Path], work: Path, new: Path, console: Console) -> None:
    dataset = work / "impact-lvo.csv"
    simulate = ("import sys; from stroketrial.protocol import load_builtin; "
                "from stroketrial.analysis.simulated_trial import simulate_trial; "
                "simulate_trial(load_builtin('impact-lvo'), seed=1).data.to_csv(sys.argv[1], index=False)")
    subprocess.run([sys.executable, "-c", simulate, str(dataset)], check=True, env=env_for(new))
    table = Table(title=f"analyze impact-lvo (1,060 patients, 20 imputations, 500 bootstrap resamples, PDF; "
                        f"{options.runs} fresh processes)")
    for column in ("", "median s", "fastest s", "median CPU s", "peak MiB"):
        table.add_column(column, justify="left" if not column else "right")
    for label, src in paths.items():
        runs = [timed(stroketrial(["analyze", "impact-lvo", str(dataset), "--out", str(work / label)]),
                      env_for(src)) for _ in range(options.runs)]
        table.add_row(f"stroketrial {label}", f"{median(r[0] for r in runs):.2f}",
                      f"{min(r[0] for r in runs):.2f}", f"{median(r[3] for r in runs):.2f}",
                      str(max(r[1] for r in runs)))
    table.add_row("goal (issue 23)", "5.00", "", "", "400")
    console.print(table)


def demos(paths: dict[str, Path], work: Path, console: Console) -> None:
    from stroketrial.protocol import builtin_ids

    table = Table(title="demo TRIAL (one run each)")
    for column in ("trial", *paths, "goal s"):
        table.add_column(column, justify="left" if column == "trial" else "right")
    for trial in builtin_ids():
        cells = []
        for label, src in paths.items():
            seconds, peak, _, cpu = timed(stroketrial(["demo", trial, "--out", str(work / f"demo-{label}")]),
                                          env_for(src))
            cells.append(f"{seconds:.2f} s (CPU {cpu:.2f} s), {peak} MiB")
        table.add_row(trial, *cells, "10")
    console.print(table)


if __name__ == "__main__":
    main()
