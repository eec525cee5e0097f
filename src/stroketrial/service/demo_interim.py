"""The demo's DSMB at its first interim look: a double-blind trial some months in, its patients randomized in the
past and followed up as far as the calendar allows, the data frozen, the look run by the unblinded statistician,
the freeze released. The DSMB's decision is left to the demo DSMB member, on the page.

The day-90 mRS comes from the registry's outcome model (cohort/registry.py) with a modest benefit of the
experimental arm: each arm's followed patients get that arm's mRS distribution, the better scores going to the
better prognoses of the model. The allocation is the real one, from the concealed list, so it differs at every
load, and with it how the arms' baseline age, NIHSS and ASPECTS fall; the primary analysis adjusts for them, so
one fixed shift gave looks from z 1.4 to past the efficacy boundary. The shift is therefore the one that gives
the primary analysis the z the demo's look is to show (`look_z` in demo_platform.yaml), found on the patients as
allocated: the same z, and recommendation, at every load. Everything is written through the same operations
(and audit trail) as real use; the times are the patients' own, in the past (`now=` of randomize and
report_sae).
"""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Any

import numpy as np
import pandas as pd
from sqlalchemy import select

from ..clinical.cohort_records import records_from_frame
from ..cohort.registry import simulate_outcomes
from ..protocol import Protocol, load_builtin
from ..store import Database
from ..store.models import Allocation, Patient
from . import (adverse_events, interim_analyses, locks, patients, randomize, serious_adverse_events, unblinding,
               visits)
from .accounts import Actor

MRS_GRADES = 7


def enrol_history(db: Database, actor: Actor, trial_id: str, spec: dict[str, Any], frame: pd.DataFrame,
                  sites: list[str], seed: int, codes: list[str]) -> None:
    """The trial's patients randomized before today: the first `followed` from `days` days ago to 91 days ago,
    the others within the last 90 days; the follow-up forms the DSMB's report reads whose day has come, SAEs, AEs,
    one emergency unblinding."""
    from .demo import baseline_values, shifted_screening

    protocol = load_builtin(trial_id)
    today = dt.datetime.now(dt.UTC).replace(microsecond=0)
    n, followed, days = len(frame), spec["followed"], spec["days"]
    moments = [_moment(today, i, followed, days) for i in range(n)]
    records = records_from_frame(frame)
    outcomes = simulate_outcomes(frame, np.random.default_rng(seed)).reset_index(drop=True)
    for i, (code, record) in enumerate(zip(codes, records, strict=True)):
        screening, attestations = shifted_screening(record, moments[i])
        with db.write() as session:
            patients.register(session, actor, trial_id, code, sites[i % len(sites)], screening, attestations)
            randomize.randomize(session, actor, trial_id, code, str(uuid.uuid4()), now=moments[i])
            visits.record_visit(session, actor, trial_id, code, protocol.visits[0].id,
                                moments[i].date().isoformat(), baseline_values(protocol, record))
    with db.read() as session:  # the arms, as the allocation table holds them (the demo writes as the platform)
        arms = dict(session.execute(select(Patient.code, Allocation.arm).join(
            Allocation, Allocation.patient_id == Patient.id).where(Patient.trial_id == trial_id)).all())
    # without a look to show (no `look_z`: a trial filled for a benchmark), each patient keeps the model's own mRS
    mrs = (_mrs_by_arm(protocol, [arms[c] for c in codes[:followed]], outcomes.iloc[:followed],
                       frame.iloc[:followed].reset_index(drop=True), spec["look_z"]) if "look_z" in spec
           else [int(m) for m in outcomes["mrs_90d"].iloc[:followed]])
    rng = np.random.default_rng(seed + 1)
    investigator = Actor("investigator", "investigator", actor.sites)
    for i, code in enumerate(codes):
        outcome = {"mrs": mrs[i] if i < followed else None, "sich": bool(outcomes["sich"].iloc[i]),
                   "nihss": int(records[i].get("nihss") or 10), "arm": arms[code]}
        with db.write() as session:
            _follow_up(session, actor, protocol, code, moments[i], today, outcome, rng, spec)
    with db.write() as session:
        for k, ae in enumerate(spec.get("adverse_events", [])):
            code = codes[(k * 37 + 11) % followed]
            onset = moments[codes.index(code)] + dt.timedelta(days=ae.get("day", 2))
            adverse_events.record_ae(session, actor, trial_id, code,
                                     {**ae["data"], "onset_date": onset.date().isoformat()})
    if "unblinding" in spec:
        with db.write() as session:
            unblinding.unblind(session, investigator, trial_id, codes[spec["unblinding"]["patient"] - 1],
                               spec["unblinding"]["reason"])


def _moment(today: dt.datetime, i: int, followed: int, days: int) -> dt.datetime:
    """Patient i's randomization: evenly from `days` days ago to 91 days ago for the followed, then every few days
    up to yesterday; at a daytime or night-time hour that changes from one patient to the next."""
    ago = days - (days - 91) * i / max(followed - 1, 1) if i < followed else 89 - 17 * (i - followed)
    start = (today - dt.timedelta(days=ago)).replace(hour=0, minute=0, second=0)
    return min(start + dt.timedelta(hours=(7 * i) % 22 + 1, minutes=(13 * i) % 60), today - dt.timedelta(days=1))


