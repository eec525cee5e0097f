"""The masks every screen is built from: per criterion, whether it holds, excludes, or cannot be decided yet."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..clinical.encoded_table import EncodedTable
from ..protocol.model import Criterion, Protocol
from ..protocol.schemes import Factor


@dataclass(frozen=True)
class Outcome:
    holds: np.ndarray  # the criterion's statement is true (inclusion met / exclusion applies)
    fails: np.ndarray  # it makes the patient ineligible
    unknown: np.ndarray


def outcome(criterion: Criterion, inclusion: bool, table: EncodedTable) -> Outcome:
    if criterion.rule is not None:
        holds, refuted = criterion.rule.evaluate(table)
    else:
        answer = table.attestation(criterion.id)
        holds, refuted = answer == 1.0, answer == 0.0
    fails = refuted if inclusion else holds
    return Outcome(holds, fails, ~(holds | refuted))


def outcomes(protocol: Protocol, table: EncodedTable) -> list[tuple[Criterion, bool, Outcome]]:
    inclusion_ids = {c.id for c in protocol.inclusion}
    return [(c, c.id in inclusion_ids, outcome(c, c.id in inclusion_ids, table)) for c in protocol.criteria]


def factors_missing(protocol: Protocol, table: EncodedTable) -> list[tuple[Factor, np.ndarray]]:
    """Each randomization factor the patient record must hold, with where it is not recorded.

    A patient the screen calls eligible must be randomizable: the allocation reads these fields
    (stratum, minimization margins), so one not recorded leaves the screen incomplete, not eligible.
    The site comes from the registration, not the record.
    """
    if protocol.randomization is None:
        return []
    return [(f, np.isnan(table.bounds(f.field)[0])) for f in protocol.randomization.factors if f.field != "site"]
