"""Follow-up assessments: what each visit's form may hold, with types and valid ranges.

The protocol's visit schedule names assessments by these keys (`mrs`, `sich`,
`infarct_volume_ml`, ...). Values are checked strictly: a string is not a number, a
number is not yes/no, and a value out of range is refused with the range.
"""

from __future__ import annotations

from .. import InputError

from dataclasses import dataclass
from typing import Any
from collections.abc import Mapping

from .record import FieldError
from .scales import ETICI, ClinicalValueError


@dataclass(frozen=True)
class Assessment:
    key: str
    label: str
    kind: str  # integer, number, flag, category, grade
    low: float | None = None
    high: float | None = None
    step: int | None = None
    unit: str | None = None
    choices: tuple[str, ...] = ()

    def allowed(self) -> str:
        if self.kind == "flag":
            return f"{self.label} is true or false"
        if self.kind == "category":
            return f"{self.label} is one of {', '.join(self.choices)}"
        if self.kind == "grade":
            return ETICI.allowed()
        whole = "a whole number" if self.kind == "integer" else "a number"
        unit = f" {self.unit}" if self.unit else ""
        extra = f" in steps of {self.step}" if self.step else ""
        return f"{self.label} is {whole} from {self.low:g} to {self.high:g}{unit}{extra}"

    def parse(self, raw: Any) -> Any:
        if self.kind == "flag":
            if not isinstance(raw, bool):
                raise ClinicalValueError(f"{raw!r} is not allowed; {self.allowed()}")
            return raw
        if self.kind == "category":
            if raw not in self.choices:
                raise ClinicalValueError(f"{raw!r} is not allowed; {self.allowed()}")
            return raw
        if self.kind == "grade":
            if not isinstance(raw, str):
                raise ClinicalValueError(f"{raw!r} is not allowed; {self.allowed()}")
            try:
                return ETICI(raw).value
            except ValueError:
                raise ClinicalValueError(f"{raw!r} is not allowed; {self.allowed()}") from None
        if isinstance(raw, bool) or not isinstance(raw, (int, float)):
            raise ClinicalValueError(f"{raw!r} is not a number; {self.allowed()}")
        if self.kind == "integer" and float(raw) != int(raw):
            raise ClinicalValueError(f"{raw!r} is not a whole number; {self.allowed()}")
        if self.low is None or self.high is None:
            raise ClinicalValueError(f"assessment {self.key!r} ({self.kind}) is defined without a range")
        if not self.low <= raw <= self.high or (self.step and int(raw) % self.step):
            raise ClinicalValueError(f"{raw!r} is out of range; {self.allowed()}")
        return int(raw) if self.kind == "integer" else float(raw)


def _int(key, label, low, high, step=None):
    return Assessment(key, label, "integer", low, high, step)


def _flag(key, label):
    return Assessment(key, label, "flag")


ASSESSMENTS: dict[str, Assessment] = {a.key: a for a in [
    _int("nihss", "NIHSS", 0, 42),
    _int("motor_nihss", "motor NIHSS (items 5a-6b)", 0, 16),
    _int("aspects", "ASPECTS", 0, 10),
    _int("mrs", "modified Rankin Scale", 0, 6),
    _int("fugl_meyer", "Fugl-Meyer motor score", 0, 100),
    _int("barthel", "Barthel index", 0, 100, step=5),
    Assessment("infarct_volume_ml", "infarct volume", "number", 0, 1000, unit="mL"),
    Assessment("glucose_mmol_l", "blood glucose", "number", 0.5, 60, unit="mmol/L"),
    Assessment("ct_or_mri", "follow-up imaging", "category", choices=("ct", "mri", "not_done")),
    Assessment("etici", "final eTICI", "grade"),
    _flag("sich", "symptomatic intracranial haemorrhage (protocol definition)"),
    _flag("death", "death"),
    _flag("sae", "serious adverse event since the last visit (details on the SAE form)"),
    _flag("adverse_events", "adverse event since the last visit"),
    _flag("infection", "infection"),
    _flag("dlt", "dose-limiting toxicity"),
    _flag("mri", "MRI done"),
    _flag("vital_signs", "vital signs recorded"),
    _flag("labs", "laboratory tests done"),
]}


class VisitDataError(InputError):
    def __init__(self, errors: list[FieldError]):
        self.errors = errors
        super().__init__("; ".join(str(e) for e in errors))


def parse_visit_values(visit_id: str, allowed: list[str], values: Mapping[str, Any]) -> dict[str, Any]:
    """Validate one visit's values against the assessments the protocol schedules for it."""
    if not isinstance(values, Mapping):
        raise VisitDataError([FieldError("values", values, "visit values are an object of assessment: value")])
    errors, out = [], {}
    for key, raw in values.items():
        if key not in allowed:
            errors.append(FieldError(key, raw, f"{key!r} is not an assessment of visit {visit_id}; allowed: "
                                               f"{', '.join(allowed)}"))
            continue
        if raw is None:
            continue
        assessment = ASSESSMENTS.get(key)
        if assessment is None:
            errors.append(FieldError(key, raw, f"{key!r} has no definition in the follow-up dictionary"))
            continue
        try:
            out[key] = assessment.parse(raw)
        except (ClinicalValueError, ValueError) as exc:
            errors.append(FieldError(key, raw, f"{key}: {exc}"))
    if errors:
        raise VisitDataError(errors)
    return out
