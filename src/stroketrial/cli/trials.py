"""`stroketrial trials`, `trial ...`, `dictionary`, `screen`, `cohort ...`: the protocols, the data dictionary,
eligibility screening and synthetic cohorts."""

from __future__ import annotations

from typing import TYPE_CHECKING

import json
import sys
from pathlib import Path
from typing import Any
from collections.abc import Callable

import typer
from rich.table import Table

from .support import command_group, JsonOption, command, emit_json, err, fail, out

if TYPE_CHECKING:
    from ..eligibility import ScreeningResult
    from ..protocol import Protocol


trial_app = command_group("Inspect built-in or custom trial protocols.")
cohort_app = command_group("Synthetic cohorts for feasibility and simulation.")
_top_level: list[tuple[str, dict[str, Any], Callable]] = []


def _top(name: str, **kwargs: Any) -> Callable:
    """A command of the root app; `register` adds it (the root app is assembled in cli/root.py)."""
    def collect(fn: Callable) -> Callable:
        _top_level.append((name, kwargs, fn))
        return fn
    return collect


def register(app: typer.Typer) -> None:
    app.add_typer(trial_app, name="trial")
    app.add_typer(cohort_app, name="cohort")
    for name, kwargs, fn in _top_level:
        command(app, name, **kwargs)(fn)


# ---- trials -------------------------------------------------------------------------------------
@_top("trials", epilog="Example: stroketrial trials --json")
def trials(as_json: bool = JsonOption) -> None:
    """List the built-in trials."""
    from ..protocol import BUILTIN_IDS
    from ..protocol import load_builtin

    protocols = [load_builtin(t) for t in BUILTIN_IDS]
    if as_json:
        emit_json([_trial_summary(p) for p in protocols])
        return
    table = Table(title="Built-in trials")
    for col in ("id", "registry", "phase", "design", "ratio", "randomization", "n"):
        table.add_column(col, no_wrap=col in ("id", "registry"))
    for p in protocols:
        s = _trial_summary(p)
        table.add_row(s["id"], s["registry_id"], s["phase"], s["masking"].replace("_", " "), s["allocation_ratio"],
                      s["randomization"] or "not randomized", str(s["sample_size"]))
    out.print(table)


def _trial_summary(p: Protocol) -> dict[str, Any]:
    return {"id": p.id, "acronym": p.acronym, "title": p.title, "registry_id": p.registry_id, "phase": p.phase,
            "masking": p.design.masking, "allocation_ratio": p.allocation_ratio,
            "randomization": p.randomization.method if p.randomization else None,
            "sample_size": p.sample_size.total, "inclusion": len(p.inclusion), "exclusion": len(p.exclusion)}


@command(trial_app, "show", epilog="Example: stroketrial trial show amass-2")
def trial_show(trial: str = typer.Argument(..., help="Built-in id (amass-2, ...) or a protocol .yaml file."),
               as_json: bool = JsonOption) -> None:
    """Show one protocol: criteria with their rules, arms, endpoints, visits, sample size."""
    from ..protocol import resolve

    p = resolve(trial)
    if as_json:
        emit_json(p.model_dump(mode="json", by_alias=True, exclude_none=True))
        return
    out.print(f"[bold]{p.acronym}[/] {p.title}")
    out.print(f"{p.registry_id} · phase {p.phase} · {p.design.masking.replace('_', ' ')} · "
              f"{p.design.centres}-centre · allocation {p.allocation_ratio} · n = {p.sample_size.total}")
    out.print(p.design.summary, style="dim")
    table = Table(title="Eligibility", show_lines=True)
    for col in ("#", "id", "document wording", "rule / attestation", "assumption"):
        table.add_column(col, overflow="fold")
    for i, c in enumerate(p.criteria, 1):
        kind = "I" if p.kind_of(c) == "inclusion" else "E"
        how = c.rule.text() if c.rule is not None else f"ask: {c.attestation}"
        table.add_row(f"{kind}{i}", c.id, c.text, how, c.assumption or "")
    out.print(table)
    arms = Table(title="Arms")
    for col in ("id", "name", "role", "ratio", "description"):
        arms.add_column(col, overflow="fold")
    for a in p.arms:
        arms.add_row(a.id, a.name, a.role, str(a.ratio), a.description)
    out.print(arms)
    if p.randomization:
        r = p.randomization
        factors = ", ".join(f.name for f in r.factors) or "none"
        out.print(f"[bold]Randomization[/]: {r.method.replace('_', ' ')} {p.allocation_ratio} ({r.timing}); "
                  f"factors: {factors}" + ("; blinded kits" if r.blinded_kits else "")
                  + f" (details: stroketrial randomization show {p.id})")
        if r.assumption:
            out.print(f"  assumption: {r.assumption}", style="dim")
    ends = Table(title="Endpoints")
    for col in ("id", "role", "type", "day", "definition"):
        ends.add_column(col, overflow="fold")
    for e in p.endpoints:
        day = "" if e.timepoint_days is None else f"{e.timepoint_days:g}"
        ends.add_row(e.id, e.role, e.type, day, e.definition)
    out.print(ends)
    out.print("[bold]Visits[/]: " + ", ".join(f"{v.name} (day {v.day:g})" for v in p.visits))
    ss = p.sample_size
    out.print(f"[bold]Sample size[/]: {ss.total} ({ss.method})" + (f"; {ss.inflation}" if ss.inflation else ""))
    for missing in ss.missing_assumptions:
        out.print(f"  not stated by the source: {missing}", style="dim")


