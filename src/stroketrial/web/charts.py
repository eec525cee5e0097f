"""The dashboard's charts, drawn as PNG images embedded in the page.

Matplotlib's object API only (`Figure`), never pyplot: pyplot's global figure manager is not safe in
threaded request handlers. Matplotlib and numpy are imported when a chart is drawn, so pages without one
never load them.
"""

from __future__ import annotations

import base64
import datetime as dt
import functools
import io
from typing import Any


def enrolment_chart(enrolment: dict[str, Any]) -> str | None:
    """Cumulative randomizations per site (`dashboard.enrolment`), as base64 PNG; None before the first."""
    if not enrolment["days"]:
        return None
    return _drawn(tuple(enrolment["days"]),
                  tuple((site, tuple(counts)) for site, counts in enrolment["cumulative_by_site"].items()))


@functools.lru_cache(maxsize=32)
def _drawn(day_list: tuple[str, ...], by_site: tuple[tuple[str, tuple[int, ...]], ...]) -> str:
    """The chart of these counts: drawn once, then served from memory until an allocation changes them (drawing
    takes longer than the rest of the dashboard)."""
    days = [dt.date.fromisoformat(d) for d in day_list]
    cumulative_by_site = {site: list(c) for site, c in by_site}
    import matplotlib.dates as mdates
    import numpy as np
    from matplotlib.figure import Figure

    fig = Figure(figsize=(7, 2.8), layout="constrained")
    ax = fig.subplots()
    if len(days) == 1:
        # One day of enrolment: a step line would be invisible; show the day's count per site.
        sites = list(cumulative_by_site)
        counts = [c[-1] for c in cumulative_by_site.values()]
        ax.barh(sites, counts, color="#0b57a4")
        ax.invert_yaxis()
        ax.set_xlabel(f"patients randomized on {days[0].isoformat()}")
        for i, n in enumerate(counts):
            ax.text(n, i, f" {n}", va="center")
    else:
        # Days as datetime64: an array matplotlib plots on a date axis (a list of dates is not array-like
        # to its type hints).
        x = np.array([days[0] - dt.timedelta(days=1), *days], dtype="datetime64[D]")
        for site, cumulative in cumulative_by_site.items():
            ax.step(x, [0, *cumulative], where="post", label=site, lw=2, marker="o", ms=3)
        ax.set_ylabel("patients randomized")
        ax.set_ylim(bottom=0)
        ax.legend(title="site", fontsize=8)
        ax.xaxis.set_major_formatter(mdates.ConciseDateFormatter(ax.xaxis.get_major_locator()))
    ax.grid(alpha=0.3)
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=110)
    return base64.b64encode(buffer.getvalue()).decode("ascii")
