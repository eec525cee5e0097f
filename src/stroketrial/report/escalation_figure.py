"""The escalation history of a dose-escalation trial: every patient in order of enrolment at their dose level,
a DLT marked, the cohorts separated, and the expansion cohort at the MTD (matplotlib Figure API, no pyplot)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import matplotlib
from matplotlib.figure import Figure
from matplotlib.lines import Line2D

from .figures import STYLE

DLT_COLOUR, NO_DLT_COLOUR, EXPANSION_COLOUR = "#c0392b", "#1f5f8b", "#7f8c8d"


@dataclass(frozen=True)
class HistoryCohort:
    number: int
    level: int
    phase: str  # escalation | expansion
    dlt: Sequence[bool | None]  # per patient, in order of enrolment (None: not assessed)
    decision: str | None = None  # the decision after it, in a few words


@matplotlib.rc_context(STYLE)
def escalation_history(cohorts: Sequence[HistoryCohort], doses: Mapping[int, float], unit: str,
                       mtd: int | None) -> Figure:
    n = sum(len(c.dlt) for c in cohorts)
    fig = Figure(figsize=(min(11.0, 3.0 + 0.2 * n), 0.9 + 0.5 * len(doses)))
    ax = fig.subplots()
    x = 0
    for c in cohorts:
        start = x + 1
        for dlt in c.dlt:
            x += 1
            if c.phase == "expansion":
                ax.plot(x, c.level, marker="s", ms=7, color=EXPANSION_COLOUR if not dlt else DLT_COLOUR,
                        markerfacecolor="white" if not dlt else DLT_COLOUR, ls="none")
            elif dlt:
                ax.plot(x, c.level, marker="X", ms=10, color=DLT_COLOUR, ls="none")
            else:
                ax.plot(x, c.level, marker="o", ms=8, color=NO_DLT_COLOUR, markerfacecolor="white", ls="none")
        if c.phase == "escalation":
            ax.axvline(x + 0.5, color="#dddddd", lw=0.8, zorder=0)
            if c.decision:
                ax.text((start + x) / 2, c.level + 0.35, c.decision, ha="center", va="bottom", fontsize=7,
                        color="#444444")
        else:
            ax.text((start + x) / 2, c.level - 0.45, f"expansion at the MTD (n={len(c.dlt)})", ha="center",
                    va="top", fontsize=8, color=EXPANSION_COLOUR)
    if mtd is not None:
        ax.axhline(mtd, color=NO_DLT_COLOUR, lw=0.8, ls="--", zorder=0)
    levels = sorted(doses)
    ax.set_yticks(levels, [f"level {lv}: {doses[lv]:g} {unit}" for lv in levels])
    ax.set_ylim(levels[0] - 0.8, levels[-1] + 0.9)
    ax.set_xlim(0.3, max(x, 1) + 0.7)
    ax.set_xlabel("patients in order of enrolment")
    ax.spines[["top", "right"]].set_visible(False)
    handles = [Line2D([], [], marker="o", color=NO_DLT_COLOUR, markerfacecolor="white", ls="none", label="no DLT"),
               Line2D([], [], marker="X", color=DLT_COLOUR, ls="none", ms=9, label="DLT"),
               Line2D([], [], marker="s", color=EXPANSION_COLOUR, markerfacecolor="white", ls="none",
                      label="expansion cohort")]
    if mtd is not None:
        handles.append(Line2D([], [], color=NO_DLT_COLOUR, ls="--", lw=0.8, label=f"MTD (level {mtd})"))
    ax.legend(handles=handles, loc="upper center", bbox_to_anchor=(0.5, -0.22), ncol=len(handles), frameon=False,
              fontsize=8)
    fig.tight_layout()
    return fig
