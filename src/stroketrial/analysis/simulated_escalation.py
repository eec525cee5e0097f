"""A simulated single-arm dose-escalation trial with registry controls, for `stroketrial demo` of AMASS-1.

The escalation runs through dosing.escalation.live, the state machine the platform runs on (every decision
the rule's, confirmed as the committee would), with each patient's DLT drawn from a stated true DLT rate per
level; the expansion cohort then fills at the MTD. Baselines come from the synthetic cohort generator
(patients eligible under the protocol), outcomes from the synthetic registry's outcome model, with the
treatment's stated effect on the 24-h infarct volume; the registry controls are the synthetic registry.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from .. import InputError
from ..cohort import synthesize
from ..cohort.registry import simulate_outcomes, synthesize_registry
from ..dosing.escalation.live import Confirmation, EnrolledPatient, escalation_state
from ..eligibility import encode_cohort, statuses
from ..protocol import Protocol

START = dt.datetime(2023, 9, 1, tzinfo=dt.UTC)  # AMASS-1 enrolled from September 2023
INFUSION_REACTION = 0.05  # a mild reaction in 2 of 42 patients (the seed's abstract)
SAE_RATE = 0.35  # serious adverse events per patient within 90 days, a thrombectomy population's


@dataclass(frozen=True)
class SimulatedEscalation:
    data: pd.DataFrame  # the treated patients, one row each, as the platform's export gives them
    controls: pd.DataFrame  # the registry
    truth: dict[str, Any] = field(default_factory=dict)


def simulate_escalation_trial(protocol: Protocol, seed: int = 1, tox: list[float] | None = None,
                              volume_ratio: float = 0.7, n_controls: int = 600,
                              expansion: int | None = None) -> SimulatedEscalation:
    escalation = protocol.dose_escalation
    if escalation is None:
        raise InputError(f"{protocol.id} has no dose escalation")
    k = len(escalation.levels)
    tox = tox if tox is not None else [round(0.02 * (i + 1), 2) for i in range(k)]
    if len(tox) != k or not all(0 <= p <= 1 for p in tox):
        raise InputError(f"give one true DLT probability between 0 and 1 per level ({k} levels)")
    if not 0 < volume_ratio <= 10:
        raise InputError(f"volume ratio {volume_ratio:g} must be above 0 (1: no effect)")
    rng = np.random.default_rng(seed)
    wanted = escalation.expansion_min if expansion is None else expansion
    patients = _escalate(protocol, tox, wanted, rng)
    baseline = _eligible(protocol, len(patients), int(rng.integers(2**31)))
    outcomes = simulate_outcomes(baseline, rng, volume_ratio=volume_ratio)
    data = pd.concat([baseline.reset_index(drop=True), outcomes.reset_index(drop=True)], axis=1)
    data["patient_id"] = [p.code for p in patients]
    data["cohort"] = [p.cohort for p in patients]
    data["dose_level"] = [p.level for p in patients]
    data["dose"] = [{lv.level: lv.dose for lv in escalation.levels}[p.level] for p in patients]
    data["phase"] = [p.phase for p in patients]
    data["dlt"] = [p.dlt for p in patients]
    data["arm"] = protocol.arms[0].id
    data["infusion_reaction"] = (rng.random(len(data)) < INFUSION_REACTION).astype(int)
    data["sae_count"] = rng.poisson(SAE_RATE, len(data))
    controls = synthesize_registry(n_controls, int(rng.integers(2**31)))
    return SimulatedEscalation(data, controls, {"tox": tox, "volume_ratio": volume_ratio, "seed": seed})


def _escalate(protocol: Protocol, tox: list[float], expansion: int, rng: np.random.Generator) -> list[EnrolledPatient]:
    escalation = protocol.dose_escalation
    assert escalation is not None
    patients: list[EnrolledPatient] = []
    confirmations: list[Confirmation] = []
    later = START + dt.timedelta(days=3650)  # every DLT window over
    while True:
        state = escalation_state(escalation, patients, confirmations, later)
        if state.status == "awaiting_confirmation":
            assert state.pending is not None and state.pending_after is not None
            p = state.pending
            confirmations.append(Confirmation(state.pending_after, "treat" if p.action == "treat" else "stop",
                                              p.level, p.mtd))
            continue
        enrolled = sum(1 for p in patients if p.phase == "expansion")
        if state.open_level is None or state.open_cohort is None or state.open_phase is None or (
                state.open_phase == "expansion" and enrolled >= expansion):
            return patients
        at = START + dt.timedelta(days=2 * len(patients))
        patients.append(EnrolledPatient(f"AMASS-{len(patients) + 1:03d}", state.open_cohort, state.open_level,
                                        state.open_phase, at, bool(rng.random() < tox[state.open_level - 1])))


def _eligible(protocol: Protocol, n: int, seed: int) -> pd.DataFrame:
    frame = synthesize(max(400, 40 * n), seed, protocol)
    eligible = frame[statuses(protocol, encode_cohort(protocol, frame)) == "eligible"]
    if len(eligible) < n:  # pragma: no cover - 40 times as many screened always suffice for AMASS-1
        raise InputError(f"only {len(eligible)} of the synthetic patients are eligible; {n} needed")
    return eligible.head(n).drop(columns=["patient_id"]).reset_index(drop=True)
