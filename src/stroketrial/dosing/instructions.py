"""The dose instructions of an arm: what to give, how much, how fast and when, from the protocol's steps.

Rounding is what a nurse can draw up and a pump can be set to: grams to 0.1 g,
milligrams to 1 mg, volumes to 0.1 mL, pump rates to 0.1 mL/min and 0.1 mL/h. A cap
the protocol sets is applied after the weight-based amount and said on the sheet.
A weight outside 20-300 kg is refused: nothing is computed from a guess.

A matching placebo is prepared, not described: the unblinded pharmacist gets the volume to
draw up (the active dose's volume for this weight), the diluent, the infusion and pump rates,
the times and the blinded label, each the active arm's, with the same arithmetic.

The working lines and the label are worded in the reader's language (i18n: the catalogs for the platform's words,
the protocol file for its own), English where no language is set (the CLI, the JSON API); the numbers are the same.
"""

from __future__ import annotations

from .. import InputError, i18n

import datetime as dt
from dataclasses import dataclass, field
from typing import Any

from ..protocol import Protocol
from ..protocol.model import DoseStep, Intervention

WEIGHT_RANGE = (20.0, 300.0)
_AMOUNT_STEP = {"g": 0.1, "mg": 1.0}
ROUTE_LABELS = {"intra_arterial": "intra-arterial", "intravenous": "intravenous", "procedure": "procedure"}


class DoseError(InputError):
    """A dose that cannot be computed; the message names the field, the value and what is allowed."""


@dataclass(frozen=True)
class Administration:
    """One administration as the sheet gives it. For a drawn-up dose: `draw_up_ml` of `draw_up`, made up
    with `diluent_ml` of `diluent` to `volume_ml`, the volume given. A matching placebo has no amount: it
    is the active dose's volumes with the placebo drawn up in place of the drug. `label` is the blinded
    label, the same for every arm of a blinded comparison."""

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
    draw_up: str | None = None
    draw_up_ml: float | None = None
    reconstitution: str | None = None
    diluent: str | None = None
    diluent_ml: float | None = None
    label: str | None = None

    def to_json(self) -> dict[str, Any]:
        return {k: v for k, v in self.__dict__.items() if v not in (None, [])}


@dataclass(frozen=True)
class _Prepared:
    """The arithmetic of one dose: amount as given, volume drawn up, diluent added, volume given, pump rates."""

    amount: float
    draw_up_ml: float | None = None
    diluent_ml: float | None = None
    volume_ml: float | None = None
    rate_ml_min: float | None = None
    rate_ml_h: float | None = None


def _round(value: float, step: float) -> float:
    return round(round(value / step) * step, 10)


def dose_instructions(protocol: Protocol, arm_id: str, weight_kg: float | None,
                      randomized_at: dt.datetime | None = None, dose_choice: float | None = None,
                      level: int | None = None) -> list[Administration]:
    """Each administration of the arm. `dose_choice` picks a registered dose group (ISIS-HERMES cells);
    `level` the dose-escalation level (AMASS-1), whose dose replaces a step that states none.

    A matching placebo (IMPACT-LVO) is prepared from the step it matches, for this patient's weight:
    the same volumes, diluent, infusion, pump rates, times and label, with the placebo drawn up in place
    of the drug."""
    arm = next((a for a in protocol.arms if a.id == arm_id), None)
    if arm is None:
        raise DoseError(f"arm {arm_id!r} is not an arm of {protocol.id} ({', '.join(a.id for a in protocol.arms)})")
    interventions = {i.id: i for i in protocol.interventions}
    matched = {i.matches for i in protocol.interventions if i.matches is not None}
    out = []
    for intervention_id in arm.interventions:
        intervention = interventions[intervention_id]
        active = intervention
        if intervention.matches is not None:
            problem = intervention.matching_problem(protocol.interventions)
            if problem:
                raise DoseError(f"{protocol.id}: interventions.{intervention.id}: {problem}")
            active = interventions[intervention.matches]
        for step in intervention.steps:
            if step.route == "procedure":
                out.append(Administration(intervention.id, intervention.name, step.route, step.timing))
                continue
            given = step
            if active is not intervention:
                given = next(s for s in active.steps if (s.route, s.timing) == (step.route, step.timing))
            label = active.id in matched
            out.append(_administration(protocol, intervention, active, given, weight_kg, randomized_at,
                                       dose_choice, level, label))
    return out


