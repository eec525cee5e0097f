"""Patients the benchmarks register, screened today (the platform measures the windows that end at
randomization by its own clock, so the clock times are moved to end now): the AMASS-2 patient the server
benchmarks vary, and any seed trial's eligible synthetic patients."""

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


def eligible_records(trial_id: str, n: int) -> list[tuple[dict, dict | None]]:
    """n (screening data, attestations) of the trial's synthetic cohort (the demo's) that screen eligible with
    every randomization factor known, repeated in turn as needed, their clocks moved to end now."""
    from stroketrial.clinical.cohort_records import records_from_frame
    from stroketrial.cohort import synthesize
    from stroketrial.eligibility import encode_cohort, statuses
    from stroketrial.protocol import load_builtin
    from stroketrial.service.demo import shifted_screening

    protocol = load_builtin(trial_id)
    frame = synthesize(3000, 1, protocol)
    eligible = statuses(protocol, encode_cohort(protocol, frame)) == "eligible"
    fields = [f.field for f in protocol.randomization.factors if f.field != "site"] if protocol.randomization else []
    records = records_from_frame(frame[eligible & frame[fields].notna().all(axis=1).to_numpy()].head(500))
    ends = dt.datetime.now(dt.UTC)
    return [shifted_screening(dict(records[i % len(records)]), ends) for i in range(n)]
