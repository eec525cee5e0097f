"""Stroke scales as types: a NIHSS is not just an int, an eTICI grade is ordered.

Each scale knows its valid range and refuses anything else with a message that
names the scale, the value and what is allowed.
"""

from __future__ import annotations

from .. import InputError, i18n

import enum
from typing import ClassVar


class ClinicalValueError(InputError):
    """A value that a clinical variable does not allow."""


class LabelledEnum(enum.Enum):
    """An Enum scale whose members read as words for people (`label`); categories and grades."""

    @property
    def label(self) -> str:
        return str(self.value)


class Score(int):
    """A bounded integer score. Subclasses set `label`, `low` and `high`."""

    label: ClassVar[str]
    low: ClassVar[int]
    high: ClassVar[int]

    def __new__(cls, value: object) -> Score:
        # bool is an int in Python; a checkbox ticked is not a NIHSS of 1.
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ClinicalValueError(i18n.gettext("{value} is not a number; {allowed}").format(
                value=repr(value), allowed=cls.allowed()))
        if isinstance(value, float) and not value.is_integer():
            raise ClinicalValueError(i18n.gettext("{value} is not a whole number; {allowed}").format(
                value=repr(value), allowed=cls.allowed()))
        if not cls.low <= value <= cls.high:
            raise ClinicalValueError(i18n.gettext("{value} is out of range; {allowed}").format(
                value=repr(value), allowed=cls.allowed()))
        return super().__new__(cls, int(value))

    @classmethod
    def allowed(cls) -> str:
        return i18n.gettext("{label} is a whole number from {low} to {high}{unit}").format(
            label=i18n.gettext(cls.label), low=cls.low, high=cls.high, unit="")

    def __repr__(self) -> str:
        return f"{type(self).__name__}({int(self)})"


class NIHSS(Score):
    """National Institutes of Health Stroke Scale, 0 (no deficit) to 42."""
    label, low, high = "NIHSS", 0, 42


class ASPECTS(Score):
    """Alberta Stroke Program Early CT Score, 10 (normal) to 0."""
    label, low, high = "ASPECTS", 0, 10


class PcASPECTS(Score):
    """Posterior-circulation ASPECTS, 10 (normal) to 0."""
    label, low, high = "pc-ASPECTS", 0, 10


class MRS(Score):
    """Modified Rankin Scale, 0 (no symptoms) to 6 (dead)."""
    label, low, high = "mRS", 0, 6


# What each mRS grade means (van Swieten JC et al., Stroke 1988;19:604-7), shown beside an mRS field.
MRS_GRADES = {
    0: "no symptoms",
    1: "no significant disability: able to carry out all usual activities despite some symptoms",
    2: "slight disability: able to look after own affairs without assistance, but unable to carry out all "
       "previous activities",
    3: "moderate disability: requires some help, but able to walk unassisted",
    4: "moderately severe disability: unable to attend to own bodily needs without assistance, and unable to walk "
       "unassisted",
    5: "severe disability: requires constant nursing care and attention, bedridden, incontinent",
    6: "dead",
}


class PrestrokeMRS(Score):
    """Pre-stroke modified Rankin Scale: 0 to 5 (a living patient)."""
    label, low, high = "pre-stroke mRS", 0, 5


class ETICI(LabelledEnum):
    """Expanded Thrombolysis in Cerebral Infarction grade, in order of reperfusion.

    `2b` is the older mTICI grade (50-99% reperfusion), which in eTICI terms is
    2b50 or 2b67. It is a real value only where a protocol accepts it; comparing
    it with a threshold between 2b50 and 2b67 cannot be decided.
    """

    G0 = "0"
    G1 = "1"
    G2A = "2a"
    G2B = "2b"
    G2B50 = "2b50"
    G2B67 = "2b67"
    G2C = "2c"
    G3 = "3"

    @property
    def ranks(self) -> tuple[int, int]:
        """The lowest and highest definite grade this value can be (0..6)."""
        return _ETICI_RANKS[self]

    @property
    def is_ambiguous(self) -> bool:
        low, high = self.ranks
        return low != high

    @property
    def label(self) -> str:
        return f"eTICI {self.value}"

    @classmethod
    def parse(cls, value: object) -> ETICI:
        if isinstance(value, ETICI):
            return value
        # Integers 0, 1, 3 are ordinary ways of writing those grades.
        if isinstance(value, int) and not isinstance(value, bool) and value in (0, 1, 3):
            value = str(value)
        if isinstance(value, str):
            text = value.strip().lower()
            for grade in cls:
                if grade.value == text:
                    return grade
        raise ClinicalValueError(i18n.gettext("{value} is not an eTICI grade; {allowed}").format(
            value=repr(value), allowed=cls.allowed()))

    @classmethod
    def allowed(cls) -> str:
        return i18n.gettext("eTICI is one of 0, 1, 2a, 2b50, 2b67, 2c, 3 (2b only where the protocol accepts it)")

    @classmethod
    def definite(cls) -> list[ETICI]:
        return [g for g in cls if not g.is_ambiguous]


_ETICI_RANKS = {
    ETICI.G0: (0, 0), ETICI.G1: (1, 1), ETICI.G2A: (2, 2),
    ETICI.G2B: (3, 4), ETICI.G2B50: (3, 3), ETICI.G2B67: (4, 4),
    ETICI.G2C: (5, 5), ETICI.G3: (6, 6),
}


class Circulation(enum.Enum):
    ANTERIOR = "anterior"
    POSTERIOR = "posterior"


class OcclusionSite(LabelledEnum):
    """Site of the large-vessel occlusion, as the angiogram or CTA shows it."""

    ICA_CERVICAL = "ica_cervical"
    ICA_INTRACRANIAL = "ica_intracranial"
    TANDEM_ICA_M1 = "tandem_ica_m1"
    M1 = "m1"
    M2 = "m2"
    M3 = "m3"
    ACA = "aca"
    V4 = "v4"
    BASILAR = "basilar"
    PCA = "pca"

    @property
    def label(self) -> str:
        return _OCCLUSION_LABELS[self]

    @property
    def circulation(self) -> Circulation:
        if self in (OcclusionSite.V4, OcclusionSite.BASILAR, OcclusionSite.PCA):
            return Circulation.POSTERIOR
        return Circulation.ANTERIOR


_OCCLUSION_LABELS = {
    OcclusionSite.ICA_CERVICAL: "cervical ICA",
    OcclusionSite.ICA_INTRACRANIAL: "intracranial ICA",
    OcclusionSite.TANDEM_ICA_M1: "tandem ICA+M1",
    OcclusionSite.M1: "MCA M1",
    OcclusionSite.M2: "MCA M2",
    OcclusionSite.M3: "MCA M3",
    OcclusionSite.ACA: "ACA",
    OcclusionSite.V4: "vertebral V4",
    OcclusionSite.BASILAR: "basilar",
    OcclusionSite.PCA: "PCA",
}


class Sex(LabelledEnum):
    FEMALE = "female"
    MALE = "male"

    @property
    def label(self) -> str:
        return self.value
