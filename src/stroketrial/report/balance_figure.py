"""The Love plot: covariate balance before and after propensity-score matching.

One row per covariate term (each level of a categorical covariate its own row), the absolute standardized
mean difference of the full sample as an open circle and of the matched sample as a filled one, and a
dashed line at 0.1, the usual threshold for adequate balance (Austin 2009). Matplotlib's object API.
"""

from __future__ import annotations

from collections.abc import Mapping

import matplotlib
import numpy as np
from matplotlib.figure import Figure
from matplotlib.lines import Line2D

from ..analysis.matching import DISTANCE_TERM, MatchResult
from .figures import STYLE

BALANCE_THRESHOLD = 0.1
DISTANCE_LABEL = "Propensity score (logit)"


@matplotlib.rc_context(STYLE)
def love_plot(result: MatchResult, labels: Mapping[str, str] | None = None) -> Figure:
    """Absolute SMD per covariate term before (open) and after (filled) matching.

    labels: readable names by term ("occlusion_site[m1]") or by column ("occlusion_site", which names its
    levels "<label>: m1"); terms without one keep their name.
    """
    terms = result.balance.terms
    names = [term_label(row.term, labels or {}) for row in terms]
    before = np.array([abs(row.before.smd) for row in terms])
    after = np.array([np.nan if row.after is None else abs(row.after.smd) for row in terms])
    y = np.arange(len(terms))[::-1]

    height = 1.4 + 0.3 * len(terms)
    fig = Figure(figsize=(7.0, height))
    ax = fig.subplots()
    ax.hlines(y, 0, np.fmax(before, after), color="#d9d9d9", lw=0.8, zorder=1)
    ax.scatter(before, y, s=36, facecolors="white", edgecolors="#444444", linewidths=1.2, zorder=3)
    ax.scatter(after, y, s=36, color="#0b57a4", zorder=4)
    ax.axvline(BALANCE_THRESHOLD, color="grey", lw=1, ls="--", zorder=2)
    ax.set_yticks(y, names)
    ax.set_ylim(-0.7, len(terms) - 0.3)
    right = max(float(np.nanmax(np.r_[before, after, BALANCE_THRESHOLD])) * 1.08, 0.25)
    ax.set_xlim(-0.03 * right, right)  # room for a marker at 0
    ax.set_xlabel("Absolute standardized mean difference")
    fig.legend(handles=_legend_handles(result), loc="upper center", ncol=2, frameon=False, fontsize=8.5,
               handletextpad=0.3, columnspacing=1.5)
    ax.spines[["top", "right"]].set_visible(False)
    fig.tight_layout(rect=(0, 0, 1, 1 - 0.3 / height))  # the legend's band at the top
    return fig


def term_label(term: str, labels: Mapping[str, str]) -> str:
    if term in labels:
        return labels[term]
    if term == DISTANCE_TERM:
        return DISTANCE_LABEL
    column, bracket, level = term.partition("[")
    if bracket and column in labels:
        return f"{labels[column]}: {level.removesuffix(']')}"
    return term


def _legend_handles(result: MatchResult) -> list[Line2D]:
    everyone = f"Before matching ({result.n_treated} treated, {result.n_control} controls)"
    matched = f"After matching ({result.n_matched_treated} treated, {result.n_matched_control} controls)"
    return [
        Line2D([], [], ls="", marker="o", markerfacecolor="white", markeredgecolor="#444444", label=everyone),
        Line2D([], [], ls="", marker="o", color="#0b57a4", label=matched),
    ]
