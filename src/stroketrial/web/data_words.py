"""The words the pages show from data rather than from a template or a message: the data dictionary's labels,
units and help, the follow-up forms' labels and choices, the safety forms' choices and the role names. Each is
translated through the catalogs like a template's text (`i18n.gettext`), so each must be in them; this lists
them for the catalogs' tests."""

from __future__ import annotations

from ..service.roles import ROLES


def dictionary_messages() -> dict[str, str]:
    """Every such word, with where it comes from."""
    found: dict[str, str] = {}
    for role in ROLES:
        found.setdefault(role.replace("_", " "), "service/roles.py ROLES")
    return found
