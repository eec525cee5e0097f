"""IMPACT-LVO (NCT07141303): thresholds from the registry's eligibility list."""

from .helpers import ONE_MINUTE_H, mg_dl, times

TRIAL = "impact-lvo"

ELIGIBLE = {
    "age": 60, "weight_kg": 75, "nihss": 10, "aspects": 5, "prestroke_mrs": 1, "occlusion_site": "m2",
    "etici": "2b50", "thrombectomy_passes": 2, **times(lkw_to_puncture_h=6, puncture_to_recanalization_min=60),
    "inr": 1.1, "glucose_mmol_l": 6.0, "creatinine_umol_l": 90, "egfr": 80,
    "intracranial_hemorrhage": False, "pregnant": False, "lactating": False, "contrast_allergy": False,
    "methylprednisolone_allergy": False, "other_trial_participation": False, "hemorrhagic_diathesis": False,
    "oral_anticoagulant": False, "recent_major_bleeding": False, "chronic_hemodialysis": False,
    "intracranial_vascular_lesion": False, "active_systemic_infection": False, "procedural_vessel_injury": False,
    "attestations": {"responsible_vessel": True, "informed_consent": True, "terminal_illness": False,
                     "follow_up": False},
}

ANTICOAGULATED = {"oral_anticoagulant": True}

BOUNDARIES = [
    ("age", "age", {"age": 18}, {"age": 17}),
    ("age", "age", {"age": 80}, {"age": 81}),
    ("time_window", "lkw_to_randomization_h", times(lkw_to_randomization_h=24),
     times(lkw_to_randomization_h=24 + ONE_MINUTE_H)),
    ("anterior_lvo", "occlusion_site", {"occlusion_site": "ica_intracranial"}, {"occlusion_site": "m3"}),
    ("nihss", "nihss", {"nihss": 6}, {"nihss": 5}),
    ("aspects", "aspects", {"aspects": 3}, {"aspects": 2}),
    ("successful_evt", "etici", {"etici": "2b50"}, {"etici": "2a"}),
    ("prestroke_mrs", "prestroke_mrs", {"prestroke_mrs": 1}, {"prestroke_mrs": 2}),
    ("hemorrhagic_diathesis", "inr", {**ANTICOAGULATED, "inr": 1.7}, {**ANTICOAGULATED, "inr": 1.71}),
    ("renal_insufficiency", "egfr", {"egfr": 30}, {"egfr": 29.9}),
    ("renal_insufficiency", "creatinine_umol_l", {"creatinine_umol_l": 220}, {"creatinine_umol_l": 221}),
    # "serum creatinine > 220μmol/L (2.5mg/dl)": a value entered in mg/dL meets the mg/dL threshold, so 2.5 mg/dL
    # (221.0 µmol/L once converted) is not above it
    ("renal_insufficiency", "creatinine_umol_l", {"creatinine_umol_l": mg_dl(2.5)},
     {"creatinine_umol_l": mg_dl(2.51)}),
    ("glucose", "glucose_mmol_l", {"glucose_mmol_l": 2.8}, {"glucose_mmol_l": 2.79}),
    ("glucose", "glucose_mmol_l", {"glucose_mmol_l": 22.2}, {"glucose_mmol_l": 22.3}),
    # "Blood glucose < 2.8mmol/L (50mg/dl) or > 22.2mmol/L (400mg/dl)": 50 and 400 mg/dL are inside, though they
    # convert to 2.775 and 22.203 mmol/L
    ("glucose", "glucose_mmol_l", {"glucose_mmol_l": mg_dl(50)}, {"glucose_mmol_l": mg_dl(49)}),
    ("glucose", "glucose_mmol_l", {"glucose_mmol_l": mg_dl(400)}, {"glucose_mmol_l": mg_dl(401)}),
    ("puncture_to_recanalization", "puncture_to_recanalization_min",
     times(lkw_to_puncture_h=6, puncture_to_recanalization_min=90),
     times(lkw_to_puncture_h=6, puncture_to_recanalization_min=91)),
    ("thrombectomy_passes", "thrombectomy_passes", {"thrombectomy_passes": 3}, {"thrombectomy_passes": 4}),
]
