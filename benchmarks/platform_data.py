"""The AMASS-2 patient both server benchmarks register, screened today: the platform measures the windows
that end at randomization by its own clock, so the clock times are moved to end now."""

import datetime as dt

_NOW = dt.datetime.now(dt.UTC).replace(tzinfo=None, second=0, microsecond=0)


def _ago(minutes: int) -> str:
    return (_NOW - dt.timedelta(minutes=minutes)).isoformat(timespec="minutes")


PATIENT = {"age": 67, "sex": "female", "weight_kg": 64, "nihss": 14, "aspects": 8, "prestroke_mrs": 0,
           "occlusion_site": "m1", "etici": "2b67", "thrombectomy_passes": 2, "sbp": 152, "dbp": 84,
           "glucose_mmol_l": 7.1, "creatinine_umol_l": 80, "hematocrit_pct": 39.5, "intracranial_hemorrhage": False,
           "midline_shift_mass_effect": False, "heart_failure_or_severe_cardiovascular_disease": False,
           "unstable_arrhythmia": False, "acute_myocardial_infarction": False, "albumin_allergy": False,
           "pregnant": False, "other_trial_participation": False, "severe_pulmonary_disease": False,
           "last_known_well": _ago(260), "arterial_puncture": _ago(50), "recanalization": _ago(10),
           "randomization": _ago(0)}
ATTESTATIONS = {"informed_consent": True, "life_expectancy": False, "investigator_judgement": False}
