"""Follow-up assessments: what each visit's form may hold, with types and valid ranges.

The protocol's visit schedule names assessments by these keys (`mrs`, `sich`,
`infarct_volume_ml`, ...). Values are checked strictly: a string is not a number, a
number is not yes/no, and a value out of range is refused with the range.
"""

from __future__ import annotations

from .. import InputError, i18n

from dataclasses import dataclass
from typing import Any
from collections.abc import Mapping

from .dictionary import not_a_number, not_a_whole_number, not_allowed, out_of_range
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
    choice_labels: tuple[str, ...] = ()  # what a form shows for each choice, in the same order

    def label_of(self, choice: str) -> str:
        labels = dict(zip(self.choices, self.choice_labels, strict=False))
        return labels.get(choice, choice)

    def allowed(self) -> str:
        """What the assessment takes, in the current language (i18n)."""
        label = i18n.gettext(self.label)
        if self.kind == "flag":
            return i18n.gettext("{label} is true or false").format(label=label)
        if self.kind == "category":
            if i18n.current() == i18n.ENGLISH:
                named = ", ".join(f"{c} ({self.label_of(c)})" if self.label_of(c) != c else c for c in self.choices)
            else:  # a page offers the choices by their words; the codes are what the API takes
                named = ", ".join(i18n.gettext(self.label_of(c)) for c in self.choices)
            return i18n.gettext("{label} is one of {choices}").format(label=label, choices=named)
        if self.kind == "grade":
            return ETICI.allowed()
        whole = (i18n.gettext("{label} is a whole number from {low} to {high}{unit}") if self.kind == "integer"
                 else i18n.gettext("{label} is a number from {low} to {high}{unit}"))
        unit = f" {i18n.gettext(self.unit)}" if self.unit else ""
        extra = i18n.gettext(" in steps of {step}").format(step=self.step) if self.step else ""
        return whole.format(label=label, low=f"{self.low:g}", high=f"{self.high:g}", unit=unit) + extra

    def parse(self, raw: Any) -> Any:
        if self.kind == "flag":
            if not isinstance(raw, bool):
                raise ClinicalValueError(not_allowed(raw, self.allowed()))
            return raw
        if self.kind == "category":
            if raw not in self.choices:
                raise ClinicalValueError(not_allowed(raw, self.allowed()))
            return raw
        if self.kind == "grade":
            if not isinstance(raw, str):
                raise ClinicalValueError(not_allowed(raw, self.allowed()))
            try:
                return ETICI(raw).value
            except ValueError:
                raise ClinicalValueError(not_allowed(raw, self.allowed())) from None
        if isinstance(raw, bool) or not isinstance(raw, (int, float)):
            raise ClinicalValueError(not_a_number(raw, self.allowed()))
        if self.kind == "integer" and float(raw) != int(raw):
            raise ClinicalValueError(not_a_whole_number(raw, self.allowed()))
        if self.low is None or self.high is None:
            raise ClinicalValueError(f"assessment {self.key!r} ({self.kind}) is defined without a range")
        if not self.low <= raw <= self.high or (self.step and int(raw) % self.step):
            raise ClinicalValueError(out_of_range(repr(raw), self.allowed()))
        return int(raw) if self.kind == "integer" else float(raw)


def _int(key, label, low, high, step=None, unit=None):
    return Assessment(key, label, "integer", low, high, step, unit)


def _flag(key, label):
    return Assessment(key, label, "flag")


def _category(key, label, choices: dict[str, str]):
    return Assessment(key, label, "category", choices=tuple(choices), choice_labels=tuple(choices.values()))


