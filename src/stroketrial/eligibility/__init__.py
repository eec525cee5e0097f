"""Eligibility screening: one patient with reasons, or a cohort into a CONSORT funnel.

Per criterion the status reads as a clinician says it: an inclusion criterion
is `met` or `not_met`; an exclusion criterion is `met` when the excluding
condition applies. `excludes` says whether the criterion makes the patient
ineligible. Data that are missing give `missing_data`; a judgement criterion not
yet answered gives `needs_attestation`. One excluding criterion makes the patient
ineligible whatever else is missing.
"""

from ..clinical.encoded_table import ATTESTATION_PREFIX
from ..clinical.cohort_table import TableDataError
from ..clinical.record import PatientDataError
from .cohort_file import CohortFileError, read_cohort
from .funnel import Funnel, FunnelRow, encode_cohort, first_failing, funnel, statuses
from .screen import CriterionResult, ScreeningInputError, ScreeningResult, screen

__all__ = [
    "ATTESTATION_PREFIX",
    "CohortFileError",
    "CriterionResult",
    "Funnel",
    "FunnelRow",
    "PatientDataError",
    "ScreeningInputError",
    "ScreeningResult",
    "TableDataError",
    "encode_cohort",
    "first_failing",
    "funnel",
    "read_cohort",
    "screen",
    "statuses",
]
