"""The report as a PDF: the results and methods as text pages, Table 1, then the figures, one per A4 page.

Matplotlib's object API (`Figure`), never pyplot; pages are drawn in the figures' house style.
"""

from __future__ import annotations

import textwrap
from pathlib import Path

import matplotlib
import matplotlib.image
from matplotlib.backends.backend_pdf import PdfPages
from matplotlib.figure import Figure

from .figures import STYLE
from .results import Analysis, printed

A4 = (8.27, 11.69)  # inches, portrait
LINES_PER_PAGE = 60


@matplotlib.rc_context(STYLE)
def write_pdf(a: Analysis, figures: dict[str, list[Path]], path: Path) -> None:
    """Write report.pdf; `figures` maps consort, grotta and forest to their files (PNG first)."""
    with PdfPages(path) as pdf:
        lines = _text(a)
        for start in range(0, len(lines), LINES_PER_PAGE):
            fig = Figure(figsize=A4)
            fig.text(0.06, 0.96, "\n".join(lines[start:start + LINES_PER_PAGE]), va="top", ha="left", fontsize=7.6,
                     family="DejaVu Sans")
            pdf.savefig(fig)
        fig = Figure(figsize=A4)
        fig.text(0.06, 0.96, "Baseline characteristics (Table 1)", va="top", fontsize=11, weight="bold")
        table = a.table1
        ax = fig.add_axes((0.04, 0.05, 0.92, 0.86))
        ax.axis("off")
        tbl = ax.table(cellText=table.values, colLabels=list(table.columns), loc="upper left", cellLoc="left")
        tbl.auto_set_font_size(False)
        tbl.set_fontsize(7)
        tbl.scale(1, 1.15)
        pdf.savefig(fig)
        for name in ("consort", "grotta", "forest"):
            if name in figures:
                fig = Figure(figsize=A4)
                ax = fig.add_axes((0.05, 0.05, 0.9, 0.9))
                ax.imshow(matplotlib.image.imread(figures[name][0]))
                ax.axis("off")
                pdf.savefig(fig)


def _text(a: Analysis) -> list[str]:
    """The title, every section's results and notes, and the methods, one printed line each."""
    lines = [f"{a.protocol.acronym}: {a.protocol.title}", f"{a.protocol.registry_id} · {a.population.upper()} "
             f"population, n = {a.n} · {a.treatment} vs {a.control}", ""]
    for section in a.sections:
        lines.append(section.title)
        for r in section.results:
            est, ci, p = printed(r)
            measure = "" if r.name.endswith(r.measure) else f" {r.measure}"  # "x: risk difference" says it already
            lines.append(f"   {r.name}:{measure} {est}" + (f" (95% CI {ci})" if ci else "") +
                         (f", p = {p}" if p else "") + f", n = {r.n}")
        lines.extend(f"   {note}" for note in section.notes)
        lines.append("")
    lines.append("Methods")
    for m in a.methods:
        lines.extend(textwrap.wrap(m, 110, initial_indent="   ", subsequent_indent="   "))
    return lines
