"""`stroketrial envelopes ...`: a site's sealed emergency envelopes, for randomization while the platform cannot be
reached. Made and printed as the unblinded pharmacist or the trial admin (`--as`); the service checks the role."""

from __future__ import annotations

from pathlib import Path

import typer

from .server import DbOption, open_db
from .support import JsonOption, command, command_group, emit_json, out

envelopes_app = command_group("Sealed emergency envelopes: randomization while the platform cannot be reached.")

AsOption = typer.Option(None, "--as", help="Act as this user (the unblinded pharmacist of a blinded trial); "
                                            "default: the platform's admin, for a trial where the admin sees arms.")


def register(app: typer.Typer) -> None:
    app.add_typer(envelopes_app, name="envelopes")


def _actor(session, name: str | None):
    from ..service import SYSTEM, accounts
    return SYSTEM if name is None else accounts.actor_named(session, name)


@command(envelopes_app, "generate", epilog="Example: stroketrial envelopes generate angel-rescue --site S1 "
                                           "--out set.pdf")
def generate(trial: str = typer.Argument(..., help="Trial id on the platform."),
             site: str = typer.Option(..., "--site", help="The site the set is for."),
             out_path: Path = typer.Option(..., "--out", help="Where to write the printable set (PDF).",
                                           dir_okay=False),
             per_stratum: int | None = typer.Option(None, "--per-stratum", min=1, max=100,
                                                    help="Envelopes per stratum, at least (whole blocks); default: "
                                                         "the protocol's."),
             as_user: str | None = AsOption, db_url: str | None = DbOption, as_json: bool = JsonOption) -> None:
    """Make a site's set of sealed envelopes (whole permuted blocks per stratum, apart from the online list; for
    minimization the protocol's fallback list) and write it as a PDF to print: per envelope its outside label and
    inside sheet. A site holding sealed envelopes gets no second set until they are used or the set is voided."""
    from ..service import envelopes
    if out_path.exists() and out_path.is_dir():
        raise IsADirectoryError(f"--out {out_path} is a folder; give a file name ending .pdf")
    db = open_db(db_url)
    with db.write() as session:
        actor = _actor(session, as_user)
        made = envelopes.generate(session, actor, trial, site, per_stratum)
    with db.write() as session:
        pdf, _name = envelopes.set_pdf(session, _actor(session, as_user), trial, made["set"])
    out_path.write_bytes(pdf)
    result = {**made, "pdf": str(out_path)}
    if as_json:
        emit_json(result)
        return
    out.print(f"{trial}: set {made['set']} for site {site}, {made['count']} envelopes ({made['method_words']}); "
              f"printable set written to {out_path}", highlight=False)


@command(envelopes_app, "print", epilog="Example: stroketrial envelopes print angel-rescue 3 --out set.pdf")
def print_set(trial: str = typer.Argument(..., help="Trial id on the platform."),
              set_id: int = typer.Argument(..., help="The set's number (`stroketrial envelopes list`).", min=1),
              out_path: Path = typer.Option(..., "--out", help="Where to write the PDF.", dir_okay=False),
              as_user: str | None = AsOption, db_url: str | None = DbOption, as_json: bool = JsonOption) -> None:
    """Print a set again (the print number is on every page, and the print is audited)."""
    from ..service import envelopes
    db = open_db(db_url)
    with db.write() as session:
        pdf, name = envelopes.set_pdf(session, _actor(session, as_user), trial, set_id)
    out_path.write_bytes(pdf)
    if as_json:
        emit_json({"trial": trial, "set": set_id, "pdf": str(out_path), "file": name})
        return
    out.print(f"{trial}: set {set_id} written to {out_path}", highlight=False)


@command(envelopes_app, "list", epilog="Example: stroketrial envelopes list angel-rescue --json")
def list_sets(trial: str = typer.Argument(..., help="Trial id on the platform."),
              as_user: str | None = AsOption, db_url: str | None = DbOption, as_json: bool = JsonOption) -> None:
    """The sites' envelope sets: each envelope's number, stratum and status (never a sealed envelope's allocation)."""
    from ..service import envelopes
    db = open_db(db_url)
    with db.read() as session:
        sets = envelopes.list_sets(session, _actor(session, as_user), trial)
    if as_json:
        emit_json(sets)
        return
    for s in sets:
        sealed = sum(e["status"] == "sealed" for e in s["envelopes"])
        out.print(f"set {s['set']} site {s['site']}: {s['count']} envelopes, {sealed} sealed"
                  f"{' (void)' if s['voided'] else ''}", highlight=False)
