"""The clinical data dictionary: every variable the five protocols screen on.

The names here are the patient record's contract: JSON keys and CSV columns.
Each variable has one canonical unit; labs may arrive in another common unit
as {"value": 2.1, "unit": "mg/dL"} and are converted exactly (see units.py).
"""

from __future__ import annotations

import datetime as dt
import enum
import math
from dataclasses import dataclass, field
from typing import Any, Literal

from .. import i18n
from . import units
from .scales import (
    ASPECTS,
    ETICI,
    NIHSS,
    ClinicalValueError,
    LabelledEnum,
    OcclusionSite,
    PcASPECTS,
    PrestrokeMRS,
    Score,
    Sex,
)

Kind = Literal["score", "integer", "number", "flag", "category", "grade", "timestamp", "interval", "text"]


@dataclass(frozen=True)
class Variable:
    name: str
    label: str
    kind: Kind
    description: str
    unit: str | None = None
    low: float | None = None
    high: float | None = None
    scale: type | None = None  # Score subclass or Enum for score/category/grade
    quantity: str | None = None  # for unit conversion (units._FACTORS key)
    derived_from: tuple[str, str] | None = None  # intervals: (start, end) timestamps
    alternate_units: tuple[str, ...] = field(default=())

    # ---- the fields a kind needs, typed ---------------------------------------------
    # Which optional fields are set depends on the kind (a score has its Score subclass, a number its range,
    # an interval its two timestamps); these return them narrowed, or raise ClinicalValueError naming the
    # variable whose definition lacks one.
    def score_scale(self) -> type[Score]:
        """The Score subclass of a score variable."""
        if isinstance(self.scale, type) and issubclass(self.scale, Score):
            return self.scale
        raise self._incomplete("a Score scale")

    def grade_scale(self) -> type[ETICI]:
        """The grade enum of a grade variable (eTICI is the only grade)."""
        if isinstance(self.scale, type) and issubclass(self.scale, ETICI):
            return self.scale
        raise self._incomplete("a grade scale")

    def enum_scale(self) -> type[LabelledEnum]:
        """The Enum of a category or grade variable."""
        if isinstance(self.scale, type) and issubclass(self.scale, LabelledEnum):
            return self.scale
        raise self._incomplete("an Enum scale")

    def bounds(self) -> tuple[float, float]:
        """The allowed range (low, high) of a numeric variable."""
        if self.low is None or self.high is None:
            raise self._incomplete("a range (low and high)")
        return self.low, self.high

    def interval_ends(self) -> tuple[str, str]:
        """The (start, end) timestamps an interval is derived from."""
        if self.derived_from is None:
            raise self._incomplete("the timestamps it is derived from")
        return self.derived_from

    def conversion(self) -> tuple[str, str]:
        """(canonical unit, quantity) of a variable that accepts other units."""
        if self.unit is None or self.quantity is None:
            raise self._incomplete("a canonical unit and a quantity for unit conversion")
        return self.unit, self.quantity

    def _incomplete(self, what: str) -> ClinicalValueError:
        return ClinicalValueError(f"variable {self.name!r} ({self.kind}) is defined without {what}")

    # ---- what is allowed, in words -------------------------------------------------
    # In the request's language (i18n): a page shows them in Chinese; the CLI and the API keep the English.
    @property
    def called(self) -> str:
        """The variable's label in the current language."""
        return i18n.gettext(self.label)

    def unit_shown(self) -> str:
        """" kg", " years" (in the current language), or nothing for a variable without a unit."""
        return f" {i18n.gettext(self.unit)}" if self.unit else ""

    def allowed(self) -> str:
        if self.kind == "score":
            return self.score_scale().allowed()
        if self.kind == "grade":
            return self.grade_scale().allowed()
        if self.kind == "category":
            # the codes are what the API takes; a page offers the choices by their words
            choices = [m.value if i18n.current() == i18n.ENGLISH else i18n.gettext(m.label)
                       for m in self.enum_scale()]
            return i18n.gettext("{label} is one of {choices}").format(label=self.called, choices=", ".join(choices))
        if self.kind == "flag":
            return i18n.gettext("{label} is true or false").format(label=self.called)
        if self.kind == "timestamp":
            # what a person types (the form's date picker shows the locale's own format; either is read)
            return i18n.gettext("{label} is a date and time such as 2026-03-01 08:30").format(label=self.called)
        if self.kind == "text":
            return i18n.gettext("{label} is text").format(label=self.called)
        whole = (i18n.gettext("{label} is a whole number from {low} to {high}{unit}") if self.kind == "integer"
                 else i18n.gettext("{label} is a number from {low} to {high}{unit}"))
        text = whole.format(label=self.called, low=format_number(self.low), high=format_number(self.high),
                            unit=self.unit_shown())
        if self.alternate_units:
            text += i18n.gettext(" (or {{'value': ..., 'unit': ...}} in {units})").format(
                units=", ".join(self.alternate_units))
        return text

    @property
    def screenable(self) -> bool:
        """Whether eligibility rules may test this variable directly."""
        return self.kind not in ("timestamp", "text")

    # ---- one value from a JSON-like document ---------------------------------------
    def parse(self, raw: object) -> object:
        """The typed value for a raw JSON value; ClinicalValueError if not allowed."""
        if self.kind == "score":
            return self.score_scale()(raw)
        if self.kind == "grade":
            return self.grade_scale().parse(raw)
        if self.kind == "category":
            return parse_category(self.enum_scale(), raw, self.allowed())
        if self.kind == "flag":
            if not isinstance(raw, bool):
                raise ClinicalValueError(not_allowed(raw, self.allowed()))
            return raw
        if self.kind == "timestamp":
            return parse_timestamp(raw, self.allowed())
        if self.kind == "text":
            if not isinstance(raw, str) or not raw.strip():
                raise ClinicalValueError(not_allowed(raw, self.allowed()))
            return raw.strip()
        if self.kind == "interval":
            start, end = (field_called(name) for name in self.interval_ends())
            raise ClinicalValueError(i18n.gettext("{name} is derived from {start} and {end}; give those times "
                                                  "instead").format(name=field_called(self.name), start=start,
                                                                    end=end))
        value = self._measured_value(raw)
        self.check_range(value)
        return int(value) if self.kind == "integer" else value

    def _measured_value(self, raw: object) -> float:
        if isinstance(raw, dict):
            if not self.alternate_units:
                raise ClinicalValueError(i18n.gettext("{value} is not allowed; {label} is given as a plain number in "
                                                      "{unit}").format(value=repr(raw), label=self.called,
                                                                       unit=self.unit_shown().strip()))
            if set(raw) != {"value", "unit"}:
                raise ClinicalValueError(i18n.gettext("{value} is not allowed; give exactly 'value' and "
                                                      "'unit'").format(value=repr(raw)))
            unit, value = raw["unit"], raw["value"]
            canonical_unit, quantity = self.conversion()
            allowed_units = (canonical_unit, *self.alternate_units)
            if units.normalise_unit(unit) not in allowed_units:
                raise ClinicalValueError(i18n.gettext("unit {unit} is not allowed for {label}; use one of "
                                                      "{units}").format(unit=repr(unit), label=self.called,
                                                                        units=", ".join(allowed_units)))
            return units.to_canonical(quantity, self._number(value), unit)
        return self._number(raw)

    def _number(self, raw: object) -> float:
        if isinstance(raw, bool) or not isinstance(raw, (int, float)) or math.isnan(raw):
            raise ClinicalValueError(not_a_number(raw, self.allowed()))
        if self.kind == "integer" and not float(raw).is_integer():
            raise ClinicalValueError(not_a_whole_number(raw, self.allowed()))
        return float(raw)

    def check_range(self, value: float) -> None:
        low, high = self.bounds()
        if not low <= value <= high:
            raise ClinicalValueError(out_of_range(format_number(value), self.allowed()))

    # ---- numbers for the vectorised screen -----------------------------------------
    # `value` is what parse() returns for this variable's kind (a Score, an Enum member, a number, ...).
    def encode(self, value: Any) -> float:
        """The float the vectorised screen compares (categories by position)."""
        if value is None:
            return math.nan
        if self.kind == "category":
            return float(list(self.enum_scale()).index(value))
        if self.kind == "grade":
            return float(value.ranks[0])
        if self.kind == "flag":
            return 1.0 if value else 0.0
        return float(value)

    def describe(self, value: Any) -> str:
        """'NIHSS 5', 'creatinine 210 µmol/L', 'occlusion site MCA M2' for reasons."""
        if value is None:
            return i18n.gettext("{label} not recorded").format(label=self.called)
        if self.kind == "flag":
            return f"{self.called}: {i18n.gettext('yes') if value else i18n.gettext('no')}"
        if self.kind in ("category", "grade"):
            return f"{self.called} {i18n.gettext(value.label) if self.kind == 'category' else value.value}"
        return f"{self.called} {format_number(value)}{self.unit_shown()}"


