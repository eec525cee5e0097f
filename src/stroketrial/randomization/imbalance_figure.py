"""Figure of a randomization comparison: imbalance distributions per method, and imbalance over time.

Matplotlib's object API (`Figure`), never pyplot: no global figure manager, no backend to choose.
"""

from __future__ import annotations

from pathlib import Path

import matplotlib
import numpy as np
from matplotlib.figure import Figure

from .compare import Comparison


def plot_comparison(comparison: Comparison, path: str | Path) -> Path:
    """Write a three-panel figure (PNG, SVG or PDF by the file's suffix)."""
    path = Path(path)
    if path.suffix.lower() not in (".png", ".svg", ".pdf"):
        raise ValueError(f"{path}: --plot writes .png, .svg or .pdf")
    results = comparison.results
    labels = [r.method for r in results]
    n = len(results)
    fig = Figure(figsize=(14, 0.45 * n + 5.2), layout="constrained")
    grid = fig.add_gridspec(2, 2, height_ratios=[0.45 * n + 1, 4])
    colours = matplotlib.colormaps["tab10"](np.arange(n) % 10)

    for col, (title, key) in enumerate((("Final imbalance, whole trial (patients)", "final_imbalance"),
                                        ("Worst factor-level imbalance (patients)", "worst_margin"))):
        ax = fig.add_subplot(grid[0, col])
        data = [getattr(r, key) for r in results]
        box = ax.boxplot(data, orientation="horizontal", whis=(2.5, 97.5), showfliers=False, patch_artist=True,
                         widths=0.6,
                         medianprops={"color": "black"})
        for patch, colour in zip(box["boxes"], colours, strict=False):
            patch.set_facecolor((*colour[:3], 0.45))
        ax.scatter([d.mean() for d in data], np.arange(1, n + 1), marker="D", color="black", s=14, zorder=3,
                   label="mean")
        ax.set_yticks(np.arange(1, n + 1), labels if col == 0 else [""] * n)
        ax.invert_yaxis()
        ax.set_title(title, fontsize=11)
        ax.set_xlabel("patients away from the target ratio (boxes: quartiles; whiskers: 2.5-97.5%)", fontsize=9)
        ax.grid(axis="x", alpha=0.3)
        if col == 1:
            ax.legend(loc="lower right", fontsize=8)

    # Plotted after every whole ratio (every 2nd patient for 1:1, 3rd for 2:1): in between, an
    # odd count cannot be balanced, and the saw-tooth that makes hides the differences.
    step = sum(int(x) for x in comparison.ratio.split(":"))
    enrolled = np.arange(step, comparison.patients + 1, step)
    for col, (title, key) in enumerate((("Mean imbalance, whole trial", "running"),
                                        ("Mean worst factor-level imbalance", "running_worst_margin"))):
        ax = fig.add_subplot(grid[1, col])
        for r, colour in zip(results, colours, strict=False):
            ax.plot(enrolled, getattr(r, key)[enrolled - 1], color=colour,
                    lw=2.2 if "(protocol)" in r.method else 1.2, label=r.method)
        ax.set_title(title, fontsize=11)
        ax.set_xlabel(f"patients randomized (plotted after every {step} patients, when exact balance is possible)",
                      fontsize=9)
        ax.set_ylabel("patients")
        ax.set_xlim(1, comparison.patients)
        ax.set_ylim(bottom=0)
        ax.grid(alpha=0.3)
        if col == 0:
            ax.legend(fontsize=8, ncol=2, loc="upper left")
    fig.suptitle(f"Randomization methods for {comparison.trial}: {comparison.trials:,} simulated trials of "
                 f"{comparison.patients} patients, ratio {comparison.ratio}, seed {comparison.seed}", fontsize=12)
    fig.savefig(path, dpi=150)
    return path
