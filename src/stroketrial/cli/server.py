"""`stroketrial serve`, `stroketrial admin ...`, `stroketrial audit ...`, `stroketrial db ...`: the platform shell.

Every command that touches the database takes --db URL, else reads STROKETRIAL_DB,
else uses the SQLite file stroketrial.db in the working folder.
"""

from __future__ import annotations

import os
import secrets
import sys
from pathlib import Path
from typing import TYPE_CHECKING

import typer

from .. import i18n
from ..service.roles import ROLE_DESCRIPTIONS, ROLES
from .support import command_group, JsonOption, command, emit_json, err, fail, out

if TYPE_CHECKING:
    from ..store import Database

# The service and the store (SQLAlchemy, Argon2) load inside the commands that use them, so that every
# other command of the CLI starts without them.

DbOption = typer.Option(None, "--db", help="Database URL (sqlite:///file.db or postgresql+psycopg://user@host/db); "
                                           "default: $STROKETRIAL_DB, else sqlite:///stroketrial.db")

admin_app = command_group("Sites, trials and users on the platform.")
audit_app = command_group("The keyed, hash-chained audit trail and its checkpoints.")
db_app = command_group("The database schema.")


def open_db(url: str | None) -> Database:
    from ..store import Database
    db = Database(url)
    db.migrate()
    return db


def register(app: typer.Typer) -> None:
    app.add_typer(admin_app, name="admin")
    app.add_typer(audit_app, name="audit")
    app.add_typer(db_app, name="db")
    command(app, "serve", epilog="Example: stroketrial serve --demo --port 8000")(serve)


def serve(db_url: str | None = DbOption,
          host: str = typer.Option("127.0.0.1", "--host", help="Address to listen on (0.0.0.0 for every interface)."),
          port: int = typer.Option(8000, "--port", min=1, max=65535, help="Port to listen on."),
          demo_data: bool = typer.Option(False, "--demo", help="Load the five trials with demo sites, users and "
                                                               "patients (only into an empty database)."),
          workers_log: str = typer.Option("warning", "--log-level", help="uvicorn log level."),
          workers: int = typer.Option(1, "--workers", min=1, max=64,
                                      help="Server processes sharing the port (uvicorn workers). Writes of different "
                                           "trials run side by side on PostgreSQL; SQLite takes one write at a "
                                           "time.")) -> None:
    """Start the platform: the JSON API under /api/v1 (OpenAPI at /docs)."""
    import uvicorn

    from ..service import demo
    from ..web import create_app

    db = open_db(db_url)
    if demo_data:
        if demo.has_data(db):
            err.print("the database holds trials already; demo data not loaded again", highlight=False)
        else:
            with err.status("loading demo trials, sites, users and patients, and IMPACT-LVO's 560 patients for the "
                            "DSMB's first interim look (a minute or two)"):
                logins = demo.load(db)
            _print_logins(logins, host, port)
    out.print(f"stroketrial serving {db.backend} database {db.url} at http://{host}:{port} "
              f"(API docs: http://{host}:{port}/docs)", highlight=False)
    if workers == 1:
        uvicorn.run(create_app(db), host=host, port=port, log_level=workers_log)
        return
    # Each worker builds its own app from the environment; they must sign sessions with one key, or a browser
    # signed in by one worker would be signed out by the next.
    assert db.keystore is not None
    os.environ.update(STROKETRIAL_DB=db.url, STROKETRIAL_KEYS=str(db.keystore.folder))
    os.environ.setdefault("STROKETRIAL_SECRET_KEY", secrets.token_urlsafe(32))
    db.dispose()
    uvicorn.run("stroketrial.web.app:app_from_environment", factory=True, workers=workers, host=host, port=port,
                log_level=workers_log)


