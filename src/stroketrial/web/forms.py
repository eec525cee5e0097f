"""Screening and visit forms generated from the protocol and the data dictionaries.

A form shows exactly the variables the trial's criteria, randomization factors and
dose need, in the data dictionary's order, each with its unit beside it; labs that
sites report in another unit (creatinine, glucose; weight in lb) get a unit switch.
Submitted text is turned into a patient record strictly: a number field holding
"12a" is an error on that field, never a guess.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any
from collections.abc import Mapping

from ..clinical import VARIABLES
from ..clinical.assessments import ASSESSMENTS
from ..protocol import Protocol

UNIT_SUFFIX = "__unit"


@dataclass(frozen=True)
class FormField:
    name: str
    label: str
    kind: str  # integer, number, flag, category, grade, timestamp, text
    unit: str | None = None
    units: tuple[str, ...] = ()
    choices: tuple[str, ...] = ()
    help: str = ""
    used_by: tuple[str, ...] = field(default_factory=tuple)
    choice_labels: tuple[str, ...] = ()  # what the form shows for each choice (the value sent is the choice)

    def label_of(self, choice: str) -> str:
        return dict(zip(self.choices, self.choice_labels, strict=False)).get(choice, choice)


def _field_for(name: str, used_by: tuple[str, ...]) -> FormField:
    var = VARIABLES[name]
    kind = {"score": "integer"}.get(var.kind, var.kind)
    choices = tuple(m.value for m in var.enum_scale()) if var.kind in ("category", "grade") else ()
    units = (var.unit, *var.alternate_units) if var.unit is not None and var.alternate_units else ()
    return FormField(name, var.label, kind, var.unit, units, choices, var.allowed(), used_by)


def screening_fields(protocol: Protocol) -> list[FormField]:
    """The variables this trial's screening needs, in dictionary order."""
    used: dict[str, list[str]] = {}
    for criterion in protocol.criteria:
        for name in criterion.fields():
            var = VARIABLES[name]
            for real in (var.derived_from or (name,)):
                used.setdefault(real, []).append(criterion.id)
    if protocol.randomization is not None:
        for factor in protocol.randomization.factors:
            if factor.field != "site":
                used.setdefault(factor.field, []).append(f"randomization factor {factor.name}")
    for intervention in protocol.interventions:
        if any(step.per_kg for step in intervention.steps):
            used.setdefault("weight_kg", []).append("weight-based dose")
    if protocol.randomization is not None:
        used.setdefault("randomization", []).append("time of randomization")
    return [_field_for(name, tuple(used[name])) for name in VARIABLES if name in used]


def parse_screening_form(fields: list[FormField], form: Mapping[str, Any],
                         attestation_ids: list[str]) -> tuple[dict[str, Any], dict[str, bool], dict[str, str]]:
    """(patient data, attestations, errors by field) from submitted form text."""
    data, errors = parse_visit_form(fields, form)
    for f in fields:
        if f.name not in data:
            continue
        value = data[f.name]
        unit = str(form.get(f.name + UNIT_SUFFIX, "") or "")
        if f.units and unit and unit != f.unit:
            if unit not in f.units:
                errors[f.name] = f"unit {unit!r} is not one of {', '.join(f.units)}"
                del data[f.name]
                continue
            data[f.name] = {"value": value, "unit": unit}
    attestations = {}
    for criterion_id in attestation_ids:
        raw = str(form.get(f"attest_{criterion_id}", "") or "")
        if raw in ("yes", "no"):
            attestations[criterion_id] = raw == "yes"
        elif raw:
            errors[f"attest_{criterion_id}"] = "answer yes or no"
    return data, attestations, errors


def _convert(f: FormField, raw: str) -> tuple[Any, str | None]:
    if f.kind == "integer":
        try:
            return int(raw), None
        except ValueError:
            return None, f"{raw!r} is not a whole number; {f.help}"
    if f.kind == "number":
        try:
            value = float(raw)
            if value != value or value in (float("inf"), float("-inf")):
                raise ValueError
            return value, None
        except ValueError:
            return None, f"{raw!r} is not a number; {f.help}"
    if f.kind == "flag":
        if raw not in ("yes", "no"):
            return None, "answer yes or no"
        return raw == "yes", None
    if f.kind in ("category", "grade") and raw not in f.choices:
        return None, f"{raw!r} is not one of {', '.join(f.choices)}"
    return raw, None


def visit_fields(assessments: list[str]) -> list[FormField]:
    out = []
    for key in assessments:
        a = ASSESSMENTS.get(key)
        if a is None:
            continue
        kind = {"grade": "category"}.get(a.kind, a.kind)
        choices = a.choices if a.kind != "grade" else tuple(m.value for m in VARIABLES["etici"].grade_scale())
        out.append(FormField(key, a.label, kind, a.unit, (), choices, a.allowed(), choice_labels=a.choice_labels))
    return out


def parse_visit_form(fields: list[FormField], form: Mapping[str, Any]) -> tuple[dict[str, Any], dict[str, str]]:
    """(values, errors by field) for plain fields; blank means not recorded."""
    values: dict[str, Any] = {}
    errors: dict[str, str] = {}
    for f in fields:
        raw = str(form.get(f.name, "") or "").strip()
        if not raw:
            continue
        value, error = _convert(f, raw)
        if error:
            errors[f.name] = error
        else:
            values[f.name] = value
    return values, errors
