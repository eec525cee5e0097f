"""The screening and patient pages' words in the page's language: the arms' names, what a problem on each form
field is called, the definitions of the pre-stroke mRS grades, and a screening status in words."""

from __future__ import annotations

from typing import Any

from ... import i18n
from ...clinical import VARIABLES
from ...clinical.dictionary import format_number
from ...clinical.scales import MRS_GRADES, PrestrokeMRS
from ...protocol import Protocol
from ...service.accounts import Actor
from ..forms import FormField, _in_unit, screen_context, screening_labels
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
    """What a problem on each form name is called on screen (forms.screening_labels), in the page's language."""
    labels = {name: i18n.gettext(label) for name, label in screening_labels(fields, protocol).items()}
    labels.update({"patient_id": i18n.gettext("screening number"), "site": i18n.gettext("site"),
                   "reason": i18n.gettext("reason for the correction"), "form": i18n.gettext("form")})
    labels.update({f"attest_{c.id}": i18n.gettext("attestation: {question}").format(
        question=i18n.protocol_text(c, "attestation")) for c in protocol.criteria if c.attestation is not None})
    return labels


def grade_words(fields: list[FormField]) -> dict[str, list[tuple[int, str]]]:
    """The definition of each grade of a pre-stroke mRS field, shown under it as the follow-up mRS shows them."""
    return {f.name: [(grade, i18n.gettext(words)) for grade, words in MRS_GRADES.items()
                     if PrestrokeMRS.low <= grade <= PrestrokeMRS.high]
            for f in fields if getattr(VARIABLES.get(f.name), "scale", None) is PrestrokeMRS}


def field_help(f: FormField) -> str:
    """What a field takes, in the page's language (forms._help's words): no field codes, no JSON."""
    var = VARIABLES.get(f.name)
    if var is None or var.kind not in ("integer", "number", "score"):
        return {"flag": i18n.gettext("yes or no"), "category": i18n.gettext("choose one"),
                "grade": i18n.gettext("choose one"), "text": i18n.gettext("text")}.get(f.kind, i18n.gettext(f.help))
    low, high = var.bounds()
    unit = f" {i18n.gettext(var.unit)}" if var.unit else ""
    whole = var.kind in ("integer", "score")
    text = (i18n.gettext("a whole number from {low} to {high}") if whole
            else i18n.gettext("a number from {low} to {high}")).format(low=format_number(low), high=format_number(high))
    text += unit
    for other in var.alternate_units:
        lo, hi = (_in_unit(var, x, other) for x in (low, high))
        text += i18n.gettext(", or {low} to {high}").format(low=format_number(lo), high=format_number(hi)) + f" {other}"
    return text


def screen_page_context(protocol: Protocol, fields: list[FormField], actor: Actor, sites: list[str]) -> dict[str, Any]:
    """forms.screen_context, with the words of the page's language and the grades' definitions."""
    return {**screen_context(protocol, fields, actor, sites), "labels": screening_words(protocol, fields),
            "grade_words": grade_words(fields), "help_words": {f.name: field_help(f) for f in fields}}


def status_words() -> dict[str, str]:
    """A screening's status (eligible, ineligible, incomplete) in words."""
    return {"eligible": i18n.gettext("eligible"), "ineligible": i18n.gettext("ineligible"),
            "incomplete": i18n.gettext("incomplete")}


# Words that come from data (a dictionary label, a unit's help, a choice): the catalog's translation, without the
# %-formatting that the templates' `_` applies (a help may say "%").
templates.env.globals["data_text"] = i18n.gettext
