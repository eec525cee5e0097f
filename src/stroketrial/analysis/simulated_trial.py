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
- NIHSS at 24 h and 7 days, 3% missing mRS, 5% protocol deviations, 2% crossovers;
- every other outcome the protocol's analysis plan names, by its kind: repeated scores at each
  visit that records them, drifting toward better and a little faster with treatment; yes/no
  outcomes, counts and measurements with a modest benefit of treatment; eTICI grades as in
  thrombectomy registries. These are for exercising the plan, not for estimating anything.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from ..clinical.assessments import ASSESSMENTS
from ..cohort import synthesize
from ..eligibility import encode_cohort, funnel, statuses
from ..protocol import Protocol
from ..protocol.analysis_plan import TreatmentReceived
from .planned_outcomes import received_populations
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
    rule = protocol.analysis_plan.treatment_received if protocol.analysis_plan else None
    if rule is not None:
        form = pd.DataFrame({"patient_id": data["patient_id"], rule.assessment: _received(rule, data, rng)})
        for key in rule.also:
            form[key] = _recorded_with(key, form[rule.assessment], rng)
        data = received_populations(rule, data, [a.id for a in protocol.arms], form)
        if rule.assessment not in data.columns:
            data[rule.assessment] = data["treatment_received"]
    else:
        data["per_protocol"] = rng.random(n) >= 0.05
        others = {a.id: next(b.id for b in protocol.arms if b.id != a.id) for a in protocol.arms}
        crossed = rng.random(n) < 0.02
        data["treated_arm"] = np.where(crossed, data["arm"].map(others), data["arm"])
    long = _repeated_scores(protocol, data, treated, rng)
    _fill_planned_outcomes(protocol, data, treated, rng)
    truth = {"common_or": common_or, "volume_ratio": volume_ratio, "control_mrs": list(CONTROL_MRS), "seed": seed}
    return SimulatedTrial(data, long, counts, truth)


def _received(rule: TreatmentReceived, data: pd.DataFrame, rng: np.random.Generator) -> pd.Series:
    """What each patient received, as the form would record it: the allocated treatment for most; a crossover
    to the other arm's treatment (2%) or neither (3%) where the value names the arm; none of it for 5%."""
    n = len(data)
    draw = rng.random(n)
    if rule.arm_by_value is not None:
        by_arm: dict[str | None, list[str]] = {}
        for value, arm in rule.arm_by_value.items():
            by_arm.setdefault(arm, []).append(value)
        arms = data["arm"].astype(str).to_numpy()
        other = {a: next((b for b in by_arm if b not in (a, None)), a) for a in set(arms)}
        neither = by_arm.get(None, [None])[0]
        values = [by_arm[a][0] if d >= 0.05 else (by_arm[other[a]][0] if d < 0.02 else neither)
                  for a, d in zip(arms, draw, strict=True)]
        return pd.Series(values, index=data.index, dtype=object)
    assert rule.at_least is not None
    spec = ASSESSMENTS[rule.assessment]
    full = np.full(n, float(rule.at_least))
    if spec.kind == "number" and spec.high is not None:  # an amount (cells infused): spread above the minimum
        full = np.round(rng.uniform(rule.at_least, rule.at_least + 0.3 * (spec.high - rule.at_least), n))
    return pd.Series(np.where(draw < 0.05, 0.0, full), index=data.index)


def _recorded_with(key: str, received: pd.Series, rng: np.random.Generator) -> pd.Series:
    """Another assessment of the form that records the treatment (the dose group): a plausible value by kind."""
    spec = ASSESSMENTS[key]
    n = len(received)
    if spec.kind == "category":
        values: np.ndarray = rng.choice(np.array(spec.choices, dtype=object), n)
    elif spec.kind == "flag":
        values = rng.random(n) < 0.05
    else:
        low, high = float(spec.low or 0), float(spec.high or 1)
        values = np.round(np.clip(rng.normal(low + 0.2 * (high - low), 0.05 * (high - low), n), low, high))
    return pd.Series(values, index=received.index).where(received.notna())


