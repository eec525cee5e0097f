"""Clinical variables and stroke scales: the patient record's vocabulary."""

from .dictionary import INTERVALS, VARIABLES, Variable, variable
from .record import FieldError, PatientDataError, PatientRecord, parse_patient
from .scales import (ASPECTS, ETICI, MRS, NIHSS, Circulation, ClinicalValueError, OcclusionSite, PcASPECTS,
                     PrestrokeMRS, Score, Sex)

__all__ = [
                     "ASPECTS",
                     "ETICI",
                     "INTERVALS",
                     "MRS",
                     "NIHSS",
                     "VARIABLES",
                     "Circulation",
                     "ClinicalValueError",
                     "FieldError",
                     "OcclusionSite",
                     "PatientDataError",
                     "PatientRecord",
                     "PcASPECTS",
                     "PrestrokeMRS",
                     "Score",
                     "Sex",
                     "Variable",
                     "parse_patient",
                     "variable",
]
