"""The trial report: the analyses the protocol names (results.py), its figures (figures.py) and tables
(tables.py), written as HTML (html.py), PDF (pdf.py) and results.json into one folder (write.py). A single-arm
dose-escalation trial has its own report (escalation_report.py, escalation_html.py, escalation_figure.py),
imported when first asked for: a randomized trial's report does not load matching and its figures."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .results import Analysis, Section, analyse, arms_of, outcome_column
from .write import write_escalation_report, write_report

if TYPE_CHECKING:
    from .escalation_report import EscalationReport, analyse_escalation

__all__ = ["Analysis", "EscalationReport", "Section", "analyse", "analyse_escalation", "arms_of", "outcome_column",
           "write_escalation_report", "write_report"]


def __getattr__(name: str) -> Any:
    if name in ("EscalationReport", "analyse_escalation"):
        from . import escalation_report

        return getattr(escalation_report, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
