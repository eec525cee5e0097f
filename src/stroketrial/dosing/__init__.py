"""Doses from the protocol: weight-based amounts, volumes and pump rates for the allocated arm."""

from .instructions import Administration, DoseError, dose_instructions

__all__ = ["Administration", "DoseError", "dose_instructions"]
