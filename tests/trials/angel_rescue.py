"""ANGEL-RESCUE (NCT07026344): thresholds from the registry's eligibility list."""

from .helpers import ONE_MINUTE_H, mg_dl, times

TRIAL = "angel-rescue"

ELIGIBLE = {
    "age": 65, "weight_kg": 70, "nihss": 14, "aspects": 7, "prestroke_mrs": 0, "occlusion_site": "m1",
    "etici": "1", "thrombectomy_passes": 3, "contact_aspiration_attempted": True, "stent_retriever_attempted": True,
    "bridging_thrombolysis": False,
    **times(lkw_to_puncture_h=8), "platelets_10e9_l": 200, "aptt_s": 30, "inr": 1.0, "egfr": 70,
    "creatinine_umol_l": 80, "intracranial_hemorrhage": False, "intraprocedural_hemorrhage": False,
    "recent_major_bleeding": False, "major_surgery_within_14d": False, "doac_within_48h": False,
    "heparin_induced_thrombocytopenia": False, "pregnant": False, "lactating": False, "contrast_allergy": False,
    "nickel_titanium_allergy": False,
    "attestations": {"evt_intended": True, "informed_consent": True, "life_expectancy": False,
                     "neurological_confounder": False, "vascular_access": False, "follow_up": False},
}

BASILAR = {"occlusion_site": "basilar", "aspects": None}

BOUNDARIES = [
    ("age", "age", {"age": 18}, {"age": 17}),
    ("prestroke_mrs", "prestroke_mrs", {"prestroke_mrs": 1}, {"prestroke_mrs": 2}),
    ("time_window", "lkw_to_puncture_h", times(lkw_to_puncture_h=24), times(lkw_to_puncture_h=24 + ONE_MINUTE_H)),
    ("nihss", "nihss", {"nihss": 6}, {"nihss": 5}),
    ("aspects", "aspects", {"aspects": 6}, {"aspects": 5}),
    ("aspects", "pc_aspects", {**BASILAR, "pc_aspects": 6}, {**BASILAR, "pc_aspects": 5}),
    ("occlusion_site", "occlusion_site", {"occlusion_site": "v4", "aspects": None, "pc_aspects": 8},
     {"occlusion_site": "m2"}),
    ("failed_thrombectomy", "etici", {"etici": "0"}, {"etici": "2a"}),
    ("failed_thrombectomy", "thrombectomy_passes", {"thrombectomy_passes": 3}, {"thrombectomy_passes": 2}),
    ("failed_thrombectomy", "thrombectomy_passes", {"thrombectomy_passes": 5}, {"thrombectomy_passes": 6}),
    ("bleeding_diathesis", "platelets_10e9_l", {"platelets_10e9_l": 100}, {"platelets_10e9_l": 99}),
    ("bleeding_diathesis", "aptt_s", {"aptt_s": 50}, {"aptt_s": 50.1}),
    ("bleeding_diathesis", "inr", {"inr": 2.0}, {"inr": 2.01}),
    ("renal_insufficiency", "egfr", {"egfr": 30}, {"egfr": 29}),
    ("renal_insufficiency", "creatinine_umol_l", {"creatinine_umol_l": 220}, {"creatinine_umol_l": 221}),
    ("renal_insufficiency", "creatinine_umol_l", {"creatinine_umol_l": mg_dl(2.48)},
     {"creatinine_umol_l": mg_dl(2.5)}),
]
