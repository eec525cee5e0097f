"""Investigational product supply: the stock a site keeps, when a kit is too close to expiry to dispense, and
what randomization does when no suitable kit is on the shelf (service/supply.py runs it).

No seed document speaks of supply: every value is an assumption, and the section says so.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field, model_validator

from .base import FrozenModel


class SupplyLevels(FrozenModel):
    """A site's resupply levels, in kits of each arm: at or below `trigger` a resupply is raised up to `target`."""

    trigger_per_arm: int = Field(ge=0, description="a resupply is raised when a site's dispensable kits of an arm "
                                                   "fall to this many or fewer")
    target_per_arm: int = Field(ge=1, description="a resupply brings each arm's dispensable stock back to this")

    @model_validator(mode="after")
    def _target_above_trigger(self) -> SupplyLevels:
        if self.target_per_arm <= self.trigger_per_arm:
            raise ValueError(f"target_per_arm ({self.target_per_arm}) must be above trigger_per_arm "
                             f"({self.trigger_per_arm}), or every resupply leaves the site at its trigger")
        return self


class Supply(FrozenModel):
    """How a kit trial's physical kits are kept and dispensed (the trial's default levels; a site may be given
    its own by the supply manager)."""

    levels: SupplyLevels
    no_dispense_within_days: int = Field(ge=0, le=365, description="a kit expiring within this many days of the "
                                                                   "day of randomization is not dispensed: the "
                                                                   "treatment must end before the kit expires")
    expiry_warning_days: int = Field(ge=0, le=730, description="lots expiring within this many days are flagged "
                                                               "on the supply page")
    when_out_of_stock: Literal["refuse", "allocate_and_flag"] = Field(
        description="no dispensable kit of every arm at the site: refuse the randomization before anything is "
                    "stored, or allocate without a kit and raise an urgent resupply")
    pharmacy_instructions: str | None = Field(
        None, description="for the unblinded pharmacist only: how the kits are prepared (a matching placebo "
                          "included); shown on the supply page to those who see arms")
    text: str | None = Field(None, description="the source document's wording on supply, verbatim")
    assumption: str | None = None

    @model_validator(mode="after")
    def _sourced(self) -> Supply:
        if not self.text and not self.assumption:
            raise ValueError("supply: quote the source document (text) or say what is assumed (assumption)")
        if self.expiry_warning_days < self.no_dispense_within_days:
            raise ValueError(f"supply: expiry_warning_days ({self.expiry_warning_days}) is shorter than "
                             f"no_dispense_within_days ({self.no_dispense_within_days}); a lot would stop being "
                             "dispensed before it is flagged")
        return self
