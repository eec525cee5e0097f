"""Dose escalation: 3+3 (as AMASS-1 ran it, or the classic with 6 patients at the MTD), BOIN and CRM, live
decisions and operating characteristics."""

from .decisions import Cohort, Decision, EscalationInputError, OperatingCharacteristics, parse_dlt_counts

__all__ = ["Cohort", "Decision", "EscalationInputError", "OperatingCharacteristics", "parse_dlt_counts"]
