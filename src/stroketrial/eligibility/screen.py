"""One patient screened against the protocol, each criterion with a reason that quotes the values."""

from __future__ import annotations

from .. import InputError

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

from ..clinical.dictionary import VARIABLES
from ..clinical.encoded_table import encode_records
from ..clinical.record import ATTESTATIONS_KEY, FieldError, PatientRecord, parse_patient
from ..clinical.scales import ETICI
from ..protocol.model import Protocol
from .outcomes import factors_missing, outcomes

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

    def to_json(self) -> dict[str, Any]:
        # Not dataclasses.asdict: its deep copy of six scalars was a tenth of a randomization's CPU time.
        return {"id": self.id, "kind": self.kind, "text": self.text, "status": self.status,
                "excludes": self.excludes, "reason": self.reason}


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
        return {"trial": self.trial, "status": self.status, "criteria": [c.to_json() for c in self.criteria]}


class ScreeningInputError(InputError):
    def __init__(self, errors: list[FieldError]):
        self.errors = errors
        super().__init__("; ".join(str(e) for e in errors))


def screen(protocol: Protocol, patient: PatientRecord | Mapping[str, Any]) -> ScreeningResult:
    """Screen one patient against the protocol, each criterion with a reason quoting the values."""
    record = patient if isinstance(patient, PatientRecord) else parse_patient(patient)
    _check_against_protocol(protocol, record)
    table = encode_records([record])
    results = []
    judged = outcomes(protocol, table)
    for criterion, inclusion, outcome in judged:
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
    # a field a criterion already asks for is not asked for twice
    asked = {f for criterion, _, outcome in judged if criterion.rule is not None
             and outcome.unknown[0] for f in criterion.rule.fields()}
    for factor, missing in factors_missing(protocol, table):
        if missing[0] and factor.field not in asked:
            label = VARIABLES[factor.field].label
            results.append(CriterionResult(
                f"randomization_factor_{factor.name}", "inclusion", f"{label} recorded (a randomization factor)",
                "missing_data", False, f"{factor.field} is not recorded; randomization needs it (factor "
                f"{factor.name})"))
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
        errors.append(FieldError("etici", "2b", bare_2b_refused(protocol)))
    if errors:
        raise ScreeningInputError(errors)


def bare_2b_refused(protocol: Protocol) -> str:
    return f"a bare 2b is not an eTICI grade in {protocol.id}; record 2b50 or 2b67"
