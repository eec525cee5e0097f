"""What every dose-escalation design shares: cohorts, decisions, operating characteristics, input checks."""

from __future__ import annotations

from ... import InputError

import re
from dataclasses import asdict, dataclass, field
from typing import Any
from collections.abc import Sequence

import numpy as np


class EscalationInputError(InputError):
    """Bad escalation input; the message names the value and what is allowed."""


@dataclass(frozen=True)
class Cohort:
    level: int  # 1-based
    n: int
    dlt: int

    def __post_init__(self) -> None:
        if self.level < 1:
            raise EscalationInputError(f"dose level {self.level} is not allowed; levels are numbered from 1")
        if self.n < 1:
            raise EscalationInputError(f"level {self.level}: {self.n} patients; a cohort has at least 1")
        if not 0 <= self.dlt <= self.n:
            raise EscalationInputError(f"level {self.level}: {self.dlt} DLTs in {self.n} patients is impossible")


@dataclass(frozen=True)
class Decision:
    action: str  # "treat" the next cohort at `level`, or "stop"
    level: int | None
    mtd: int | None
    rule: str
    text: str
    expansion: str | None = None

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class OperatingCharacteristics:
    design: str
    tox: list[float]
    p_select: list[float]  # per level, probability it is selected as the MTD
    p_none: float  # no level selected (stopped for toxicity)
    expected_n: list[float]
    expected_dlt: list[float]
    method: str  # "exact" or "simulation"
    trials: int | None = None
    settings: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        data["expected_total_n"] = float(sum(self.expected_n))
        data["expected_total_dlt"] = float(sum(self.expected_dlt))
        if self.trials:
            # Monte-Carlo standard errors of the selection probabilities
            data["p_select_se"] = [float(np.sqrt(p * (1 - p) / self.trials)) for p in self.p_select]
        return data


def check_tox(tox: Sequence[float] | np.ndarray) -> np.ndarray:
    p = np.asarray(tox, dtype=float)
    if p.ndim != 1 or len(p) < 1:
        raise EscalationInputError("give one true toxicity probability per dose level, e.g. 0.05,0.10,0.20,0.35")
    bad = [x for x in p if not (0 <= x <= 1) or x != x]
    if bad:
        raise EscalationInputError(f"toxicity probabilities must be between 0 and 1 (got {bad[0]:g})")
    if np.any(np.diff(p) < 0):
        raise EscalationInputError(f"toxicity must not decrease with dose (got {', '.join(f'{x:g}' for x in p)})")
    return p


_ENTRY = re.compile(r"^\s*(\d+)\s*:\s*(\d+)\s*/\s*(\d+)\s*$")


def parse_dlt_counts(text: str) -> dict[int, tuple[int, int]]:
    """'1:0/3,2:1/6' -> {1: (0 DLTs, 3 patients), 2: (1, 6)}: the DLTs and patients per level so far."""
    counts: dict[int, tuple[int, int]] = {}
    if not text.strip():
        return counts
    for part in text.split(","):
        match = _ENTRY.match(part)
        if not match:
            raise EscalationInputError(f"--dlt entry {part.strip()!r} is not LEVEL:DLTS/PATIENTS, e.g. 2:1/6")
        level, dlt, n = (int(g) for g in match.groups())
        if level in counts:
            raise EscalationInputError(f"--dlt gives level {level} twice")
        Cohort(level, n, dlt)
        counts[level] = (dlt, n)
    return counts


def treat_next_cohorts(n: np.ndarray, y: np.ndarray, active: np.ndarray, current: np.ndarray, tox: np.ndarray,
                       cohort_size: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Treat one cohort in every active simulated trial at its current dose; returns (trial rows, doses)."""
    idx = np.flatnonzero(active)
    cur = current[idx]
    y[idx, cur] += rng.binomial(cohort_size, tox[cur])
    n[idx, cur] += cohort_size
    return idx, cur
