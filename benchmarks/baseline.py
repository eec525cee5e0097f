"""The package source of an earlier commit, for the benchmarks that print the figure before a change beside
the figure now in one run: run the same measurement with PYTHONPATH pointing at it."""

from __future__ import annotations

import contextlib
import shutil
import subprocess
import tarfile
import tempfile
from collections.abc import Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


@contextlib.contextmanager
def baseline_source(ref: str) -> Iterator[Path]:
    """The src/ folder at `ref`, extracted with `git archive` into a temporary folder (no worktree, no
    checkout), removed afterwards."""
    folder = Path(tempfile.mkdtemp(prefix="stroketrial-baseline-"))
    archive = folder / "src.tar"
    subprocess.run(["git", "-C", str(ROOT), "archive", "-o", str(archive), ref, "src"], check=True)
    with tarfile.open(archive) as tar:
        tar.extractall(folder, filter="data")
    try:
        yield folder / "src"
    finally:
        shutil.rmtree(folder, ignore_errors=True)
