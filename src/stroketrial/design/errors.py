"""Errors of the design module, importable without its numerical dependencies."""


class DesignInputError(ValueError):
    """Bad design input; the message names the value and what is allowed."""