@command(trial_app, "schema", epilog="Example: stroketrial trial schema > protocol.schema.json")
def trial_schema() -> None:
    """Print the JSON Schema of a protocol file."""
    from ..protocol import protocol_json_schema

    sys.stdout.write(protocol_json_schema() + "\n")


@command(trial_app, "validate", epilog="Example: stroketrial trial validate my-trial.yaml")
def trial_validate(path: Path = typer.Argument(..., help="Protocol YAML file."), as_json: bool = JsonOption) -> None:
    """Check a protocol file; errors give the file, the path inside it and the reason."""
    from ..protocol import load_protocol

    p = load_protocol(path)
    if as_json:
        emit_json({"path": str(path), "valid": True, "trial": p.id, "inclusion": len(p.inclusion),
                   "exclusion": len(p.exclusion)})
        return
    out.print(f"{path}: valid protocol {p.id} ({len(p.inclusion)} inclusion, {len(p.exclusion)} exclusion criteria)")


# ---- the data dictionary ----------------------------------------------------------------------------
@_top("dictionary", epilog="Example: stroketrial dictionary --json")
def dictionary(as_json: bool = JsonOption) -> None:
    """List every variable a patient record may hold, with unit and allowed values."""
    from ..clinical import VARIABLES

    rows = [{"name": v.name, "kind": v.kind, "unit": v.unit, "allowed": v.allowed(), "description": v.description}
            for v in VARIABLES.values()]
    if as_json:
        emit_json(rows)
        return
    table = Table(title="Clinical data dictionary")
    for col in ("name", "kind", "unit", "allowed", "description"):
        table.add_column(col, overflow="fold")
    for r in rows:
        table.add_row(r["name"], r["kind"], r["unit"] or "", r["allowed"], r["description"])
    out.print(table)


# ---- screening --------------------------------------------------------------------------------------
_STATUS_STYLE = {"eligible": "bold green", "ineligible": "bold red", "incomplete": "bold yellow",
                 "met": "green", "not_met": "red", "missing_data": "yellow", "needs_attestation": "yellow"}


@_top("screen", epilog=(
    "Examples: stroketrial screen amass-2 patient.json  ·  stroketrial screen amass-2 cohort.csv --funnel"))
def screen_cmd(trial: str = typer.Argument(..., help="Built-in id or protocol .yaml file."),
               path: Path = typer.Argument(..., help="Patient .json (one record or a list), or cohort .csv/.parquet."),
               show_funnel: bool = typer.Option(False, "--funnel", help="Cohorts: print the CONSORT screening funnel."),
               as_json: bool = JsonOption) -> None:
    """Screen patients against a trial's eligibility criteria.

    Exit code 0 when screening ran, whatever the patients' status; 2 for bad input.
    """
    from ..eligibility import encode_cohort
    from ..eligibility import funnel
    from ..eligibility import read_cohort
    from ..eligibility import screen
    from ..protocol import resolve

    protocol = resolve(trial)
    if path.suffix.lower() in (".csv", ".parquet"):
        frame = read_cohort(path)
        table = encode_cohort(protocol, frame)
        if show_funnel:
            _print_funnel(funnel(protocol, table).to_json(), as_json)
        else:
            _print_cohort_statuses(protocol, table, frame, as_json)
        return
    if show_funnel:
        fail("--funnel needs a cohort table (.csv or .parquet)")
    records = _read_json(path)
    results = [screen(protocol, r) for r in (records if isinstance(records, list) else [records])]
    if as_json:
        emit_json(results[0].to_json() if not isinstance(records, list) else [r.to_json() for r in results])
        return
    for result in results:
        _print_screening(result)


