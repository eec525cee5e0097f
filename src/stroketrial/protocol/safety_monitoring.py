"""Safety monitoring rules the DSMB declares in advance: an event's rate in an arm (or in all patients) watched
against the rate expected, with a Bayesian bound: the DSMB is alerted once the posterior probability that the rate
exceeds the expected one passes the bound (service/safety_monitoring.py evaluates them on the live data).

The posterior is Beta(a + events, b + patients - events) from a Beta(a, b) prior; the rule's `minimum_patients`
keeps the first few patients from raising an alert on their own.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from .base import FrozenModel, Identifier


class SafetyRule(FrozenModel):
    id: Identifier
    event: Literal["death", "sich"] = Field(description="death (by day 90: the visit forms or a fatal SAE) or sICH "
                                                        "(the protocol's definition, from the forms and SAEs)")
    arm: Identifier | None = Field(None, description="the arm whose rate is watched; none: all patients pooled")
    expected_rate: float = Field(gt=0, lt=1, description="the rate expected in the watched patients")
    probability: float = Field(gt=0.5, lt=1, description="alert when P(rate > expected_rate | data) exceeds this")
    prior: tuple[float, float] = Field((1.0, 1.0), description="the Beta(a, b) prior of the rate")
    minimum_patients: int = Field(10, ge=1, description="no alert before this many patients are in the group")
    text: str | None = Field(None, description="the source document's wording, where it has any")
    assumption: str | None = None
