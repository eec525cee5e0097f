"""The words the pages show from data rather than from a template or a message: the data dictionary's labels,
units and help, the scales' grades, the follow-up forms' labels and choices, the safety forms' choices and the role
names. Each is translated through the catalogs like a template's text (`i18n.gettext`), so each must be in them;
this lists them for the catalogs' tests."""

from __future__ import annotations

import re

from ..clinical.assessments import ASSESSMENTS
from ..clinical.dictionary import VARIABLES
from ..clinical.scales import MRS_GRADES, LabelledEnum
from ..protocol import envelopes
from ..service import adverse_events, serious_adverse_events as sae, supply
from ..service.roles import PERMISSIONS, ROLES
from ..service.text import IDENTIFIER_RULE

# The choices every yes/no field shows (`label` filter, the forms).
YES_NO = ("yes", "no")
SAFETY_CHOICES = {
    "serious_adverse_events.py SAE_CRITERIA_LABELS": sae.SAE_CRITERIA_LABELS,
    "serious_adverse_events.py SAE_OUTCOME_LABELS": sae.SAE_OUTCOME_LABELS,
    "serious_adverse_events.py RELATEDNESS_LABELS": sae.RELATEDNESS_LABELS,
    "serious_adverse_events.py EXPECTEDNESS_LABELS": sae.EXPECTEDNESS_LABELS,
    "adverse_events.py AE_SEVERITY_LABELS": adverse_events.AE_SEVERITY_LABELS,
    "adverse_events.py AE_ACTION_LABELS": adverse_events.AE_ACTION_LABELS,
}


def unit_in_words(unit: str | None) -> bool:
    """Whether a unit holds words to translate ("years", "million cells"), not only symbols (kg, mmHg, µmol/L,
    mL/min/1.73m², /min), which read the same in Chinese."""
    return unit is not None and (" " in unit or re.fullmatch(r"[a-z]{4,}", unit) is not None)


def dictionary_messages() -> dict[str, str]:
    """Every such word, with where it comes from."""
    found: dict[str, str] = {}
    for role in ROLES:
        found.setdefault(role.replace("_", " "), "service/roles.py ROLES")
    for word in YES_NO:
        found.setdefault(word, "web/pages/base.py choice_label")
    for var in VARIABLES.values():
        where = f"clinical/dictionary.py {var.name}"
        found.setdefault(var.label, where)
        found.setdefault(var.description, where)
        if unit_in_words(var.unit):
            found.setdefault(str(var.unit), where)
        if isinstance(var.scale, type) and issubclass(var.scale, LabelledEnum):
            for member in var.scale:
                found.setdefault(member.label, f"clinical/scales.py {var.scale.__name__}")
    for words in MRS_GRADES.values():
        found.setdefault(words, "clinical/scales.py MRS_GRADES")
    for a in ASSESSMENTS.values():
        where = f"clinical/assessments.py {a.key}"
        found.setdefault(a.label, where)
        for words in a.choice_labels:
            found.setdefault(words, where)
        if unit_in_words(a.unit):
            found.setdefault(str(a.unit), where)
    for where, labels in SAFETY_CHOICES.items():
        for words in labels.values():
            found.setdefault(words, f"service/{where}")
    # A kit's status in the supply service's refusals and reconciliation (`supply.status_words`, and the status
    # itself in words where a discrepancy names it).
    for status, words in supply.STATUS_WORDS.items():
        found.setdefault(words, "service/supply.py STATUS_WORDS")
        found.setdefault(status.replace("_", " "), "service/supply.py reconciliation")
    # The platform's own envelope procedure, shown where a protocol does not word its own.
    found.setdefault(envelopes.PROCEDURE, "protocol/envelopes.py PROCEDURE")
    # What a refusal names: the operation a role may not do (accounts.Actor.require), the identifier rule.
    for operation in PERMISSIONS:
        found.setdefault(operation, "service/roles.py PERMISSIONS")
    found.setdefault(IDENTIFIER_RULE, "service/text.py IDENTIFIER_RULE")
    return found
