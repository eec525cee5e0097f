"""The trial report: the analyses the protocol names (results.py), its figures (figures.py) and tables
(tables.py), written as HTML (html.py), PDF (pdf.py) and results.json into one folder (write.py). A single-arm
dose-escalation trial has its own report (escalation_report.py, escalation_html.py, escalation_figure.py)."""

from .escalation_report import EscalationReport, analyse_escalation
from .results import Analysis, Section, analyse, arms_of, outcome_column
from .write import write_escalation_report, write_report

__all__ = ["Analysis", "EscalationReport", "Section", "analyse", "analyse_escalation", "arms_of", "outcome_column",
           "write_escalation_report", "write_report"]