def not_allowed(raw: object, allowed: str) -> str:
    return i18n.gettext("{value} is not allowed; {allowed}").format(value=repr(raw), allowed=allowed)


def not_a_number(raw: object, allowed: str) -> str:
    return i18n.gettext("{value} is not a number; {allowed}").format(value=repr(raw), allowed=allowed)


def not_a_whole_number(raw: object, allowed: str) -> str:
    return i18n.gettext("{value} is not a whole number; {allowed}").format(value=repr(raw), allowed=allowed)


def out_of_range(shown: str, allowed: str) -> str:
    return i18n.gettext("{value} is out of range; {allowed}").format(value=shown, allowed=allowed)


def field_called(name: str) -> str:
    """A field in a message: its code in English (the CLI's and the API's contract, which names fields by their
    codes), its label in another language (a page)."""
    if i18n.current() == i18n.ENGLISH or name not in VARIABLES:
        return name
    return VARIABLES[name].called


def parse_category(scale: type[enum.Enum], raw: object, allowed: str) -> enum.Enum:
    if isinstance(raw, scale):
        return raw
    if isinstance(raw, str):
        for member in scale:
            if member.value == raw.strip().lower():
                return member
    raise ClinicalValueError(not_allowed(raw, allowed))


def parse_timestamp(raw: object, allowed: str) -> dt.datetime:
    if isinstance(raw, dt.datetime):
        return raw
    if isinstance(raw, str):
        try:
            return dt.datetime.fromisoformat(raw.strip())
        except ValueError:
            pass
    raise ClinicalValueError(not_allowed(raw, allowed))


