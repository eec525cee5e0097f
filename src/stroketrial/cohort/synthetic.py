"""Synthetic large-vessel-occlusion cohorts: realistic, seeded, reproducible.

The marginal distributions are approximations of published baseline tables,
not fits to patient-level data:

- age, NIHSS, ASPECTS, occlusion site, bridging thrombolysis: HERMES pooled
  analysis of the early-window thrombectomy trials (Goyal M et al., Lancet
  2016;387:1723-31: median age 68, NIHSS 17 (IQR 14-20), ASPECTS 9 (7-10), ICA
  21%, M1 69%, M2 8%); basilar and V4 occlusions at the share seen in
  thrombectomy registries (about 1 in 10 procedures, e.g. MR CLEAN Registry,
  Jansen IGH et al., BMJ 2018;360:k949).
- time from last known well to puncture: log-normal with median 4.5 h and a
  tail beyond 6 h for late-window patients (DAWN, Nogueira RG et al., NEJM
  2018; DEFUSE 3, Albers GW et al., NEJM 2018), a few beyond 24 h.
- final reperfusion and passes: eTICI 2b50-3 in about 80%, first-pass
  reperfusion in about half (MR CLEAN Registry; ASTER/COMPASS), with failed
  procedures (eTICI 0-1) taking more passes.
- blood pressure, glucose, creatinine, haematocrit, platelets, INR, aPTT,
  eGFR: normal or log-normal around the admission values reported in the
  MR CLEAN Registry and HERMES baseline tables.
- yes/no histories at the prevalences those tables and the trials' exclusion
  logs suggest (anticoagulation 12%, heart failure 6%, pregnancy rare).

About 1-3% of each field is missing, as in real screening logs. Attestation
answers (consent, investigator judgement) are added only for a named protocol.
"""

from __future__ import annotations

from .. import InputError

import numpy as np
import pandas as pd

from ..clinical.scales import ETICI, OcclusionSite
from ..clinical.encoded_table import ATTESTATION_PREFIX
from ..protocol.model import Protocol

_OCCLUSION_P = {
    OcclusionSite.ICA_INTRACRANIAL: 0.14, OcclusionSite.ICA_CERVICAL: 0.03, OcclusionSite.TANDEM_ICA_M1: 0.10,
    OcclusionSite.M1: 0.45, OcclusionSite.M2: 0.13, OcclusionSite.M3: 0.01, OcclusionSite.ACA: 0.01,
    OcclusionSite.V4: 0.02, OcclusionSite.BASILAR: 0.09, OcclusionSite.PCA: 0.02,
}
_ETICI_P = {ETICI.G0: 0.08, ETICI.G1: 0.03, ETICI.G2A: 0.09, ETICI.G2B50: 0.20, ETICI.G2B67: 0.14,
            ETICI.G2C: 0.14, ETICI.G3: 0.32}
_ASPECTS_P = [0.005, 0.005, 0.01, 0.02, 0.03, 0.05, 0.08, 0.13, 0.18, 0.22, 0.27]
_PRESTROKE_MRS_P = [0.74, 0.14, 0.07, 0.04, 0.01, 0.0]
_FLAG_P = {
    "bridging_thrombolysis": 0.35, "intracranial_hemorrhage": 0.01, "intraprocedural_hemorrhage": 0.01,
    "midline_shift_mass_effect": 0.01, "procedural_vessel_injury": 0.02, "intracranial_vascular_lesion": 0.02,
    "heart_failure_or_severe_cardiovascular_disease": 0.06, "unstable_arrhythmia": 0.02,
    "acute_myocardial_infarction": 0.01, "severe_pulmonary_disease": 0.04, "albumin_allergy": 0.003,
    "contrast_allergy": 0.01, "methylprednisolone_allergy": 0.002, "nickel_titanium_allergy": 0.002,
    "other_trial_participation": 0.01, "hemorrhagic_diathesis": 0.005, "oral_anticoagulant": 0.12,
    "heparin_induced_thrombocytopenia": 0.002, "recent_major_bleeding": 0.01, "major_surgery_within_14d": 0.01,
    "chronic_hemodialysis": 0.01, "active_systemic_infection": 0.05, "mri_contraindication": 0.05,
}
MISSING_RATE = 0.02
_WHOLE_NUMBERS = {"age", "nihss", "aspects", "pc_aspects", "prestroke_mrs", "thrombectomy_passes", "sbp", "dbp"}


