"""Randomization when the platform cannot be reached: sealed emergency envelopes, per site.

A site keeps a set of sealed, numbered envelopes drawn from the trial's own scheme. A permuted-block trial's
envelopes hold whole blocks of the scheme's own sizes and ratio, per stratum of the scheme at the site, so the
envelopes keep what the blocks keep (balance within each stratum). Minimization has no list to draw from: its
documented fallback is a pre-generated stratified block list per site (`fallback`), stratified by the factors it
names, in its own block sizes. Every section carries an `assumption:`, since no seed describes the procedure.
"""

from __future__ import annotations

from pydantic import Field, model_validator

from .base import FrozenModel, Identifier
from .schemes import PermutedBlocks, RandomizationScheme

PROCEDURE = ("If the platform cannot be reached when a patient must be randomized, open the site's next sealed "
             "envelope of the patient's stratum, in number order; give the allocation inside; record the envelope "
             "(number, check code, patient, time opened) on the platform as soon as the link returns.")


class EnvelopeFallback(FrozenModel):
    """The fallback list of a trial that does not randomize from a list (minimization, biased coins): permuted
    blocks per site, stratified by the named factors of the scheme, in these block sizes."""

    stratify_by: list[Identifier] = Field(default_factory=list, description="factor names of the randomization "
                                                                            "scheme (not the site: a set is per site)")
    block_sizes: list[int] = Field(min_length=1, description="sizes drawn at random for each block; each a multiple "
                                                             "of the allocation ratio's sum")
    assumption: str = Field(min_length=1, description="why this fallback (no seed describes one)")

    @model_validator(mode="after")
    def _sizes(self) -> EnvelopeFallback:
        if any(b < 1 for b in self.block_sizes) or len(set(self.block_sizes)) != len(self.block_sizes):
            raise ValueError(f"block_sizes must be distinct positive whole numbers (got {self.block_sizes})")
        return self


class EmergencyRandomization(FrozenModel):
    """Sealed envelopes kept at each site for randomization while the platform cannot be reached."""

    envelopes_per_stratum: int = Field(ge=1, le=100, description="at least this many envelopes per stratum of a "
                                                                 "site's set, in whole blocks")
    fallback: EnvelopeFallback | None = Field(None, description="the stratified block list of a trial not "
                                                                "randomized in permuted blocks")
    procedure: str = Field(PROCEDURE, description="what the site does, shown on its pages and printed on each "
                                                  "envelope set")
    assumption: str = Field(min_length=1, description="why this many envelopes (no seed describes them)")

    def block_sizes(self, scheme: RandomizationScheme) -> list[int]:
        """The blocks the envelopes are drawn in: the scheme's own, else the fallback's."""
        if isinstance(scheme, PermutedBlocks):
            return list(scheme.block_sizes)
        assert self.fallback is not None  # checked with the protocol (problem())
        return list(self.fallback.block_sizes)

    def stratify_by(self, scheme: RandomizationScheme) -> list[str]:
        """The factors a site's envelopes are stratified by (the site itself excepted)."""
        names = scheme.stratify_by if isinstance(scheme, PermutedBlocks) else \
            (self.fallback.stratify_by if self.fallback is not None else [])
        return [n for n in names if scheme.factor(n).field != "site"]

    def problem(self, scheme: RandomizationScheme | None, slots: int) -> str | None:
        """Why this section does not fit the protocol's randomization, or None."""
        if scheme is None:
            return "emergency_randomization is for a randomized trial (it has no randomization section)"
        if isinstance(scheme, PermutedBlocks):
            if self.fallback is not None:
                return ("emergency_randomization.fallback is for a trial not randomized in permuted blocks: a block "
                        "design's envelopes hold its own blocks")
            return None
        if self.fallback is None:
            return (f"emergency_randomization needs a fallback (a stratified block list per site) for "
                    f"{scheme.method}: it has no list to draw envelopes from")
        names = {f.name: f for f in scheme.factors}
        unknown = [n for n in self.fallback.stratify_by if n not in names]
        if unknown:
            return (f"emergency_randomization.fallback.stratify_by names {unknown}, which are not factors "
                    f"({', '.join(names)})")
        if any(names[n].field == "site" for n in self.fallback.stratify_by):
            return "emergency_randomization.fallback.stratify_by: leave out the site (each set is a site's own)"
        bad = [b for b in self.fallback.block_sizes if b % slots]
        if bad:
            return (f"emergency_randomization.fallback.block_sizes {bad} are not multiples of {slots}, the sum of "
                    "the allocation ratio")
        return None