def _print_logins(logins: list[dict], host: str, port: int) -> None:
    from ..service import demo
    # Plain lines, not a table: a token must survive copy and paste whole, whatever the terminal's width.
    out.print(f"[bold]Demo logins[/] for http://{host}:{port} (password {demo.DEMO_PASSWORD} for the web pages; "
              "API token for 'Authorization: Bearer TOKEN'):", highlight=False)
    for login in logins:
        sites = login["sites"] if isinstance(login["sites"], str) else ",".join(login["sites"])
        language = f" ({login['language']} pages)" if login.get("language") else ""
        out.print(f"  {login['name']:<13} {login['role']:<21} sites {sites:<9}{language} token {login['token']}",
                  highlight=False, soft_wrap=True)


@command(db_app, "upgrade", epilog="Example: stroketrial db upgrade "
                                     "--db postgresql+psycopg://stroketrial_owner@db/trial "
                                     "--app-role stroketrial_app")
def db_upgrade(db_url: str | None = DbOption,
               app_role: str | None = typer.Option(None, "--app-role", help="PostgreSQL: the login role the "
                                                      "server runs as; granted what the platform needs and no "
                                                      "more (it cannot alter or disable the audit triggers). "
                                                      "Run this as the tables' owner."),
               as_json: bool = JsonOption) -> None:
    """Create or migrate the schema to the newest revision (as the owner role on PostgreSQL)."""
    db = open_db(db_url)
    if app_role:
        db.grant_app_role(app_role)
    _report({"database": str(db.url), "schema": "up to date", "app_role": app_role}, as_json,
            f"{db.url}: schema up to date" + (f"; {app_role} may use it" if app_role else ""))


@command(admin_app, "create-site", epilog="Example: stroketrial admin create-site S3 --name 'Huanhu Hospital' "
                                          "--timezone Asia/Shanghai")
def create_site(code: str = typer.Argument(..., help="Site code."),
                name: str | None = typer.Option(None, "--name", help="Site name."),
                timezone: str | None = typer.Option(None, "--timezone", help="IANA time zone of the site's clocks "
                                                       "(default $STROKETRIAL_TIMEZONE, else UTC)."),
                db_url: str | None = DbOption, as_json: bool = JsonOption) -> None:
    """Create a site."""
    from ..service import SYSTEM, accounts
    db = open_db(db_url)
    with db.write() as session:
        site = accounts.create_site(session, SYSTEM, code, name, timezone)
        result = {"site": site.code, "name": site.name, "timezone": site.timezone}
    _report(result, as_json, f"site {code} ready ({result['timezone']})")


@command(admin_app, "create-trial", epilog="Example: stroketrial admin create-trial amass-2 --site S1 --site S2")
def create_trial(trial: str = typer.Argument(..., help="Built-in id or protocol .yaml file."),
                 sites: list[str] = typer.Option([], "--site", help="Site code (repeat); created if new."),
                 db_url: str | None = DbOption, as_json: bool = JsonOption) -> None:
    """Create a trial at sites from a protocol; concealed lists and kits are made from the OS CSPRNG."""
    from ..service import SYSTEM, trials
    db = open_db(db_url)
    with db.write() as session:
        trial_id = trials.create_trial(session, SYSTEM, trial, sites).id
    _report({"trial": trial_id, "sites": sites}, as_json, f"trial {trial_id} created at {', '.join(sites)}")


@command(admin_app, "amend-protocol", epilog="Example: stroketrial admin amend-protocol amass-2 amass-2-v2.yaml "
                                              "--effective 2027-01-15 --dry-run  (then again without --dry-run)")
