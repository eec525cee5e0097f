"""Translating a message that was put together in English from a pattern ("Waiting for DLT observation of E1, E2
in cohort 1"), where only the English text is at hand: the pattern, its placeholders (`{name}`) read back from
the text, is looked up in the catalogs and the values put into the translation. The values themselves are
translated when the catalogs know them (a rule's text inside a waiting line)."""

from __future__ import annotations

import re
from collections.abc import Iterable
from functools import cache

from . import i18n

_PLACEHOLDER = re.compile(r"\{(\w+)\}")


@cache
def _regex(pattern: str) -> re.Pattern[str]:
    parts, last = [], 0
    for found in _PLACEHOLDER.finditer(pattern):
        parts.append(re.escape(pattern[last:found.start()]))
        parts.append(f"(?P<{found.group(1)}>.*?)")
        last = found.end()
    parts.append(re.escape(pattern[last:]))
    return re.compile("".join(parts), re.DOTALL)


def translated(text: str, patterns: Iterable[str] = ()) -> str:
    """`text` in the current language: its own translation, else that of the first pattern it matches (with its
    values, each translated where the catalogs have it), else as it is."""
    if i18n.current() == i18n.ENGLISH or not text:
        return text
    if i18n.has_translation(text, i18n.current()):
        return i18n.gettext(text)
    for pattern in patterns:
        match = _regex(pattern).fullmatch(text)
        if match is not None:
            values = {name: translated(value, patterns) for name, value in match.groupdict().items()}
            return i18n.gettext(pattern).format(**values)
    return text
