"""One patient's screening record, parsed strictly from a JSON-like mapping."""

from __future__ import annotations

from .. import InputError, i18n

import datetime as dt
import enum
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any
from collections.abc import Mapping

from . import units
from .dictionary import INTERVALS, VARIABLES, Variable, field_called
from .scales import ClinicalValueError, Score

ATTESTATIONS_KEY = "attestations"


@dataclass(frozen=True)
class FieldError:
    field: str
    value: Any
    message: str

    def __str__(self) -> str:
        return f"{self.field}: {self.message}"


class PatientDataError(InputError):
    """Everything wrong with a patient record, each naming field, value and what is allowed."""

    def __init__(self, errors: list[FieldError]):
        self.errors = errors
        super().__init__("; ".join(str(e) for e in errors))


@dataclass(frozen=True)
class PatientRecord:
    """Typed, validated values (canonical units) with the derived time intervals."""

    values: Mapping[str, Any] = field(default_factory=dict)
    attestations: Mapping[str, bool] = field(default_factory=dict)
    # The unit a lab value was entered in, where it is not the canonical one (glucose in mg/dL): a
    # criterion the protocol states in that unit too is then compared at that unit's threshold.
    entered_units: Mapping[str, str] = field(default_factory=dict)

    def __getitem__(self, name: str) -> Any:
        return self.values.get(name)

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for name, value in self.values.items():
            if VARIABLES[name].kind == "interval":
                continue
            if isinstance(value, dt.datetime):
                out[name] = value.isoformat()
            elif isinstance(value, enum.Enum):
                out[name] = value.value
            elif isinstance(value, Score):
                out[name] = int(value)
            elif name in self.entered_units:
                # as entered, so the record read back compares at the same unit's threshold; rounded to undo the
                # float round trip (50 mg/dL -> mmol/L -> 50.000000000000007)
                unit = self.entered_units[name]
                quantity = VARIABLES[name].conversion()[1]
                out[name] = {"value": round(value / units.factor(quantity, unit), 9), "unit": unit}
            else:
                out[name] = value
        if self.attestations:
            out[ATTESTATIONS_KEY] = dict(self.attestations)
        return out


def parse_patient(data: Mapping[str, Any]) -> PatientRecord:
    """Validate a patient record; raises PatientDataError listing every problem.

    Unknown keys are refused (a misspelt "nihs" must not silently vanish), a null
    means "not recorded", and no value is coerced from another type.
    """
    if not isinstance(data, Mapping):
        raise PatientDataError([FieldError("(record)", data, i18n.gettext(
            "a patient record is a JSON object of field: value"))])
    errors: list[FieldError] = []
    values: dict[str, Any] = {}
    attestations: dict[str, bool] = {}
    entered_units: dict[str, str] = {}
    for key, raw in data.items():
        if key == ATTESTATIONS_KEY:
            attestations = _parse_attestations(raw, errors)
            continue
        var = VARIABLES.get(key)
        if var is None:
            errors.append(FieldError(key, raw, i18n.gettext("unknown field {name}; {hint}").format(
                name=repr(key), hint=_closest_hint(key))))
            continue
        if raw is None:
            continue
        try:
            values[key] = var.parse(raw)
        except ClinicalValueError as exc:
            errors.append(FieldError(key, raw, str(exc)))
            continue
        if isinstance(raw, Mapping) and var.unit is not None:
            unit = units.normalise_unit(raw["unit"])
            if unit is not None and unit != var.conversion()[0]:
                entered_units[key] = unit
    for interval in INTERVALS:
        _derive_interval(interval, values, errors)
    if errors:
        raise PatientDataError(errors)
    return PatientRecord(MappingProxyType(values), MappingProxyType(attestations), MappingProxyType(entered_units))


def _parse_attestations(raw: Any, errors: list[FieldError]) -> dict[str, bool]:
    if not isinstance(raw, Mapping):
        errors.append(FieldError(ATTESTATIONS_KEY, raw, i18n.gettext(
            "attestations is an object of criterion id: true/false")))
        return {}
    out = {}
    for key, answer in raw.items():
        if not isinstance(answer, bool) and answer is not None:
            errors.append(FieldError(f"{ATTESTATIONS_KEY}.{key}", answer, i18n.gettext(
                "{value} is not allowed; an attestation is answered true (the statement applies) or "
                "false").format(value=repr(answer))))
        elif answer is not None:
            out[str(key)] = answer
    return out


def _derive_interval(interval: Variable, values: dict[str, Any], errors: list[FieldError]) -> None:
    start_name, end_name = interval.interval_ends()
    start, end = values.get(start_name), values.get(end_name)
    if start is None or end is None:
        return
    if (start.tzinfo is None) != (end.tzinfo is None):
        errors.append(FieldError(end_name, end.isoformat(), i18n.gettext(
            "{end} and {start} must both carry a time zone, or neither").format(
                end=field_called(end_name), start=field_called(start_name))))
        return
    hours = (end - start).total_seconds() / 3600
    if hours < 0:
        errors.append(FieldError(end_name, end.isoformat(), i18n.gettext(
            "{end} {end_time} is before {start} {start_time}").format(
                end=field_called(end_name), end_time=end.isoformat(), start=field_called(start_name),
                start_time=start.isoformat())))
        return
    values[interval.name] = hours * 60 if interval.unit == "min" else hours


def _closest_hint(key: str) -> str:
    import difflib

    names = [n for n, v in VARIABLES.items() if v.kind != "interval"]
    close = difflib.get_close_matches(key, names, n=1)
    if close:
        return i18n.gettext("did you mean {name}?").format(name=repr(close[0]))
    return i18n.gettext("see `stroketrial dictionary` for the allowed fields")