def synthesize(n: int, seed: int, protocol: Protocol | None = None, start: str = "2026-01-01") -> pd.DataFrame:
    """`n` synthetic LVO patients; the same seed gives the same table."""
    if n < 1:
        raise InputError(f"n is {n}; a cohort has at least 1 patient")
    rng = np.random.default_rng(seed)
    col: dict[str, object] = {"patient_id": [f"P{i + 1:07d}" for i in range(n)]}
    col["site"] = rng.choice([f"S{i}" for i in range(1, 9)], size=n, p=[.25, .2, .15, .1, .1, .08, .07, .05])
    age = np.clip(np.rint(rng.normal(67, 13, n)), 16, 99)
    col["age"] = age
    female = rng.random(n) < 0.42
    col["sex"] = np.where(female, "female", "male")
    col["weight_kg"] = np.round(np.clip(rng.normal(np.where(female, 64, 74), 12), 35, 180), 1)
    col["nihss"] = np.clip(np.rint(rng.normal(16, 6, n)), 0, 42)

    sites = list(_OCCLUSION_P)
    site = rng.choice(len(sites), size=n, p=list(_OCCLUSION_P.values()))
    posterior = np.isin(site, [sites.index(s) for s in sites if s.circulation.value == "posterior"])
    col["occlusion_site"] = np.array([s.value for s in sites])[site]
    aspects = rng.choice(11, size=n, p=_ASPECTS_P).astype(float)
    col["aspects"] = np.where(posterior, np.nan, aspects)
    col["pc_aspects"] = np.where(posterior, rng.choice(11, size=n, p=_ASPECTS_P), np.nan)
    col["carotid_territory_infarct"] = ~posterior
    col["prestroke_mrs"] = rng.choice(6, size=n, p=_PRESTROKE_MRS_P).astype(float)

    grades = list(_ETICI_P)
    grade = rng.choice(len(grades), size=n, p=list(_ETICI_P.values()))
    col["etici"] = np.array([g.value for g in grades])[grade]
    failed = grade <= grades.index(ETICI.G1)
    passes = np.where(failed, rng.choice([2, 3, 4, 5, 6], size=n, p=[.1, .35, .3, .15, .1]),
                      rng.choice([1, 2, 3, 4, 5], size=n, p=[.52, .24, .13, .07, .04]))
    col["thrombectomy_passes"] = passes.astype(float)
    several = passes >= 2
    col["contact_aspiration_attempted"] = rng.random(n) < np.where(several, 0.8, 0.45)
    col["stent_retriever_attempted"] = rng.random(n) < np.where(several, 0.85, 0.55)

    base = pd.Timestamp(start) + pd.to_timedelta(rng.integers(0, 365 * 24 * 60, n), unit="min")
    lkw_to_puncture_h = rng.lognormal(np.log(4.5), 0.75, n)
    puncture_to_recan_min = 12 + 14 * passes + rng.gamma(2.0, 8.0, n)
    col["last_known_well"] = base
    col["arterial_puncture"] = base + pd.to_timedelta(np.round(lkw_to_puncture_h * 60), unit="min")
    col["recanalization"] = col["arterial_puncture"] + pd.to_timedelta(np.round(puncture_to_recan_min), unit="min")
    col["randomization"] = col["recanalization"] + pd.to_timedelta(rng.integers(3, 25, n), unit="min")

    col["sbp"] = np.clip(np.rint(rng.normal(148, 24, n)), 70, 260)
    col["dbp"] = np.clip(np.rint(rng.normal(84, 14, n)), 35, 160)
    col["glucose_mmol_l"] = np.round(np.clip(rng.lognormal(np.log(7.0), 0.3, n), 1.5, 40), 1)
    col["creatinine_umol_l"] = np.round(np.clip(rng.lognormal(np.log(80), 0.35, n), 20, 1500))
    col["hematocrit_pct"] = np.round(np.clip(rng.normal(40, 5, n), 18, 60), 1)
    col["platelets_10e9_l"] = np.round(np.clip(rng.normal(225, 65, n), 15, 900))
    col["egfr"] = np.round(np.clip(rng.normal(82, 22, n), 3, 150))
    col["aptt_s"] = np.round(np.clip(rng.normal(30, 5, n), 15, 150), 1)
    flags = {flag: rng.random(n) < p for flag, p in _FLAG_P.items()}
    col.update(flags)
    anticoagulated = flags["oral_anticoagulant"]
    col["inr"] = np.round(np.where(anticoagulated, np.clip(rng.lognormal(np.log(1.5), 0.3, n), 0.9, 8),
                                   np.clip(rng.normal(1.02, 0.08, n), 0.8, 1.6)), 2)
    col["doac_within_48h"] = anticoagulated & (rng.random(n) < 0.5)
    childbearing = female & (age < 50)
    col["pregnant"] = childbearing & (rng.random(n) < 0.02)
    col["lactating"] = childbearing & (rng.random(n) < 0.01)

    frame = pd.DataFrame(col)
    _blank_some(frame, rng)
    if protocol is not None:
        _attest(frame, protocol, rng)
    return frame


def _blank_some(frame: pd.DataFrame, rng: np.random.Generator) -> None:
    """Make about MISSING_RATE of each clinical field missing, with nullable dtypes."""
    for name in frame.columns:
        if name in ("patient_id", "site", "last_known_well"):
            continue
        missing = rng.random(len(frame)) < MISSING_RATE
        series = frame[name]
        if pd.api.types.is_bool_dtype(series.dtype):
            series = series.astype("boolean")
        elif pd.api.types.is_datetime64_any_dtype(series.dtype):
            frame[name] = series.mask(missing)
            continue
        elif pd.api.types.is_numeric_dtype(series.dtype):
            series = series.astype("Float64")
            if name in _WHOLE_NUMBERS:
                series = series.astype("Int64")
        else:
            series = series.astype("string")
        frame[name] = series.mask(missing)


def _attest(frame: pd.DataFrame, protocol: Protocol, rng: np.random.Generator) -> None:
    inclusion = {c.id for c in protocol.inclusion}
    for criterion in protocol.criteria:
        if criterion.attestation is None:
            continue
        applies = rng.random(len(frame)) < (0.95 if criterion.id in inclusion else 0.03)
        frame[ATTESTATION_PREFIX + criterion.id] = pd.array(applies, dtype="boolean")


def write_cohort(frame: pd.DataFrame, path: str) -> None:
    if path.lower().endswith(".parquet"):
        frame.to_parquet(path, index=False)
    elif path.lower().endswith(".csv"):
        frame.to_csv(path, index=False, date_format="%Y-%m-%dT%H:%M")
    else:
        raise InputError(f"{path}: write a cohort as .csv or .parquet")
