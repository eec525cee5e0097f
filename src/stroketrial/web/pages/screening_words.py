"""The screening and patient pages' words in the page's language: the arms' names, what a problem on each form
field is called, the definitions of the pre-stroke mRS grades, and a screening status in words."""

from __future__ import annotations

from typing import Any

from ... import i18n
from ...clinical import VARIABLES
from ...clinical.scales import MRS_GRADES, PrestrokeMRS
from ...protocol import Protocol
from ...service.accounts import Actor
from ..forms import FormField, screen_context, screening_labels
from .base import templates


def arm_words(protocol: Protocol) -> dict[str, str]:
    """Each arm's name in the page's language, by its id and by its English name (the pages show an allocation by
    either); in English the pages keep what they showed."""
    if i18n.current() == i18n.ENGLISH:
        return {}
    words = {}
    for arm in protocol.arms:
        words[arm.id] = words[arm.name] = i18n.protocol_text(arm, "name")
    return words


def screening_words(protocol: Protocol, fields: list[FormField]) -> dict[str, str]:
    """What a problem on each form name is called on screen, in the page's language (forms.screening_labels)."""
    return screening_labels(fields, protocol)


def grade_words(fields: list[FormField]) -> dict[str, list[tuple[int, str]]]:
    """The definition of each grade of a pre-stroke mRS field, shown under it as the follow-up mRS shows them."""
    return {f.name: [(grade, i18n.gettext(words)) for grade, words in MRS_GRADES.items()
                     if PrestrokeMRS.low <= grade <= PrestrokeMRS.high]
            for f in fields if getattr(VARIABLES.get(f.name), "scale", None) is PrestrokeMRS}


def screen_page_context(protocol: Protocol, fields: list[FormField], actor: Actor, sites: list[str]) -> dict[str, Any]:
    """forms.screen_context, with the words of the page's language and the grades' definitions."""
    return {**screen_context(protocol, fields, actor, sites), "labels": screening_words(protocol, fields),
            "grade_words": grade_words(fields)}


def status_words() -> dict[str, str]:
    """A screening's status (eligible, ineligible, incomplete) in words."""
    return {"eligible": i18n.gettext("eligible"), "ineligible": i18n.gettext("ineligible"),
            "incomplete": i18n.gettext("incomplete")}


# Words that come from data (a dictionary label, a unit's help, a choice): the catalog's translation, without the
# %-formatting that the templates' `_` applies (a help may say "%").
templates.env.globals["data_text"] = i18n.gettext
