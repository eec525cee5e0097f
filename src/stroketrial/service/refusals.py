"""Words from data inside a refusal, in the reader's language: a role or an operation (roles.PERMISSIONS) is
translated where the catalogs have it; in English it reads exactly as stored (`data_manager`), as the API's
clients and the existing messages expect."""

from __future__ import annotations

from collections.abc import Iterable

from .. import i18n


def role(name: str) -> str:
    words = name.replace("_", " ")
    translated = i18n.gettext(words)
    return name if translated == words else translated


def roles(names: Iterable[str]) -> str:
    separator = "、" if i18n.current() == i18n.CHINESE else ", "  # the enumeration comma of a Chinese list
    return separator.join(role(name) for name in names)


def operation(name: str) -> str:
    return i18n.gettext(name)
