"""`stroketrial supply ...`: the kit list of a kit trial (import, generate, export), shipments and stock, run on
the server as a named user (the unblinded pharmacist or the supply manager), each operation audited as theirs."""

from __future__ import annotations

from pathlib import Path
from typing import NoReturn

import typer

from .server import DbOption, open_db
from .support import JsonOption, command, command_group, emit_json, out

supply_app = command_group("Investigational product supply: the kit list, shipments to sites, stock.")
UserOption = typer.Option(..., "--user", help="The platform user doing this (an unblinded pharmacist or supply "
                                              "manager); the audit trail records them.")


def register(app: typer.Typer) -> None:
    app.add_typer(supply_app, name="supply")


@command(supply_app, "import-kits", epilog="Example: stroketrial supply import-kits impact-lvo kits.csv --user "
                                            "pharmacist  (CSV columns: kit_number,arm,lot,expiry)")
def import_kits(trial: str = typer.Argument(..., help="Trial id on the platform."),
                path: Path = typer.Argument(..., help="The packager's kit list, CSV: kit_number,arm,lot,expiry."),
                user: str = UserOption, db_url: str | None = DbOption, as_json: bool = JsonOption) -> None:
    """Import the packager's kit list, all or nothing: every bad row is named and nothing is stored (exit 2)."""
    from ..service import accounts, supply
    from ..service.errors import ServiceError
    text = path.read_text(encoding="utf-8-sig")
    db = open_db(db_url)
    try:
        with db.write() as session:
            result = supply.import_kits(session, accounts.actor_named(session, user), trial, text)
    except ServiceError as exc:
        if as_json:
            emit_json(exc.to_json())
            raise typer.Exit(2) from None
        rows = "; ".join(f"row {e.get('row', '-')} {e['field']} {e.get('value')!r}: {e['message']}"
                         for e in exc.errors)
        raise ServiceError(f"{exc.message}{': ' + rows if rows else ''}") from None
    _report(result, as_json, f"{result['imported']} kits imported into {trial}; its kit list holds {result['kits']}")


@command(supply_app, "generate-kits", epilog="Example: stroketrial supply generate-kits impact-lvo --per-arm 200 "
                                              "--lot B2026-01 --expiry 2028-06-30 --user supply")
def generate_kits(trial: str = typer.Argument(..., help="Trial id on the platform."),
                  per_arm: int = typer.Option(..., "--per-arm", help="Kits of each arm (times the arm's ratio)."),
                  lot: str = typer.Option(..., "--lot", help="The lot printed on the kits."),
                  expiry: str = typer.Option(..., "--expiry", help="Expiry date, YYYY-MM-DD."),
                  user: str = UserOption, db_url: str | None = DbOption, as_json: bool = JsonOption) -> None:
    """Generate a kit list (kit numbers from the OS CSPRNG, telling nothing of the arm)."""
    from ..service import accounts, supply
    db = open_db(db_url)
    with db.write() as session:
        result = supply.generate_kits(session, accounts.actor_named(session, user), trial, per_arm, lot, expiry)
    _report(result, as_json, f"{result['generated']} kits generated for {trial}")


@command(supply_app, "export-kits", epilog="Example: stroketrial supply export-kits impact-lvo --user pharmacist "
                                            "--out kits-for-packager.csv")
def export_kits(trial: str = typer.Argument(..., help="Trial id on the platform."),
                path: Path | None = typer.Option(None, "--out", help="Write the CSV here (default: standard output)."),
                user: str = UserOption, db_url: str | None = DbOption, as_json: bool = JsonOption) -> None:
    """The kit list as CSV for the packager: kit_number, arm, lot, expiry (unblinded: keep it from the sites)."""
    import csv
    import io

    from ..service import accounts, supply
    db = open_db(db_url)
    with db.write() as session:
        text = supply.export_kits(session, accounts.actor_named(session, user), trial)
    if as_json and path is None:
        emit_json({"trial": trial, "kits": list(csv.DictReader(io.StringIO(text)))})
    elif path is None:
        typer.echo(text, nl=False)
    else:
        path.write_text(text, encoding="utf-8")
        if as_json:
            emit_json({"trial": trial, "written": str(path), "kits": text.count("\n") - 1})


