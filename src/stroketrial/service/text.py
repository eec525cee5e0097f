"""What text the platform accepts: identifiers anyone can type and reach again, and free text that
cannot smuggle control characters, NUL bytes or right-to-left overrides into records and exports.

Each check raises `Invalid` (HTTP 422, CLI exit 2) naming the field, the value and what is allowed.
"""

from __future__ import annotations

import unicodedata
from typing import Any, Literal, overload

from .errors import Invalid

IDENTIFIER_PUNCTUATION = "-_."
IDENTIFIER_RULE = "letters (any script, CJK included), digits, '-', '_' and '.'"
# Bidirectional overrides and isolates reorder what a reader sees ("Trojan source"); a correction
# reason or an SAE description has no need of them.
BIDI_CONTROLS = frozenset("\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069\u200e\u200f\u061c")
LINE_BREAKS = frozenset("\t\n\r")


def _shown(value: Any) -> Any:
    """The value as it can be echoed back: control characters spelled out, never raw."""
    if not isinstance(value, str):
        return value if isinstance(value, (int, float, bool, type(None))) else repr(value)
    return value.encode("unicode_escape").decode("ascii") if not value.isprintable() else value


def _refuse(field: str, value: Any, message: str) -> Invalid:
    return Invalid(f"{field}: {message}", [{"field": field, "value": _shown(value), "message": message}])


def _describe(char: str) -> str:
    name = unicodedata.name(char, None)
    code = f"U+{ord(char):04X}"
    return f"{code} {name}" if name else code


def identifier(field: str, value: Any, max_length: int = 60) -> str:
    """An identifier people type, read aloud and put in URLs: 1 to `max_length` characters, each a letter
    (any script), a combining mark after a letter, a digit, '-', '_' or '.'; at least one letter or digit;
    no spaces anywhere, no slashes, no control or format characters."""
    allowed = f"1-{max_length} characters: {IDENTIFIER_RULE}"
    if not isinstance(value, str):
        raise _refuse(field, value, f"text of {allowed}")
    if not value:
        raise _refuse(field, value, f"required; {allowed}")
    if len(value) > max_length:
        raise _refuse(field, value, f"{len(value)} characters is too long; {allowed}")
    for i, char in enumerate(value):
        category = unicodedata.category(char)
        ok = (category.startswith("L") or category == "Nd" or char in IDENTIFIER_PUNCTUATION
              or (category in ("Mn", "Mc") and i > 0))
        if not ok:
            where = "a leading or trailing space" if char.isspace() and i in (0, len(value) - 1) else \
                _describe(char)
            raise _refuse(field, value, f"{where} at position {i + 1} is not allowed; {allowed}")
    if not any(unicodedata.category(c).startswith("L") or unicodedata.category(c) == "Nd" for c in value):
        raise _refuse(field, value, f"needs at least one letter or digit; {allowed}")
    return value


@overload
def plain_text(field: str, value: Any, max_length: int, *, required: Literal[True] = True,
               min_length: int = 1) -> str: ...
@overload
def plain_text(field: str, value: Any, max_length: int, *, required: bool, min_length: int = 1) -> str | None: ...
def plain_text(field: str, value: Any, max_length: int, *, required: bool = True, min_length: int = 1) -> str | None:
    """Free text (a reason, an SAE term or description): stripped of surrounding space, `min_length` to
    `max_length` characters, line breaks and tabs allowed, but no NUL or other control characters, no
    bidirectional overrides, no unpaired surrogates or private-use or unassigned code points.
    Without `required`, None or blank gives None."""
    if value is None or (isinstance(value, str) and not value.strip()):
        if required:
            raise _refuse(field, value, f"required: text of {min_length}-{max_length} characters")
        return None
    if not isinstance(value, str):
        raise _refuse(field, value, f"text of {min_length}-{max_length} characters")
    text = value.strip()
    if len(text) > max_length:
        raise _refuse(field, f"{text[:40]}… ({len(text)} characters)",
                      f"{len(text)} characters is too long; at most {max_length}")
    if len(text) < min_length:
        raise _refuse(field, text, f"{len(text)} characters is too short; at least {min_length}")
    for i, char in enumerate(text):
        if char in LINE_BREAKS:
            continue
        if char in BIDI_CONTROLS or unicodedata.category(char) in ("Cc", "Cs", "Co", "Cn"):
            raise _refuse(field, value, f"{_describe(char)} at position {i + 1} is not allowed in text "
                                        "(control, bidirectional-override, private-use or unassigned character)")
    return text


def storable(value: str) -> str | None:
    """Why the database cannot hold this text as it is (a NUL byte, an unpaired surrogate), or None."""
    if "\x00" in value:
        return "a NUL (0x00) character"
    try:
        value.encode("utf-8")
    except UnicodeEncodeError as exc:
        return f"an unpaired surrogate ({_describe(value[exc.start])})"
    return None


def refuse_unstorable_parameters(_conn, _cursor, _statement, parameters, _context, _executemany) -> None:
    """SQLAlchemy `before_cursor_execute` listener, the last line of defence: a text parameter that
    PostgreSQL cannot hold (NUL) or UTF-8 cannot encode is refused with a 422 before it reaches the
    driver, so SQLite and PostgreSQL answer alike and neither answers 500."""
    rows = parameters if isinstance(parameters, (list, tuple)) and parameters and \
        isinstance(parameters[0], (dict, list, tuple)) else [parameters]
    for row in rows:
        values = row.values() if isinstance(row, dict) else row if isinstance(row, (list, tuple)) else ()
        for value in values:
            if isinstance(value, str):
                problem = storable(value)
                if problem:
                    raise Invalid(f"the request holds text with {problem}, which is not allowed in any field",
                                  [{"field": "(request)", "value": _shown(value), "message": f"contains {problem}"}])
