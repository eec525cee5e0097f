"""The stroke trial figures: Grotta bars, the CONSORT flow diagram, the subgroup forest plot.

Each returns a matplotlib Figure; `save` writes it as PNG (200 dpi), SVG and PDF. Matplotlib's object API
(`Figure`), never pyplot: no global figure manager, no backend to choose. The house style (`STYLE`) applies
while a figure is drawn and saved, not to the process that imports this module.
"""

from __future__ import annotations

from pathlib import Path
from collections.abc import Mapping, Sequence
from typing import Any

import matplotlib
import matplotlib.ticker
import numpy as np
from matplotlib.figure import Figure
from matplotlib.transforms import Bbox
from matplotlib.patches import Rectangle
from matplotlib.typing import RcKeyType

from ..analysis.result import Result, format_p

# mRS 0 (no symptoms) dark green through 5 (severe disability) orange-red, 6 (death) black:
# the colour order stroke journals use, readable in greyscale print.
MRS_COLOURS = ["#1a6b35", "#3f9a4f", "#8cc265", "#f2d45c", "#f0994a", "#d6452d", "#202020"]
# SVG text stays text (svg.fonttype none): searchable, and what the tests read back.
STYLE: dict[RcKeyType, Any] = {"font.family": "DejaVu Sans", "font.size": 10, "svg.fonttype": "none"}


# The PNG is the screen's copy (report.html, slides); SVG and PDF are the print copies. At 200 dpi an 8.5-inch
# figure is 1,700 pixels wide: report.html shows it at most 1,000 CSS pixels wide (1.7 pixels to each), and
# it has less than half the pixels of 300 dpi to draw and compress.
PNG_DPI = 200


@matplotlib.rc_context(STYLE)
def tight_box(fig: Figure) -> Bbox:
    """The area `bbox_inches="tight"` saves (inches, with savefig's padding). Worked out once and given to each
    save, each file is one drawing of the figure: with "tight", savefig draws the figure twice per file."""
    fig.draw_without_rendering()
    return fig.get_tightbbox().padded(matplotlib.rcParams["savefig.pad_inches"])


@matplotlib.rc_context(STYLE)
def save(fig: Figure, stem: str | Path, formats: Sequence[str] = ("png", "svg", "pdf"),
         box: Bbox | None = None) -> list[Path]:
    """Write the figure in each format, cut to `box` (default: its tight_box). The PNG is compressed at zlib
    level 1: the same pixels, written several times faster than at PIL's default level 6, for a file about a
    third larger."""
    box = tight_box(fig) if box is None else box
    paths = []
    for fmt in formats:
        path = Path(f"{stem}.{fmt}")
        options: dict[str, Any] = {"dpi": PNG_DPI, "pil_kwargs": {"compress_level": 1}} if fmt == "png" else {}
        fig.savefig(path, bbox_inches=box, **options)
        paths.append(path)
    return paths


@matplotlib.rc_context(STYLE)
def grotta_bars(counts: Mapping[str, Sequence[int]], title: str = "Modified Rankin Scale at 90 days") -> Figure:
    """One horizontal bar per arm, split into mRS 0-6 with the percentage printed in each segment."""
    arms = list(counts)
    fig = Figure(figsize=(8.5, 1.1 + 0.75 * len(arms)))
    ax = fig.subplots()
    for row, arm in enumerate(arms):
        n = np.asarray(counts[arm], dtype=float)
        share = 100 * n / n.sum()
        left = 0.0
        for score, width in enumerate(share):
            ax.barh(row, width, left=left, color=MRS_COLOURS[score], edgecolor="white", linewidth=0.8, height=0.62)
            if width >= 3.5:
                colour = "white" if score in (0, 1, 5, 6) else "black"
                ax.text(left + width / 2, row, f"{width:.0f}", ha="center", va="center", fontsize=9, color=colour)
            left += width
    ax.set_yticks(range(len(arms)), [f"{a}\n(n={int(sum(counts[a]))})" for a in arms])
    ax.invert_yaxis()
    ax.set_xlim(0, 100)
    ax.set_xlabel("patients (%)")
    ax.spines[["top", "right", "left"]].set_visible(False)
    handles = [Rectangle((0, 0), 1, 1, color=c) for c in MRS_COLOURS]
    ax.legend(handles, [str(s) for s in range(7)], title="mRS", ncol=7, loc="lower center",
              bbox_to_anchor=(0.5, 1.0), frameon=False, fontsize=9, title_fontsize=9, handlelength=1.2,
              columnspacing=1.0)
    ax.set_title(title, pad=34, fontsize=11)
    fig.tight_layout()
    return fig


