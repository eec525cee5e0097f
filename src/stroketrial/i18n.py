"""The languages of the pages, messages, emails and PDFs: English (the source wording) and Simplified Chinese.

Translations live in gettext catalogs, `locale/<language>/*.po` (one file per part of the interface, so that
the pages, the data dictionary and the messages can be translated separately), read with Babel at first use;
the English text is the message id. The protocol's own wording (criteria, attestations, arms, visits) is
translated in the protocol file, beside the seed's words (`translations: {zh_Hans: {text: ...}}`), and read
with `protocol_text`.

The language of a request is set once per request (`use`, the web's LanguageMiddleware) in a context variable;
`gettext` reads it, so the core's messages need no language argument. A message without a translation is
shown in English (and the tests list it).
"""

from __future__ import annotations

import contextlib
import contextvars
from collections.abc import Iterator
from functools import cache
from pathlib import Path
from typing import Any

ENGLISH = "en"
CHINESE = "zh_Hans"
# The languages a user can choose, each named in itself (the language menu shows these words).
LANGUAGES: dict[str, str] = {ENGLISH: "English", CHINESE: "简体中文"}
# The BCP 47 tag of each language, for <html lang> and the browser.
TAGS: dict[str, str] = {ENGLISH: "en", CHINESE: "zh-Hans"}
CATALOGS = Path(__file__).parent / "locale"

_current: contextvars.ContextVar[str] = contextvars.ContextVar("stroketrial_language", default=ENGLISH)


def current() -> str:
    return _current.get()


def set_language(language: str) -> None:
    """This request's (this context's) language from now on; an unknown one is English."""
    _current.set(language if language in LANGUAGES else ENGLISH)


@contextlib.contextmanager
def use(language: str) -> Iterator[None]:
    """Within the block, messages are in `language` (an email to one recipient, a PDF for one site)."""
    token = _current.set(language if language in LANGUAGES else ENGLISH)
    try:
        yield
    finally:
        _current.reset(token)


@cache
def catalog(language: str) -> dict[str, Any]:
    """Every translated message of a language, from all its .po files: the English id to the translation (a
    string, or for a plural message a tuple by plural form). Fuzzy and empty translations are left out."""
    from babel.messages.pofile import read_po

    found: dict[str, Any] = {}
    folder = CATALOGS / language
    for path in sorted(folder.glob("*.po")) if folder.is_dir() else []:
        with path.open("rb") as handle:
            for message in read_po(handle, locale=language.replace("_Hans", "")):
                if not message.id or message.fuzzy:
                    continue
                key = message.id if isinstance(message.id, str) else message.id[0]
                if isinstance(message.string, str):
                    if message.string:
                        found[key] = message.string
                elif message.string and all(message.string):
                    found[key] = tuple(message.string)
    return found


def gettext(message: str) -> str:
    """The message in the current language (as it is where it has no translation)."""
    language = _current.get()
    if language == ENGLISH or not message:
        return message
    translated = catalog(language).get(message)
    return translated if isinstance(translated, str) else message


def ngettext(singular: str, plural: str, n: int) -> str:
    language = _current.get()
    if language != ENGLISH:
        translated = catalog(language).get(singular)
        if isinstance(translated, tuple):
            return translated[0]  # Chinese has one plural form
        if isinstance(translated, str):
            return translated
    return singular if n == 1 else plural


def has_translation(message: str, language: str = CHINESE) -> bool:
    return message in catalog(language)


def protocol_text(item: Any, attribute: str = "text") -> str:
    """A protocol part's wording in the current language: the translation the protocol file carries beside the
    seed's words (`translations: {zh_Hans: {text: ...}}`), else the catalog's, else the seed's own."""
    original = getattr(item, attribute, None)
    if original is None:
        return ""
    language = _current.get()
    if language == ENGLISH:
        return str(original)
    carried = (getattr(item, "translations", None) or {}).get(language) or {}
    if attribute in carried:
        return str(carried[attribute])
    return gettext(str(original))


def from_accept_language(header: str | None) -> str | None:
    """The first language of a browser's Accept-Language header that the platform has, by the header's
    weights: zh, zh-CN, zh-SG and zh-Hans are Simplified Chinese; zh-TW, zh-HK and zh-Hant are not offered."""
    if not header:
        return None
    ranked: list[tuple[float, int, str]] = []
    for position, part in enumerate(header.split(",")):
        tag, _, params = part.strip().partition(";")
        weight = 1.0
        if params.strip().startswith("q="):
            try:
                weight = float(params.strip()[2:])
            except ValueError:
                weight = 0.0
        if tag and weight > 0:
            ranked.append((-weight, position, tag.strip().lower()))
    for _weight, _position, tag in sorted(ranked):
        parts = tag.replace("_", "-").split("-")
        if parts[0] == "en":
            return ENGLISH
        if parts[0] == "zh" and not ({"tw", "hk", "mo", "hant"} & set(parts[1:])):
            return CHINESE
    return None


def choose(preferred: str | None, cookie: str | None, accept_language: str | None) -> str:
    """A request's language: the user's own choice, else the browser's remembered choice, else its languages."""
    for choice in (preferred, cookie):
        if choice in LANGUAGES:
            return str(choice)
    return from_accept_language(accept_language) or ENGLISH