# The Heidelberg Bleeding Classification's imaging classes (von Kummer R et al., Stroke 2015;46:2981-6,
# Table 1); "none" where follow-up imaging shows no haemorrhage.
HAEMORRHAGE_CLASSES = {
    "none": "no intracranial haemorrhage",
    "hi1": "1a HI1: scattered small petechiae, no mass effect",
    "hi2": "1b HI2: confluent petechiae, no mass effect",
    "ph1": "1c PH1: haematoma within infarcted tissue, < 30%, no substantive mass effect",
    "ph2": "2 PH2: haematoma occupying ≥ 30% of the infarcted tissue, with obvious mass effect",
    "remote_parenchymal": "3a parenchymal haematoma remote from the infarcted brain tissue",
    "intraventricular": "3b intraventricular haemorrhage",
    "subarachnoid": "3c subarachnoid haemorrhage",
    "subdural": "3d subdural haemorrhage",
}


ASSESSMENTS: dict[str, Assessment] = {a.key: a for a in [
    _int("nihss", "NIHSS", 0, 42),
    _int("motor_nihss", "motor NIHSS (items 5a-6b)", 0, 16),
    _int("aspects", "ASPECTS", 0, 10),
    _int("mrs", "modified Rankin Scale", 0, 6),
    _int("fugl_meyer", "Fugl-Meyer motor score", 0, 100),
    _int("barthel", "Barthel index", 0, 100, step=5),
    Assessment("infarct_volume_ml", "infarct volume", "number", 0, 1000, unit="mL"),
    Assessment("glucose_mmol_l", "blood glucose", "number", 0.5, 60, unit="mmol/L"),
    _category("ct_or_mri", "follow-up imaging", {"ct": "CT", "mri": "MRI", "not_done": "not done"}),
    Assessment("etici", "final eTICI (end of the procedure)", "grade"),
    _flag("sich", "symptomatic intracranial haemorrhage (protocol definition)"),
    # sICH by its components (Heidelberg Bleeding Classification): the analysis plan derives sICH from these.
    _category("haemorrhage_class", "intracranial haemorrhage on follow-up imaging (Heidelberg class)",
              HAEMORRHAGE_CLASSES),
    _int("nihss_increase", "NIHSS increase from the score before the deterioration", 0, 42),
    _flag("nihss_item_increase", "increase of 2 or more points in one NIHSS category"),
    _flag("major_intervention", "deterioration led to intubation, hemicraniectomy, ventricular drain or another "
                                "major intervention"),
    _flag("haemorrhage_causal", "haemorrhage judged the cause of the deterioration (no alternative explanation)"),
    # What the patient received, for the per-protocol and as-treated populations.
    _category("rescue_treatment", "rescue treatment received", {
        "stenting": "rescue stenting", "balloon_angioplasty": "balloon angioplasty",
        "further_passes": "further thrombectomy passes", "none": "no further treatment"}),
    _int("iv_doses_given", "intravenous doses given on days 1-3 (number)", 0, 3),
    _category("msc_dose_group", "MSC dose group", {"100": "100 million cells", "300": "300 million cells"}),
    Assessment("cells_infused_million", "MSCs infused", "number", 0, 1000, unit="million cells"),
    Assessment("fmri_mi4a_mi4p", "task-related fMRI activity in MI-4a/4p", "number", -20, 20,
               unit="% BOLD signal change"),
    _int("adverse_events_count", "adverse events since the last visit (number)", 0, 50),
    # Infusion monitoring (vital signs during and up to 2 h after an intra-arterial infusion, and reactions).
    _flag("infusion_completed", "infusion given in full"),
    Assessment("infusion_minutes", "infusion duration", "number", 0, 240, unit="min"),
    _int("sbp_max_mmhg", "highest systolic blood pressure during and 2 h after the infusion", 50, 300,
         unit="mmHg"),
    _int("heart_rate_max", "highest heart rate during and 2 h after the infusion", 20, 250,
         unit="/min"),
    Assessment("temperature_max_c", "highest temperature during and 2 h after the infusion", "number", 33, 43,
               unit="°C"),
    _flag("infusion_reaction", "infusion reaction (allergic or febrile) during or after the infusion"),
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
