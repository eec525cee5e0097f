"""The trial report: the analyses the protocol names (results.py), its figures (figures.py) and tables
(tables.py), written as HTML (html.py), PDF (pdf.py) and results.json into one folder (write.py)."""

from .results import Analysis, Section, analyse, arms_of, outcome_column
from .write import write_report

__all__ = ["Analysis", "Section", "analyse", "arms_of", "outcome_column", "write_report"]
