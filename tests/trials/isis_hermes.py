"""ISIS-HERMES (NCT00875654): 18-70 years, < 2 weeks, moderate-severe carotid stroke; the rest are assumptions."""

from .helpers import times

TRIAL = "isis-hermes"

ELIGIBLE = {
    "age": 55, "nihss": 12, "prestroke_mrs": 0, "carotid_territory_infarct": True,
    **times(lkw_to_randomization_h=5 * 24), "platelets_10e9_l": 220, "inr": 1.0, "pregnant": False,
    "mri_contraindication": False, "hemorrhagic_diathesis": False, "active_systemic_infection": False,
    "attestations": {"informed_consent": True, "life_expectancy": False},
}

BOUNDARIES = [
    ("age", "age", {"age": 18}, {"age": 17}),
    ("age", "age", {"age": 70}, {"age": 71}),
    ("subacute_window", "lkw_to_randomization_h", times(lkw_to_randomization_h=14 * 24 - 1 / 60),
     times(lkw_to_randomization_h=14 * 24)),
    ("moderate_severe", "nihss", {"nihss": 7}, {"nihss": 6}),
    ("prestroke_disability", "prestroke_mrs", {"prestroke_mrs": 1}, {"prestroke_mrs": 2}),
    ("bleeding_risk", "platelets_10e9_l", {"platelets_10e9_l": 100}, {"platelets_10e9_l": 99}),
    ("bleeding_risk", "inr", {"inr": 1.5}, {"inr": 1.51}),
]
