"""`stroketrial analyze` (the trial report, or one analysis as JSON) and `stroketrial demo` (a simulated
trial's report)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Literal, overload

import io
import os
import time
import zipfile
from pathlib import Path

import typer

from .support import JsonOption, emit_json, err, fail, out

if TYPE_CHECKING:
    import pandas as pd
    from ..analysis.dataset import Dataset
    from ..protocol import Protocol


BINARY_MEASURES = ("risk_difference", "risk_ratio", "odds_ratio", "odds_ratio_exact", "odds_ratio_adjusted",
                   "risk_difference_adjusted")


def register(app: typer.Typer, command) -> None:
    command(app, "analyze", epilog=(
        "Examples: stroketrial analyze amass-2 data.csv --out report/  ·  stroketrial analyze ordinal data.csv "
        "--outcome mrs_90d --arm arm --treatment albumin --control control --adjust age,nihss,aspects --json  ·  "
        "stroketrial analyze binary data.csv --outcome mrs_90d --success-max 2 --treatment albumin --control control"
        "  ·  stroketrial analyze amass-1 export.zip --controls registry.csv --out report/ (a dose-escalation trial "
        "against matched registry controls)"
    ))(analyze)
    command(app, "demo", epilog="Examples: stroketrial demo amass-2 --out demo-report/ --common-or 1.5  ·  "
                                "stroketrial demo amass-1 --out amass1-report/ --volume-ratio 0.7")(demo)


@overload
def read_dataset(path: Path, protocol: Protocol | None = None, *, fast: Literal[False] = False) -> pd.DataFrame: ...
@overload
def read_dataset(path: Path, protocol: Protocol | None = None, *, fast: bool) -> Dataset: ...
def read_dataset(path: Path, protocol: Protocol | None = None, *, fast: bool = False) -> Dataset:
    """A trial dataset: a CSV with one row per patient, or the platform's CSV export (zip of forms), whose
    visit forms fill the outcome columns the protocol's analysis plan names. fast: a CSV is read without pandas,
    for an analysis that takes either (`analysis/dataset.py`)."""
    from ..analysis.result import AnalysisInputError

    if not path.exists():
        raise AnalysisInputError(f"{path}: no such file")
    if path.suffix.lower() == ".zip":
        return _from_export(path, protocol)
    if path.suffix.lower() != ".csv":
        raise AnalysisInputError(f"{path}: give a .csv dataset or the platform's .zip export")
    if fast:
        from ..analysis.dataset import read_csv_table

        return read_csv_table(path)
    import pandas as pd

    try:
        return pd.read_csv(path)
    except (pd.errors.ParserError, UnicodeDecodeError, pd.errors.EmptyDataError) as exc:
        raise AnalysisInputError(f"{path}: not a readable CSV ({exc})") from None


def _from_export(path: Path, protocol: Protocol | None) -> pd.DataFrame:
    from ..analysis.platform_dataset import dataset_from_tables
    from ..analysis.result import AnalysisInputError
    import pandas as pd

    try:
        archive = zipfile.ZipFile(path)
    except zipfile.BadZipFile:
        raise AnalysisInputError(f"{path}: not a zip file") from None
    tables = {Path(name).stem: pd.read_csv(io.BytesIO(archive.read(name))) for name in archive.namelist()
              if name.endswith(".csv")}
    data_lock = _data_lock(tables.pop("export_info", None))  # the title page says whether the data are locked
    data = dataset_from_tables(tables, protocol, str(path))
    data.attrs["data_lock"] = data_lock
    return data


def _data_lock(info: pd.DataFrame | None) -> str:
    """The export's lock in force, as the report's title page states it (service/locks.py: export_info)."""
    from ..service.locks import lock_statement

    rows = None if info is None else {str(f): "" if v != v else str(v)  # NaN: an empty cell
                                      for f, v in zip(info["field"], info["value"], strict=True)}
    return lock_statement(rows)


def analyze(first: str = typer.Argument(..., help="A trial (amass-2, ...) for the full report, or `ordinal` / "
                                                   "`binary` for one analysis."),
            data_path: Path = typer.Argument(..., help="Dataset .csv (one row per patient) or the platform's .zip "
                                                       "export."),
            out_dir: Path | None = typer.Option(None, "--out", help="Report folder (full report)."),
            outcome: str = typer.Option("mrs_90d", "--outcome", help="Outcome column (one analysis)."),
            arm: str = typer.Option("arm", "--arm", help="Arm column."),
            treatment: str | None = typer.Option(None, "--treatment", help="Treatment arm label."),
            control: str | None = typer.Option(None, "--control", help="Control arm label."),
            adjust: str = typer.Option("", "--adjust", help="Covariates, comma-separated, e.g. age,nihss,aspects "
                                                            "(full report: default the plan's)."),
            success_max: int | None = typer.Option(None, "--success-max", help="binary from an mRS column: "
                                                                                  "success is mRS <= this, e.g. 2."),
            measure: str = typer.Option("risk_difference", "--measure", help=f"binary: {', '.join(BINARY_MEASURES)}."),
            population: str | None = typer.Option(None, "--population", help="itt, pp (per_protocol column) or "
                                                  "at (treated_arm column); default: the plan's primary population."),
            controls_path: Path | None = typer.Option(None, "--controls", help="A single-arm trial: the registry's "
                                                      "controls (.csv or .parquet, `stroketrial registry export`)."),
            long_path: Path | None = typer.Option(None, "--long", help="Repeated scores, one row per patient and "
                                                                          "visit (patient_id, arm, visit, scores)."),
            as_json: bool = JsonOption) -> None:
    """Analyse a trial dataset: the full report (HTML, PDF, figures), or one analysis printed as JSON."""
    # each branch imports what it uses: one analysis needs neither the protocols, the report's figures nor
    # statsmodels (binary only), and a command spends more time importing them than analysing
    covariates = [c.strip() for c in adjust.split(",") if c.strip()]
    if first in ("ordinal", "binary"):
        if not treatment or not control:
            fail("give --treatment and --control, the two arm labels to compare")
        if first == "ordinal":
            # one model of a few hundred patients: OpenBLAS's threads would only spin beside it, a third of the
            # command's CPU time (NumPy reads this when it is first imported, here)
            os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
            from ..analysis import ordinal

            data = read_dataset(data_path, fast=True)

            result = ordinal.proportional_odds(data, outcome, arm, treatment, control, covariates)
        else:
            import pandas as pd

            from ..analysis import binary

            data = read_dataset(data_path)
            if success_max is not None:
                mrs = pd.to_numeric(data[outcome], errors="coerce") if outcome in data else None
                if mrs is None:
                    fail(f"the dataset has no column {outcome!r}")
                derived = f"{outcome}_0_{success_max}"
                data = data.assign(**{derived: (mrs <= success_max).astype(float).where(mrs.notna())})
                outcome = derived
            if measure not in BINARY_MEASURES:
                fail(f"--measure {measure!r} is not one of {', '.join(BINARY_MEASURES)}")
            results = binary.binary(data, outcome, arm, treatment, control, covariates)
            if measure not in results:
                fail(f"{measure} is not available for these data (a zero cell, or no --adjust for an adjusted "
                     f"measure); available: {', '.join(results)}")
            result = results[measure]
        payload = result.to_json()
        if as_json:
            emit_json(payload)
        else:  # plain lines, one per answer, for a script to read (rich would wrap them at 80 columns in a pipe)
            typer.echo(f"{result.name}: {result.measure} {result.text()} (n = {result.n})")
            typer.echo(result.method)
        return
    from ..protocol import resolve
    from ..report import analyse, write_report

    protocol = resolve(first)
    data = read_dataset(data_path, protocol)
    if out_dir is None:
        fail("give --out DIR for the report")
    if protocol.dose_escalation is not None:
        _escalation_report(protocol, data, controls_path, out_dir, as_json)
        return
    if controls_path is not None:
        fail(f"--controls is for a single-arm trial compared with registry controls; {protocol.id} compares its arms")
    long = read_dataset(long_path) if long_path else None
    started = time.perf_counter()
    with err.status(f"analysing {len(data)} patients of {protocol.id}"):
        analysis = analyse(protocol, data, long, population, covariates or None)
        figures = write_report(analysis, out_dir, data)
    summary = {"out": str(out_dir), "html": str(out_dir / "report.html"), "pdf": str(out_dir / "report.pdf"),
               "figures": {k: [str(p) for p in v] for k, v in figures.items()},
               "seconds": time.perf_counter() - started, "data_lock": data.attrs.get("data_lock")}
    emit_json(summary) if as_json else out.print(f"report written to {out_dir}/report.html and report.pdf "
                                                 f"({summary['seconds']:.1f} s)"
                                                 + (f"; {summary['data_lock']}" if summary["data_lock"] else ""))


def _escalation_report(protocol: Protocol, data: pd.DataFrame, controls_path: Path | None, out_dir: Path,
                       as_json: bool) -> None:
    from ..clinical.registry_columns import read_registry, registry_table
    from ..report import analyse_escalation, write_escalation_report

    controls = None
    if controls_path is not None:
        if not controls_path.exists():
            fail(f"--controls {controls_path}: no such file")
        controls = registry_table(read_registry(controls_path.read_bytes(), controls_path.name))
    started = time.perf_counter()
    with err.status(f"analysing {len(data)} patients of {protocol.id}"):
        report = analyse_escalation(protocol, data, controls)
        figures = write_escalation_report(report, out_dir, data)
    summary = {"out": str(out_dir), "html": str(out_dir / "report.html"), "pdf": str(out_dir / "report.pdf"),
               "figures": {k: [str(p) for p in v] for k, v in figures.items()},
               "matched": report.matching.n_matched_treated if report.matching else None,
               "seconds": time.perf_counter() - started, "data_lock": data.attrs.get("data_lock")}
    emit_json(summary) if as_json else out.print(f"report written to {out_dir}/report.html and report.pdf "
                                                 f"({summary['seconds']:.1f} s)"
                                                 + (f"; {summary['data_lock']}" if summary["data_lock"] else ""))


def demo(trial: str = typer.Argument(..., help="A randomized built-in trial (`stroketrial trials` lists them)."),
         out_dir: Path = typer.Option(..., "--out", help="Folder for the report, the dataset and the figures."),
         n: int | None = typer.Option(None, "--n", help="Patients (default: the protocol's sample size)."),
         seed: int = typer.Option(1, "--seed", help="Random seed."),
         common_or: float = typer.Option(1.5, "--common-or", help="True common odds ratio for a better mRS."),
         volume_ratio: float = typer.Option(0.7, "--volume-ratio", help="A dose-escalation trial: the true ratio of "
                                            "24-h infarct volumes, treated to untreated."),
         controls: int = typer.Option(600, "--controls", help="A dose-escalation trial: registry controls to "
                                      "simulate (100 to 20000)."),
         as_json: bool = JsonOption) -> None:
    """Simulate a complete trial with a stated true effect and write its report: a first look at the platform."""
    from ..protocol import resolve

    from ..analysis.simulated_trial import simulate_trial
    from ..report import analyse, write_report

    protocol = resolve(trial)
    if common_or <= 0:
        fail(f"--common-or {common_or:g} must be positive")
    if n is not None and not 20 <= n <= 20000:
        fail(f"--n {n} is not allowed; 20 to 20000 patients")
    if protocol.dose_escalation is not None:
        _escalation_demo(protocol, out_dir, seed, volume_ratio, controls, as_json)
        return
    if protocol.randomization is None:
        fail(f"{protocol.id} is not randomized; a demo report compares two randomized arms")
    with err.status(f"simulating {protocol.id} (true common OR {common_or:g}) and writing the report"):
        sim = simulate_trial(protocol, n, seed, common_or)
        result = analyse(protocol, sim.data, sim.long, funnel=sim.funnel)
        figures = write_report(result, out_dir, sim.data)
        sim.long.to_csv(out_dir / "nihss_long.csv", index=False)
    summary = {"out": str(out_dir), "truth": sim.truth, "patients": len(sim.data),
               "files": sorted(str(p) for p in out_dir.iterdir())}
    if as_json:
        emit_json(summary)
    else:
        out.print(f"simulated {len(sim.data)} patients of {protocol.acronym} (true common OR {common_or:g}, seed "
                  f"{seed}); report: {out_dir}/report.html, {out_dir}/report.pdf; figures: "
                  + ", ".join(sorted(figures)))


def _escalation_demo(protocol: Protocol, out_dir: Path, seed: int, volume_ratio: float, controls: int,
                     as_json: bool) -> None:
    """Escalation, expansion, registry, matching and the report: the whole single-arm trial, simulated."""
    from ..analysis.simulated_escalation import simulate_escalation_trial
    from ..report import analyse_escalation, write_escalation_report

    if not 0 < volume_ratio <= 10:
        fail(f"--volume-ratio {volume_ratio:g} is not allowed; above 0 and at most 10 (1: no effect)")
    if not 100 <= controls <= 20000:
        fail(f"--controls {controls} is not allowed; 100 to 20000 registry patients")
    with err.status(f"simulating {protocol.id} (escalation, expansion, {controls} registry controls) and writing "
                    "the report"):
        sim = simulate_escalation_trial(protocol, seed, volume_ratio=volume_ratio, n_controls=controls)
        report = analyse_escalation(protocol, sim.data, sim.controls, seed)
        figures = write_escalation_report(report, out_dir, sim.data)
        sim.controls.to_csv(out_dir / "registry_controls.csv", index=False)
    escalated = int((sim.data["phase"] == "escalation").sum())
    summary = {"out": str(out_dir), "truth": sim.truth, "patients": len(sim.data), "escalation": escalated,
               "expansion": len(sim.data) - escalated, "mtd": report.mtd,
               "matched": report.matching.n_matched_treated if report.matching else None,
               "files": sorted(str(p) for p in out_dir.iterdir())}
    if as_json:
        emit_json(summary)
    else:
        out.print(f"simulated {protocol.acronym}: {escalated} patients in dose escalation, MTD level {report.mtd}, "
                  f"{len(sim.data) - escalated} in expansion, {summary['matched']} matched to registry controls "
                  f"(true volume ratio {volume_ratio:g}, seed {seed}); report: {out_dir}/report.html, "
                  f"{out_dir}/report.pdf; figures: " + ", ".join(sorted(figures)))
