"""Eligibility screening: one patient with reasons, or a cohort into a CONSORT funnel.

Per criterion the status reads as a clinician says it: an inclusion criterion
is `met` or `not_met`; an exclusion criterion is `met` when the excluding
condition applies. `excludes` says whether the criterion makes the patient
ineligible. Data that are missing give `missing_data`; a judgement criterion not
yet answered gives `needs_attestation`. One excluding criterion makes the patient
ineligible whatever else is missing.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Literal
from collections.abc import Mapping

import numpy as np
import pandas as pd

from .clinical.record import ATTESTATIONS_KEY, FieldError, PatientDataError, PatientRecord, parse_patient
from .clinical.scales import ETICI
from .clinical.table import ATTESTATION_PREFIX, EncodedTable, TableDataError, encode_frame, encode_records
from .protocol.model import Criterion, Protocol

Status = Literal["met", "not_met", "missing_data", "needs_attestation"]
Overall = Literal["eligible", "ineligible", "incomplete"]


@dataclass(frozen=True)
class CriterionResult:
    id: str
    kind: Literal["inclusion", "exclusion"]
    text: str
    status: Status
    excludes: bool
    reason: str


@dataclass(frozen=True)
class ScreeningResult:
    trial: str
    status: Overall
    criteria: tuple[CriterionResult, ...]

    @property
    def failing(self) -> list[CriterionResult]:
        return [c for c in self.criteria if c.excludes]

    @property
    def outstanding(self) -> list[CriterionResult]:
        return [c for c in self.criteria if c.status in ("missing_data", "needs_attestation")]

    def to_json(self) -> dict[str, Any]:
        return {"trial": self.trial, "status": self.status, "criteria": [asdict(c) for c in self.criteria]}


# ---- the masks every screen is built from --------------------------------------------------
@dataclass(frozen=True)
class _Outcome:
    holds: np.ndarray  # the criterion's statement is true (inclusion met / exclusion applies)
    fails: np.ndarray  # it makes the patient ineligible
    unknown: np.ndarray


def _outcome(criterion: Criterion, inclusion: bool, table: EncodedTable) -> _Outcome:
    if criterion.rule is not None:
        holds, refuted = criterion.rule.evaluate(table)
    else:
        answer = table.attestation(criterion.id)
        holds, refuted = answer == 1.0, answer == 0.0
    fails = refuted if inclusion else holds
    return _Outcome(holds, fails, ~(holds | refuted))


def _outcomes(protocol: Protocol, table: EncodedTable) -> list[tuple[Criterion, bool, _Outcome]]:
    inclusion_ids = {c.id for c in protocol.inclusion}
    return [(c, c.id in inclusion_ids, _outcome(c, c.id in inclusion_ids, table)) for c in protocol.criteria]


# ---- one patient -------------------------------------------------------------------------------
class ScreeningInputError(ValueError):
    def __init__(self, errors: list[FieldError]):
        self.errors = errors
        super().__init__("; ".join(str(e) for e in errors))


def screen(protocol: Protocol, patient: PatientRecord | Mapping[str, Any]) -> ScreeningResult:
    """Screen one patient against the protocol, each criterion with a reason quoting the values."""
    record = patient if isinstance(patient, PatientRecord) else parse_patient(patient)
    _check_against_protocol(protocol, record)
    table = encode_records([record])
    results = []
    for criterion, inclusion, outcome in _outcomes(protocol, table):
        holds, fails, unknown = bool(outcome.holds[0]), bool(outcome.fails[0]), bool(outcome.unknown[0])
        if criterion.attestation is not None:
            status: Status = "needs_attestation" if unknown else "met" if holds else "not_met"
            reason = (f"awaiting the screener's answer: {criterion.attestation}" if unknown
                      else f"attested {'yes' if holds else 'no'}: {criterion.attestation}")
        else:
            status = "missing_data" if unknown else "met" if holds else "not_met"
            assert criterion.rule is not None  # Criterion._rule_or_attestation: a rule when no attestation
            reason = criterion.rule.explain(table, 0)
        results.append(CriterionResult(criterion.id, "inclusion" if inclusion else "exclusion", criterion.text,
                                       status, fails, reason))
    if any(r.excludes for r in results):
        overall: Overall = "ineligible"
    elif any(r.status in ("missing_data", "needs_attestation") for r in results):
        overall = "incomplete"
    else:
        overall = "eligible"
    return ScreeningResult(protocol.id, overall, tuple(results))


def _check_against_protocol(protocol: Protocol, record: PatientRecord) -> None:
    errors = []
    allowed = protocol.attestation_ids
    for key in record.attestations:
        if key not in allowed:
            errors.append(FieldError(f"{ATTESTATIONS_KEY}.{key}", key,
                                     f"no attestation {key!r} in {protocol.id}; allowed: {', '.join(allowed)}"))
    if record["etici"] is ETICI.G2B and not protocol.etici_2b_accepted:
        errors.append(FieldError("etici", "2b", _bare_2b_refused(protocol)))
    if errors:
        raise ScreeningInputError(errors)


def _bare_2b_refused(protocol: Protocol) -> str:
    return f"a bare 2b is not an eTICI grade in {protocol.id}; record 2b50 or 2b67"


# ---- a cohort -----------------------------------------------------------------------------------
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
    for criterion, inclusion, outcome in _outcomes(protocol, table):
        first = outcome.fails & remaining
        remaining &= ~outcome.fails
        any_fail |= outcome.fails
        if criterion.attestation is None:
            data_unknown |= outcome.unknown
        else:
            attest_unknown |= outcome.unknown
        rows.append(FunnelRow(criterion.id, "inclusion" if inclusion else "exclusion", criterion.text,
                              int(first.sum()), int(outcome.fails.sum()), int(outcome.unknown.sum())))
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
    for _, _, outcome in _outcomes(protocol, table):
        fails |= outcome.fails
        unknown |= outcome.unknown
    return np.where(fails, "ineligible", np.where(unknown, "incomplete", "eligible"))


def first_failing(protocol: Protocol, table: EncodedTable) -> np.ndarray:
    """Per row, the id of the first criterion that excludes the patient ('' when none)."""
    first = np.full(table.n, "", dtype=object)
    for criterion, _, outcome in _outcomes(protocol, table):
        first[outcome.fails & (first == "")] = criterion.id
    return first


def encode_cohort(protocol: Protocol, frame: pd.DataFrame) -> EncodedTable:
    """Validate a cohort table for this protocol (attestation columns, bare eTICI 2b)."""
    table = encode_frame(frame, protocol.attestation_ids)
    if not protocol.etici_2b_accepted and "etici" in table.low:
        low, high = table.bounds("etici")
        ambiguous = np.flatnonzero((low != high) & ~np.isnan(low))
        if len(ambiguous):
            errors = [FieldError(f"row {i + 1}: etici", "2b", _bare_2b_refused(protocol)) for i in ambiguous[:5]]
            raise TableDataError(errors, max(0, len(ambiguous) - 5))
    return table


class CohortFileError(ValueError):
    pass


def read_cohort(path: str | Path) -> pd.DataFrame:
    """A cohort table from CSV or Parquet, read without guessing types beyond numbers."""
    path = Path(path)
    try:
        if path.suffix.lower() == ".parquet":
            return pd.read_parquet(path)
        if path.suffix.lower() == ".csv":
            return pd.read_csv(path, dtype={"patient_id": "string", "site": "string", "etici": "string"},
                               keep_default_na=True, na_values=[""])
    except FileNotFoundError:
        raise CohortFileError(f"{path}: no such file") from None
    except Exception as exc:  # pandas and pyarrow raise many types for a malformed file
        raise CohortFileError(f"{path}: cannot read the table ({type(exc).__name__}: {exc})") from None
    raise CohortFileError(f"{path}: a cohort is a .csv or .parquet file")


__all__ = [
    "ATTESTATION_PREFIX",
    "CohortFileError",
    "CriterionResult",
    "Funnel",
    "FunnelRow",
    "PatientDataError",
    "ScreeningInputError",
    "ScreeningResult",
    "TableDataError",
    "encode_cohort",
    "first_failing",
    "funnel",
    "read_cohort",
    "screen",
    "statuses",
]