@matplotlib.rc_context(STYLE)
def consort(boxes: dict) -> Figure:
    """CONSORT 2010 flow: enrolment, allocation, follow-up and analysis, one column per arm."""
    arms = boxes["arms"]
    fig = Figure(figsize=(8.5, 9.5))
    ax = fig.add_axes((0, 0, 1, 1))
    ax.set_xlim(0, 100)
    ax.set_ylim(0, 100)
    ax.axis("off")

    def box(x, y, w, h, text, bold=False):
        ax.add_patch(Rectangle((x - w / 2, y - h / 2), w, h, fill=False, linewidth=1.2))
        ax.text(x, y, text, ha="center", va="center", fontsize=8.8, weight="bold" if bold else "normal", wrap=True)

    def arrow(x0, y0, x1, y1):
        ax.annotate("", xy=(x1, y1), xytext=(x0, y0), arrowprops={"arrowstyle": "-|>", "lw": 1.1, "color": "black"})

    box(35, 94, 40, 6, f"Assessed for eligibility (n = {boxes['assessed']})", True)
    ranked = sorted(boxes["excluded_by"].items(), key=lambda item: -item[1])
    excluded = "\n".join(f"      {k.replace('_', ' ')}: {v}" for k, v in ranked[:6])
    if len(ranked) > 6:
        excluded += f"\n      other criteria: {sum(v for _, v in ranked[6:])}"
    waiting = max(boxes["assessed"] - boxes["excluded"] - boxes["incomplete"] - boxes["randomized"], 0)
    side = (f"Excluded (n = {boxes['excluded'] + boxes['incomplete'] + waiting})\n"
            f"  not meeting criteria: {boxes['excluded']}\n{excluded}\n"
            f"  screening data incomplete: {boxes['incomplete']}\n  eligible, not randomized: {waiting}")
    ax.add_patch(Rectangle((58, 69), 40, 22, fill=False, linewidth=1.2))
    ax.text(59.5, 80, side, ha="left", va="center", fontsize=8.5)
    arrow(35, 91, 35, 73)
    ax.plot([35, 58], [80, 80], color="black", lw=1.1)
    box(35, 70, 34, 6, f"Randomized (n = {boxes['randomized']})", True)
    xs = np.linspace(22, 78, len(arms)) if len(arms) > 1 else [50]
    for x, arm in zip(xs, arms, strict=True):
        a = boxes["by_arm"][arm]
        arrow(35, 67, x, 59)
        name = (boxes.get("arm_names") or {}).get(arm, arm)
        box(x, 54, 30, 9, f"Allocated to {name}\n(n = {a['allocated']})\nreceived as allocated: {a['received']}")
        arrow(x, 49.5, x, 42)
        box(x, 36, 30, 11, f"Follow-up\nprimary outcome missing: {a['missing']}\ncrossed over: {a['crossed']}")
        arrow(x, 30.5, x, 23)
        box(x, 17, 30, 11, f"Analysed ({boxes.get('population', 'intention to treat')})\nn = {a['analysed']}\n"
                           "excluded from analysis: "
                           f"{a['allocated'] - a['analysed']}")
    for y, label in ((94, "Enrolment"), (54, "Allocation"), (36, "Follow-up"), (17, "Analysis")):
        ax.text(1.5, y, label, rotation=90, va="center", fontsize=9, color="#0b57a4", weight="bold")
    return fig


@matplotlib.rc_context(STYLE)
def forest(results: Sequence[Result], overall: Result | None = None, title: str = "Common odds ratio (95% CI)",
           favours: tuple[str, str] = ("favours control", "favours treatment")) -> Figure:
    rows = list(results)
    labels, seen = [], set()
    for r in rows:  # the interaction p-value once per subgroup factor, on its first row
        factor = r.details.get("subgroup")
        p = r.details.get("interaction_p")
        if factor is not None and factor not in seen and p is not None:
            seen.add(factor)
            labels.append(f"{r.name}  (interaction p = {format_p(p)})")
        else:
            labels.append(r.name)
    if overall is not None:
        rows.append(overall)
        labels.append("Overall")
    fig = Figure(figsize=(8.5, 0.9 + 0.42 * len(rows)))
    ax = fig.subplots()
    y = np.arange(len(rows))[::-1]
    for yi, r, label in zip(y, rows, labels, strict=True):
        marker = "D" if label == "Overall" else "s"
        ax.plot([r.ci_low, r.ci_high], [yi, yi], color="black", lw=1.2)
        ax.plot(r.estimate, yi, marker, color="#0b57a4" if label != "Overall" else "black",
                markersize=7 if label == "Overall" else 5 + 4 * np.sqrt(r.n / max(x.n for x in rows)))
    ax.axvline(1.0, color="grey", lw=1, ls="--")
    ax.set_xscale("log")
    ax.set_yticks(y, labels)
    ax.set_xlabel(title)
    lo = min(r.ci_low for r in rows if r.ci_low > 0)
    hi = max(r.ci_high for r in rows if np.isfinite(r.ci_high))
    ax.set_xlim(min(lo, 0.5) / 1.2, max(hi, 2) * 1.2)
    ticks = [t for t in (0.1, 0.25, 0.5, 1, 2, 4, 8, 16) if ax.get_xlim()[0] <= t <= ax.get_xlim()[1]]
    ax.set_xticks(ticks, [f"{t:g}" for t in ticks])
    ax.xaxis.set_minor_locator(matplotlib.ticker.NullLocator())
    text_x = ax.get_xlim()[1] * 1.08
    for yi, r in zip(y, rows, strict=True):
        ax.text(text_x, yi, f"{r.estimate:.2f} ({r.ci_low:.2f}-{r.ci_high:.2f})", va="center", fontsize=9)
    ax.text(text_x, y[0] + 0.9, "OR (95% CI)", fontsize=9, weight="bold", va="center")
    # a gap either side of OR 1 so the two labels never run into each other
    ax.text(0.92, 1.0, f"← {favours[0]}", transform=ax.get_xaxis_transform(), ha="right", va="bottom", fontsize=8.5)
    ax.text(1.08, 1.0, f"{favours[1]} →", transform=ax.get_xaxis_transform(), ha="left", va="bottom", fontsize=8.5)
    ax.spines[["top", "right"]].set_visible(False)
    fig.tight_layout()
    return fig