def amend_protocol(trial: str = typer.Argument(..., help="Trial id on the platform."),
                   path: Path = typer.Argument(..., help="The amended protocol .yaml (the same trial id)."),
                   effective: str = typer.Option(..., "--effective", help=(
                       "Date it comes into force, YYYY-MM-DD, today or later (from 00:00 UTC; from now when it is "
                       "today).")),
                   dry_run: bool = typer.Option(False, "--dry-run", help="Show what changes; record nothing."),
                   db_url: str | None = DbOption, as_json: bool = JsonOption) -> None:
    """Check an amended protocol against the version in force, show what changes, and record it as the next
    version from its effective date. Patients keep the version they were screened under."""
    import datetime as dt

    from ..service import SYSTEM, amendments
    try:
        day = dt.date.fromisoformat(effective)
    except ValueError:
        fail(f"--effective {effective!r} is not a date; give YYYY-MM-DD")
    db = open_db(db_url)
    with db.write() as session:
        result = amendments.amend_protocol(session, SYSTEM, trial, path, day, apply=not dry_run)
    lines = [f"{part}: {line}" for part, changed in result["changes"].items() for line in changed]
    verb = "would become" if dry_run else "is now"
    _report(result, as_json, f"{trial}: version {result['version']} {verb} in force from "
                             f"{result['effective_from'][:10]}\n  " + "\n  ".join(lines))


@command(admin_app, "add-site", epilog="Example: stroketrial admin add-site amass-2 --site S3")
def add_site(trial: str = typer.Argument(..., help="Trial id on the platform."),
             sites: list[str] = typer.Option(..., "--site", help="Site code (repeat)."),
             db_url: str | None = DbOption, as_json: bool = JsonOption) -> None:
    """Open more sites for a trial."""
    from ..service import SYSTEM, trials
    db = open_db(db_url)
    with db.write() as session:
        for site in sites:
            trials.add_site(session, SYSTEM, trial, site)
    _report({"trial": trial, "sites_opened": sites}, as_json, f"{trial}: sites {', '.join(sites)} open")


@command(admin_app, "notify-add", epilog="Example: stroketrial admin notify-add TRIAL dsmb@example.org --role dsmb")
def notify_add(trial: str = typer.Argument(..., help="Trial id on the platform."),
               email: str = typer.Argument(..., help="The address the trial's safety notifications go to."),
               role: str = typer.Option(..., "--role", help="The recipient's role: which notifications it gets and "
                                                          "whether they may name the arm (as for a user)."),
               language: str | None = typer.Option(None, "--language",
                                                   help="The language of its emails: en or zh_Hans (default: "
                                                        "English followed by the Chinese text)."),
               db_url: str | None = DbOption, as_json: bool = JsonOption) -> None:
    """Send a trial's safety notifications (new or upgraded SAEs, emergency unblindings, overdue reports) to an
    address; adding it again changes its role and language."""
    from ..service import SYSTEM, notifications
    db = open_db(db_url)
    with db.write() as session:
        result = notifications.add_recipient(session, SYSTEM, trial, email, role, language)
    in_words = f"in {i18n.LANGUAGES[language]}" if language else "in English then Chinese"
    _report(result, as_json, f"{trial}: notifications to {result['email']} as {result['role']}, {in_words}")


@command(admin_app, "create-user", epilog="Example: stroketrial admin create-user wang --role coordinator --site S1 "
                                          "(the API token is the last line)")
def create_user(name: str = typer.Argument(..., help="User name."),
                role: str = typer.Option(..., "--role", help=f"One of: {', '.join(ROLES)}."),
                sites: list[str] = typer.Option([], "--site", help="Site code (repeat); none for an admin."),
                password_stdin: bool = typer.Option(False, "--password-stdin",
                                                    help="Read a password for the web pages from stdin."),
                db_url: str | None = DbOption, as_json: bool = JsonOption) -> None:
    """Create a user; prints the new API token alone on the last line (send it as 'Authorization: Bearer TOKEN')."""
    from ..service import SYSTEM, accounts
    password = sys.stdin.readline().rstrip("\n") if password_stdin else None
    db = open_db(db_url)
    with db.write() as session:
        _user, token = accounts.create_user(session, SYSTEM, name, role, sites, password)
    if as_json:
        emit_json({"user": name, "role": role, "sites": sites, "api_token": token})
        return
    err.print(f"user {name} ({role}: {ROLE_DESCRIPTIONS[role]}) at {', '.join(sites) or 'every site'}; "
              "API token (shown once):", highlight=False)
    sys.stdout.write(token + "\n")


