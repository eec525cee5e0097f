"""A synthetic thrombectomy registry: seeded anterior-circulation patients with successful reperfusion and their
outcomes, the shape of the matched-control pool a single-arm trial draws on.

The baseline is synthetic.synthesize's LVO cohort, kept where the occlusion is anterior and treatable
(intracranial ICA, tandem ICA+M1, M1, M2) and the final eTICI is 2b50 or better, and with the columns a
thrombectomy registry records. The outcomes are drawn from models whose coefficients are approximations of
published thrombectomy data, not fits to patient-level data:

- 24-h infarct volume: log-normal, larger with NIHSS, smaller with ASPECTS and with fuller reperfusion, larger
  with a longer time from onset to recanalization; median about 30-40 mL, as after successful reperfusion in the
  HERMES trials (final infarct volume, Boers AMM et al., Stroke 2018;49:2548-57, and the 24-h volumes of MR CLEAN,
  ESCAPE and REVASCAT).
- 90-day mRS: proportional odds on age, NIHSS, ASPECTS, pre-stroke mRS, infarct volume and sICH, the cut-points
  set so that the registry's distribution is about that of the thrombectomy arms of HERMES (Goyal M et al.,
  Lancet 2016;387:1723-31: mRS 0-2 46%, death 15%): here about 45-50% mRS 0-2 and 15-18% deaths.
- sICH within 48 h: logistic, more with larger volume, more passes, bridging thrombolysis and anticoagulation;
  about 4-6% (HERMES 4.4%; MR CLEAN Registry 6%, Jansen IGH et al., BMJ 2018;360:k949).

About 2% of mRS (lost to follow-up; death still known), 5% of volumes (no 24-h imaging) and 1% of sICH are
missing. `simulate_outcomes` is the same outcome model for any thrombectomy patients, a trial's treated patients
among them, with a treatment's effect as a ratio on the infarct volume.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pandas as pd

from .. import InputError
from ..clinical.registry_columns import DEATH_90D, INFARCT_VOLUME, MRS_90D, REGISTRY_VARIABLES, SICH, registry_table
from ..clinical.scales import ETICI, OcclusionSite
from .synthetic import synthesize

REGISTRY_SITES = (OcclusionSite.ICA_INTRACRANIAL, OcclusionSite.TANDEM_ICA_M1, OcclusionSite.M1, OcclusionSite.M2)
SUCCESSFUL_REPERFUSION = (ETICI.G2B50, ETICI.G2B67, ETICI.G2C, ETICI.G3)
# What a thrombectomy registry records at baseline (the trial-specific screening facts, allergies, pregnancy,
# another trial, are left out); the outcomes follow.
BASELINE_COLUMNS = (
    "patient_id", "site", "age", "sex", "weight_kg", "nihss", "aspects", "prestroke_mrs", "occlusion_site", "etici",
    "thrombectomy_passes", "last_known_well", "arterial_puncture", "recanalization", "sbp", "dbp", "glucose_mmol_l",
    "creatinine_umol_l", "hematocrit_pct", "platelets_10e9_l", "inr", "aptt_s", "egfr", "bridging_thrombolysis",
    "oral_anticoagulant", "heart_failure_or_severe_cardiovascular_disease", "contact_aspiration_attempted",
    "stent_retriever_attempted", "carotid_territory_infarct",
)

# 24-h infarct volume: log(mL) at the reference patient (NIHSS 16, ASPECTS 8, eTICI 3, 5 h from onset to
# recanalization), per unit of each covariate, and the spread.
_VOLUME_LOG_MEDIAN = math.log(26.0)
_VOLUME_NIHSS = 0.06  # per NIHSS point
_VOLUME_ASPECTS = -0.25  # per ASPECTS point
# by final eTICI (the registry holds 2b50-3; the rest serve simulate_outcomes for any thrombectomy patient)
_VOLUME_ETICI = {ETICI.G0.value: 1.6, ETICI.G1.value: 1.4, ETICI.G2A.value: 1.0, ETICI.G2B.value: 0.5,
                 ETICI.G2B50.value: 0.6, ETICI.G2B67.value: 0.4, ETICI.G2C.value: 0.15, ETICI.G3.value: 0.0}
_VOLUME_TIME = 0.35  # per log(hours from onset to recanalization / 5)
_VOLUME_SD = 1.1
# sICH: log-odds at volume 35 mL, one pass, no thrombolysis or anticoagulation, and the effects
_SICH_INTERCEPT = -3.45
_SICH_VOLUME, _SICH_PASSES, _SICH_LYSIS, _SICH_ANTICOAGULANT = 0.45, 0.2, 0.3, 0.4
# 90-day mRS: the linear predictor (higher = worse) and cut-points of P(mRS <= k), k = 0..5
_MRS_AGE, _MRS_NIHSS, _MRS_ASPECTS, _MRS_PRESTROKE = 0.045, 0.07, -0.08, 0.45  # per year, point, point, grade
_MRS_VOLUME, _MRS_SICH = 0.75, 2.5  # per log(mL / 35); sICH
_MRS_CUTS = (-2.5, -1.04, 0.1, 0.96, 1.91, 2.56)
_MISSING_MRS, _MISSING_VOLUME, _MISSING_SICH = 0.02, 0.05, 0.01


def synthesize_registry(n: int = 600, seed: int = 1) -> pd.DataFrame:
    """`n` synthetic registry patients (codes R00001...), baseline and outcomes, typed as the registry's frame
    (registry_table); the same seed, the same table."""
    if n < 1:
        raise InputError(f"n is {n}; a registry has at least 1 patient")
    rng = np.random.default_rng(seed)
    frame = _eligible_baseline(n, int(rng.integers(2**31)))
    frame.insert(0, "patient_id", pd.array([f"R{i + 1:05d}" for i in range(n)], dtype="string"))
    outcomes = simulate_outcomes(frame, rng)
    # lost to follow-up (death still known), no 24-h imaging, sICH not adjudicated
    for name, rate in ((INFARCT_VOLUME.name, _MISSING_VOLUME), (MRS_90D.name, _MISSING_MRS),
                       (SICH.name, _MISSING_SICH)):
        outcomes[name] = outcomes[name].mask(rng.random(n) < rate)
    return registry_table(pd.concat([frame, outcomes], axis=1))  # checked as an imported file is, and typed so


def simulate_outcomes(baseline: pd.DataFrame, rng: np.random.Generator, volume_ratio: float = 1.0) -> pd.DataFrame:
    """The registry's outcome model for any thrombectomy patients (a synthetic cohort's or the registry's columns;
    a blank or absent covariate counts at a typical value): 24-h infarct volume, sICH, 90-day mRS and death, all
    recorded. `volume_ratio` multiplies each infarct volume (a treatment's effect), and sICH and mRS follow the
    changed volume. One row per patient, in the baseline's order and index."""
    if not volume_ratio > 0:
        raise InputError(f"volume ratio {volume_ratio:g} must be above 0 (1: no effect)")
    volume = np.round(np.clip(_infarct_volume(baseline, rng) * volume_ratio, 0.1, 1000), 1)
    sich = _sich(baseline, volume, rng)
    mrs = _mrs_90d(baseline, volume, sich, rng)
    return pd.DataFrame({INFARCT_VOLUME.name: pd.array(volume, dtype="Float64"),
                         MRS_90D.name: pd.array(mrs, dtype="Int64"),
                         DEATH_90D.name: pd.array(mrs == 6, dtype="boolean"),
                         SICH.name: pd.array(sich, dtype="boolean")}, index=baseline.index)


def _eligible_baseline(n: int, seed: int) -> pd.DataFrame:
    """The first `n` patients of a synthetic LVO cohort with an anterior occlusion and successful reperfusion."""
    size = max(64, math.ceil(n / 0.55))
    while True:
        cohort = synthesize(size, seed)
        keep = (cohort["occlusion_site"].isin([s.value for s in REGISTRY_SITES])
                & cohort["etici"].isin([g.value for g in SUCCESSFUL_REPERFUSION])).to_numpy(dtype=bool, na_value=False)
        if keep.sum() >= n:
            baseline = [c for c in BASELINE_COLUMNS if c != "patient_id"]
            frame = cohort.loc[keep, baseline].head(n).reset_index(drop=True)
            # An anterior occlusion is an infarct in the carotid territory, whatever the screening log left blank.
            frame["carotid_territory_infarct"] = pd.array(np.ones(n, dtype=bool), dtype="boolean")
            return frame
        size *= 2


def _filled(frame: pd.DataFrame, name: str, typical: float) -> np.ndarray:
    if name not in frame.columns:
        return np.full(len(frame), typical)
    return frame[name].astype("Float64").fillna(typical).to_numpy(dtype=float)


_TYPICAL_ONSET_TO_RECANALIZATION_H = 5.0


def _onset_to_recanalization_h(frame: pd.DataFrame) -> np.ndarray:
    if "recanalization" not in frame.columns or "last_known_well" not in frame.columns:
        return np.full(len(frame), _TYPICAL_ONSET_TO_RECANALIZATION_H)
    hours = (frame["recanalization"] - frame["last_known_well"]).dt.total_seconds() / 3600
    typical = hours.median() if hours.notna().any() else _TYPICAL_ONSET_TO_RECANALIZATION_H
    return hours.fillna(typical).clip(lower=0.5).to_numpy(dtype=float)


def _infarct_volume(frame: pd.DataFrame, rng: np.random.Generator) -> np.ndarray:
    grades = frame["etici"] if "etici" in frame.columns else pd.Series(pd.NA, index=frame.index)
    etici = grades.astype("string").str.strip().str.lower().map(_VOLUME_ETICI).astype("Float64").fillna(
        _VOLUME_ETICI[ETICI.G3.value]).to_numpy(dtype=float)
    log_volume = (_VOLUME_LOG_MEDIAN + _VOLUME_NIHSS * (_filled(frame, "nihss", 16) - 16)
                  + _VOLUME_ASPECTS * (_filled(frame, "aspects", 8) - 8) + etici
                  + _VOLUME_TIME * np.log(_onset_to_recanalization_h(frame) / 5)
                  + rng.normal(0, _VOLUME_SD, len(frame)))
    return np.exp(log_volume)


def _sich(frame: pd.DataFrame, volume: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    logit = (_SICH_INTERCEPT + _SICH_VOLUME * np.log(volume / 35)
             + _SICH_PASSES * (_filled(frame, "thrombectomy_passes", 1) - 1)
             + _SICH_LYSIS * _filled(frame, "bridging_thrombolysis", 0)
             + _SICH_ANTICOAGULANT * _filled(frame, "oral_anticoagulant", 0))
    return rng.random(len(frame)) < 1 / (1 + np.exp(-logit))


def _mrs_90d(frame: pd.DataFrame, volume: np.ndarray, sich: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """A proportional-odds draw: P(mRS <= k) = expit(cut_k - eta)."""
    eta = (_MRS_AGE * (_filled(frame, "age", 67) - 67) + _MRS_NIHSS * (_filled(frame, "nihss", 16) - 16)
           + _MRS_ASPECTS * (_filled(frame, "aspects", 8) - 8) + _MRS_PRESTROKE * _filled(frame, "prestroke_mrs", 0)
           + _MRS_VOLUME * np.log(volume / 35) + _MRS_SICH * sich)
    cumulative = 1 / (1 + np.exp(-(np.array(_MRS_CUTS)[None, :] - eta[:, None])))
    return (rng.random(len(frame))[:, None] > cumulative).sum(axis=1)


def write_registry(frame: pd.DataFrame, path: str | Path) -> None:
    """A registry frame as a .csv (times in ISO 8601, as given) or .parquet file the import reads back unchanged."""
    path = Path(path)
    if path.suffix.lower() not in (".csv", ".parquet"):
        raise InputError(f"{path}: write a registry as .csv or .parquet")
    # the recorded columns only: the import derives the intervals from the times again
    out = frame.drop(columns=[c for c in frame.columns if getattr(REGISTRY_VARIABLES.get(str(c)), "kind", None)
                              == "interval"])
    for name in out.columns:
        variable = REGISTRY_VARIABLES.get(str(name))
        if variable is not None and variable.kind == "timestamp":
            out[name] = pd.array([None if pd.isna(t) else pd.Timestamp(t).isoformat() for t in out[name]],
                                 dtype="string")
    if path.suffix.lower() == ".parquet":
        out.to_parquet(path, index=False)
    else:
        out.to_csv(path, index=False)
