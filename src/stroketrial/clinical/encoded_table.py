"""Patients as columns of floats, the form the vectorised screen works on.

Every screenable variable becomes a float64 column with NaN for "not recorded":
numbers in their canonical unit, flags 1/0, categories by position, eTICI by
rank. eTICI also has a high column because a bare mTICI "2b" is a range
(2b50 or 2b67), so a criterion can be decided for both readings.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from .dictionary import VARIABLES, Variable
from .record import ATTESTATIONS_KEY, PatientRecord

ATTESTATION_PREFIX = f"{ATTESTATIONS_KEY}."


@dataclass
class EncodedTable:
    n: int
    low: dict[str, np.ndarray]
    high: dict[str, np.ndarray] = field(default_factory=dict)
    records: Sequence[PatientRecord] | None = None
    entered_units: dict[str, np.ndarray] = field(default_factory=dict)  # per row: the unit entered, or None

    def entered_in(self, name: str, unit: str) -> np.ndarray:
        """Rows whose value of `name` was entered in `unit`."""
        given = self.entered_units.get(name)
        return np.zeros(self.n, dtype=bool) if given is None else given == unit

    def bounds(self, name: str) -> tuple[np.ndarray, np.ndarray]:
        low = self.low.get(name)
        if low is None:
            low = np.full(self.n, np.nan)
        return low, self.high.get(name, low)

    def value(self, name: str, row: int) -> Any:
        """The typed value, for reasons quoted to people (records only)."""
        if self.records is None:
            raise ValueError("values are quoted only for tables built from records")
        return self.records[row][name]

    def attestation(self, criterion_id: str) -> np.ndarray:
        return self.bounds(ATTESTATION_PREFIX + criterion_id)[0]


def alternate_columns() -> dict[str, tuple[Variable, str]]:
    """CSV columns for labs in another unit: creatinine_mg_dl -> (creatinine_umol_l, mg/dL)."""
    out = {}
    for var in VARIABLES.values():
        for unit in var.alternate_units:
            base = var.name.removesuffix("_" + _slug(var.conversion()[0]))
            out[f"{base}_{_slug(unit)}"] = (var, unit)
    return out


def _slug(unit: str) -> str:
    return unit.lower().replace("µ", "u").replace("/", "_")


def encode_records(records: Sequence[PatientRecord]) -> EncodedTable:
    n = len(records)
    low: dict[str, np.ndarray] = {}
    high: dict[str, np.ndarray] = {}
    for name, var in VARIABLES.items():
        if not var.screenable:
            continue
        values = [r[name] for r in records]
        if all(v is None for v in values):
            continue
        low[name] = np.array([var.encode(v) for v in values], dtype=float)
        if var.kind == "grade":
            high[name] = np.array([np.nan if v is None else v.ranks[1] for v in values], dtype=float)
    ids = {key for r in records for key in r.attestations}
    for key in ids:
        answers = [r.attestations.get(key) for r in records]
        low[ATTESTATION_PREFIX + key] = np.array([np.nan if a is None else float(a) for a in answers])
    entered = {name: np.array([r.entered_units.get(name) for r in records], dtype=object)
               for name in {k for r in records for k in r.entered_units}}
    return EncodedTable(n, low, high, records, entered)
