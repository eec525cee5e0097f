"""`stroketrial registry ...`: the thrombectomy registry, the pool of matched controls (import, summary, export),
and a synthetic registry to try it with.

The database commands run as the platform's system actor (an admin), as `stroketrial admin ...` does.
"""

from __future__ import annotations

from pathlib import Path

import typer

from .server import DbOption, open_db
from .support import JsonOption, command, command_group, emit_json, err, fail, out

registry_app = command_group("The thrombectomy registry: matched controls for a single-arm trial (import, summary, "
                             "export, synthesize).")


def register(app: typer.Typer) -> None:
    app.add_typer(registry_app, name="registry")


@command(registry_app, "import", epilog="Examples: stroketrial registry import registry.csv  ·  "
                                        "stroketrial registry import registry.csv --db sqlite:///trial.db --json")
def registry_import(path: Path = typer.Argument(..., help="Registry .csv or .parquet file: the data dictionary's "
                                                         "columns and the outcomes (docs/data-dictionary.md)."),
                    db_url: str | None = DbOption, as_json: bool = JsonOption) -> None:
    """Import a registry file: every row, or nothing and each bad row and column named (exit code 2)."""
    from ..service import SYSTEM
    from ..service.registry import import_registry

    db = open_db(db_url)
    with db.write() as session:
        result = import_registry(session, SYSTEM, path)
    if as_json:
        emit_json(result)
    else:
        out.print(f"imported {result['rows']} registry patients from {path} (SHA-256 {result['sha256']}); "
                  f"{result['registry_patients']} in the registry", highlight=False)


@command(registry_app, "summary", epilog="Example: stroketrial registry summary --db sqlite:///trial.db --json")
def registry_summary(db_url: str | None = DbOption, as_json: bool = JsonOption) -> None:
    """How many registry patients, the columns they have, how much of each is missing, and the files imported."""
    from rich.table import Table

    from ..service import SYSTEM
    from ..service.registry import registry_summary as summarise

    db = open_db(db_url)
    with db.read() as session:
        summary = summarise(session, SYSTEM)
    if as_json:
        emit_json(summary)
        return
    out.print(f"{summary['patients']} registry patients", highlight=False)
    columns = Table(title="Columns: missing values")
    for name in ("column", "missing", "%"):
        columns.add_column(name, justify="left" if name == "column" else "right")
    for name, missing in summary["missing"].items():
        percent = "" if missing["percent"] is None else f"{missing['percent']:.1f}"
        columns.add_row(name, str(missing["missing"]), percent)
    out.print(columns)
    files = Table(title="Files imported")
    for name in ("file", "rows", "imported at", "by", "SHA-256"):
        files.add_column(name, overflow="fold")
    for f in summary["files"]:
        files.add_row(str(f["file"]), str(f["rows"]), f["imported_at"], f["imported_by"], f["sha256"])
    out.print(files)


@command(registry_app, "export", epilog="Example: stroketrial registry export registry-export.csv "
                                        "--db sqlite:///trial.db")
def registry_export(out_path: Path = typer.Argument(..., help="Output .csv or .parquet file (the import reads it "
                                                              "back unchanged)."),
                    db_url: str | None = DbOption, as_json: bool = JsonOption) -> None:
    """Write every registry patient to a file: the registry's columns, canonical units, times in ISO 8601."""
    from ..cohort.registry import write_registry
    from ..service import SYSTEM
    from ..service.registry import registry_frame

    if out_path.suffix.lower() not in (".csv", ".parquet"):
        fail(f"{out_path}: the export is a .csv or .parquet file")
    db = open_db(db_url)
    with db.read() as session:
        frame = registry_frame(session, SYSTEM)
    write_registry(frame, out_path)
    result = {"path": str(out_path), "patients": len(frame), "columns": list(frame.columns)}
    if as_json:
        emit_json(result)
    else:
        out.print(f"wrote {len(frame)} registry patients to {out_path}", highlight=False)


@command(registry_app, "synthesize", epilog="Example: stroketrial registry synthesize --n 600 --seed 1 "
                                            "--out registry.csv")
def registry_synthesize(n: int = typer.Option(600, "--n", min=1, help="Number of registry patients."),
                        seed: int = typer.Option(1, "--seed", help="Random seed; the same seed gives the same "
                                                                   "registry."),
                        out_path: Path = typer.Option(..., "--out", help="Output .csv or .parquet file."),
                        as_json: bool = JsonOption) -> None:
    """Write a synthetic thrombectomy registry: anterior occlusions with eTICI 2b50-3, and their 24-h infarct
    volume, 90-day mRS, death and sICH (sources in stroketrial.cohort.registry)."""
    from ..cohort.registry import synthesize_registry, write_registry

    if out_path.suffix.lower() not in (".csv", ".parquet"):
        fail(f"{out_path}: --out must end in .csv or .parquet")
    with err.status(f"synthesizing {n} registry patients"):
        frame = synthesize_registry(n, seed)
        write_registry(frame, out_path)
    result = {"path": str(out_path), "patients": n, "seed": seed, "columns": list(frame.columns)}
    if as_json:
        emit_json(result)
    else:
        out.print(f"wrote {n} synthetic registry patients (seed {seed}) to {out_path}", highlight=False)
