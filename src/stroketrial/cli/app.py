"""The root command: every command group registered on one Typer app.

Every command prints a readable table, or JSON with --json. Bad input exits 2
with a one-line message that names the problem; it never shows a traceback.
"""

from __future__ import annotations

import typer

from .. import __version__
from . import analysis, design, dosing, registry, server, trials
from .randomization import randomization_app
from . import envelopes
from . import supply
from .support import command, command_group, out

app = command_group("stroketrial: acute ischemic stroke trials from protocol to primary analysis.",
                    pretty_exceptions_enable=False, add_completion=False)
trials.register(app)
app.add_typer(randomization_app, name="randomization")
server.register(app)
dosing.register(app)
analysis.register(app, command)
design.register(app)
registry.register(app)
envelopes.register(app)  # sealed emergency envelopes
supply.register(app)  # investigational product supply


@app.callback(invoke_without_command=True)
def _root(version: bool = typer.Option(False, "--version", help="Print the version and exit.")) -> None:
    if version:
        out.print(__version__)
        raise typer.Exit(0)


def main() -> None:
    app()
