"""Screening and visit forms generated from the protocol and the data dictionaries.

A form shows exactly the variables the trial's criteria, randomization factors and
dose need, in the data dictionary's order, each with its unit beside it; labs that
sites report in another unit (creatinine, glucose; weight in lb) get a unit switch.
Submitted text is turned into a patient record strictly: a number field holding
"12a" is an error on that field, never a guess. Every message is for the person at
the form: the field's label, the value in the unit they typed, never a field's code.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any
from zoneinfo import ZoneInfo

from .. import i18n
from ..clinical import VARIABLES, FieldError, PatientDataError, parse_patient, units
from ..clinical.assessments import ASSESSMENTS
from ..clinical.dictionary import Variable, format_number
from ..clinical.scales import MRS_GRADES
from ..eligibility import ScreeningInputError, ScreeningResult, screen
from ..protocol import Protocol
from ..service.accounts import Actor
from ..service.clock import future_times

UNIT_SUFFIX = "__unit"
ATTEST_PREFIX = "attest_"


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
    needed_to_randomize: bool = False  # a randomization factor reads it: required before the patient can be randomized
    bounds: tuple[float, float] | None = None  # the allowed range in the canonical unit (numbers)
    quantity: str | None = None  # for a unit switch: the quantity units.py converts

    def label_of(self, choice: str) -> str:
        return dict(zip(self.choices, self.choice_labels, strict=False)).get(choice, choice)


def _help(var: Variable) -> str:
    """What the field takes, in words: no field codes, no JSON."""
    _ = i18n.gettext
    if var.kind == "flag":
        return _("yes or no")
    if var.kind in ("category", "grade"):
        return _("choose one")
    if var.kind == "timestamp":
        return _("date and time as the hospital clock shows it")
    if var.kind == "text":
        return _("text")
    low, high = var.bounds()
    whole = _("a whole number from {low} to {high}") if var.kind in ("integer", "score") else \
        _("a number from {low} to {high}")
    text = whole.format(low=format_number(low), high=format_number(high)) + (f" {_(var.unit)}" if var.unit else "")
    for unit in var.alternate_units:
        lo, hi = (_in_unit(var, x, unit) for x in (low, high))
        text += _(", or {low} to {high} {unit}").format(low=format_number(lo), high=format_number(hi), unit=unit)
    return text


def _in_unit(var: Variable, canonical_value: float, unit: str) -> float:
    return float(f"{canonical_value / units.factor(var.conversion()[1], unit):.3g}")


def _field_for(name: str, used_by: tuple[str, ...], needed_to_randomize: bool = False) -> FormField:
    var = VARIABLES[name]
    kind = {"score": "integer"}.get(var.kind, var.kind)
    members = list(var.enum_scale()) if var.kind in ("category", "grade") else []
    units_ = (var.unit, *var.alternate_units) if var.unit is not None and var.alternate_units else ()
    numeric = var.kind in ("integer", "number", "score") and var.low is not None and var.high is not None
    return FormField(name, var.label, kind, var.unit, units_, tuple(m.value for m in members), _help(var), used_by,
                     tuple(m.label for m in members), needed_to_randomize,
                     var.bounds() if numeric else None, var.quantity if units_ else None)


def randomization_field_names(protocol: Protocol) -> list[str]:
    """The record's fields the allocation reads: each randomization factor's variable (the site excluded: it comes
    from the registration), or the two clock times a time-interval factor is derived from."""
    if protocol.randomization is None:
        return []
    names: list[str] = []
    for factor in protocol.randomization.factors:
        if factor.field == "site":
            continue
        var = VARIABLES[factor.field]
        for name in var.derived_from or (factor.field,):
            if name not in names:
                names.append(name)
    return names


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
                for real in (VARIABLES[factor.field].derived_from or (factor.field,)):
                    used.setdefault(real, []).append(f"randomization factor {factor.name}")
    for intervention in protocol.interventions:
        if any(step.per_kg for step in intervention.steps):
            used.setdefault("weight_kg", []).append("weight-based dose")
    if protocol.randomization is not None:
        used.setdefault("randomization", []).append("time of randomization")
    needed = set(randomization_field_names(protocol))
    return [_field_for(name, tuple(used[name]), name in needed) for name in VARIABLES if name in used]


def missing_for_randomization(protocol: Protocol, data: Mapping[str, Any]) -> list[FormField]:
    """The fields randomization needs that `data` (a stored record, or a form's parsed data) does not hold."""
    return [_field_for(name, (), True) for name in randomization_field_names(protocol) if data.get(name) is None]


def screening_labels(fields: list[FormField], protocol: Protocol) -> dict[str, str]:
    """What a problem on each form name is called on screen."""
    _ = i18n.gettext
    labels = {"patient_id": _("screening number"), "site": _("site"), "reason": _("reason for the correction"),
              "form": _("form")}
    labels.update({f.name: _(f.label) for f in fields})
    labels.update({ATTEST_PREFIX + c.id: _("attestation: {question}").format(
        question=i18n.protocol_text(c, "attestation")) for c in protocol.criteria if c.attestation is not None})
    return labels


def in_words(message: str) -> str:
    """A message from the record's validation with each field's code replaced by its label."""
    for name in sorted(VARIABLES, key=len, reverse=True):
        if name in message:
            message = re.sub(rf"\b{re.escape(name)}\b", i18n.gettext(VARIABLES[name].label), message)
    return message


def parse_screening_form(fields: list[FormField], form: Mapping[str, Any],
                         attestation_ids: list[str]) -> tuple[dict[str, Any], dict[str, bool], dict[str, str]]:
    """(patient data, attestations, errors by field) from submitted form text; every problem at once, a value out
    of range said in the unit it was typed in."""
    data, errors = parse_visit_form(fields, form)
    for f in fields:
        if f.name not in data:
            continue
        value = data[f.name]
        unit = str(form.get(f.name + UNIT_SUFFIX, "") or "")
        if f.units and unit and unit != f.unit:
            if unit not in f.units:
                errors[f.name] = i18n.gettext("unit {unit} is not one of {units}").format(
                    unit=repr(unit), units=", ".join(f.units))
                del data[f.name]
                continue
            data[f.name] = {"value": value, "unit": unit}
        if (problem := _out_of_range(f, value, unit or f.unit)) is not None:
            errors[f.name] = problem
            del data[f.name]
    attestations = {}
    for criterion_id in attestation_ids:
        raw = str(form.get(f"{ATTEST_PREFIX}{criterion_id}", "") or "")
        if raw in ("yes", "no"):
            attestations[criterion_id] = raw == "yes"
        elif raw:
            errors[f"{ATTEST_PREFIX}{criterion_id}"] = i18n.gettext("answer yes or no")
    return data, attestations, errors


def form_values(fields: list[FormField], data: Mapping[str, Any], zone: dt.tzinfo | None = None) -> dict[str, str]:
    """A stored record as the form's text (the inverse of parse_screening_form): what a correction form is prefilled
    with. A lab stored in the unit it was entered in keeps that unit; a clock time stored with a zone is shown on the
    site's wall clock."""
    values: dict[str, str] = {}
    for f in fields:
        stored = data.get(f.name)
        if stored is None:
            continue
        if isinstance(stored, Mapping):
            values[f.name + UNIT_SUFFIX] = str(stored.get("unit", ""))
            stored = stored.get("value")
        if f.kind == "flag":
            values[f.name] = "yes" if stored else "no"
        elif f.kind == "timestamp":
            moment = dt.datetime.fromisoformat(str(stored))
            if moment.tzinfo is not None and zone is not None:
                moment = moment.astimezone(zone).replace(tzinfo=None)
            values[f.name] = moment.isoformat(timespec="minutes")
        elif isinstance(stored, float):
            values[f.name] = str(int(stored)) if stored.is_integer() else repr(stored)
        else:
            values[f.name] = str(stored)
    for criterion_id, answer in (data.get("attestations") or {}).items():
        values[ATTEST_PREFIX + criterion_id] = "yes" if answer else "no"
    return values


def _out_of_range(f: FormField, value: Any, unit: str | None) -> str | None:
    """A number outside the variable's range, in the unit typed, with the unit it would fit if the switch is wrong."""
    if f.bounds is None or not isinstance(value, (int, float)) or isinstance(value, bool):
        return None
    low, high = f.bounds

    def canonical(x: float, in_unit: str | None) -> float:
        return x if not f.quantity or not in_unit or in_unit == f.unit else units.to_canonical(f.quantity, x, in_unit)

    if low <= canonical(value, unit) <= high:
        return None
    shown = f"{format_number(value)}{f' {unit}' if unit else ''}"

    def bound(x: float) -> str:
        if not f.quantity or not unit or unit == f.unit:
            return format_number(x)
        return format_number(float(f"{x / units.factor(f.quantity, unit):.3g}"))

    message = i18n.gettext("{value} is out of range: {label} is from {low} to {high}").format(
        value=shown, label=i18n.gettext(f.label), low=bound(low), high=bound(high)) + (f" {unit}" if unit else "")
    fits = [u for u in f.units if u != unit and low <= canonical(value, u) <= high]
    if fits:
        message += i18n.gettext("; is the unit right? {value} {unit} would be in range").format(
            value=format_number(value), unit=fits[0])
    return message


def _convert(f: FormField, raw: str) -> tuple[Any, str | None]:
    if f.kind == "integer":
        try:
            return int(raw), None
        except ValueError:
            return None, i18n.gettext("{value} is not a whole number; {help}").format(value=repr(raw), help=f.help)
    if f.kind == "number":
        try:
            value = float(raw)
            if value != value or value in (float("inf"), float("-inf")):
                raise ValueError
            return value, None
        except ValueError:
            return None, i18n.gettext("{value} is not a number; {help}").format(value=repr(raw), help=f.help)
    if f.kind == "flag":
        if raw not in ("yes", "no"):
            return None, i18n.gettext("answer yes or no")
        return raw == "yes", None
    if f.kind in ("category", "grade") and raw not in f.choices:
        return None, i18n.gettext("{value} is not one of {choices}").format(
            value=repr(raw), choices=", ".join(i18n.gettext(f.label_of(c)) for c in f.choices))
    return raw, None


def visit_fields(assessments: list[str]) -> list[FormField]:
    out = []
    for key in assessments:
        a = ASSESSMENTS.get(key)
        if a is None:
            continue
        kind = {"grade": "category"}.get(a.kind, a.kind)
        choices = a.choices if a.kind != "grade" else tuple(m.value for m in VARIABLES["etici"].grade_scale())
        labels = a.choice_labels if a.kind != "grade" else tuple(m.label for m in VARIABLES["etici"].grade_scale())
        help_ = a.allowed() if key != "mrs" else "; ".join(f"{grade} {i18n.gettext(words)}"
                                                          for grade, words in MRS_GRADES.items())
        out.append(FormField(key, a.label, kind, a.unit, (), choices, help_, choice_labels=labels))
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


@dataclass(frozen=True)
class ScreeningCheck:
    """A screening form checked as a whole: the record without its invalid fields, every problem by form name (in
    words), the screen of the rest, the fields it waits on, and what randomization still needs."""

    data: dict[str, Any]
    attestations: dict[str, bool]
    errors: dict[str, str]
    result: ScreeningResult | None
    waiting: dict[str, list[str]]  # criterion id -> labels of the invalid fields it waits on
    needed_to_randomize: list[FormField]


def check_screening(protocol: Protocol, fields: list[FormField], form: Mapping[str, Any],
                    zone: ZoneInfo | None = None) -> ScreeningCheck:
    """Check every field, set aside the invalid ones, and screen the rest: one typing error never blanks the
    eligibility panel, and every problem is listed at once."""
    attestation_ids = [c.id for c in protocol.criteria if c.attestation is not None]
    data, attestations, errors = parse_screening_form(fields, form, attestation_ids)
    result = None
    for _ in range(len(data) + len(attestations) + 2):
        document: dict[str, Any] = {**data, "attestations": attestations} if attestations else dict(data)
        try:
            record = parse_patient(document)
            late = future_times(record.values, zone) if zone is not None else []
            if late:
                raise PatientDataError([FieldError(e["field"], e["value"], e["message"]) for e in late])
            result = screen(protocol, record)
            break
        except (PatientDataError, ScreeningInputError) as exc:
            set_aside = False
            for e in exc.errors:
                if e.field.startswith("attestations."):
                    key = e.field.removeprefix("attestations.")
                    set_aside |= attestations.pop(key, None) is not None
                    errors[ATTEST_PREFIX + key] = in_words(e.message)
                elif e.field in data:
                    del data[e.field]
                    errors[e.field] = in_words(e.message)
                    set_aside = True
                else:
                    errors.setdefault(e.field, in_words(e.message))
            if not set_aside:
                break
    invalid = {name for name in errors if name in VARIABLES}
    waiting: dict[str, list[str]] = {}
    for criterion in protocol.criteria:
        reads = {real for name in criterion.fields() for real in (VARIABLES[name].derived_from or (name,))}
        if reads & invalid:
            waiting[criterion.id] = [i18n.gettext(VARIABLES[name].label) for name in sorted(reads & invalid)]
    return ScreeningCheck(data, attestations, errors, result, waiting, missing_for_randomization(protocol, data))


def screen_context(protocol: Protocol, fields: list[FormField], actor: Actor, sites: list[str]) -> dict[str, Any]:
    """What the screening form's templates need (screen.html, screening_correct.html)."""
    return {"protocol": protocol, "fields": fields, "unit_suffix": UNIT_SUFFIX,
            "attestations": [c for c in protocol.criteria if c.attestation is not None],
            "labels": screening_labels(fields, protocol),
            "sites": [s for s in sites if actor.can_see_site(s)]}


def check_context(checked: ScreeningCheck) -> dict[str, Any]:
    """The live panel's part of a page: the screen of the valid fields, what they wait on, what randomization needs."""
    return {"result": checked.result, "waiting": checked.waiting,
            "needed_to_randomize": checked.needed_to_randomize if checked.result is not None
            and checked.result.status != "ineligible" else []}


def require_randomization_fields(checked: ScreeningCheck) -> None:
    """A patient not already excluded is registered with every field randomization reads (a blank one would leave an
    otherwise eligible patient impossible to randomize); the problem is said on the field itself."""
    if checked.result is not None and checked.result.status == "ineligible":
        return
    for f in checked.needed_to_randomize:
        checked.errors.setdefault(f.name, i18n.gettext("required: randomization needs it"))