@command(supply_app, "ship", epilog="Example: stroketrial supply ship impact-lvo S1 --per-arm 6 --user supply")
def ship(trial: str = typer.Argument(..., help="Trial id on the platform."),
         site: str = typer.Argument(..., help="The site the kits go to."),
         kits: list[str] = typer.Option([], "--kit", help="A kit number to ship (repeat)."),
         per_arm: int | None = typer.Option(None, "--per-arm", help="Instead of --kit: this many of each arm; "
                                                                    "neither: what the open requests ask."),
         user: str = UserOption, db_url: str | None = DbOption, as_json: bool = JsonOption) -> None:
    """Ship kits from the depot to a site, first expiry first out."""
    from ..service import accounts, supply
    db = open_db(db_url)
    with db.write() as session:
        result = supply.ship(session, accounts.actor_named(session, user), trial, site, kits or None, per_arm)
    _report(result, as_json, f"shipment {result['shipment']} to {site}: {len(result['kits'])} kits on their way")


@command(supply_app, "stock", epilog="Example: stroketrial supply stock impact-lvo --user pharmacist --json")
def stock(trial: str = typer.Argument(..., help="Trial id on the platform."),
          user: str = UserOption, db_url: str | None = DbOption, as_json: bool = JsonOption) -> None:
    """Stock per site (per arm when the user may see it), open resupply requests and expiring lots."""
    from ..service import accounts, supply
    db = open_db(db_url)
    with db.read() as session:
        view = supply.overview(session, accounts.actor_named(session, user), trial)
    if as_json:
        emit_json(view)
        return
    for s in view["stock"]:
        arms = ", ".join(f"{a} {v['dispensable']}" for a, v in s.get("per_arm", {}).items())
        out.print(f"{s['site']}: {s['dispensable']} dispensable kits{' (' + arms + ')' if arms else ''}, "
                  f"{s['in_transit']} on their way", highlight=False)
    for r in view.get("requests", []):
        if r["status"] == "open":
            out.print(f"resupply {r['site']}: {r['kits']} kits of {r['arm']}{' (urgent)' if r['urgent'] else ''}",
                      highlight=False)


@command(supply_app, "quarantine", epilog="Example: stroketrial supply quarantine impact-lvo --lot B2026-01 "
                                           "--reason 'recall notice 12' --user supply")
def quarantine(trial: str = typer.Argument(..., help="Trial id on the platform."),
               kits: list[str] = typer.Option([], "--kit", help="A kit number to quarantine (repeat)."),
               lot: str | None = typer.Option(None, "--lot", help="Instead of --kit: every kit of this lot."),
               reason: str = typer.Option(..., "--reason", help="The temperature excursion or the recall."),
               user: str = UserOption, db_url: str | None = DbOption, as_json: bool = JsonOption) -> None:
    """Quarantine kits or a whole lot: never shipped, dispensed or reserved until released (exit 2 when refused)."""
    from ..service import accounts, supply
    from ..service.errors import ServiceError
    db = open_db(db_url)
    try:
        with db.write() as session:
            result = supply.quarantine(session, accounts.actor_named(session, user), trial, kits or None, lot,
                                       reason)
    except ServiceError as exc:
        _refused(exc, as_json)
    _report(result, as_json, f"{len(result['quarantined'])} kit(s) quarantined in {trial}: "
                             f"{', '.join(result['quarantined'])}")


@command(supply_app, "release", epilog="Example: stroketrial supply release impact-lvo --kit 104233 --reason "
                                        "'excursion assessed: stable' --user supply")
def release(trial: str = typer.Argument(..., help="Trial id on the platform."),
            kits: list[str] = typer.Option([], "--kit", help="A quarantined kit number to release (repeat)."),
            lot: str | None = typer.Option(None, "--lot", help="Instead of --kit: every quarantined kit of this lot."),
            reason: str = typer.Option(..., "--reason", help="Why the kits may be used again."),
            user: str = UserOption, db_url: str | None = DbOption, as_json: bool = JsonOption) -> None:
    """Release quarantined kits: each goes back where it was (the depot, the shelf, its envelope's reservation)."""
    from ..service import accounts, supply
    from ..service.errors import ServiceError
    db = open_db(db_url)
    try:
        with db.write() as session:
            result = supply.release_quarantine(session, accounts.actor_named(session, user), trial, kits or None,
                                               lot, reason)
    except ServiceError as exc:
        _refused(exc, as_json)
    _report(result, as_json, f"{len(result['released'])} kit(s) released in {trial}: "
                             f"{', '.join(result['released'])}")


def _refused(exc, as_json: bool) -> NoReturn:
    """A refusal with each bad value named: JSON on stdout with --json, else one line on stderr; exit 2."""
    from ..service.errors import ServiceError
    if as_json:
        emit_json(exc.to_json())
        raise typer.Exit(2) from None
    named = "; ".join(f"{e['field']} {e.get('value')!r}: {e['message']}" for e in exc.errors)
    raise ServiceError(f"{exc.message}{': ' + named if named else ''}") from None


def _report(result: dict, as_json: bool, line: str) -> None:
    if as_json:
        emit_json(result)
    else:
        out.print(line, highlight=False)
