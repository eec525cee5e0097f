"""The root command: every command group registered on one Typer app.

Every command prints a readable table, or JSON with --json. Bad input exits 2
with a one-line message that names the problem; it never shows a traceback.

`main` builds the root with only the module that registers the command asked for: before it parses anything,
Typer turns every registered command into click objects and their option types into pydantic adapters, about
60 ms for all eighteen commands, which is a quarter of `stroketrial analyze ordinal`. `stroketrial --help`, and a
command no module registers, get every command (`app`).
"""

from __future__ import annotations

import importlib
import sys
from collections.abc import Iterable

import typer

from .. import __version__
from .support import command, command_group, out

# each module's register(root), in the order `stroketrial --help` lists them, and the top-level commands it adds
MODULES: dict[str, tuple[str, ...]] = {
    "trials": ("trials", "dictionary", "screen", "trial", "cohort"),
    "randomization": ("randomization",),
    "server": ("serve", "admin", "audit", "db"),
    "dosing": ("dose", "escalation"),
    "analysis": ("analyze", "demo"),
    "design": ("design",),
    "registry": ("registry",),
    "envelopes": ("envelopes",),  # sealed emergency envelopes
    "supply": ("supply",),  # investigational product supply
}
MODULE_OF = {name: module for module, names in MODULES.items() for name in names}


def _register(root: typer.Typer, module_name: str) -> None:
    module = importlib.import_module(f".{module_name}", __package__)
    if module_name == "randomization":
        root.add_typer(module.randomization_app, name="randomization")
    elif module_name == "analysis":
        module.register(root, command)
    else:
        module.register(root)


def build(modules: Iterable[str] = MODULES) -> typer.Typer:
    """The root command with the commands of these modules (of MODULES)."""
    root = command_group("stroketrial: acute ischemic stroke trials from protocol to primary analysis.",
                         pretty_exceptions_enable=False, add_completion=False)
    for module_name in modules:
        _register(root, module_name)

    @root.callback(invoke_without_command=True)
    def _root(version: bool = typer.Option(False, "--version", help="Print the version and exit.")) -> None:
        if version:
            out.print(__version__)
            raise typer.Exit(0)

    return root


def __getattr__(name: str) -> typer.Typer:
    """`app`, the root with every command, built when first asked for (the tests, `--help`)."""
    if name != "app":
        raise AttributeError(name)
    built = globals()["app"] = build()
    return built


def main() -> None:
    asked = sys.argv[1] if len(sys.argv) > 1 else None
    root = build([MODULE_OF[asked]]) if asked in MODULE_OF else __getattr__("app")
    root()
