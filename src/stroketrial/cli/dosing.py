"""`stroketrial dose` (the dose sheet) and `stroketrial escalation` (3+3, BOIN, CRM: live decisions,
characteristics)."""

from __future__ import annotations


import datetime as dt
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, ClassVar

import typer
from rich.table import Table

from .support import command_group, JsonOption, command, emit_json, fail, out

if TYPE_CHECKING:
    from ..dosing import Administration



escalation_app = command_group("Dose escalation: 3+3, BOIN and CRM decisions and operating characteristics.")


def register(app: typer.Typer) -> None:
    app.add_typer(escalation_app, name="escalation")
    command(app, "dose", epilog="Examples: stroketrial dose amass-2 --weight-kg 70  ·  stroketrial dose amass-1 "
                                "--weight-lb 154 --level 3  ·  stroketrial dose impact-lvo --weight-kg 80 "
                                "--randomized-at 2026-03-01T14:30")(dose)


def dose(trial: str = typer.Argument(..., help="Built-in id or protocol .yaml file."),
         weight_kg: float | None = typer.Option(None, "--weight-kg", "--weight", help="Body weight in kg (20-300)."),
         weight_lb: float | None = typer.Option(None, "--weight-lb", help="Body weight in lb (converted exactly, "
                                                                             "1 lb = 0.45359237 kg)."),
         arm: str | None = typer.Option(None, "--arm", help="Arm id (default: the experimental arm)."),
         level: int | None = typer.Option(None, "--level", help="Dose-escalation level (AMASS-1)."),
         dose_group: float | None = typer.Option(None, "--dose-group", help="Registered dose group, e.g. 1e8 "
                                                                              "cells (ISIS-HERMES)."),
         randomized_at: str | None = typer.Option(None, "--randomized-at", help="ISO time of randomization, "
                                                                                   "for dated repeat doses."),
         as_json: bool = JsonOption) -> None:
    """Print the dose sheet of an arm: dose, volume and pump rate, with the arithmetic and the rounding."""
    from ..dosing import dose_instructions
    from ..dosing.instructions import ROUTE_LABELS
    from ..protocol import resolve

    protocol = resolve(trial)
    if weight_kg is not None and weight_lb is not None:
        fail("give --weight-kg or --weight-lb, not both")
    weight, conversion = weight_kg, None
    if weight_lb is not None:
        from ..clinical.units import factor

        pound = factor("weight", "lb")
        weight = weight_lb * pound
        conversion = f"{weight_lb:g} lb × {pound:.8g} = {weight:.1f} kg"
        weight = round(weight, 1)
    arm_id = arm or next(a.id for a in protocol.arms if a.role == "experimental")
    moment = None
    if randomized_at:
        try:
            moment = dt.datetime.fromisoformat(randomized_at)
        except ValueError:
            fail(f"--randomized-at {randomized_at!r} is not an ISO date and time, e.g. 2026-03-01T14:30")
    steps = dose_instructions(protocol, arm_id, weight, moment, dose_group, level)
    sheet = {"trial": protocol.id, "arm": arm_id, "weight_kg": weight, "weight_conversion": conversion,
             "administrations": [s.to_json() for s in steps],
             "rounding": "g to 0.1 g, mg to 1 mg, volumes to 0.1 mL, rates to 0.1 mL/min and 0.1 mL/h"}
    if as_json:
        emit_json(sheet)
        return
    name = next(a.name for a in protocol.arms if a.id == arm_id)
    out.print(f"[bold]{protocol.acronym} dose sheet[/]: {name}" + (f", weight {weight:g} kg" if weight else ""))
    if conversion:
        out.print(f"weight converted: {conversion}")
    for s in steps:
        out.print(f"\n[bold]{s.name}[/] ({ROUTE_LABELS.get(s.route, s.route)}): {s.timing}")
        for line in _preparation_lines(s):
            out.print(f"  {line}")
        for due in s.due:
            out.print(f"  due {due}")
        for note in s.notes:
            out.print(f"  {note}", style="dim")
    out.print(f"\nrounding: {sheet['rounding']}", style="dim")


def _preparation_lines(s: Administration) -> list[str]:
    """What to prepare and give, in the order the pharmacist and the nurse do it."""
    lines = []
    if s.amount is not None:
        lines.append(f"dose {s.amount:g} {s.unit}")
    if s.reconstitution:
        lines.append(f"reconstitute: {s.reconstitution}")
    if s.draw_up_ml is not None:
        lines.append(f"draw up {s.draw_up_ml:g} mL: {s.draw_up}")
    if s.diluent is not None and s.diluent_ml is not None:
        lines.append(f"add {s.diluent_ml:g} mL {s.diluent}: {s.volume_ml:g} mL in all")
    if s.volume_ml is not None:
        line = f"give {s.volume_ml:g} mL"
        if s.rate_ml_min is not None and s.infusion_minutes is not None:
            line += f", pump {s.rate_ml_min:g} mL/min ({s.rate_ml_h:g} mL/h) over {s.infusion_minutes:g} min"
        lines.append(line)
    if s.label:
        lines.append(f"label: {s.label}")
    return lines


