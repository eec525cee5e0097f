"""`write_report`: the report folder. report.html (self-contained: figures embedded), report.pdf, results.json,
every figure as PNG, SVG and PDF, and the dataset analysed when it is given."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd

from .figures import consort, forest, grotta_bars, save
from .html import html_document
from .pdf import write_pdf
from .results import Analysis


def write_report(analysis: Analysis, out: str | Path, dataset: pd.DataFrame | None = None) -> dict[str, list[Path]]:
    """Write every file of the report into `out` (made if missing); return the figures' files by figure."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    figures: dict[str, list[Path]] = {}
    if analysis.grotta and any(sum(v) for v in analysis.grotta.values()):
        figures["grotta"] = save(grotta_bars(analysis.grotta), out / "grotta_bars")
    figures["consort"] = save(consort(analysis.consort), out / "consort")
    if analysis.subgroups:
        fig = forest(analysis.subgroups, analysis.overall,
                     favours=(f"favours {analysis.control}", f"favours {analysis.treatment}"))
        figures["forest"] = save(fig, out / "forest_subgroups")
    if dataset is not None:
        dataset.to_csv(out / "dataset.csv", index=False)
    (out / "results.json").write_text(json.dumps(analysis.to_json(), indent=2, default=str))
    (out / "report.html").write_text(html_document(analysis, figures), encoding="utf-8")
    write_pdf(analysis, figures, out / "report.pdf")
    return figures
