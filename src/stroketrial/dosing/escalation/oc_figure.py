"""Operating characteristics side by side: selection probability and patients per dose level.

Matplotlib's object API (`Figure`), never pyplot: no global figure manager, no backend to choose.
"""

from __future__ import annotations

from pathlib import Path
from collections.abc import Sequence

import numpy as np
from matplotlib.figure import Figure

from .decisions import OperatingCharacteristics


def plot_oc(results: Sequence[OperatingCharacteristics], path: str | Path) -> Path:
    path = Path(path)
    k = len(results[0].tox)
    x = np.arange(1, k + 1)
    width = 0.8 / len(results)
    fig = Figure(figsize=(12, 4.2), layout="constrained")
    axes = fig.subplots(1, 2)
    for i, r in enumerate(results):
        offset = (i - (len(results) - 1) / 2) * width
        label = f"{r.design} ({'exact' if r.method == 'exact' else f'{r.trials:,} trials'})"
        axes[0].bar(x + offset, 100 * np.asarray(r.p_select), width, label=label)
        axes[1].bar(x + offset, r.expected_n, width, label=label)
    for ax, title, ylabel in ((axes[0], "Probability of selecting each level as the MTD", "% of trials"),
                              (axes[1], "Patients treated per level", "mean patients per trial")):
        ax.set_xticks(x, [f"{j}\n(p={p:g})" for j, p in zip(x, results[0].tox, strict=True)])
        ax.set_xlabel("dose level (true DLT probability)")
        ax.set_ylabel(ylabel)
        ax.set_title(title, fontsize=11)
        ax.grid(axis="y", alpha=0.3)
    axes[0].legend(fontsize=9)
    nones = ", ".join(f"{r.design} {100 * r.p_none:.1f}%" for r in results)
    fig.suptitle(f"Dose-escalation operating characteristics (no level selected: {nones})", fontsize=12)
    fig.savefig(path, dpi=150)
    return path