# ---- escalation: live decision ----------------------------------------------------------------
@dataclass(frozen=True)
class _Planned:
    """BOIN/CRM settings from the command line, for planning; None where not given."""
    target: float | None = None
    cohorts: int | None = None
    n_earlystop: int | None = None
    extrasafe: bool | None = None
    offset: float | None = None
    lambda_e: float | None = None
    lambda_d: float | None = None
    skeleton: str | None = None
    safety_stop: bool | None = None

    OPTIONS: ClassVar[dict[str, tuple[str, ...]]] = {
        "boin": ("target", "cohorts", "n_earlystop", "extrasafe", "offset", "lambda_e", "lambda_d"),
        "crm": ("target", "cohorts", "skeleton", "safety_stop")}

    def design(self, name: str, escalation, k: int):
        """The BOIN or CRM design: the protocol's when it fixes one (then no option may change
        it), otherwise from the options with BOIN's and dfcrm's defaults."""
        from ..dosing.escalation.from_protocol import boin_design, crm_design, planned_boin, planned_crm

        if escalation is not None and escalation.design == name:
            given = [f"--{o.replace('_', '-')}" for o in self.OPTIONS[name] if getattr(self, o) is not None]
            if given:
                fail(f"{', '.join(given)}: the protocol fixes the {name} settings (dose_escalation.{name}); "
                     "change the protocol, not the command line")
            return boin_design(escalation) if name == "boin" else crm_design(escalation)
        if name == "boin":
            return planned_boin(self.target, self.cohorts, self.n_earlystop, self.extrasafe, self.offset,
                                self.lambda_e, self.lambda_d)
        skeleton = tuple(_floats(self.skeleton, "--skeleton")) if self.skeleton else None
        return planned_crm(k, self.target, skeleton, self.cohorts, self.safety_stop)


TargetOption = typer.Option(None, "--target", help="BOIN/CRM target DLT rate (default 0.25).")
CohortsOption = typer.Option(None, "--cohorts", help="BOIN/CRM: planned number of cohorts of 3 (default 10).")
SkeletonOption = typer.Option(None, "--skeleton", help="CRM prior DLT rates per level "
                                                       "(default: calibrated, Lee & Cheung 2009).")
NEarlystopOption = typer.Option(None, "--n-earlystop", help="BOIN: stop once this many patients are at the current "
                                                            "dose and the rule stays there (default 100: off).")
ExtrasafeOption = typer.Option(None, "--extrasafe/--no-extrasafe",
                               help="BOIN: stop when Pr(level 1 too toxic) > 0.95 - offset (default off).")
OffsetOption = typer.Option(None, "--offset", help="BOIN: offset of the --extrasafe rule (default 0.05).")
LambdaEOption = typer.Option(None, "--lambda-e", help="BOIN: escalation boundary (default from 0.6 x target).")
LambdaDOption = typer.Option(None, "--lambda-d", help="BOIN: de-escalation boundary (default from 1.4 x target).")
VariantOption = typer.Option(None, "--variant", help="3+3: expansion (as AMASS-1 ran it: the level below the "
                                                      "stopping level is the MTD, confirmed in an expansion cohort; "
                                                      "the default) or classic (the MTD must have 6 patients: "
                                                      "expansion to 6, with de-escalation).")
SafetyStopOption = typer.Option(None, "--safety-stop/--no-safety-stop",
                                help="CRM: stop when Pr(level 1 too toxic) > 0.90 (default on; dfcrm has no "
                                     "such rule).")


@command(escalation_app, "run", epilog="Examples: stroketrial escalation run amass-1 --dlt '1:0/3,2:1/6,3:0/3'  ·  "
                                       "stroketrial escalation run amass-1 --design boin --target 0.25 "
                                       "--dlt '1:0/3,2:1/3'  ·  "
                                       "stroketrial escalation run my-boin-trial.yaml --dlt '1:0/3'")
