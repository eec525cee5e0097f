"""Screening in two steps, for a trial that randomizes during the procedure (after failed thrombectomy passes).

Everything known before the procedure (arrival, imaging, labs) is recorded early; the fields and judgements named
here are the only ones known at the angiography table, and the only ones the procedure's randomization step asks.
"""

from __future__ import annotations

from pydantic import Field

from .base import FrozenModel, Identifier


class DuringProcedure(FrozenModel):
    """The screening fields and attestations only known during the procedure, with the source's wording."""

    text: str = Field(description="the source document's wording on what is only known during the procedure")
    fields: list[Identifier] = Field(min_length=1, description="data-dictionary fields the trial screens")
    attestations: list[Identifier] = Field(default_factory=list, description="ids of attestation criteria")
    assumption: str | None = None
    translations: dict[str, dict[str, str]] = Field(default_factory=dict,
                                                    description="the wording in other languages, by language")


class ScreeningSteps(FrozenModel):
    during_procedure: DuringProcedure | None = None


def problem(steps: ScreeningSteps, screened: set[str], attestation_ids: list[str]) -> str | None:
    """What is wrong with the declaration: a field the trial does not screen, or a criterion that is not an
    attestation, named."""
    during = steps.during_procedure
    if during is None:
        return None
    for name in during.fields:
        if name not in screened:
            return (f"screening.during_procedure.fields: {name!r} is not a field this trial screens "
                    f"({', '.join(sorted(screened))})")
    for criterion in during.attestations:
        if criterion not in attestation_ids:
            return (f"screening.during_procedure.attestations: {criterion!r} is not a criterion with an attestation "
                    f"({', '.join(attestation_ids)})")
    return None
