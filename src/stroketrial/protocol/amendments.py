"""A protocol amendment checked against the version in force: what changes (criteria, visits and their forms,
endpoints and the analysis plan, dosing), and what an amendment may not change in a running trial.

An amendment may change eligibility, the visit schedule and its forms, endpoints, the analysis plan, doses,
consent (routes, form versions), edit checks, the reference safety information and the text. It may not change
the trial's identity, its arms, how patients are allocated (randomization method, ratio, factors) or its
masking: patients already allocated were allocated under those, and a change there is a new trial, not an
amendment.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from .. import i18n
from .model import Protocol


def _(message: str) -> str:
    """Marks a message for the catalogs (locale/zh_Hans/management.po); it is translated where it is shown."""
    return message


# A line of the changes: its English, stored with the amendment, and the catalog message it is worded from.
KIND_LINES = {kind: (added, removed, changed) for kind, added, removed, changed in (
    ("criterion", _("criterion {id} added"), _("criterion {id} removed"), _("criterion {id} changed ({fields})")),
    ("visit", _("visit {id} added"), _("visit {id} removed"), _("visit {id} changed ({fields})")),
    ("endpoint", _("endpoint {id} added"), _("endpoint {id} removed"), _("endpoint {id} changed ({fields})")),
    ("intervention", _("intervention {id} added"), _("intervention {id} removed"),
     _("intervention {id} changed ({fields})")),
    ("check", _("check {id} added"), _("check {id} removed"), _("check {id} changed ({fields})")),
)}
FIELD_CHANGED = _("{field} changed")
EXPECTED_EVENTS_CHANGED = _("expected events changed")
PARTS = (_("eligibility"), _("visits and forms"), _("endpoints"), _("interventions and doses"), _("analysis plan"),
         _("dose escalation"), _("consent"), _("edit checks"), _("reference safety information"), _("other"))


@dataclass(frozen=True)
class Line:
    """One line of the changes: a catalog message with named placeholders and its values; `str` is the English."""

    text: str
    values: dict[str, str] = field(default_factory=dict)

    def __str__(self) -> str:
        return self.text.format(**self.values)

    def in_words(self) -> str:
        """The line in the current language (ids and field names stay as they are)."""
        return i18n.gettext(self.text).format(**self.values)


class AmendmentRefused(ValueError):
    """What the amendment may not change, each named."""

    def __init__(self, problems: Sequence[str]):
        super().__init__("; ".join(problems))
        self.problems = list(problems)


@dataclass(frozen=True)
class Changes:
    """What the amendment changes, part by part: each a list of lines a trialist reads."""

    parts: dict[str, list[Line]] = field(default_factory=dict)

    @property
    def empty(self) -> bool:
        return not any(self.parts.values())

    def to_json(self) -> dict[str, Any]:
        return {part: [str(line) for line in lines] for part, lines in self.parts.items() if lines}

    def lines(self) -> list[str]:
        return [f"{part}: {line}" for part, lines in self.parts.items() for line in lines]

    def in_words(self) -> dict[str, list[str]]:
        """The changes in the current language, part by part (as `to_json`, translated)."""
        return {i18n.gettext(part): [line.in_words() for line in lines] for part, lines in self.parts.items()
                if lines}


def _by_id(items: Sequence[Any]) -> dict[str, dict[str, Any]]:
    return {item.id: item.model_dump(mode="json", exclude_none=True) for item in items}


def _compare(kind: str, old: dict[str, dict[str, Any]], new: dict[str, dict[str, Any]]) -> list[Line]:
    added, removed, changed = KIND_LINES[kind]
    lines = [Line(added, {"id": i}) for i in new if i not in old]
    lines += [Line(removed, {"id": i}) for i in old if i not in new]
    for i in old.keys() & new.keys():
        if old[i] != new[i]:
            keys = sorted(k for k in old[i].keys() | new[i].keys() if old[i].get(k) != new[i].get(k))
            lines.append(Line(changed, {"id": i, "fields": ", ".join(keys)}))
    return sorted(lines, key=lambda line: line.values["id"])


def _changed(keys: Sequence[str]) -> list[Line]:
    return [Line(FIELD_CHANGED, {"field": k}) for k in keys]


def refusals(old: Protocol, new: Protocol) -> list[str]:
    problems = []
    if new.id != old.id:
        problems.append(f"the protocol's id is {new.id!r}, not {old.id!r}: an amendment is of the same trial")
    arms = [(a.id, a.ratio) for a in old.arms], [(a.id, a.ratio) for a in new.arms]
    if arms[0] != arms[1]:
        problems.append(f"the arms change ({arms[0]} to {arms[1]}); patients were allocated to the arms in force")
    if (old.randomization is None) != (new.randomization is None) or (
            old.randomization is not None and new.randomization is not None
            and old.randomization.model_dump() != new.randomization.model_dump()):
        problems.append("the randomization changes (method, factors or lists): patients were allocated under it")
    if new.design.masking != old.design.masking:
        problems.append(f"the masking changes ({old.design.masking} to {new.design.masking})")
    return problems


def compare(old: Protocol, new: Protocol) -> Changes:
    """What changes from `old` to `new`; AmendmentRefused when the amendment may not be made."""
    problems = refusals(old, new)
    if problems:
        raise AmendmentRefused(problems)
    parts: dict[str, list[Line]] = {
        "eligibility": _compare("criterion", _by_id(old.criteria), _by_id(new.criteria)),
        "visits and forms": _compare("visit", _by_id(old.visits), _by_id(new.visits)),
        "endpoints": _compare("endpoint", _by_id(old.endpoints), _by_id(new.endpoints)),
        "interventions and doses": _compare("intervention", _by_id(old.interventions), _by_id(new.interventions)),
    }
    plans = [p.analysis_plan.model_dump(mode="json") if p.analysis_plan else {} for p in (old, new)]
    parts["analysis plan"] = _changed([k for k in sorted(plans[0].keys() | plans[1].keys())
                                       if plans[0].get(k) != plans[1].get(k)])
    escalations = [p.dose_escalation.model_dump(mode="json") if p.dose_escalation else {} for p in (old, new)]
    parts["dose escalation"] = _changed([k for k in sorted(escalations[0].keys() | escalations[1].keys())
                                         if escalations[0].get(k) != escalations[1].get(k)])
    consents = [p.consent.model_dump(mode="json") if p.consent else {} for p in (old, new)]
    parts["consent"] = _changed([k for k in sorted(consents[0].keys() | consents[1].keys())
                                 if consents[0].get(k) != consents[1].get(k)])
    parts["edit checks"] = _compare("check", _by_id(old.edit_checks), _by_id(new.edit_checks))
    safety = [[e.model_dump(mode="json") for e in p.reference_safety_information] for p in (old, new)]
    parts["reference safety information"] = [Line(EXPECTED_EVENTS_CHANGED)] if safety[0] != safety[1] else []
    rest = [k for k in ("title", "population", "sample_size", "sponsor", "phase", "etici_2b_accepted")
            if getattr(old, k) != getattr(new, k)]
    parts["other"] = _changed(rest)
    return Changes(parts)