def _administration(protocol: Protocol, intervention: Intervention, active: Intervention, step: DoseStep,
                    weight_kg: float | None, randomized_at: dt.datetime | None, dose_choice: float | None,
                    level: int | None, labelled: bool) -> Administration:
    """One administration of `step`, a step of `active`: the drug itself, or (when `intervention` is the
    placebo matching `active`) the placebo prepared to the same volumes."""
    placebo = intervention is not active
    notes: list[str] = []
    if placebo:
        notes.append(i18n.gettext("matching placebo for {drug}: its volumes for this patient, with {placebo} drawn "
                                  "up in place of the drug").format(drug=i18n.protocol_text(active, "name"),
                                                                   placebo=i18n.protocol_text(intervention, "name")))
    amount = _amount(protocol, step, dose_choice, level, notes)
    if amount is None:
        return Administration(intervention.id, intervention.name, step.route, step.timing,
                              unit=None if placebo else step.unit, notes=notes)
    dose = _prepared(step, amount, weight_kg, notes)
    due = []
    if randomized_at is not None and step.repeat_days > 1:
        first = randomized_at + dt.timedelta(hours=24)
        due = [(first + dt.timedelta(days=d)).isoformat(timespec="minutes") for d in range(step.repeat_days)]
    draw_up = reconstitution = None
    if dose.draw_up_ml is not None:
        draw_up = intervention.name if placebo else _strength_name(active.name, step)
        reconstitution = None if placebo else step.reconstitution
    label = _label(protocol, active, step, dose) if labelled else None
    return Administration(intervention.id, intervention.name, step.route, step.timing,
                          None if placebo else dose.amount, None if placebo else step.unit, dose.volume_ml,
                          step.infusion_minutes, dose.rate_ml_min, dose.rate_ml_h, due, notes, draw_up,
                          dose.draw_up_ml, reconstitution, step.diluent, dose.diluent_ml, label)


def _amount(protocol: Protocol, step: DoseStep, dose_choice: float | None, level: int | None,
            notes: list[str]) -> float | None:
    """The amount the step states (per kg when per_kg), the dose group chosen, or the escalation level's
    dose; None while a dose group is still to be chosen."""
    if step.amount_choices:
        choices = ", ".join(f"{c:g}" for c in step.amount_choices)
        if dose_choice is None:
            notes.append(i18n.gettext("dose group chosen at treatment: {choices} {unit}").format(choices=choices,
                                                                                                  unit=step.unit))
            return None
        if dose_choice not in step.amount_choices:
            raise DoseError(f"dose {dose_choice:g} {step.unit} is not a registered dose group ({choices})")
        return dose_choice
    if step.amount is None:
        amount, level_unit = _level_dose(protocol, level)
        notes.append(i18n.gettext("escalation level {level}: {amount} {unit}").format(level=level, amount=f"{amount:g}",
                                                                                    unit=level_unit))
        return amount
    return step.amount