def _read_json(path: Path) -> Any:
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        fail(f"{path}: no such file")
    except (OSError, UnicodeDecodeError) as exc:
        fail(f"{path}: cannot read ({exc})")
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        fail(f"{path}: not valid JSON: {exc.msg} (line {exc.lineno}, column {exc.colno})")
    if isinstance(data, list) and not all(isinstance(d, dict) for d in data):
        fail(f"{path}: a list must hold patient records (JSON objects)")
    return data


def _print_screening(result: ScreeningResult) -> None:
    table = Table(title=f"Screening for {result.trial}", show_lines=False)
    for col in ("criterion", "kind", "status", "reason"):
        table.add_column(col, overflow="fold")
    for c in result.criteria:
        status = f"[{_STATUS_STYLE[c.status]}]{c.status}[/]" + (" [red]✗ excludes[/]" if c.excludes else "")
        table.add_row(c.id, c.kind, status, c.reason)
    out.print(table)
    out.print(f"Overall: [{_STATUS_STYLE[result.status]}]{result.status.upper()}[/]")
    if result.failing:
        out.print("Excluded by: " + ", ".join(c.id for c in result.failing))
    elif result.outstanding:
        out.print("Still needed: " + ", ".join(c.id for c in result.outstanding))


def _print_funnel(f: dict[str, Any], as_json: bool) -> None:
    if as_json:
        emit_json(f)
        return
    out.print(f"[bold]Screening funnel for {f['trial']}[/]")
    out.print(f"Assessed for eligibility: {f['assessed']}")
    out.print(f"Excluded: {f['excluded']}")
    table = Table()
    table.add_column("criterion")
    table.add_column("kind")
    for col in ("first reason", "any reason", "undecided"):
        table.add_column(col, justify="right")
    for r in f["criteria"]:
        table.add_row(r["id"], r["kind"], str(r["excluded_first"]), str(r["excluded_any"]), str(r["missing"]))
    out.print(table)
    out.print(f"Incomplete (data missing): {f['incomplete']}")
    out.print(f"Awaiting attestation only: {f['awaiting_attestation']}")
    out.print(f"[bold green]Eligible: {f['eligible']}[/]")


def _print_cohort_statuses(protocol: Protocol, table, frame, as_json: bool) -> None:
    from ..eligibility import first_failing
    from ..eligibility import statuses
    import numpy as np

    status = statuses(protocol, table)
    first = first_failing(protocol, table)
    ids = frame["patient_id"].astype("string").to_numpy() if "patient_id" in frame.columns else \
        np.array([str(i + 1) for i in range(table.n)])
    rows = [{"patient_id": str(i), "status": str(s), "first_failing": f or None}
            for i, s, f in zip(ids, status, first, strict=True)]
    if as_json:
        emit_json(rows)
        return
    t = Table(title=f"Screening for {protocol.id} ({table.n} patients)")
    for col in ("patient_id", "status", "first failing criterion"):
        t.add_column(col)
    for r in rows[:50]:
        t.add_row(r["patient_id"], f"[{_STATUS_STYLE[str(r['status'])]}]{r['status']}[/]", r["first_failing"] or "")
    out.print(t)
    if len(rows) > 50:
        out.print(f"... {len(rows) - 50} more; use --json for all, or --funnel for counts")


# ---- cohorts ------------------------------------------------------------------------------------------
@command(cohort_app, "synth", epilog="Example: stroketrial cohort synth --n 1000 --seed 1 --trial amass-2 "
                                     "--out cohort.csv")
def cohort_synth(n: int = typer.Option(1000, "--n", min=1, help="Number of patients."),
                 seed: int = typer.Option(1, "--seed", help="Random seed; the same seed gives the same cohort."),
                 out_path: Path = typer.Option(..., "--out", help="Output .csv or .parquet file."),
                 trial: str | None = typer.Option(None, "--trial", help="Also answer this trial's attestations."),
                 as_json: bool = JsonOption) -> None:
    """Write a synthetic large-vessel-occlusion cohort (sources in stroketrial.cohort)."""
    from ..cohort import synthesize
    from ..cohort import write_cohort
    from ..protocol import resolve

    if out_path.suffix.lower() not in (".csv", ".parquet"):
        fail(f"{out_path}: --out must end in .csv or .parquet")
    protocol = resolve(trial) if trial else None
    with err.status(f"synthesizing {n} patients"):
        frame = synthesize(n, seed, protocol)
        write_cohort(frame, str(out_path))
    summary = {"path": str(out_path), "patients": n, "seed": seed, "columns": list(frame.columns),
               "attestations_for": protocol.id if protocol else None}
    if as_json:
        emit_json(summary)
    else:
        out.print(f"wrote {n} synthetic patients (seed {seed}) to {out_path}")
