"""A cohort file randomized one patient at a time, in file order, with the trial's own method.

For rehearsing a trial's randomization on synthetic or historical patients: the eligible
patients are allocated as the sites would allocate them, and the state rebuilt from the
allocation history is checked against the state carried forward.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pandas as pd

from .. import InputError
from .draws import Draw
from .factors import code_cohort
from .lists import generate_kit_list, kit_block_sizes
from .randomizer import Randomizer
from .state import Allocation, RandomizationState

Patient = tuple[str, dict[str, str], str | None]


@dataclass(frozen=True)
class CohortRun:
    allocations: list[Allocation]
    state: RandomizationState
    held_back: dict[str, int]  # eligible patients not randomized, per factor field they lack

    def arm_counts(self, arms: tuple[str, ...]) -> dict[str, int]:
        return {arm: sum(1 for a in self.allocations if a.arm == arm) for arm in arms}

    def rows(self) -> list[dict[str, Any]]:
        """One row per allocation, as written to the allocations CSV."""
        return [{"sequence": a.sequence, "patient_id": a.patient_id, "arm": a.arm, "kit": a.kit or "",
                 "site": a.site or "", "stratum": a.stratum or "", **a.levels,
                 **{f"p_{arm}": round(p, 4) for arm, p in a.probabilities.items()}} for a in self.allocations]


def margins_by_arm(randomizer: Randomizer, state: RandomizationState) -> dict[str, dict[str, dict[str, int]]]:
    """Patients per factor level and arm (the state counts slots; an unequal ratio has several per arm)."""
    arms = randomizer.arms
    return {f: {lv: {arm: sum(c for s, c in by_slot.items() if arms.arm_of(s) == arm) for arm in arms.arms}
                for lv, by_slot in by_level.items()}
            for f, by_level in state.margins.items()}


def patients_to_randomize(randomizer: Randomizer, eligible: pd.DataFrame, source: str,
                          limit: int | None = None) -> tuple[list[Patient], dict[str, int], pd.DataFrame]:
    """The eligible patients with every factor recorded, as (patient id, factor levels, site).

    An eligible patient without a factor's value cannot be randomized until it is recorded;
    the others go ahead, as they would at the sites. Returns the patients, the count held back
    per missing field, and the rows kept.
    """
    if "patient_id" not in eligible.columns:
        raise InputError(f"{source}: randomization needs a patient_id column")
    absent = [f.field for f in randomizer.factors if f.field not in eligible.columns]
    if absent:
        raise InputError(f"{source}: randomization needs the factor columns {', '.join(absent)}")
    missing = eligible[[f.field for f in randomizer.factors]].isna()
    held_back = {str(field): int(n) for field, n in missing.sum().items() if n}
    frame = eligible[~missing.any(axis=1)]
    if frame.empty:
        raise InputError(f"{source}: no eligible patient with every randomization factor recorded")
    if limit is not None:
        frame = frame.iloc[:limit]
    coded = code_cohort(randomizer.factors, frame)
    names = [f.name for f in randomizer.factors]
    sites = frame["site"].astype("string").fillna("") if "site" in frame.columns else [None] * len(frame)
    patients = [(str(pid), {n: coded.levels[j][row[j]] for j, n in enumerate(names)}, (site or None))
                for pid, row, site in zip(frame["patient_id"], coded.codes, sites, strict=True)]
    return patients, held_back, frame


def randomize_cohort(randomizer: Randomizer, eligible: pd.DataFrame, draw: Draw, source: str,
                     limit: int | None = None) -> CohortRun:
    """Randomize the cohort's eligible patients in order; a blinded trial dispenses kits from a list made here."""
    patients, held_back, frame = patients_to_randomize(randomizer, eligible, source, limit)
    kit_list = None
    if randomizer.scheme.blinded_kits:
        if "site" not in frame.columns or frame["site"].isna().any():
            raise InputError(f"{source}: a blinded trial dispenses kits by site; every patient needs a site")
        # enough kits that no site runs out whichever arms its patients draw
        per_site = int(frame["site"].value_counts().max()) * 2 + 8
        kit_list = generate_kit_list(randomizer.arms, sorted(frame["site"].astype(str).unique()), per_site,
                                     kit_block_sizes(randomizer.scheme, randomizer.arms), draw)
    allocations, state, _ = randomizer.run(patients, draw, kit_list=kit_list)
    if randomizer.rebuild(allocations) != state:
        raise AssertionError("the state rebuilt from the allocation history differs from the state carried forward")
    return CohortRun(allocations, state, held_back)
