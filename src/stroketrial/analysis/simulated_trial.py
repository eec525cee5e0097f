"""A complete simulated trial dataset with a stated true effect, for demos, reports and power checks.

Eligible patients come from the synthetic cohort (`stroketrial.cohort`), are randomized
by the protocol's own method, and get outcomes from stated models:

- 90-day mRS: a proportional-odds model; the control distribution at average baseline
  is CONTROL_MRS (close to the thrombectomy arms of HERMES, Goyal M et al., Lancet 2016),
  older age, higher NIHSS and lower ASPECTS shift it toward worse, and the treatment
  shifts it toward better by the common odds ratio;
- death within 90 days: mRS 6; sICH: about 6% (more with higher NIHSS), no treatment effect;
- 24-hour infarct volume: log-normal around 25 mL, larger with NIHSS and lower ASPECTS,
  multiplied by `volume_ratio` in the treatment arm;
- NIHSS at 24 h and 7 days, 3% missing mRS, 5% protocol deviations, 2% crossovers.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from ..cohort import synthesize
from ..eligibility import encode_cohort, funnel, statuses
from ..protocol import Protocol
from ..randomization import Randomizer, SeededDraw, code_cohort, generate_kit_list

CONTROL_MRS = (0.10, 0.14, 0.16, 0.17, 0.15, 0.08, 0.20)


@dataclass(frozen=True)
class SimulatedTrial:
    data: pd.DataFrame  # one row per randomized patient
    long: pd.DataFrame  # NIHSS per patient and visit
    funnel: dict
    truth: dict


def simulate_trial(protocol: Protocol, n: int | None = None, seed: int = 1, common_or: float = 1.5,
                   volume_ratio: float = 0.8) -> SimulatedTrial:
    n = n or protocol.sample_size.total
    # Independent streams for randomization and outcomes: sharing one would tie the arm to the outcome.
    randomization_stream, outcome_stream = np.random.SeedSequence(seed).spawn(2)
    rng = np.random.default_rng(outcome_stream)
    size = max(4 * n, 2000)
    while True:
        cohort = synthesize(size, seed, protocol)
        status = statuses(protocol, encode_cohort(protocol, cohort))
        factors = [f.field for f in protocol.randomization.factors] if protocol.randomization else []
        usable = (status == "eligible") & cohort[factors].notna().all(axis=1).to_numpy() if factors else \
            status == "eligible"
        if usable.sum() >= n or size > 400_000:
            break
        size *= 2
    screened = cohort.iloc[: int(np.flatnonzero(usable)[min(n, usable.sum()) - 1]) + 1]
    counts = funnel(protocol, encode_cohort(protocol, screened)).to_json()
    data = cohort[usable].head(n).reset_index(drop=True)
    randomizer = Randomizer.for_protocol(protocol)
    coded = code_cohort(randomizer.factors, data)
    names = [f.name for f in randomizer.factors]
    patients = [(str(pid), {nm: coded.levels[j][row[j]] for j, nm in enumerate(names)}, str(site))
                for pid, row, site in zip(data["patient_id"], coded.codes, data["site"], strict=True)]
    kits = None
    if randomizer.scheme.blinded_kits:  # the protocol's randomization (for_protocol refuses a trial without one)
        sizes = getattr(randomizer.scheme, "block_sizes", [2 * randomizer.arms.n_slots])
        kits = generate_kit_list(randomizer.arms, sorted(set(data["site"].astype(str))), n + 8, sizes,
                                 SeededDraw(np.random.default_rng(randomization_stream)))
    allocations, _, _ = randomizer.run(patients, SeededDraw(np.random.default_rng(randomization_stream)),
                                       kit_list=kits)
    data["arm"] = [a.arm for a in allocations]
    treatment = next(a.id for a in protocol.arms if a.role == "experimental")
    treated = (data["arm"] == treatment).to_numpy()
    age = data["age"].astype(float).to_numpy()
    nihss = data["nihss"].astype(float).to_numpy()
    aspects = data["aspects"].astype(float).fillna(8).to_numpy() if "aspects" in data else np.full(n, 8.0)
    eta = 0.035 * (age - 67) + 0.08 * (nihss - 16) - 0.15 * (aspects - 8)
    cuts = np.log(np.cumsum(CONTROL_MRS)[:-1] / (1 - np.cumsum(CONTROL_MRS)[:-1]))
    cumulative = 1 / (1 + np.exp(-(cuts[None, :] + np.log(common_or) * treated[:, None] - eta[:, None])))
    mrs = (rng.random(n)[:, None] > cumulative).sum(axis=1)
    data["mrs_90d"] = mrs.astype(float)
    data["death_90d"] = (mrs == 6).astype(int)
    data["sich"] = (rng.random(n) < 1 / (1 + np.exp(-(np.log(0.06 / 0.94) + 0.04 * (nihss - 16))))).astype(int)
    log_volume = np.log(25) + 0.06 * (nihss - 16) - 0.25 * (aspects - 8) + np.log(volume_ratio) * treated
    data["infarct_volume_ml"] = np.round(np.exp(log_volume + rng.normal(0, 1.0, n)), 1)
    data["nihss_24h"] = np.clip(np.round(nihss * np.exp(rng.normal(-0.35 - 0.1 * treated, 0.45))), 0, 42)
    data["nihss_7d"] = np.clip(np.round(data["nihss_24h"] * np.exp(rng.normal(-0.3 - 0.05 * treated, 0.4))), 0, 42)
    data.loc[rng.random(n) < 0.03, "mrs_90d"] = np.nan
    data.loc[data["mrs_90d"].isna(), "death_90d"] = np.nan
    data["per_protocol"] = rng.random(n) >= 0.05
    others = {a.id: next(b.id for b in protocol.arms if b.id != a.id) for a in protocol.arms}
    crossed = rng.random(n) < 0.02
    data["treated_arm"] = np.where(crossed, data["arm"].map(others), data["arm"])
    long = pd.concat([pd.DataFrame({"patient_id": data["patient_id"], "arm": data["arm"], "visit": v,
                                    "nihss": data[c]})
                      for v, c in (("baseline", "nihss"), ("24 h", "nihss_24h"), ("7 days", "nihss_7d"))],
                     ignore_index=True)
    long["visit"] = pd.Categorical(long["visit"], ["baseline", "24 h", "7 days"])
    truth = {"common_or": common_or, "volume_ratio": volume_ratio, "control_mrs": list(CONTROL_MRS), "seed": seed}
    return SimulatedTrial(data, long, counts, truth)
