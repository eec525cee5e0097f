"""The report as one self-contained HTML document: the figures embedded as PNG, nothing fetched, no script.

Built from escaped strings (`html.escape`), not a template engine: the report needs only the `report`
extra (matplotlib), and Jinja2 comes with the `server` extra.
"""

from __future__ import annotations

import base64
import datetime as dt
import html
from pathlib import Path

from .. import __version__
from ..analysis.result import format_p
from .results import Analysis, printed

CSS = ("body{font:15px/1.45 system-ui,sans-serif;max-width:1000px;margin:2rem auto;color:#1b1f24;padding:0 1rem}"
         "table{border-collapse:collapse;margin:.6rem 0 1.2rem}"
         "td,th{border-bottom:1px solid #ccd;padding:.3rem .6rem;text-align:left;vertical-align:top}"
         "th{background:#f3f5f7}img{max-width:100%}.small{color:#555;font-size:.9em}h2{margin-top:2rem}")


def html_document(a: Analysis, figures: dict[str, list[Path]]) -> str:
    """The report page; `figures` maps consort, grotta and forest to their files (PNG first), as `save` wrote them."""
    e = html.escape
    parts = [f"<!doctype html><html lang='en'><head><meta charset='utf-8'><title>{e(a.protocol.acronym)} report"
             f"</title><style>{CSS}</style></head><body>",
             f"<h1>{e(a.protocol.acronym)}: {e(a.protocol.title)}</h1>",
             f"<p class='small'>{e(a.protocol.registry_id)} · {a.population.upper()} population, n = {a.n} · "
             f"{e(a.treatment)} vs {e(a.control)} · generated {dt.date.today().isoformat()} by stroketrial "
             f"{__version__}</p>"]
    if "consort" in figures:
        parts.append("<h2>Flow of patients (CONSORT)</h2>" + _img(figures["consort"][0]))
    parts.append("<h2>Baseline characteristics (Table 1)</h2>" + a.table1.to_html(index=False, border=0, escape=True))
    if "grotta" in figures:
        parts.append("<h2>Modified Rankin Scale at 90 days</h2>" + _img(figures["grotta"][0]))
    for section in a.sections:
        parts.append(f"<h2>{e(section.title)}</h2>")
        if section.results:
            parts.append("<table><tr><th>analysis</th><th>measure</th><th>estimate</th><th>95% CI</th><th>p</th>"
                         "<th>n</th><th>method</th></tr>")
            for r in section.results:
                est, ci, p = printed(r)
                parts.append(f"<tr><td>{e(r.name)}</td><td>{e(r.measure)}</td><td>{est}</td><td>{ci}</td><td>{p}</td>"
                             f"<td>{r.n}</td><td class='small'>{e(r.method)}</td></tr>")
            parts.append("</table>")
        parts.extend(f"<p class='small'>{e(note)}</p>" for note in section.notes)
    if "forest" in figures:
        parts.append("<h2>Subgroups</h2>" + _img(figures["forest"][0]))
        parts.append("<table><tr><th>subgroup</th><th>n</th><th>common OR (95% CI)</th><th>interaction p</th></tr>")
        for r in a.subgroups:
            parts.append(f"<tr><td>{e(r.name)}</td><td>{r.n}</td><td>{r.text()}</td>"
                         f"<td>{format_p(r.details['interaction_p'])}</td></tr>")
        parts.append("</table>")
    if not a.safety.empty:
        parts.append("<h2>Safety</h2>" + a.safety.to_html(index=False, border=0))
    parts.append("<h2>Methods</h2>" + "".join(f"<p>{e(m)}</p>" for m in a.methods))
    parts.append("</body></html>")
    return "\n".join(parts)


def _img(path: Path) -> str:
    data = base64.b64encode(path.read_bytes()).decode("ascii")
    return f'<img alt="{html.escape(path.stem)}" src="data:image/png;base64,{data}">'
