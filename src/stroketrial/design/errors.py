"""Errors of the design module, importable without its numerical dependencies."""

from .. import InputError


class DesignInputError(InputError):
    """Bad design input; the message names the value and what is allowed."""

