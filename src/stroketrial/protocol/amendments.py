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

from .model import Protocol


class AmendmentRefused(ValueError):
    """What the amendment may not change, each named."""

    def __init__(self, problems: Sequence[str]):
        super().__init__("; ".join(problems))
        self.problems = list(problems)


@dataclass(frozen=True)
class Changes:
    """What the amendment changes, part by part: each a list of lines a trialist reads."""

    parts: dict[str, list[str]] = field(default_factory=dict)

    @property
    def empty(self) -> bool:
        return not any(self.parts.values())

    def to_json(self) -> dict[str, Any]:
        return {part: lines for part, lines in self.parts.items() if lines}

    def lines(self) -> list[str]:
        return [f"{part}: {line}" for part, lines in self.parts.items() for line in lines]


def _by_id(items: Sequence[Any]) -> dict[str, dict[str, Any]]:
    return {item.id: item.model_dump(mode="json", exclude_none=True) for item in items}


def _compare(kind: str, old: dict[str, dict[str, Any]], new: dict[str, dict[str, Any]]) -> list[str]:
    lines = [f"{kind} {i} added" for i in new if i not in old]
    lines += [f"{kind} {i} removed" for i in old if i not in new]
    for i in old.keys() & new.keys():
        if old[i] != new[i]:
            keys = sorted(k for k in old[i].keys() | new[i].keys() if old[i].get(k) != new[i].get(k))
            lines.append(f"{kind} {i} changed ({', '.join(keys)})")
    return sorted(lines, key=lambda line: line.split(" ")[1])


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
    parts: dict[str, list[str]] = {
        "eligibility": _compare("criterion", _by_id(old.criteria), _by_id(new.criteria)),
        "visits and forms": _compare("visit", _by_id(old.visits), _by_id(new.visits)),
        "endpoints": _compare("endpoint", _by_id(old.endpoints), _by_id(new.endpoints)),
        "interventions and doses": _compare("intervention", _by_id(old.interventions), _by_id(new.interventions)),
    }
    plans = [p.analysis_plan.model_dump(mode="json") if p.analysis_plan else {} for p in (old, new)]
    parts["analysis plan"] = [f"{k} changed" for k in sorted(plans[0].keys() | plans[1].keys())
                              if plans[0].get(k) != plans[1].get(k)]
    escalations = [p.dose_escalation.model_dump(mode="json") if p.dose_escalation else {} for p in (old, new)]
    parts["dose escalation"] = [f"{k} changed" for k in sorted(escalations[0].keys() | escalations[1].keys())
                                if escalations[0].get(k) != escalations[1].get(k)]
    consents = [p.consent.model_dump(mode="json") if p.consent else {} for p in (old, new)]
    parts["consent"] = [f"{k} changed" for k in sorted(consents[0].keys() | consents[1].keys())
                        if consents[0].get(k) != consents[1].get(k)]
    parts["edit checks"] = _compare("check", _by_id(old.edit_checks), _by_id(new.edit_checks))
    safety = [[e.model_dump(mode="json") for e in p.reference_safety_information] for p in (old, new)]
    parts["reference safety information"] = ["expected events changed"] if safety[0] != safety[1] else []
    rest = [k for k in ("title", "population", "sample_size", "sponsor", "phase", "etici_2b_accepted")
            if getattr(old, k) != getattr(new, k)]
    parts["other"] = [f"{k} changed" for k in rest]
    return Changes(parts)
