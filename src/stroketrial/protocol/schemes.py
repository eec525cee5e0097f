"""How a protocol randomizes: the method, its parameters and its factors, typed and checked.

Each method is its own model, told apart by `method`, so a protocol file can only
give the parameters its method understands (a `p_preferred` on permuted blocks is
an error, not a silently ignored key). The arithmetic lives in
`stroketrial.randomization`; this module only says what a protocol may declare.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field, model_validator

from ..clinical.dictionary import VARIABLES
from .base import FrozenModel, Identifier

FLAG_LEVELS = ["no", "yes"]



class Factor(FrozenModel):
    """A stratification or minimization factor: one variable cut into named levels.

    - numeric variables (age, NIHSS, ASPECTS): `cutpoints`; a value below the first
      cutpoint is in the first level, a value equal to a cutpoint in the level above;
    - categories (occlusion site): `levels` are the allowed values, or `groups` gather
      several values into one level (anterior / posterior circulation);
    - yes/no facts (bridging thrombolysis): levels `no`, `yes`;
    - `site`: one level per site, open-ended as sites join.
    """

    name: Identifier
    field: str = Field(description="data-dictionary variable, or `site`")
    cutpoints: list[float] = Field(default_factory=list, description="numeric variables: level boundaries")
    levels: list[str] = Field(default_factory=list, description="level names, in order")
    groups: dict[str, list[str]] = Field(default_factory=dict,
                                         description="categories: level name -> the values it gathers")
    weight: float = Field(1.0, gt=0, description="minimization weight of this factor")

    @model_validator(mode="after")
    def _levels_fit_the_variable(self) -> Factor:
        if self.field == "site":
            if self.cutpoints or self.levels or self.groups:
                raise ValueError("the site factor takes its levels from the trial's sites; give no levels")
            return self
        var = VARIABLES.get(self.field)
        if var is None or var.kind in ("text", "timestamp"):
            raise ValueError(f"factor {self.name!r}: field {self.field!r} is not a variable a factor can cut "
                             "(use a number, score, category or yes/no field of `stroketrial dictionary`, or site)")
        if var.kind in ("number", "integer", "score", "interval"):
            self._check_numeric_levels()
        elif var.kind == "flag":
            if self.levels != FLAG_LEVELS or self.cutpoints or self.groups:
                raise ValueError(f"factor {self.name!r}: a yes/no field has levels [no, yes]")
        elif var.kind in ("category", "grade"):
            self._check_category_levels([m.value for m in var.enum_scale()])
        return self

    def _check_numeric_levels(self) -> None:
        if not self.cutpoints:
            raise ValueError(f"factor {self.name!r}: numeric field {self.field!r} needs cutpoints")
        if sorted(set(self.cutpoints)) != self.cutpoints:
            raise ValueError(f"factor {self.name!r}: cutpoints must increase strictly (got {self.cutpoints})")
        if len(self.levels) != len(self.cutpoints) + 1:
            raise ValueError(f"factor {self.name!r}: {len(self.cutpoints)} cutpoints make "
                             f"{len(self.cutpoints) + 1} levels, but {len(self.levels)} level names are given")
        if self.groups:
            raise ValueError(f"factor {self.name!r}: groups are for categories, not numbers")

    def _check_category_levels(self, allowed: list[str]) -> None:
        if self.cutpoints:
            raise ValueError(f"factor {self.name!r}: cutpoints are for numbers, not categories")
        if self.groups:
            if list(self.groups) != self.levels:
                raise ValueError(f"factor {self.name!r}: levels must list the group names in order "
                                 f"({list(self.groups)})")
            values = [v for vs in self.groups.values() for v in vs]
        else:
            values = self.levels
        unknown = [v for v in values if v not in allowed]
        if unknown:
            raise ValueError(f"factor {self.name!r}: {unknown} are not values of {self.field} "
                             f"(allowed: {', '.join(allowed)})")
        if len(set(values)) != len(values):
            raise ValueError(f"factor {self.name!r}: a value may be in only one level")
        if not values:
            raise ValueError(f"factor {self.name!r}: give the levels of {self.field}")


class _Scheme(FrozenModel):
    timing: str = Field(description="when in the patient's course randomization happens")
    factors: list[Factor] = Field(default_factory=list)
    blinded_kits: bool = Field(False, description="double-blind: sites dispense numbered kits; arms stay hidden")
    assumption: str | None = None

    @model_validator(mode="after")
    def _unique_factors(self) -> _Scheme:
        names = [f.name for f in self.factors]
        if len(set(names)) != len(names):
            raise ValueError(f"factor names must be unique (got {names})")
        return self

    def factor(self, name: str) -> Factor:
        return next(f for f in self.factors if f.name == name)


class SimpleRandomization(_Scheme):
    """Each patient independently, with probabilities in the allocation ratio."""

    method: Literal["simple"]


class PermutedBlocks(_Scheme):
    """Permuted blocks of randomly varying size, within each stratum."""

    method: Literal["permuted_blocks"]
    block_sizes: list[int] = Field(min_length=1, description="sizes drawn at random for each new block; each a "
                                                              "multiple of the ratio's sum")
    stratify_by: list[Identifier] = Field(default_factory=list, description="factor names; none = one list")

    @model_validator(mode="after")
    def _strata_are_factors(self) -> PermutedBlocks:
        names = {f.name for f in self.factors}
        unknown = [s for s in self.stratify_by if s not in names]
        if unknown:
            raise ValueError(f"stratify_by names {unknown}, which are not factors ({sorted(names)})")
        if any(b < 1 for b in self.block_sizes) or len(set(self.block_sizes)) != len(self.block_sizes):
            raise ValueError(f"block_sizes must be distinct positive whole numbers (got {self.block_sizes})")
        return self


class Minimization(_Scheme):
    """Pocock-Simon minimization over the factors' margins."""

    method: Literal["minimization"]
    imbalance: Literal["range", "variance"] = Field("range", description="imbalance within one factor level")
    p_preferred: float = Field(0.8, ge=0.5, le=1.0,
                               description="probability of the arm that minimizes imbalance; 1 = deterministic")
    max_imbalance: int | None = Field(None, ge=1, description="maximal tolerated imbalance in the arm totals "
                                                              "(big stick); never exceeded")

    @model_validator(mode="after")
    def _has_factors(self) -> Minimization:
        if not self.factors:
            raise ValueError("minimization needs at least one factor")
        return self


class EfronBiasedCoin(_Scheme):
    """Efron's biased coin: the lagging arm with probability p, a fair coin when balanced."""

    method: Literal["efron"]
    p: float = Field(2 / 3, gt=0.5, le=1.0, description="probability of the lagging arm (Efron's 2/3 by default)")


class BigStick(_Scheme):
    """Soares and Wu's big stick: a fair coin until the imbalance reaches its bound, then forced."""

    method: Literal["big_stick"]
    max_imbalance: int = Field(3, ge=1, description="the maximal tolerated imbalance in arm totals")


Randomization = Annotated[SimpleRandomization | PermutedBlocks | Minimization | EfronBiasedCoin | BigStick,
                          Field(discriminator="method")]
RandomizationScheme = SimpleRandomization | PermutedBlocks | Minimization | EfronBiasedCoin | BigStick
METHODS = ("simple", "permuted_blocks", "minimization", "efron", "big_stick")
