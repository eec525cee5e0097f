"""The result every analysis returns: an estimate with its interval, p-value, method and n."""

from __future__ import annotations

from .. import InputError

import math
from dataclasses import asdict, dataclass, field
from typing import Any


class AnalysisInputError(InputError):
    """A dataset or request an analysis cannot use; the message names the column and the problem."""


@dataclass(frozen=True)
class Result:
    name: str
    estimate: float
    ci_low: float
    ci_high: float
    p_value: float | None
    method: str
    n: int
    measure: str = ""  # e.g. "common odds ratio", "risk difference"
    details: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        for key in ("estimate", "ci_low", "ci_high", "p_value"):
            value = data[key]
            if isinstance(value, float) and not math.isfinite(value):
                data[key] = None
        return data

    def text(self, digits: int = 2) -> str:
        p = "" if self.p_value is None else f", p = {format_p(self.p_value)}"
        return f"{self.estimate:.{digits}f} (95% CI {self.ci_low:.{digits}f} to {self.ci_high:.{digits}f}){p}"


def format_p(p: float) -> str:
    if p < 0.001:
        return "<0.001"
    return f"{p:.3f}"
