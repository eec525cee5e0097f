"""`stroketrial serve`, `stroketrial admin ...`, `stroketrial audit ...`, `stroketrial db ...`: the platform shell.

Every command that touches the database takes --db URL, else reads STROKETRIAL_DB,
else uses the SQLite file stroketrial.db in the working folder.
"""

from __future__ import annotations

import sys
from typing import Optional

import typer

from .cli_support import JsonOption, command, emit_json, err, out
from .service import SYSTEM, accounts, demo, trials
from .service.accounts import ROLE_DESCRIPTIONS, ROLES
from .store import Database, verify

DbOption = typer.Option(None, "--db", help="Database URL (sqlite:///file.db or postgresql+psycopg://user@host/db); "
                                           "default: $STROKETRIAL_DB, else sqlite:///stroketrial.db")

admin_app = typer.Typer(help="Sites, trials and users on the platform.", no_args_is_help=True)
audit_app = typer.Typer(help="The hash-chained audit trail.", no_args_is_help=True)
db_app = typer.Typer(help="The database schema.", no_args_is_help=True)


def open_db(url: Optional[str]) -> Database:
    db = Database(url)
    db.migrate()
    return db


def register(app: typer.Typer) -> None:
    app.add_typer(admin_app, name="admin")
    app.add_typer(audit_app, name="audit")
    app.add_typer(db_app, name="db")
    command(app, "serve", epilog="Example: stroketrial serve --demo --port 8000")(serve)


def serve(db_url: Optional[str] = DbOption,
          host: str = typer.Option("127.0.0.1", "--host", help="Address to listen on (0.0.0.0 for every interface)."),
          port: int = typer.Option(8000, "--port", min=1, max=65535, help="Port to listen on."),
          demo_data: bool = typer.Option(False, "--demo", help="Load the five trials with demo sites, users and "
                                                               "patients (only into an empty database)."),
          workers_log: str = typer.Option("warning", "--log-level", help="uvicorn log level.")) -> None:
    """Start the platform: the JSON API under /api/v1 (OpenAPI at /docs)."""
    import uvicorn

    from .web import create_app

    db = open_db(db_url)
    if demo_data:
        if demo.has_data(db):
            err.print("the database holds trials already; demo data not loaded again", highlight=False)
        else:
            with err.status("loading demo trials, sites, users and patients"):
                logins = demo.load(db)
            _print_logins(logins, host, port)
    out.print(f"stroketrial serving {db.backend} database {db.url} at http://{host}:{port} "
              f"(API docs: http://{host}:{port}/docs)", highlight=False)
    uvicorn.run(create_app(db), host=host, port=port, log_level=workers_log)


def _print_logins(logins: list[dict], host: str, port: int) -> None:
    # Plain lines, not a table: a token must survive copy and paste whole, whatever the terminal's width.
    out.print(f"[bold]Demo logins[/] for http://{host}:{port} (password {demo.DEMO_PASSWORD} for the web pages; "
              "API token for 'Authorization: Bearer TOKEN'):", highlight=False)
    for login in logins:
        sites = login["sites"] if isinstance(login["sites"], str) else ",".join(login["sites"])
        out.print(f"  {login['name']:<13} {login['role']:<21} sites {sites:<9} token {login['token']}",
                  highlight=False, soft_wrap=True)


@command(db_app, "upgrade", epilog="Example: stroketrial db upgrade --db sqlite:///trial.db")
def db_upgrade(db_url: Optional[str] = DbOption) -> None:
    """Create or migrate the schema to the newest revision."""
    db = open_db(db_url)
    out.print(f"{db.url}: schema up to date")


@command(admin_app, "create-site", epilog="Example: stroketrial admin create-site S3 --name 'Huanhu Hospital'")
def create_site(code: str = typer.Argument(..., help="Site code."),
                name: Optional[str] = typer.Option(None, "--name", help="Site name."),
                db_url: Optional[str] = DbOption) -> None:
    """Create a site."""
    db = open_db(db_url)
    with db.write() as session:
        accounts.create_site(session, SYSTEM, code, name)
    out.print(f"site {code} ready")


@command(admin_app, "create-trial", epilog="Example: stroketrial admin create-trial amass-2 --site S1 --site S2")
def create_trial(trial: str = typer.Argument(..., help="Built-in id or protocol .yaml file."),
                 sites: list[str] = typer.Option([], "--site", help="Site code (repeat); created if new."),
                 db_url: Optional[str] = DbOption) -> None:
    """Create a trial at sites from a protocol; concealed lists and kits are made from the OS CSPRNG."""
    db = open_db(db_url)
    with db.write() as session:
        row = trials.create_trial(session, SYSTEM, trial, sites)
    out.print(f"trial {row.id} created at {', '.join(sites)}")


@command(admin_app, "add-site", epilog="Example: stroketrial admin add-site amass-2 --site S3")
def add_site(trial: str = typer.Argument(..., help="Trial id on the platform."),
             sites: list[str] = typer.Option(..., "--site", help="Site code (repeat)."),
             db_url: Optional[str] = DbOption) -> None:
    """Open more sites for a trial."""
    db = open_db(db_url)
    with db.write() as session:
        for site in sites:
            trials.add_site(session, SYSTEM, trial, site)
    out.print(f"{trial}: sites {', '.join(sites)} open")


@command(admin_app, "create-user", epilog="Example: stroketrial admin create-user wang --role coordinator --site S1 "
                                          "(the API token is the last line)")
def create_user(name: str = typer.Argument(..., help="User name."),
                role: str = typer.Option(..., "--role", help=f"One of: {', '.join(ROLES)}."),
                sites: list[str] = typer.Option([], "--site", help="Site code (repeat); none for an admin."),
                password_stdin: bool = typer.Option(False, "--password-stdin",
                                                    help="Read a password for the web pages from stdin."),
                db_url: Optional[str] = DbOption) -> None:
    """Create a user; prints the new API token alone on the last line (send it as 'Authorization: Bearer TOKEN')."""
    password = sys.stdin.readline().rstrip("\n") if password_stdin else None
    db = open_db(db_url)
    with db.write() as session:
        user, token = accounts.create_user(session, SYSTEM, name, role, sites, password)
    err.print(f"user {name} ({role}: {ROLE_DESCRIPTIONS[role]}) at {', '.join(sites) or 'every site'}; "
              "API token (shown once):", highlight=False)
    sys.stdout.write(token + "\n")


@command(audit_app, "verify", epilog="Example: stroketrial audit verify --db sqlite:///stroketrial.db")
def audit_verify(db_url: Optional[str] = DbOption, as_json: bool = JsonOption) -> None:
    """Recompute the audit trail's hash chain; exit code 1 if any event was changed, inserted or deleted."""
    db = open_db(db_url)
    with db.read() as session:
        result = verify(session)
    if as_json:
        emit_json({"ok": result.ok, "events": result.events, "message": result.message,
                   "first_bad": result.first_bad})
    elif result.ok:
        out.print(f"[green]OK[/] {result.message}")
    else:
        err.print(f"[bold red]BROKEN[/] {result.message}", highlight=False)
    if not result.ok:
        raise typer.Exit(1)
