"""The data a randomization carries from one patient to the next, and what one allocation records.

Both are plain serialisable values. The server stores the state in the same
transaction as the allocation, and can rebuild it from the allocation history at
any time (`Randomizer.rebuild`); the rebuilt state equals the one carried forward.
"""

from __future__ import annotations

from dataclasses import dataclass
from math import gcd
from functools import reduce
from typing import Any
from collections.abc import Sequence

from pydantic import Field
from ..protocol.base import FrozenModel


@dataclass(frozen=True)
class ArmSlots:
    """The allocation ratio as equally allocated slots: 2:1 gives msc.1, msc.2, control."""

    arms: tuple[str, ...]
    ratio: tuple[int, ...]

    def __post_init__(self) -> None:
        if len(self.arms) < 2 or len(self.arms) != len(self.ratio) or len(set(self.arms)) != len(self.arms):
            raise ValueError(f"randomization needs two or more distinct arms with a ratio each (got {self.arms}, "
                             f"{self.ratio})")
        if any(r < 1 for r in self.ratio):
            raise ValueError(f"allocation ratio weights are whole numbers >= 1 (got {self.ratio})")
        common = reduce(gcd, self.ratio)
        object.__setattr__(self, "ratio", tuple(r // common for r in self.ratio))

    @classmethod
    def of(cls, arms: Sequence[Any]) -> ArmSlots:
        """From protocol arms (objects with `id` and `ratio`)."""
        return cls(tuple(a.id for a in arms), tuple(a.ratio for a in arms))

    @property
    def slots(self) -> tuple[str, ...]:
        return tuple(arm if r == 1 else f"{arm}.{i}" for arm, r in zip(self.arms, self.ratio, strict=True)
                     for i in range(1, r + 1))

    @property
    def slot_arm(self) -> tuple[int, ...]:
        return tuple(k for k, r in enumerate(self.ratio) for _ in range(r))

    @property
    def n_slots(self) -> int:
        return sum(self.ratio)

    def arm_of(self, slot: str) -> str:
        return self.arms[self.slot_arm[self.slots.index(slot)]]

    @property
    def label(self) -> str:
        return ":".join(str(r) for r in self.ratio)



Counts = dict[str, int]


class RandomizationState(FrozenModel):
    """Counts so far: per slot, per factor level, per stratum, and kits dispensed per site.

    Counts only, so its size and the cost of reading and writing it do not grow with the trial; who was
    randomized lives in the allocations (the server's allocations table, one row per patient, unique).
    """

    allocated: int = 0
    slots: Counts = Field(default_factory=dict)
    margins: dict[str, dict[str, Counts]] = Field(default_factory=dict, description="factor -> level -> slot -> n")
    strata: dict[str, Counts] = Field(default_factory=dict, description="stratum -> slot -> n (block designs): "
                                                                        "the allocations made from the concealed "
                                                                        "list")
    kits: dict[str, Counts] = Field(default_factory=dict, description="site -> arm -> kits dispensed")


class Allocation(FrozenModel):
    """One patient's randomization, as the audit trail keeps it."""

    sequence: int = Field(ge=1)
    patient_id: str
    arm: str
    slot: str
    method: str
    levels: dict[str, str] = Field(default_factory=dict)
    site: str | None = None
    stratum: str | None = None
    list_position: int | None = Field(None, description="position in the stratum's concealed list (blocks)")
    block: int | None = None
    kit: str | None = None
    envelope: str | None = Field(None, description="the sealed emergency envelope the allocation came from, when "
                                                   "the platform could not be reached (site-number)")
    probabilities: dict[str, float] = Field(default_factory=dict, description="each arm's chance at this step")
    scores: dict[str, float] = Field(default_factory=dict, description="minimization: imbalance if allocated to "
                                                                        "each slot")

    def blinded(self) -> dict[str, Any]:
        """What a blinded user may see: the sequence number and the kit, never the arm."""
        return {"sequence": self.sequence, "patient_id": self.patient_id, "kit": self.kit, "site": self.site}