def run(trial: str = typer.Argument(..., help="Built-in id or protocol .yaml with a dose_escalation section."),
        dlt: str = typer.Option("", "--dlt", help="DLTs/patients per level so far: LEVEL:DLTS/PATIENTS,..."),
        design: str | None = typer.Option(None, "--design", help="3+3, boin or crm (default: the protocol's)."),
        target: float | None = TargetOption,
        current: int | None = typer.Option(None, "--current", help="BOIN/CRM: the level the last cohort received "
                                                                      "(default: the highest level with patients)."),
        last_dlt: int | None = typer.Option(None, "--last-dlt", help="CRM: DLTs in the last cohort (coherence rule)."),
        skeleton: str | None = SkeletonOption, cohorts: int | None = CohortsOption,
        n_earlystop: int | None = NEarlystopOption, extrasafe: bool | None = ExtrasafeOption,
        offset: float | None = OffsetOption, lambda_e: float | None = LambdaEOption,
        lambda_d: float | None = LambdaDOption, safety_stop: bool | None = SafetyStopOption,
        variant: str | None = VariantOption, as_json: bool = JsonOption) -> None:
    """The live decision: the next cohort's dose level, or the final decision, with the rule that fired."""
    from ..dosing.escalation import parse_dlt_counts
    from ..protocol import resolve

    from ..dosing.escalation import three_plus_three

    protocol = resolve(trial)
    escalation = protocol.dose_escalation
    if escalation is None:
        fail(f"{protocol.id} has no dose escalation (its design is {protocol.design.model.replace('_', ' ')})")
    counts = parse_dlt_counts(dlt)
    k = len(escalation.levels)
    design = design or escalation.design
    _check_variant(variant, [design])
    if design == "3+3" and three_plus_three.check_variant(variant or "expansion") == "classic":
        decision = three_plus_three.decide_classic(counts, k, escalation.expansion_min)
    elif design == "3+3":
        decision = three_plus_three.decide(three_plus_three.cohorts_from_counts(counts), k,
                                           escalation.expansion_min)
    elif design in ("boin", "crm"):
        planned = _Planned(target, cohorts, n_earlystop, extrasafe, offset, lambda_e, lambda_d, skeleton, safety_stop)
        chosen = planned.design(design, escalation, k)
        if design == "boin":
            decision = chosen.decide(counts, current or (max(counts) if counts else 1), k)
        else:
            decision = chosen.decide(counts, k, current, last_dlt)
    else:
        fail(f"--design {design!r} is not one of 3+3, boin, crm")
    doses = {lv.level: lv.dose for lv in escalation.levels}
    data = decision.to_json() | {"trial": protocol.id, "design": design,
                                 **({"variant": variant or "expansion"} if design == "3+3" else {}),
                                 "dose": doses.get(decision.level or decision.mtd or 0), "unit": escalation.unit,
                                 "dlt_definition": [d.model_dump() for d in escalation.dlt_definition]}
    if as_json:
        emit_json(data)
        return
    if decision.action == "treat":
        out.print(f"[bold]Treat the next cohort at level {decision.level}[/] ({data['dose']:g} {escalation.unit})")
    elif decision.mtd:
        out.print(f"[bold]Stop escalation: MTD is level {decision.mtd}[/] ({doses[decision.mtd]:g} {escalation.unit})")
    else:
        out.print("[bold red]Stop: no dose level is tolerated[/]")
    out.print(f"rule: {decision.text}")
    if decision.expansion:
        out.print(decision.expansion)
    out.print("DLT (protocol): " + "; ".join(d.text for d in escalation.dlt_definition), style="dim")


def _check_variant(variant: str | None, designs: list[str]) -> None:
    if variant is not None and "3+3" not in designs:
        fail(f"--variant {variant}: it chooses the 3+3 variant, and the design is {', '.join(designs)}")


def _floats(text: str, option: str) -> list[float]:
    try:
        return [float(x) for x in text.split(",") if x.strip()]
    except ValueError:
        fail(f"{option} {text!r} is a comma-separated list of numbers, e.g. 0.05,0.10,0.20")


# ---- escalation: operating characteristics ------------------------------------------------------------
@command(escalation_app, "oc", epilog="Examples: stroketrial escalation oc --design 3+3 --tox 0.05,0.10,0.20,0.35  ·  "
                                      "stroketrial escalation oc --design boin --target 0.25 --tox 0.05,0.10,0.20,0.35 "
                                      "--trials 100000  ·  stroketrial escalation oc --design boin --target 0.27 "
                                      "--tox 0.11,0.27,0.42,0.64 --n-earlystop 9 --extrasafe --exact  ·  "
                                      "stroketrial escalation oc --trial my-boin-trial.yaml --tox 0.05,0.10,0.20,0.35 "
                                      "--exact  ·  stroketrial escalation oc --design all --tox ... "
                                      "--skeleton 0.08,0.15,0.25,0.35 --plot oc.png")
