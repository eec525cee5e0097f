"""The interim analyses a DSMB reviews: when the looks fall (by information fraction), how alpha is spent across
them, the non-binding futility rule, the planned effect conditional power is computed under, and the prior of the
predictive probability. `design/interim.py` computes a look; the service runs it on the trial's data.

No seed document states an interim plan: a protocol that declares one says so in `assumption`.
"""

from __future__ import annotations

from itertools import pairwise
from typing import Literal

from pydantic import Field, model_validator

from .base import FrozenModel


class PlannedEffect(FrozenModel):
    """The effect the sample size was planned for, on the primary analysis's scale (conditional power under it)."""

    common_odds_ratio: float = Field(gt=0, description="an mRS shift: the common odds ratio (> 1 favours the "
                                                       "experimental arm)")
    control_mrs: list[float] = Field(min_length=7, max_length=7,
                                     description="the control arm's expected mRS 0-6 distribution")
    text: str | None = Field(None, description="where the planned effect comes from")


class InterimPlan(FrozenModel):
    information: Literal["primary_outcome_observed"] = Field(
        "primary_outcome_observed", description="what information counts: randomized patients whose primary "
                                                "outcome has been observed, over the planned total")
    information_total: int = Field(gt=0, description="full information: the patients with the primary outcome at "
                                                     "the final analysis (the information fraction's denominator)")
    looks: list[float] = Field(min_length=2, description="the planned information fractions of the looks, "
                                                         "increasing, the last 1 (the final analysis)")
    spending: Literal["obf", "pocock"] = Field(description="Lan-DeMets alpha spending: O'Brien-Fleming or "
                                                           "Pocock type")
    futility: list[float] | None = Field(None, description="non-binding futility bounds on the z scale, one per "
                                                           "interim look (stop is recommended at or below)")
    planned_effect: PlannedEffect
    prior: Literal["flat"] = Field("flat", description="the prior of the predictive probability of success: flat "
                                                       "on the drift (the posterior is the likelihood's)")
    text: str | None = Field(None, description="the source document's wording, where it has any")
    assumption: str | None = None

    @model_validator(mode="after")
    def _looks_are_fractions(self) -> InterimPlan:
        looks = self.looks
        if any(b <= a for a, b in pairwise(looks)) or looks[0] <= 0 or looks[-1] != 1:
            raise ValueError(f"looks must be increasing information fractions above 0 ending at 1 (got {looks})")
        if self.futility is not None and len(self.futility) != len(looks) - 1:
            raise ValueError(f"futility gives one z bound per interim look ({len(looks) - 1}), "
                             f"got {len(self.futility)}")
        return self