@command(admin_app, "deactivate-user", epilog="Example: stroketrial admin deactivate-user wang --json")
def deactivate_user(name: str = typer.Argument(..., help="User name."),
                    db_url: str | None = DbOption, as_json: bool = JsonOption) -> None:
    """Deactivate a user: their page sessions end at once and their API tokens are refused (audited)."""
    from ..service import SYSTEM, access
    db = open_db(db_url)
    with db.write() as session:
        result = access.deactivate_user(session, SYSTEM, name)
    _report(result, as_json, f"user {name} deactivated; {result['sessions_ended']} session(s) ended, "
                             "API tokens refused")


@command(admin_app, "revoke-token", epilog="Example: stroketrial admin revoke-token wang --token st_... "
                                           "(without --token: every token of wang)")
def revoke_token(name: str = typer.Argument(..., help="User name."),
                 token: str | None = typer.Option(None, "--token", help="The token to revoke (as issued); "
                                                                           "default: all of the user's tokens."),
                 db_url: str | None = DbOption, as_json: bool = JsonOption) -> None:
    """Revoke one API token of a user, or all of them (audited); calls with them get 401 at once."""
    from ..service import SYSTEM, access
    db = open_db(db_url)
    with db.write() as session:
        result = access.revoke_tokens(session, SYSTEM, name, token)
    n = result["tokens_revoked"]
    _report(result, as_json, f"{name}: {n} API token{'' if n == 1 else 's'} revoked")


@command(admin_app, "reset-password", epilog="Example: stroketrial admin reset-password wang --password-stdin "
                                             "< new-password.txt")
def reset_password(name: str = typer.Argument(..., help="User name."),
                   password_stdin: bool = typer.Option(False, "--password-stdin",
                                                       help="Read the new password from stdin (required: a password "
                                                            "never goes on the command line)."),
                   db_url: str | None = DbOption, as_json: bool = JsonOption) -> None:
    """Set a new password for the web pages: the user's sessions end and a lockout is lifted (audited)."""
    from ..service import SYSTEM, access
    if not password_stdin:
        fail("give the new password on stdin with --password-stdin (never on the command line)")
    password = sys.stdin.readline().rstrip("\n")
    db = open_db(db_url)
    with db.write() as session:
        result = access.reset_password(session, SYSTEM, name, password)
    _report(result, as_json, f"password of {name} reset; {result['sessions_ended']} session(s) ended, "
                             f"{result['failures_cleared']} failed sign-in(s) cleared")


@command(admin_app, "change-role", epilog="Example: stroketrial admin change-role wang --role investigator "
                                          "--reason 'appointed sub-investigator (delegation log 2026-12-01)'")
def change_role(name: str = typer.Argument(..., help="User name."),
                role: str = typer.Option(..., "--role", help=f"The new role, one of: {', '.join(ROLES)}."),
                reason: str = typer.Option(..., "--reason", help="Why (the delegation log's entry)."),
                db_url: str | None = DbOption, as_json: bool = JsonOption) -> None:
    """Change a user's role (audited with the reason); their page sessions end so it applies at once."""
    from ..service import SYSTEM, access
    db = open_db(db_url)
    with db.write() as session:
        result = access.change_role(session, SYSTEM, name, role, reason)
    _report(result, as_json, f"{name} is now {role} (was {result['was']}); {result['sessions_ended']} session(s) "
                             "ended")


@command(admin_app, "set-sites", epilog="Example: stroketrial admin set-sites wang --site S1 --site S3 "
                                        "--reason 'moved to site S3'")
def set_sites(name: str = typer.Argument(..., help="User name."),
              sites: list[str] = typer.Option(..., "--site", help="Site code (repeat): every site the user works at."),
              reason: str = typer.Option(..., "--reason", help="Why."),
              db_url: str | None = DbOption, as_json: bool = JsonOption) -> None:
    """Set the sites a user works at (audited with the reason); their page sessions end."""
    from ..service import SYSTEM, access
    db = open_db(db_url)
    with db.write() as session:
        result = access.set_sites(session, SYSTEM, name, sites, reason)
    _report(result, as_json, f"{name} works at {', '.join(result['sites'])} (was {', '.join(result['was'])})")


