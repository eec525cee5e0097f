"""The DSMB report's cumulative safety curves: for each event, the cumulative incidence by day since
randomization, one step line per group (matplotlib's Figure API, the house style of figures.py)."""

from __future__ import annotations

from collections.abc import Sequence

import matplotlib
from matplotlib.figure import Figure

from .dsmb import Curve, Group
from .figures import STYLE

# Distinct in greyscale print: solid dark blue, dashed orange, dotted black for all patients.
LINES = [("#1f4e79", "-"), ("#c55a11", "--"), ("#202020", ":"), ("#548235", "-.")]


@matplotlib.rc_context(STYLE)
def safety_curves(curves: Sequence[Curve], groups: Sequence[Group]) -> Figure:
    fig = Figure(figsize=(8.5, 3.4))
    axes = fig.subplots(1, len(curves), squeeze=False)[0]
    # At least the first 90 days and 5%, so that an early look's few events are not drawn as a wall.
    right = max([90.0, *(max(days) for c in curves for days in c.days.values() if days)])
    top = max([5.0, *(120 * max(v) for c in curves for v in c.incidence.values() if v)])
    for ax, curve in zip(axes, curves, strict=True):
        for (colour, style), group in zip(LINES, groups, strict=False):
            days, incidence = curve.days[group.id], curve.incidence[group.id]
            ax.step(days, [100 * v for v in incidence], where="post", color=colour, linestyle=style,
                    label=f"{group.label} (n={curve.at_risk[group.id]})")
        ax.set_title(curve.event, fontsize=10)
        ax.set_xlabel("days since randomization")
        ax.set_ylabel("cumulative incidence (%)")
        ax.set_xlim(0, right)
        ax.set_ylim(0, top)
        ax.spines[["top", "right"]].set_visible(False)
    axes[0].legend(frameon=False, fontsize=8, loc="upper left")
    fig.tight_layout()
    return fig
