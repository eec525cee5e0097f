"""A cohort screened at once: the CONSORT funnel, each row's status and the first criterion that excludes it."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any, Literal

import numpy as np
import pandas as pd

from ..clinical.cohort_table import TableDataError, encode_frame
from ..clinical.dictionary import VARIABLES
from ..clinical.encoded_table import EncodedTable
from ..clinical.record import FieldError
from ..protocol.model import Protocol
from .outcomes import factors_missing, outcomes
from .screen import bare_2b_refused


@dataclass(frozen=True)
class FunnelRow:
    id: str
    kind: Literal["inclusion", "exclusion"]
    text: str
    excluded_first: int  # excluded by this criterion and none before it (CONSORT)
    excluded_any: int  # excluded by this criterion, whatever else
    missing: int  # could not be decided for want of data or an answer


@dataclass(frozen=True)
class Funnel:
    trial: str
    assessed: int
    excluded: int
    incomplete: int  # nothing excludes them, but data are missing
    awaiting_attestation: int  # all data criteria met; only judgement answers outstanding
    eligible: int
    criteria: tuple[FunnelRow, ...]

    def to_json(self) -> dict[str, Any]:
        out = asdict(self)
        out["criteria"] = [asdict(r) for r in self.criteria]
        return out


def funnel(protocol: Protocol, table: EncodedTable) -> Funnel:
    """Screen every row at once and count the funnel."""
    remaining = np.ones(table.n, dtype=bool)
    any_fail = np.zeros(table.n, dtype=bool)
    data_unknown = np.zeros(table.n, dtype=bool)
    attest_unknown = np.zeros(table.n, dtype=bool)
    rows = []
    for criterion, inclusion, outcome in outcomes(protocol, table):
        first = outcome.fails & remaining
        remaining &= ~outcome.fails
        any_fail |= outcome.fails
        if criterion.attestation is None:
            data_unknown |= outcome.unknown
        else:
            attest_unknown |= outcome.unknown
        rows.append(FunnelRow(criterion.id, "inclusion" if inclusion else "exclusion", criterion.text,
                              int(first.sum()), int(outcome.fails.sum()), int(outcome.unknown.sum())))
    for factor, missing in factors_missing(protocol, table):
        data_unknown |= missing
        if missing.any():
            rows.append(FunnelRow(f"randomization_factor_{factor.name}", "inclusion",
                                  f"{VARIABLES[factor.field].label} recorded (a randomization factor)", 0, 0,
                                  int(missing.sum())))
    undecided = ~any_fail
    return Funnel(
        trial=protocol.id,
        assessed=table.n,
        excluded=int(any_fail.sum()),
        incomplete=int((undecided & data_unknown).sum()),
        awaiting_attestation=int((undecided & ~data_unknown & attest_unknown).sum()),
        eligible=int((undecided & ~data_unknown & ~attest_unknown).sum()),
        criteria=tuple(rows),
    )


def statuses(protocol: Protocol, table: EncodedTable) -> np.ndarray:
    """Overall status per row ('eligible', 'ineligible', 'incomplete'), vectorised."""
    fails = np.zeros(table.n, dtype=bool)
    unknown = np.zeros(table.n, dtype=bool)
    for _, _, outcome in outcomes(protocol, table):
        fails |= outcome.fails
        unknown |= outcome.unknown
    for _, missing in factors_missing(protocol, table):
        unknown |= missing
    return np.where(fails, "ineligible", np.where(unknown, "incomplete", "eligible"))


def first_failing(protocol: Protocol, table: EncodedTable) -> np.ndarray:
    """Per row, the id of the first criterion that excludes the patient ('' when none)."""
    first = np.full(table.n, "", dtype=object)
    for criterion, _, outcome in outcomes(protocol, table):
        first[outcome.fails & (first == "")] = criterion.id
    return first


def encode_cohort(protocol: Protocol, frame: pd.DataFrame) -> EncodedTable:
    """Validate a cohort table for this protocol (attestation columns, bare eTICI 2b)."""
    table = encode_frame(frame, protocol.attestation_ids)
    if not protocol.etici_2b_accepted and "etici" in table.low:
        low, high = table.bounds("etici")
        ambiguous = np.flatnonzero((low != high) & ~np.isnan(low))
        if len(ambiguous):
            errors = [FieldError(f"row {i + 1}: etici", "2b", bare_2b_refused(protocol)) for i in ambiguous[:5]]
            raise TableDataError(errors, max(0, len(ambiguous) - 5))
    return table
