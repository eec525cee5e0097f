"""AMASS-1 (NCT05953623): mTICI ≥ 2b from the abstract; the rest are the protocol file's assumptions."""

from .helpers import ONE_MINUTE_H, mg_dl, times

TRIAL = "amass-1"

ELIGIBLE = {
    "age": 63, "weight_kg": 70, "nihss": 12, "aspects": 9, "prestroke_mrs": 0, "occlusion_site": "m2",
    "etici": "2c", **times(lkw_to_puncture_h=5), "creatinine_umol_l": 75,
    "intracranial_hemorrhage": False, "heart_failure_or_severe_cardiovascular_disease": False,
    "severe_pulmonary_disease": False, "albumin_allergy": False, "pregnant": False,
    "attestations": {"informed_consent": True},
}

BOUNDARIES = [
    ("anterior_lvo", "occlusion_site", {"occlusion_site": "ica_intracranial"}, {"occlusion_site": "basilar"}),
    ("successful_reperfusion", "etici", {"etici": "2b50"}, {"etici": "2a"}),
    ("successful_reperfusion", "etici", {"etici": "2b"}, {"etici": "1"}),  # mTICI 2b is accepted
    ("age", "age", {"age": 18}, {"age": 17}),
    ("nihss", "nihss", {"nihss": 6}, {"nihss": 5}),
    ("aspects", "aspects", {"aspects": 6}, {"aspects": 5}),
    ("time_window", "lkw_to_puncture_h", times(lkw_to_puncture_h=24), times(lkw_to_puncture_h=24 + ONE_MINUTE_H)),
    ("prestroke_mrs", "prestroke_mrs", {"prestroke_mrs": 1}, {"prestroke_mrs": 2}),
    ("renal_failure", "creatinine_umol_l", {"creatinine_umol_l": mg_dl(2.0)}, {"creatinine_umol_l": mg_dl(2.01)}),
    ("renal_failure", "creatinine_umol_l", {"creatinine_umol_l": 176.8}, {"creatinine_umol_l": 177}),
]
