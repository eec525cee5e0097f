"""AMASS-2 (NCT07365475): thresholds from the registry's inclusion and exclusion lists."""

from .helpers import ONE_MINUTE_H, mg_dl, times

TRIAL = "amass-2"

ELIGIBLE = {
    "age": 67, "sex": "female", "weight_kg": 64, "nihss": 14, "aspects": 8, "prestroke_mrs": 0,
    "occlusion_site": "m1", "etici": "2b67", "thrombectomy_passes": 2, **times(lkw_to_puncture_h=3.5),
    "bridging_thrombolysis": True,
    "sbp": 152, "dbp": 84, "glucose_mmol_l": 7.1, "creatinine_umol_l": 80, "hematocrit_pct": 39.5,
    "intracranial_hemorrhage": False, "midline_shift_mass_effect": False,
    "heart_failure_or_severe_cardiovascular_disease": False, "unstable_arrhythmia": False,
    "acute_myocardial_infarction": False, "albumin_allergy": False, "pregnant": False,
    "other_trial_participation": False, "severe_pulmonary_disease": False,
    "attestations": {"informed_consent": True, "life_expectancy": False, "investigator_judgement": False},
}

# (criterion, field tested, just inside the protocol, just outside it)
BOUNDARIES = [
    ("age", "age", {"age": 18}, {"age": 17}),
    ("anterior_lvo_recanalized", "etici", {"etici": "2b50"}, {"etici": "2a"}),
    ("anterior_lvo_recanalized", "etici", {"etici": "2b"}, {"etici": "1"}),  # "eTICI ≥ 2b": a bare 2b counts here
    ("anterior_lvo_recanalized", "occlusion_site", {"occlusion_site": "tandem_ica_m1"}, {"occlusion_site": "m2"}),
    ("nihss", "nihss", {"nihss": 6}, {"nihss": 5}),
    ("aspects", "aspects", {"aspects": 6}, {"aspects": 5}),
    ("time_window", "lkw_to_puncture_h", times(lkw_to_puncture_h=24), times(lkw_to_puncture_h=24 + ONE_MINUTE_H)),
    ("prestroke_mrs", "prestroke_mrs", {"prestroke_mrs": 1}, {"prestroke_mrs": 2}),
    ("renal_failure", "creatinine_umol_l", {"creatinine_umol_l": mg_dl(2.0)}, {"creatinine_umol_l": mg_dl(2.01)}),
    ("renal_failure", "creatinine_umol_l", {"creatinine_umol_l": 176.8}, {"creatinine_umol_l": 177}),
    ("severe_anemia", "hematocrit_pct", {"hematocrit_pct": 32}, {"hematocrit_pct": 31.9}),
    ("persistent_hypertension", "sbp", {"sbp": 179}, {"sbp": 180}),
    ("persistent_hypertension", "dbp", {"dbp": 99}, {"dbp": 100}),
    ("isolated_ica_occlusion", "occlusion_site", {"occlusion_site": "m1"}, {"occlusion_site": "ica_cervical"}),
]