@command(admin_app, "unlock-user", epilog="Example: stroketrial admin unlock-user wang")
def unlock_user(name: str = typer.Argument(..., help="User name."),
                db_url: str | None = DbOption, as_json: bool = JsonOption) -> None:
    """Lift a lockout after failed sign-ins: the name's failures are forgotten (audited)."""
    from ..service import SYSTEM, access
    db = open_db(db_url)
    with db.write() as session:
        result = access.unlock_user(session, SYSTEM, name)
    _report(result, as_json, f"user {name} unlocked; {result['failures_cleared']} failed sign-in(s) cleared")


def _report(result: dict, as_json: bool, line: str) -> None:
    if as_json:
        emit_json(result)
    else:
        out.print(line, highlight=False)


@command(audit_app, "verify", epilog="Example: stroketrial audit verify --db sqlite:///stroketrial.db "
                                     "--checkpoint-file offsite-checkpoints.txt")
def audit_verify(db_url: str | None = DbOption, as_json: bool = JsonOption,
                 checkpoints: list[str] = typer.Option([], "--checkpoint", help="A signed head kept elsewhere (the "
                                                       "line `stroketrial audit checkpoint` printed); repeat."),
                 checkpoint_file: Path | None = typer.Option(None, "--checkpoint-file",
                                                                help="A file of such lines, one per line.")) -> None:
    """Check the audit trail: the keyed hash chain, every checkpoint (the log beside the audit key and any
    given here), and the data tables against the trail; exit code 1 naming what differs."""
    from ..service.reconcile import check_trail
    from ..store import parse_checkpoint
    given = [parse_checkpoint(line, f"--checkpoint {n}") for n, line in enumerate(checkpoints, 1)]
    if checkpoint_file is not None:
        given += [parse_checkpoint(line, f"{checkpoint_file}:{n}")
                  for n, line in enumerate(checkpoint_file.read_text().splitlines(), 1) if line.strip()]
    db = open_db(db_url)
    with db.read() as session:
        result = check_trail(session, tuple(given))
    if as_json:
        emit_json({"ok": result.ok, "events": result.events, "message": result.message,
                   "first_bad": result.first_bad, "chain": result.chain, "problems": list(result.problems)})
    elif result.ok:
        out.print(f"[green]OK[/] {result.message}", highlight=False)
    else:
        err.print(f"[bold red]BROKEN[/] {result.message}", highlight=False)
        for problem in result.problems:
            err.print(f"  {problem}", highlight=False)
    if not result.ok:
        raise typer.Exit(1)


@command(audit_app, "checkpoint", epilog="Example: stroketrial audit checkpoint >> /mnt/offsite/checkpoints.txt")
def audit_checkpoint(db_url: str | None = DbOption, as_json: bool = JsonOption) -> None:
    """Print the head of each chain of the trail (the platform's, each trial's) signed with the audit key, one line
    each, to keep off site; `audit verify --checkpoint-file` later proves no event up to them was deleted or
    rewritten."""
    from sqlalchemy import select

    from ..store.models import AuditHead
    db = open_db(db_url)
    assert db.keystore is not None
    with db.read() as session:
        heads = list(session.execute(select(AuditHead).order_by(AuditHead.chain_id)).scalars())
        if not heads:
            fail("the database has no audit head; run `stroketrial db upgrade` first")
        checkpoints = [db.keystore.checkpoint(head.seq, head.hash, head.chain_id) for head in heads]
    if as_json:
        emit_json([{"chain": c.chain, "seq": c.seq, "hash": c.hash, "at": c.at, "signature": c.signature,
                    "line": c.line()} for c in checkpoints])
    else:
        sys.stdout.write("".join(c.line() + "\n" for c in checkpoints))
