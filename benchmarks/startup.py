"""How long `stroketrial --help` and a few --help screens take to start, as a person at a terminal sees it.

    python benchmarks/startup.py [--runs 20]

Each command runs as a fresh process (the installed entry point); the table gives the median and the
fastest of the runs. The target is under 300 ms for `stroketrial --help`.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import time
from pathlib import Path

from rich.console import Console
from rich.table import Table

ENTRY = Path(sys.executable).with_name("stroketrial")
COMMANDS = [["--help"], ["design", "--help"], ["randomization", "run", "--help"], ["serve", "--help"],
            ["trials", "--json"]]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=20)
    runs = parser.parse_args().runs
    table = Table(title=f"stroketrial start-up, {runs} runs each")
    for column in ("command", "median ms", "fastest ms"):
        table.add_column(column, justify="left" if column == "command" else "right")
    for command in COMMANDS:
        times = []
        for _ in range(runs):
            started = time.perf_counter()
            subprocess.run([str(ENTRY), *command], capture_output=True, check=True)
            times.append(1000 * (time.perf_counter() - started))
        table.add_row("stroketrial " + " ".join(command), f"{statistics.median(times):.0f}", f"{min(times):.0f}")
    Console().print(table)


if __name__ == "__main__":
    main()
