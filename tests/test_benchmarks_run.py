"""Each benchmark in benchmarks/ runs to its table at a small size.

The speed targets live in those scripts, outside the tests, so a script that stops running measures nothing and
nobody notices: benchmarks/pages.py failed at its set-up (filling AMASS-2 with an interim look its primary analysis
cannot have) until it was next run by hand. Here each runs on SQLite, small, with its "before" (where it has one)
taken from HEAD, which every clone holds. The figures are not checked: speed is measured, never asserted.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

BENCHMARKS = Path(__file__).resolve().parent.parent / "benchmarks"

SMALL = {
    "allocation_growth": ["--patients", "300"],
    "analysis": ["--runs", "1", "--no-report", "--old", "HEAD"],
    "escalation": ["--trials", "50"],
    "login": ["--seconds", "1", "--attackers", "2"],
    "pages": ["--patients", "100", "--repeats", "2", "--baseline-ref", "HEAD"],
    "power": ["--trials", "200"],
    "randomization": ["--trials", "100"],
    "screening": ["--n", "2000", "--loop-n", "200"],
    "startup": ["--runs", "1"],
    "server": ["--patients", "80", "--trials", "1"],
}


def test_every_benchmark_script_is_listed_here():
    scripts = {p.stem for p in BENCHMARKS.glob("*.py") if "__main__" in p.read_text(encoding="utf-8")}
    assert scripts == set(SMALL)


@pytest.mark.parametrize("script", sorted(SMALL))
def test_the_benchmark_runs_to_its_table(script, tmp_path):
    args = list(SMALL[script])
    if script == "server":
        args += ["--db", f"sqlite:///{tmp_path / 'server.db'}"]
    # SQLite only: the PostgreSQL runs are the same code with another URL, and would double the time
    env = {k: v for k, v in os.environ.items() if k not in ("STROKETRIAL_TEST_PG", "STROKETRIAL_DB")}
    done = subprocess.run([sys.executable, str(BENCHMARKS / f"{script}.py"), *args], cwd=tmp_path, env=env,
                          capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert "Traceback" not in done.stderr
    assert done.stdout.strip(), "the benchmark printed nothing"
