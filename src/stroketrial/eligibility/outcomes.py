"""The masks every screen is built from: per criterion, whether it holds, excludes, or cannot be decided yet."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..clinical.encoded_table import EncodedTable
from ..protocol.model import Criterion, Protocol


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
