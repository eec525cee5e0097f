"""Cohorts of patients to screen, randomize and analyse without a real trial: synthetic, seeded LVO cohorts."""

from .synthetic import MISSING_RATE, synthesize, write_cohort

__all__ = ["MISSING_RATE", "synthesize", "write_cohort"]
