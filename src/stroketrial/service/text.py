"""What text the platform accepts: identifiers anyone can type and reach again, and free text that
cannot smuggle control characters, NUL bytes or right-to-left overrides into records and exports.

Each check raises `Invalid` (HTTP 422, CLI exit 2) naming the field, the value and what is allowed.
"""

from __future__ import annotations

import unicodedata
from typing import Any, Literal, overload

from .. import i18n
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
    return Invalid(i18n.gettext("{field}: {message}").format(field=field, message=message),
                   [{"field": field, "value": _shown(value), "message": message}])


def _describe(char: str) -> str:
    name = unicodedata.name(char, None)
    code = f"U+{ord(char):04X}"
    return f"{code} {name}" if name else code


def identifier(field: str, value: Any, max_length: int = 60) -> str:
    """An identifier people type, read aloud and put in URLs: 1 to `max_length` characters, each a letter
    (any script), a combining mark after a letter, a digit, '-', '_' or '.'; at least one letter or digit;
    no spaces anywhere, no slashes, no control or format characters."""
    allowed = i18n.gettext("1-{most} characters: {rule}").format(most=max_length, rule=i18n.gettext(IDENTIFIER_RULE))
    if not isinstance(value, str):
        raise _refuse(field, value, i18n.gettext("text of {allowed}").format(allowed=allowed))
    if not value:
        raise _refuse(field, value, i18n.gettext("required; {allowed}").format(allowed=allowed))
    if len(value) > max_length:
        raise _refuse(field, value, i18n.gettext("{count} characters is too long; {allowed}").format(
            count=len(value), allowed=allowed))
    for i, char in enumerate(value):
        category = unicodedata.category(char)
        ok = (category.startswith("L") or category == "Nd" or char in IDENTIFIER_PUNCTUATION
              or (category in ("Mn", "Mc") and i > 0))
        if not ok:
            where = i18n.gettext("a leading or trailing space") if char.isspace() and i in (0, len(value) - 1) \
                else _describe(char)
            raise _refuse(field, value, i18n.gettext("{what} at position {position} is not allowed; {allowed}").format(
                what=where, position=i + 1, allowed=allowed))
    if not any(unicodedata.category(c).startswith("L") or unicodedata.category(c) == "Nd" for c in value):
        raise _refuse(field, value, i18n.gettext("needs at least one letter or digit; {allowed}").format(
            allowed=allowed))
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
            raise _refuse(field, value, i18n.gettext("required: text of {least}-{most} characters").format(
                least=min_length, most=max_length))
        return None
    if not isinstance(value, str):
        raise _refuse(field, value, i18n.gettext("text of {least}-{most} characters").format(
            least=min_length, most=max_length))
    text = value.strip()
    if len(text) > max_length:
        raise _refuse(field, f"{text[:40]}… ({len(text)} characters)",
                      i18n.gettext("{count} characters is too long; at most {most}").format(
                          count=len(text), most=max_length))
    if len(text) < min_length:
        raise _refuse(field, text, i18n.gettext("{count} characters is too short; at least {least}").format(
            count=len(text), least=min_length))
    for i, char in enumerate(text):
        if char in LINE_BREAKS:
            continue
        if char in BIDI_CONTROLS or unicodedata.category(char) in ("Cc", "Cs", "Co", "Cn"):
            raise _refuse(field, value, i18n.gettext(
                "{what} at position {position} is not allowed in text (control, bidirectional-override, private-use "
                "or unassigned character)").format(what=_describe(char), position=i + 1))
    return text


def storable(value: str) -> str | None:
    """Why the database cannot hold this text as it is (a NUL byte, an unpaired surrogate), or None."""
    if "\x00" in value:
        return i18n.gettext("a NUL (0x00) character")
    try:
        value.encode("utf-8")
    except UnicodeEncodeError as exc:
        return i18n.gettext("an unpaired surrogate ({character})").format(character=_describe(value[exc.start]))
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
                    raise Invalid(i18n.gettext("the request holds text with {problem}, which is not allowed in any "
                                               "field").format(problem=problem),
                                  [{"field": "(request)", "value": _shown(value),
                                    "message": i18n.gettext("contains {problem}").format(problem=problem)}])
