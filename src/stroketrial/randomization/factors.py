"""A patient's level of each stratification or minimization factor.

One patient (`patient_levels`, from a validated record) or a whole cohort at once
(`code_cohort`, integer codes per factor for the vectorised simulations). A factor
value that is missing, or that is not one of the factor's levels, is refused with a
message naming the factor, the field and the value: nobody is randomized on a guess.
"""

from __future__ import annotations

from .. import InputError

import enum
from dataclasses import dataclass
from typing import Any
from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd

from ..clinical import PatientRecord
from ..clinical.dictionary import VARIABLES
from ..clinical.record import parse_patient
from ..clinical.cohort_table import decode_flag
from ..protocol.schemes import FLAG_LEVELS, Factor


class FactorValueError(InputError):
    """A factor cannot be read from a patient; the message names factor, field and value."""


def level_of(factor: Factor, value: Any) -> str:
    """The level name of one value (already typed and in canonical units)."""
    if value is None or (isinstance(value, float) and np.isnan(value)):
        raise FactorValueError(f"factor {factor.name}: {factor.field} is missing; randomization needs it")
    if factor.field == "site":
        text = str(value).strip()
        if not text:
            raise FactorValueError(f"factor {factor.name}: site is empty; randomization needs the site code")
        return text
    kind = VARIABLES[factor.field].kind
    if kind == "flag":
        if not isinstance(value, (bool, np.bool_)):
            raise FactorValueError(f"factor {factor.name}: {factor.field} is {value!r}; it must be true or false")
        return FLAG_LEVELS[int(bool(value))]
    if factor.cutpoints:
        number = float(value)
        return factor.levels[int(np.searchsorted(factor.cutpoints, number, side="right"))]
    raw = value.value if isinstance(value, enum.Enum) else str(value)
    for level in factor.levels:
        if raw in factor.groups.get(level, [level]):
            return level
    allowed = [v for level in factor.levels for v in factor.groups.get(level, [level])]
    raise FactorValueError(f"factor {factor.name}: {factor.field} {raw!r} is not one of its levels "
                           f"(allowed: {', '.join(allowed)})")


def patient_levels(factors: Sequence[Factor], patient: PatientRecord | Mapping[str, Any]) -> dict[str, str]:
    """Every factor's level for one patient; raises FactorValueError listing each problem."""
    record = patient if isinstance(patient, PatientRecord) else parse_patient(patient)
    levels: dict[str, str] = {}
    problems: list[str] = []
    for factor in factors:
        try:
            levels[factor.name] = level_of(factor, record[factor.field])
        except FactorValueError as exc:
            problems.append(str(exc))
    if problems:
        raise FactorValueError("; ".join(problems))
    return levels


@dataclass(frozen=True)
class CodedCohort:
    """Integer level codes, one column per factor, and the level names they stand for."""

    codes: np.ndarray  # shape (n, n_factors), int
    levels: tuple[tuple[str, ...], ...]  # per factor, the level name of each code

    @property
    def n(self) -> int:
        return self.codes.shape[0]


def code_cohort(factors: Sequence[Factor], frame: pd.DataFrame,
                site_levels: Sequence[str] | None = None) -> CodedCohort:
    """Code a cohort table (raw values, canonical units); rows with a missing factor value are refused."""
    columns, names = [], []
    for factor in factors:
        if factor.field not in frame.columns:
            raise FactorValueError(f"factor {factor.name}: the cohort has no column {factor.field!r}")
        series = frame[factor.field]
        if factor.field == "site":
            values = series.astype("string")
            level_names = tuple(site_levels) if site_levels is not None else tuple(sorted(values.dropna().unique()))
        elif factor.cutpoints:
            values = pd.to_numeric(series, errors="coerce")
            level_names = tuple(factor.levels)
        else:
            values = series
            level_names = tuple(factor.levels)
        missing = values.isna().to_numpy()
        if missing.any():
            row = int(np.flatnonzero(missing)[0])
            raise FactorValueError(f"factor {factor.name}: {factor.field} is missing in {int(missing.sum())} rows "
                                   f"(first: row {row + 1}); randomization needs it")
        if factor.cutpoints:
            code = np.searchsorted(np.asarray(factor.cutpoints, float), values.to_numpy(float), side="right")
        else:
            lookup = {}
            for value in pd.unique(values):
                lookup[value] = level_names.index(level_of(factor, _typed(factor, value)))
            code = values.map(lookup).to_numpy()
        columns.append(np.asarray(code, dtype=np.int64))
        names.append(level_names)
    codes = np.column_stack(columns) if columns else np.zeros((len(frame), 0), dtype=np.int64)
    return CodedCohort(codes, tuple(names))


def _typed(factor: Factor, value: Any) -> Any:
    """Cohort files spell yes/no as the data dictionary allows (true/false, yes/no, 1/0)."""
    if factor.field != "site" and VARIABLES[factor.field].kind == "flag" and not isinstance(value, (bool, np.bool_)):
        decoded = decode_flag(value)
        if not decoded:
            raise FactorValueError(f"factor {factor.name}: {factor.field} {value!r} is not allowed; "
                                   f"{VARIABLES[factor.field].allowed()}")
        return bool(decoded[0])
    return value