def _prepared(step: DoseStep, amount: float, weight_kg: float | None, notes: list[str]) -> _Prepared:
    """The dose of one step as given: per kg, capped, rounded, then the volume drawn up, made up to the
    final volume, and the pump rates. Each piece of arithmetic is written into `notes`."""
    if step.per_kg:
        weight = _weight(weight_kg)
        per_kg = amount
        amount = per_kg * weight
        notes.append(f"{per_kg:g} {step.unit}/kg × {weight:g} kg = {amount:.4g} {step.unit}")
    if step.max_amount is not None and amount > step.max_amount:
        notes.append(i18n.gettext("capped at {most} {unit} (protocol maximum per dose)").format(
            most=f"{step.max_amount:g}", unit=step.unit))
        amount = step.max_amount
    step_size = _AMOUNT_STEP.get(step.unit or "")
    if step_size:
        amount = _round(amount, step_size)
    drawn = None
    if step.unit in ("g", "mg") and (step.concentration_pct or step.concentration_mg_per_ml):
        grams = amount if step.unit == "g" else amount / 1000
        if step.concentration_mg_per_ml:
            milligrams = _round(grams * 1000, 1e-6)
            drawn = _round(milligrams / step.concentration_mg_per_ml, 0.1)
            notes.append(f"{milligrams:g} mg ÷ {step.concentration_mg_per_ml:g} mg/mL = {drawn:g} mL")
        elif step.concentration_pct:
            drawn = _round(grams / (step.concentration_pct / 100), 0.1)  # w/v: % = g per 100 mL
            notes.append(i18n.gettext("{pct}% solution: {grams} g in {ml} mL").format(
                pct=f"{step.concentration_pct:g}", grams=f"{grams:g}", ml=f"{drawn:g}"))
    volume, diluent_ml = drawn, None
    if drawn is not None and step.final_volume_ml is not None:
        if drawn > step.final_volume_ml:
            raise DoseError(f"{amount:g} {step.unit} is {drawn:g} mL, more than final_volume_ml "
                            f"{step.final_volume_ml:g} of the protocol; the protocol needs a cap (max_amount)")
        volume = step.final_volume_ml
        diluent_ml = _round(volume - drawn, 0.1)
        notes.append(i18n.gettext("{drawn} mL + {diluent_ml} mL {diluent} = {volume} mL").format(
            drawn=f"{drawn:g}", diluent_ml=f"{diluent_ml:g}", diluent=i18n.protocol_text(step, "diluent"),
            volume=f"{volume:g}"))
    rate_min = rate_h = None
    if volume is not None and step.infusion_minutes:
        rate_min = _round(volume / step.infusion_minutes, 0.1)
        rate_h = _round(volume / step.infusion_minutes * 60, 0.1)
        notes.append(i18n.gettext("{volume} mL over {minutes} min = {rate} mL/min ({hourly} mL/h)").format(
            volume=f"{volume:g}", minutes=f"{step.infusion_minutes:g}", rate=f"{rate_min:g}", hourly=f"{rate_h:g}"))
    return _Prepared(amount, drawn, diluent_ml, volume, rate_min, rate_h)


def _strength_name(name: str, step: DoseStep) -> str:
    """What is drawn up, with its strength: "methylprednisolone sodium succinate 40 mg/mL"."""
    if step.concentration_mg_per_ml is not None:
        return f"{name} {step.concentration_mg_per_ml:g} mg/mL"
    strength = f"{step.concentration_pct:g}%"
    return name if strength in name else f"{name} {strength}"


def _label(protocol: Protocol, active: Intervention, step: DoseStep, dose: _Prepared) -> str:
    """The blinded label: the trial, "<drug> or placebo", route, volume, infusion and timing. Built from the
    active step for both arms, so that it is the same text whichever the syringe or bag holds."""
    parts = [i18n.gettext("{trial} study drug: {drug} or placebo").format(trial=protocol.acronym,
                                                                          drug=i18n.protocol_text(active, "name")),
             i18n.gettext("for {route} use").format(route=i18n.gettext(ROUTE_LABELS[step.route]))]
    if dose.volume_ml is not None:
        parts.append(i18n.gettext("{ml} mL, infuse over {minutes} min").format(
            ml=f"{dose.volume_ml:g}", minutes=f"{step.infusion_minutes:g}") if step.infusion_minutes
            else f"{dose.volume_ml:g} mL")
    parts += [i18n.protocol_text(step, "timing"), i18n.gettext("for clinical trial use only")]
    return " · ".join(parts)


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
