"""English left on a page shown in Chinese: runs of two or more English words in its visible text. A word here is
letters only, three or more of them (so "mRS 3", "M1", "IV" or a patient number never count); the allowlist names
what stays English on purpose (trial acronyms, scale names, units, user names), each of which breaks a run."""

from __future__ import annotations

import re
from collections.abc import Iterable

# What the pages keep in English in every language: the platform's name, scale and imaging abbreviations, file
# formats and the safety acronyms a Chinese stroke team writes in Latin letters too.
ALWAYS = ("stroketrial", "NIHSS", "ASPECTS", "mRS", "eTICI", "TICI", "CTA", "MRA", "DSA", "ICA", "M1", "M2", "LVO",
          "CSV", "CDISC", "ODM", "PROBE", "SAE", "SAEs", "sICH", "DLT", "English", "Efron", "kg", "mmol", "umol",
          "mmHg", "min")
_EDGE = "\"'\u201c\u201d\u2018\u2019.,;:!?()[]{}<>\u00ab\u00bb\u00b7\u2026*#%=+\u2013\u2014"


def _word(token: str) -> bool:
    return len(token) >= 3 and token.isascii() and token.isalpha()


def english_left(text: str, allowed: Iterable[str] = ()) -> list[str]:
    """Each run of 2+ English words in `text` that the allowlist does not break, as it reads (in page order)."""
    keep = {a.lower() for a in (*ALWAYS, *allowed)}
    runs: list[str] = []
    current: list[str] = []
    for raw in re.split(r"\s+", text):
        token = raw.strip(_EDGE)
        ends_phrase = raw != raw.rstrip(".;:!?\u3002\uff1b\uff1a")  # a sentence's end also ends a run
        if _word(token) and token.lower() not in keep and _clean(raw):
            current.append(token)
            if ends_phrase:
                _close(current, runs)
        else:
            _close(current, runs)
    _close(current, runs)
    return runs


def _clean(raw: str) -> bool:
    """A token that is a word with punctuation at its edges at most (not "AMASS-2", "Asia/Shanghai", "x@y")."""
    inner = raw.strip(_EDGE)
    return bool(inner) and all(ch.isalpha() for ch in inner)


def _close(current: list[str], runs: list[str]) -> None:
    if len(current) >= 2:
        runs.append(" ".join(current))
    current.clear()