def _mrs_by_arm(protocol: Protocol, arms: list[str], outcomes: pd.DataFrame, baseline: pd.DataFrame,
                look_z: float) -> list[int]:
    """Each followed patient's day-90 mRS: the control arm's distribution is the model's over all followed patients,
    the experimental arm's that distribution shifted by the common odds ratio that gives the primary analysis
    (adjusted as the plan says, on `baseline`) a z of `look_z`; within an arm the scores go by the model's
    prognosis (its own mRS, then the infarct volume)."""
    from scipy.optimize import brentq

    from .interim_analyses import primary_arms, primary_statistic

    treatment, control_arm = primary_arms(protocol)
    adjust = list(protocol.analysis_plan.adjust) if protocol.analysis_plan else []
    [column] = [e.analysis.outcome.column for e in protocol.endpoints if e.role == "primary" and e.analysis]
    counts = np.bincount(outcomes["mrs_90d"].to_numpy(dtype=int), minlength=MRS_GRADES)
    control = np.cumsum(counts)[:-1] / counts.sum()  # P(mRS <= k), k = 0..5
    key = outcomes["mrs_90d"].to_numpy(dtype=float) + outcomes["infarct_volume_ml"].to_numpy(dtype=float) / 1e4
    order = {arm: sorted((i for i, a in enumerate(arms) if a == arm), key=lambda i: key[i]) for arm in set(arms)}

    def scores_at(log_or: float) -> list[int]:
        odds = np.exp(log_or) * control / (1 - control)
        shifted = {treatment: odds / (1 + odds), control_arm: control}
        scores = [0] * len(arms)
        for arm, members in order.items():
            for rank, i in enumerate(members):
                scores[i] = int(np.searchsorted(shifted[arm], (rank + 0.5) / len(members), side="right"))
        return scores

    def z_at(log_or: float) -> float:  # the look's own primary analysis, on these patients
        return primary_statistic(protocol, baseline[adjust].assign(arm=arms, **{column: scores_at(log_or)}))["z"]

    # z rises with the shift (in steps, as the scores move a grade at a time): the shift where it crosses look_z
    return scores_at(brentq(lambda log_or: z_at(log_or) - look_z, 0.0, 1.5, xtol=1e-3))


def _follow_up(session, actor: Actor, protocol: Protocol, code: str, randomized: dt.datetime, today: dt.datetime,
               outcome: dict[str, Any], rng: np.random.Generator, spec: dict[str, Any]) -> None:
    """The follow-up forms the DSMB's report reads (`forms`), those whose day has come, and the SAEs: an sICH on the
    24-hour scan, a death by day 90."""
    experimental = next(a.id for a in protocol.arms if a.role == "experimental")
    on_drug = outcome["arm"] == experimental
    mrs, sich, nihss = outcome["mrs"], outcome["sich"], outcome["nihss"]
    dead = mrs == 6
    infection = bool(rng.random() < (0.14 if on_drug else 0.10))
    bleed = "ph2" if sich else ("hi1" if rng.random() < 0.15 else "none")
    def values(visit: Any) -> dict[str, Any]:
        """The visit's assessments, each as this patient's synthetic course gives it on the visit's day."""
        later = visit.day > 1
        course = {
            "nihss": (min(42, round(nihss * (0.6 if visit.day <= 3 else 0.5)) + (6 if sich else 0)) if later
                      else min(42, nihss + 6) if sich else max(0, round(nihss * 0.7))),
            "ct_or_mri": "ct", "haemorrhage_class": bleed, "nihss_increase": 6 if sich else 0,
            "nihss_item_increase": sich, "major_intervention": sich and dead, "haemorrhage_causal": sich,
            "infection": infection, "glucose_mmol_l": round(float(rng.normal(9.5 if on_drug else 7.4, 1.2)), 1),
            "iv_doses_given": 3 if rng.random() > 0.04 else 2,
            "mrs": mrs, "death": dead, "sae": sich or (dead and "death" in visit.assessments)}
        return {a: course[a] for a in visit.assessments if a in course}

    for visit in protocol.visits[1:]:
        day = (randomized + dt.timedelta(days=visit.day)).date()
        if day > today.date() or visit.id not in spec["forms"] or ("mrs" in visit.assessments and mrs is None):
            continue
        visits.record_visit(session, actor, protocol.id, code, visit.id, day.isoformat(), values(visit))
    if sich:
        _report(session, actor, protocol.id, code, randomized + dt.timedelta(hours=20), spec["sich"],
                "fatal" if dead else "recovered_with_sequelae")
    elif dead:
        cause = spec["deaths"][int(rng.integers(len(spec["deaths"])))]
        _report(session, actor, protocol.id, code, randomized + dt.timedelta(days=int(rng.integers(9, 80))), cause,
                "fatal")


def _report(session, actor: Actor, trial_id: str, code: str, onset: dt.datetime, data: dict[str, Any],
            outcome: str) -> None:
    """An SAE reported on time: the site aware 2 hours after the onset, the report 6 hours later."""
    aware = onset + dt.timedelta(hours=2)
    criteria = list(data.get("criteria", ["hospitalization"]))
    if outcome == "fatal" and "death" not in criteria:
        criteria = ["death", *criteria]
    serious_adverse_events.report_sae(
        session, actor, trial_id, code,
        {**{k: v for k, v in data.items() if k != "criteria"}, "criteria": criteria, "outcome": outcome,
         "onset_date": onset.date().isoformat(), "awareness_at": aware.isoformat(timespec="minutes")},
        now=aware + dt.timedelta(hours=6))


def first_look(db: Database, trial_id: str, spec: dict[str, Any], sites: frozenset[str]) -> dict[str, Any]:
    """The trial-wide freeze, the first interim look by the unblinded statistician, the freeze released."""
    data_manager = Actor("data_manager", "data_manager", sites)
    with db.write() as session:
        freeze = locks.lock(session, data_manager, trial_id, "freeze", spec["freeze"])
    with db.write() as session:
        look = interim_analyses.run_look(session, Actor("unblinded_stat", "unblinded_statistician", sites), trial_id)
    with db.write() as session:
        locks.release(session, data_manager, trial_id, freeze["id"], spec["release"])
    return look
