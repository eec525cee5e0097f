"""The dose instructions of an arm: what to give, how much, how fast and when, from the protocol's steps.

Rounding is what a nurse can draw up and a pump can be set to: grams to 0.1 g,
milligrams to 1 mg, volumes to 0.1 mL, pump rates to 0.1 mL/min and 0.1 mL/h. A cap
the protocol sets is applied after the weight-based amount and said on the sheet.
A weight outside 20-300 kg is refused: nothing is computed from a guess.
"""

from __future__ import annotations

from .. import InputError

import datetime as dt
from dataclasses import dataclass, field
from typing import Any

from ..protocol import Protocol
from ..protocol.model import DoseStep

WEIGHT_RANGE = (20.0, 300.0)
_AMOUNT_STEP = {"g": 0.1, "mg": 1.0}


class DoseError(InputError):
    """A dose that cannot be computed; the message names the field, the value and what is allowed."""


@dataclass(frozen=True)
class Administration:
    intervention: str
    name: str
    route: str
    timing: str
    amount: float | None = None
    unit: str | None = None
    volume_ml: float | None = None
    infusion_minutes: float | None = None
    rate_ml_min: float | None = None
    rate_ml_h: float | None = None
    due: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return {k: v for k, v in self.__dict__.items() if v not in (None, [])}


def _round(value: float, step: float) -> float:
    return round(round(value / step) * step, 10)


def dose_instructions(protocol: Protocol, arm_id: str, weight_kg: float | None,
                      randomized_at: dt.datetime | None = None, dose_choice: float | None = None,
                      level: int | None = None) -> list[Administration]:
    """Each administration of the arm. `dose_choice` picks a registered dose group (ISIS-HERMES cells);
    `level` the dose-escalation level (AMASS-1), whose dose replaces a step that states none."""
    arm = next((a for a in protocol.arms if a.id == arm_id), None)
    if arm is None:
        raise DoseError(f"arm {arm_id!r} is not an arm of {protocol.id} ({', '.join(a.id for a in protocol.arms)})")
    interventions = {i.id: i for i in protocol.interventions}
    out = []
    for intervention_id in arm.interventions:
        intervention = interventions[intervention_id]
        for step in intervention.steps:
            if step.route == "procedure":
                out.append(Administration(intervention.id, intervention.name, step.route, step.timing))
                continue
            notes = []
            amount = step.amount
            if amount is None and intervention.kind == "placebo":
                # A matching placebo states no amount of its own: it copies the active drug's preparation.
                notes.append("placebo: prepared to match the active drug given by this route at this time "
                             "(same volume and appearance)")
                out.append(Administration(intervention.id, intervention.name, step.route, step.timing, notes=notes))
                continue
            if step.amount_choices:
                if dose_choice is None:
                    choices = ", ".join(f"{c:g}" for c in step.amount_choices)
                    notes.append(f"dose group chosen at treatment: {choices} {step.unit}")
                    out.append(Administration(intervention.id, intervention.name, step.route, step.timing,
                                              unit=step.unit, notes=notes))
                    continue
                if dose_choice not in step.amount_choices:
                    raise DoseError(f"dose {dose_choice:g} {step.unit} is not a registered dose group "
                                    f"({', '.join(f'{c:g}' for c in step.amount_choices)})")
                amount = dose_choice
            elif amount is None:
                amount, level_unit = _level_dose(protocol, level)
                notes.append(f"escalation level {level}: {amount:g} {level_unit}")
            amount, volume, rate_min, rate_h = _prepared(step, amount, weight_kg, notes)
            due = []
            if randomized_at is not None and step.repeat_days > 1:
                first = randomized_at + dt.timedelta(hours=24)
                due = [(first + dt.timedelta(days=d)).isoformat(timespec="minutes") for d in range(step.repeat_days)]
            out.append(Administration(intervention.id, intervention.name, step.route, step.timing, amount, step.unit,
                                      volume, step.infusion_minutes, rate_min, rate_h, due, notes))
    return out


def _prepared(step: DoseStep, amount: float, weight_kg: float | None,
              notes: list[str]) -> tuple[float, float | None, float | None, float | None]:
    """The dose of one step as given: per kg, capped, rounded, then its volume and pump rates.
    Each piece of arithmetic is written into `notes`."""
    if step.per_kg:
        weight = _weight(weight_kg)
        per_kg = amount
        amount = per_kg * weight
        notes.append(f"{per_kg:g} {step.unit}/kg × {weight:g} kg = {amount:.4g} {step.unit}")
    if step.max_amount is not None and amount > step.max_amount:
        notes.append(f"capped at {step.max_amount:g} {step.unit} (protocol maximum per dose)")
        amount = step.max_amount
    step_size = _AMOUNT_STEP.get(step.unit or "")
    if step_size:
        amount = _round(amount, step_size)
    volume = rate_min = rate_h = None
    if step.concentration_pct and step.unit in ("g", "mg"):
        grams = amount if step.unit == "g" else amount / 1000
        volume = _round(grams / (step.concentration_pct / 100), 0.1)  # w/v: % = g per 100 mL
        notes.append(f"{step.concentration_pct:g}% solution: {grams:g} g in {volume:g} mL")
    if volume is not None and step.infusion_minutes:
        rate_min = _round(volume / step.infusion_minutes, 0.1)
        rate_h = _round(volume / step.infusion_minutes * 60, 0.1)
    return amount, volume, rate_min, rate_h


def _level_dose(protocol: Protocol, level: int | None) -> tuple[float, str]:
    """The dose of an escalation level and its unit."""
    escalation = protocol.dose_escalation
    if escalation is None:
        raise DoseError(f"{protocol.id}: a dose step states no amount and the trial has no dose levels")
    levels = {lv.level: lv.dose for lv in escalation.levels}
    if level is None:
        raise DoseError(f"{protocol.id} doses by escalation level; give the level "
                        f"({', '.join(f'{k}: {v:g} {escalation.unit}' for k, v in levels.items())})")
    if level not in levels:
        raise DoseError(f"level {level} is not a dose level of {protocol.id} (levels 1 to {max(levels)})")
    return levels[level], escalation.unit


def _weight(weight_kg: float | None) -> float:
    if weight_kg is None:
        raise DoseError("weight_kg is missing; a weight-based dose needs the patient's weight in kg")
    if isinstance(weight_kg, bool) or not isinstance(weight_kg, (int, float)):
        raise DoseError(f"weight_kg {weight_kg!r} is not a number")
    low, high = WEIGHT_RANGE
    if not low <= weight_kg <= high:
        raise DoseError(f"weight_kg {weight_kg:g} is outside {low:g}-{high:g} kg; check the weight")
    return float(weight_kg)