def format_number(x: float | None) -> str:
    if x is None:
        return "?"
    x = float(x)
    return str(int(x)) if x.is_integer() else f"{x:.4g}" if abs(x) < 1000 else f"{x:.1f}"


def _score(name: str, scale: type[Score], description: str) -> Variable:
    return Variable(name, scale.label, "score", description, low=scale.low, high=scale.high, scale=scale)


def _flag(name: str, label: str, description: str) -> Variable:
    return Variable(name, label, "flag", description)


def _lab(name, label, unit, low, high, description, quantity=None, alternates=()) -> Variable:
    return Variable(name, label, "number", description, unit=unit, low=low, high=high,
                    quantity=quantity, alternate_units=alternates)


_VARIABLES: list[Variable] = [
    Variable("patient_id", "patient id", "text", "Screening or registry identifier."),
    Variable("site", "site", "text", "Site code where the patient is screened."),
    Variable("age", "age", "integer", "Age in completed years at screening.", unit="years", low=0, high=120),
    Variable("sex", "sex", "category", "Sex recorded at birth.", scale=Sex),
    Variable("weight_kg", "weight", "number", "Body weight (measured or estimated) for weight-based dosing.",
             unit="kg", low=20, high=300, quantity="weight", alternate_units=("lb",)),
    _score("nihss", NIHSS, "Baseline NIHSS before treatment."),
    _score("aspects", ASPECTS, "Baseline ASPECTS on non-contrast CT (anterior circulation)."),
    _score("pc_aspects", PcASPECTS, "Baseline posterior-circulation ASPECTS."),
    _score("prestroke_mrs", PrestrokeMRS, "Modified Rankin Scale before this stroke."),
    Variable("occlusion_site", "occlusion site", "category",
             "Site of the target occlusion on CTA, MRA or DSA; a tandem lesion is recorded as tandem_ica_m1.",
             scale=OcclusionSite),
    Variable("etici", "eTICI", "grade", "Reperfusion grade on the final angiogram of the thrombectomy.",
             scale=ETICI),
    Variable("thrombectomy_passes", "thrombectomy passes", "integer",
             "Number of thrombectomy attempts (passes) so far.", unit=None, low=0, high=20),
    Variable("last_known_well", "last known well", "timestamp",
             "Symptom onset, or the time last known well when onset was not witnessed."),
    Variable("arterial_puncture", "arterial puncture", "timestamp", "Groin (or radial) puncture for thrombectomy."),
    Variable("recanalization", "recanalization", "timestamp", "Time of the final reperfusion on DSA."),
    Variable("randomization", "randomization", "timestamp",
             "Time of randomization; at screening, the planned time (normally now)."),
    Variable("lkw_to_puncture_h", "time from last known well to arterial puncture", "interval",
             "Derived: arterial_puncture - last_known_well.", unit="h", low=0, high=24 * 365,
             quantity="hours", derived_from=("last_known_well", "arterial_puncture")),
    Variable("lkw_to_randomization_h", "time from last known well to randomization", "interval",
             "Derived: randomization - last_known_well.", unit="h", low=0, high=24 * 365,
             quantity="hours", derived_from=("last_known_well", "randomization")),
    Variable("puncture_to_recanalization_min", "time from arterial puncture to recanalization", "interval",
             "Derived: recanalization - arterial_puncture.", unit="min", low=0, high=24 * 60,
             quantity="minutes", derived_from=("arterial_puncture", "recanalization")),
    Variable("lkw_to_recanalization_h", "time from last known well to recanalization", "interval",
             "Derived: recanalization - last_known_well (onset to reperfusion).", unit="h", low=0, high=24 * 365,
             quantity="hours", derived_from=("last_known_well", "recanalization")),
    _lab("sbp", "systolic blood pressure", "mmHg", 40, 300, "Systolic blood pressure."),
    _lab("dbp", "diastolic blood pressure", "mmHg", 20, 200, "Diastolic blood pressure."),
    _lab("glucose_mmol_l", "blood glucose", "mmol/L", 0.5, 60, "Blood glucose.", "glucose", ("mg/dL",)),
    _lab("creatinine_umol_l", "serum creatinine", "µmol/L", 5, 3000, "Serum creatinine.", "creatinine", ("mg/dL",)),
    _lab("hematocrit_pct", "hematocrit", "%", 5, 75, "Hematocrit."),
    _lab("platelets_10e9_l", "platelet count", "×10⁹/L", 1, 2000, "Platelet count."),
    _lab("inr", "INR", None, 0.5, 15, "International normalized ratio."),
    _lab("aptt_s", "aPTT", "s", 10, 250, "Activated partial thromboplastin time."),
    _lab("egfr", "eGFR", "mL/min/1.73m²", 0, 200, "Estimated glomerular filtration rate."),
    # ---- yes/no facts (true = present) -----------------------------------------------
    _flag("bridging_thrombolysis", "bridging intravenous thrombolysis",
          "Intravenous thrombolysis given before thrombectomy."),
    _flag("intracranial_hemorrhage", "intracranial haemorrhage on CT/MRI",
          "Intracranial haemorrhage on CT or MRI before randomization."),
    _flag("intraprocedural_hemorrhage", "major haemorrhage on intraprocedural flat-panel CT",
          "Flat-panel CT during the procedure shows major haemorrhage."),
    _flag("midline_shift_mass_effect", "midline shift with significant mass effect",
          "Midline shift with significant mass effect on CT or MRI."),
    _flag("procedural_vessel_injury", "vessel perforation, dissection or contrast extravasation on DSA",
          "Intraoperative DSA showed vascular perforation, dissection or contrast extravasation."),
    _flag("intracranial_vascular_lesion", "intracranial aneurysm, AVM or tumour with mass effect",
          "Intracranial aneurysm, arteriovenous malformation, or space-occupying tumour with mass effect on imaging."),
    _flag("heart_failure_or_severe_cardiovascular_disease", "heart failure or severe cardiovascular disease",
          "History of heart failure or severe cardiovascular disease (e.g. pulmonary hypertension, "
          "pericardial effusion)."),
    _flag("unstable_arrhythmia", "haemodynamically unstable arrhythmia",
          "Haemodynamically unstable arrhythmia, self-reported or detected before treatment."),
    _flag("acute_myocardial_infarction", "acute myocardial infarction",
          "Symptoms or ECG evidence of acute myocardial infarction on admission."),
    _flag("severe_pulmonary_disease", "severe pulmonary disease",
          "Severe pulmonary disease: COPD, pulmonary fibrosis, pleural effusion, ARDS."),
    _flag("albumin_allergy", "hypersensitivity to albumin or blood products",
          "Known hypersensitivity to albumin or blood products."),
    _flag("contrast_allergy", "allergy to iodinated contrast", "Allergy to iodinated contrast media."),
    _flag("methylprednisolone_allergy", "allergy to methylprednisolone",
          "Allergy to methylprednisolone sodium succinate."),
    _flag("nickel_titanium_allergy", "allergy to nickel or titanium",
          "Contraindication to nickel, titanium or their alloys."),
    _flag("pregnant", "pregnant", "Pregnancy at admission."),
    _flag("lactating", "lactating", "Breastfeeding at admission."),
    _flag("other_trial_participation", "in another clinical trial", "Currently participating in another trial."),
    _flag("hemorrhagic_diathesis", "haemorrhagic diathesis",
          "Inherited or acquired haemorrhagic diathesis (e.g. coagulation factor deficiency)."),
    _flag("oral_anticoagulant", "on oral anticoagulation", "Taking an oral anticoagulant (VKA or DOAC)."),
    _flag("doac_within_48h", "DOAC within 48 h", "Direct oral anticoagulant taken within the last 48 h."),
    _flag("heparin_induced_thrombocytopenia", "history of heparin-induced thrombocytopenia",
          "History of heparin-induced thrombocytopenia (HIT)."),
    _flag("recent_major_bleeding", "major bleeding in the last 30 days",
          "Gastrointestinal, genitourinary or other major bleeding within the last 30 days."),
    _flag("major_surgery_within_14d", "major surgery in the last 14 days", "Major surgery within the last 14 days."),
    _flag("chronic_hemodialysis", "chronic haemodialysis", "On chronic haemodialysis."),
    _flag("active_systemic_infection", "active systemic infection", "Active systemic infectious disease."),
    _flag("contact_aspiration_attempted", "contact aspiration attempted",
          "At least one contact-aspiration pass so far."),
    _flag("stent_retriever_attempted", "stent retriever attempted",
          "At least one stent-retriever or combined-technique pass so far."),
    _flag("carotid_territory_infarct", "ischaemic stroke in the carotid territory",
          "The index ischaemic stroke lies in the carotid (anterior) territory."),
    _flag("mri_contraindication", "contraindication to MRI",
          "Pacemaker, metal implant or other contraindication to MRI."),
]

VARIABLES: dict[str, Variable] = {v.name: v for v in _VARIABLES}
INTERVALS: tuple[Variable, ...] = tuple(v for v in _VARIABLES if v.kind == "interval")


def variable(name: str) -> Variable:
    try:
        return VARIABLES[name]
    except KeyError:
        raise ClinicalValueError(f"unknown variable {name!r}") from None
