"""`write_report`: the report folder. report.html (self-contained: figures embedded as PNG), report.pdf (the
same document on A4 pages, its figures embedded as SVG), results.json, every figure as PNG, SVG and PDF, and
the dataset analysed when it is given."""

from __future__ import annotations

import hashlib
import json
import textwrap
from pathlib import Path
from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING

import pandas as pd

from ..protocol import Protocol
from .figures import consort, forest, grotta_bars, save, tight_box
from .html import Provenance, html_document
from .pdf import PdfInBackground
from .results import Analysis

if TYPE_CHECKING:
    from matplotlib.figure import Figure

    from .escalation_report import EscalationReport


def write_report(analysis: Analysis, out: str | Path, dataset: pd.DataFrame | None = None) -> dict[str, list[Path]]:
    """Write every file of the report into `out` (made if missing); return the figures' files by figure."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    name = {arm.id: arm.name for arm in analysis.protocol.arms}  # the arms as the protocol names them
    drawn = {}
    if analysis.grotta and any(sum(v) for v in analysis.grotta.values()):
        counts = {name.get(arm, arm): v for arm, v in analysis.grotta.items()}
        drawn["grotta"] = (grotta_bars(counts), out / "grotta_bars")
    drawn["consort"] = (consort(analysis.consort), out / "consort")
    if analysis.subgroups:
        # a long arm name on two lines, so that the two labels either side of OR 1 stay apart
        treatment, control = (textwrap.fill(f"favours {name.get(arm, arm)}", 24)
                              for arm in (analysis.treatment, analysis.control))
        fig = forest(analysis.subgroups, analysis.overall, favours=(control, treatment))
        drawn["forest"] = (fig, out / "forest_subgroups")
    results = json.dumps(analysis.to_json(), indent=2, default=str).encode("utf-8")
    return _write_documents(drawn, out, lambda figures, provenance: html_document(analysis, figures, provenance),
                            lambda: _write_data(analysis.protocol, out, results, dataset))


def write_escalation_report(report: EscalationReport, out: str | Path,
                            dataset: pd.DataFrame | None = None) -> dict[str, list[Path]]:
    """The dose-escalation trial's report folder: the same files as write_report's."""
    from .balance_figure import love_plot
    from .escalation_figure import escalation_history
    from .escalation_html import escalation_document
    from .escalation_report import term_labels

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    escalation = report.escalation
    drawn = {"history": (escalation_history(report.history, {lv.level: lv.dose for lv in escalation.levels},
                                            escalation.unit, report.mtd), out / "escalation_history")}
    if report.matching is not None:
        drawn["love"] = (love_plot(report.matching, term_labels(report.matching)), out / "love_plot")
    results = json.dumps(report.to_json(), indent=2, default=str).encode("utf-8")
    return _write_documents(drawn, out, lambda figures, provenance: escalation_document(report, figures, provenance),
                            lambda: _write_data(report.protocol, out, results, dataset))


def _write_documents(drawn: dict[str, tuple[Figure, Path]], out: Path,
                     document: Callable[[Mapping[str, Sequence[Path]], Provenance], str],
                     write_data: Callable[[], Provenance]) -> dict[str, list[Path]]:
    """Each figure's SVG, then report.pdf started on them in a second process (PdfInBackground), while this one
    writes the PNG and PDF of each figure, results.json, dataset.csv and report.html; the figures' files by
    figure. The PDF is the HTML document with each figure's SVG where report.html embeds its PNG."""
    boxes = {key: tight_box(fig) for key, (fig, _) in drawn.items()}
    with PdfInBackground(out / "report.pdf") as pdf:
        vector = {key: save(fig, stem, ("svg",), boxes[key]) for key, (fig, stem) in drawn.items()}
        provenance = write_data()  # the title page's hashes, the same in both documents
        pdf.write(document(vector, provenance))
        figures = {key: save(fig, stem, ("png",), boxes[key]) + vector[key] + save(fig, stem, ("pdf",), boxes[key])
                   for key, (fig, stem) in drawn.items()}
        (out / "report.html").write_text(document(figures, provenance), encoding="utf-8")
        pdf.wait()
    return figures


def _write_data(protocol: Protocol, out: Path, results: bytes, dataset: pd.DataFrame | None) -> Provenance:
    """results.json and dataset.csv written; the title page's hashes of the protocol and the data."""
    (out / "results.json").write_bytes(results)
    if dataset is not None:
        data = dataset.to_csv(index=False).encode("utf-8")
        (out / "dataset.csv").write_bytes(data)
        hashed = (f"SHA-256 of dataset.csv beside this report: the dataset analysed, {len(dataset)} rows by "
                  f"{dataset.shape[1]} columns, as UTF-8 CSV.")
    else:
        data = results
        hashed = ("The dataset was not given to the report writer, so this is the SHA-256 of results.json "
                  "beside this report (every result, unrounded), not of the data.")
    return Provenance(
        protocol_sha256=hashlib.sha256(protocol.model_dump_json().encode("utf-8")).hexdigest(),
        protocol_hashed=f"The {protocol.acronym} protocol carries no version number: this is the SHA-256 "
                        f"of its canonical JSON (every field of the validated protocol, as stroketrial reads it).",
        data_sha256=hashlib.sha256(data).hexdigest(), data_hashed=hashed,
        data_lock=dataset.attrs.get("data_lock") if dataset is not None else None)