def _repeated_scores(protocol: Protocol, data: pd.DataFrame, treated: np.ndarray,
                     rng: np.random.Generator) -> pd.DataFrame:
    """Long data: one row per patient and visit, a column per score the plan analyses over visits (and
    NIHSS), at the visits whose forms record it, labelled by the visit's name in the schedule's order."""
    planned = {e.analysis.outcome.assessment: e.analysis.better for e in protocol.endpoints
               if e.analysis is not None and e.analysis.method == "mixed_model"}
    planned.setdefault("nihss", "lower")
    n = len(data)
    last_day = max(v.day for v in protocol.visits) or 1.0
    start = {key: _start(key, data, rng) for key in planned}
    rows = []
    for visit in protocol.visits:
        columns: dict[str, object] = {"patient_id": data["patient_id"], "arm": data["arm"], "visit": visit.name}
        for key, better in planned.items():
            if key not in visit.assessments:
                continue
            a = ASSESSMENTS[key]
            span = float((a.high or 0) - (a.low or 0))
            progress = np.sqrt(visit.day / last_day)  # most recovery comes early
            toward = -1 if better == "lower" else 1
            change = toward * span * (0.25 * progress + 0.05 * progress * treated) + rng.normal(0, 0.05 * span, n)
            value = start[key] + (change if visit.day > 0 else 0)
            columns[key] = np.clip(np.round(value), a.low, a.high)
        if len(columns) > 3:
            rows.append(pd.DataFrame(columns))
    long = pd.concat(rows, ignore_index=True)
    if "nihss_24h" in data:  # the NIHSS simulated with the 90-day outcome model, where the schedule has those days
        for day, column in ((1, "nihss_24h"), (7, "nihss_7d")):
            at_day = next((v for v in protocol.visits if v.day == day and "nihss" in v.assessments), None)
            if at_day is not None:
                at = (long["visit"] == at_day.name).to_numpy()
                long.loc[at, "nihss"] = data[column].to_numpy()
    long["visit"] = pd.Categorical(long["visit"], [v.name for v in protocol.visits if (long["visit"] == v.name).any()])
    return long


def _start(key: str, data: pd.DataFrame, rng: np.random.Generator) -> np.ndarray:
    """The baseline of a repeated score: the cohort's own value where it has one, else a plausible spread."""
    a = ASSESSMENTS[key]
    if key in data.columns:
        return data[key].astype(float).to_numpy()
    low, high = float(a.low or 0), float(a.high or 0)
    return np.clip(rng.normal(low + 0.45 * (high - low), 0.15 * (high - low), len(data)), low, high)


def _fill_planned_outcomes(protocol: Protocol, data: pd.DataFrame, treated: np.ndarray,
                           rng: np.random.Generator) -> None:
    """Every single-value outcome the plan names that the models above did not make, by its kind."""
    n = len(data)
    for endpoint in protocol.endpoints:
        a = endpoint.analysis
        if a is None or a.method == "mixed_model" or a.outcome.column in data.columns:
            continue
        good = 1 if a.better == "higher" else -1
        if isinstance(a.outcome.at_least, str):  # a grade: eTICI after the procedure, better with treatment
            grades = np.array(["0", "1", "2a", "2b50", "2b67", "2c", "3"])
            p = np.array([0.04, 0.03, 0.13, 0.25, 0.15, 0.10, 0.30])
            shifted = np.clip(rng.choice(7, n, p=p) + (treated & (rng.random(n) < 0.15)), 0, 6)
            data[a.outcome.column] = grades[shifted]
        elif a.method in ("binary", "single_arm_proportion"):
            base = 0.8 if a.method == "single_arm_proportion" else (0.5 if good > 0 else 0.1)
            data[a.outcome.column] = (rng.random(n) < base * np.exp(0.15 * good * treated)).astype(float)
        elif a.method == "count":
            data[a.outcome.column] = rng.poisson(0.6 * np.exp(-0.2 * (good < 0) * treated + 0.2 * (good > 0)
                                                                 * treated), n)
        else:  # a measurement, within the assessment's range where the dictionary gives one
            spec = ASSESSMENTS.get(a.outcome.assessment)
            low, high = (spec.low, spec.high) if spec and spec.low is not None and spec.high is not None else (0, 100)
            middle, span = (low + high) / 2, high - low
            value = rng.normal(middle + span / 20 * good * treated, span / 7, n)
            data[a.outcome.column] = np.round(np.clip(value, low, high), 1)