def oc(tox: str = typer.Option(..., "--tox", help="True DLT probability per level, e.g. 0.05,0.10,0.20,0.35."),
       design: str | None = typer.Option(None, "--design", help="3+3 (exact), boin, crm, or all (side by side); "
                                                                   "default: the --trial's design, else 3+3."),
       trial: str | None = typer.Option(None, "--trial", help="Built-in id or protocol .yaml: its design and "
                                                                 "settings (e.g. a BOIN fixed in the protocol)."),
       target: float | None = TargetOption, skeleton: str | None = SkeletonOption,
       cohorts: int | None = CohortsOption,
       trials: int = typer.Option(10_000, "--trials", help="Simulated trials (BOIN, CRM; 3+3 is exact)."),
       seed: int = typer.Option(1, "--seed", help="Random seed."),
       exact: bool = typer.Option(False, "--exact", help="BOIN: exact, by enumerating every outcome (small designs)."),
       n_earlystop: int | None = NEarlystopOption, extrasafe: bool | None = ExtrasafeOption,
       offset: float | None = OffsetOption, lambda_e: float | None = LambdaEOption,
       lambda_d: float | None = LambdaDOption, safety_stop: bool | None = SafetyStopOption,
       variant: str | None = VariantOption,
       plot: Path | None = typer.Option(None, "--plot", help="Figure of selection and allocation (.png/.svg/.pdf)."),
       as_json: bool = JsonOption) -> None:
    """Operating characteristics for a true toxicity curve: selection per level, patients and DLTs per level."""
    from ..protocol import resolve
    import numpy as np

    from ..dosing.escalation import boin as _loaded, crm as _also_loaded, three_plus_three  # noqa: F401
    # (imported before the clock starts, so the reported seconds are the computation's)

    p = _floats(tox, "--tox")
    if not 1 <= trials <= 10_000_000:
        fail(f"--trials is {trials}; allowed: 1 to 10000000")
    if plot is not None and plot.suffix.lower() not in (".png", ".svg", ".pdf"):
        fail(f"--plot {plot}: the figure is written as .png, .svg or .pdf")
    escalation = None
    if trial is not None:
        protocol = resolve(trial)
        escalation = protocol.dose_escalation
        if escalation is None:
            fail(f"{protocol.id} has no dose escalation (its design is {protocol.design.model.replace('_', ' ')})")
        if len(p) != len(escalation.levels):
            fail(f"--tox has {len(p)} values; {protocol.id} has {len(escalation.levels)} dose levels")
    design = design or (escalation.design if escalation is not None else "3+3")
    planned = _Planned(target, cohorts, n_earlystop, extrasafe, offset, lambda_e, lambda_d, skeleton, safety_stop)
    designs = ["3+3", "boin", "crm"] if design == "all" else [design]
    _check_variant(variant, designs)
    results, seconds = [], {}
    for name in designs:
        rng = np.random.default_rng(seed)
        started = time.perf_counter()
        if name == "3+3":
            result = three_plus_three.exact(p, variant or "expansion")
        elif name == "boin":
            boin = planned.design("boin", escalation, len(p))
            result = boin.exact(p) if exact else boin.simulate(p, trials, rng)
        elif name == "crm":
            result = planned.design("crm", escalation, len(p)).simulate(p, trials, rng)
        else:
            fail(f"--design {name!r} is not one of 3+3, boin, crm, all")
        seconds[name] = time.perf_counter() - started
        results.append(result)
    if plot is not None:
        from ..dosing.escalation.oc_figure import plot_oc
        plot_oc(results, plot)
    if as_json:
        payload = [r.to_json() | {"seconds": round(seconds[r.design], 3)} for r in results]
        emit_json(payload[0] if len(payload) == 1 else payload)
        return
    table = Table(title=f"Operating characteristics, true DLT rates {', '.join(f'{x:g}' for x in p)}")
    table.add_column("design")
    table.add_column("measure")
    for j in range(len(p)):
        table.add_column(f"level {j + 1}", justify="right")
    table.add_column("none / total", justify="right")
    for r in results:
        label = r.design + (" classic" if r.settings.get("variant") == "classic" else "") + (
            " (exact)" if r.method == "exact" else f" ({r.trials:,} trials, {seconds[r.design]:.1f} s)")
        table.add_row(label, "P(select) %", *(f"{100 * x:.1f}" for x in r.p_select), f"{100 * r.p_none:.1f}")
        table.add_row("", "patients", *(f"{x:.2f}" for x in r.expected_n), f"{sum(r.expected_n):.1f}")
        table.add_row("", "DLTs", *(f"{x:.2f}" for x in r.expected_dlt), f"{sum(r.expected_dlt):.2f}",
                      end_section=True)
    out.print(table)
    if plot is not None:
        out.print(f"figure: {plot}")
