"""What every stroketrial command shares: one-line errors with exit code 2, JSON output, consoles."""

from __future__ import annotations

import functools
import json
import sys
from typing import TYPE_CHECKING, Any, NoReturn
from collections.abc import Callable

import typer

from .. import InputError
from ..service.errors import ServiceError

if TYPE_CHECKING:
    from rich.console import Console

# Bad input ends as one line and exit code 2: the platform's own InputError (every core error for bad
# input derives from it), a refused operation, and a path the user gave that cannot be read or written.
# Anything else (a ValueError from a bug, a full disk) is not the user's doing and keeps its traceback.
INPUT_ERRORS = (InputError, ServiceError, FileNotFoundError, FileExistsError, IsADirectoryError, NotADirectoryError,
                PermissionError)



class LazyConsole:
    """A rich Console, made when a command first prints through it: rich takes about 15 ms to import, as much as
    `stroketrial analyze ordinal`'s whole analysis, and that command prints plain lines."""

    def __init__(self, **options: Any):
        object.__setattr__(self, "_options", options)
        object.__setattr__(self, "_made", None)

    @property
    def console(self) -> Console:
        if self._made is None:
            from rich.console import Console

            object.__setattr__(self, "_made", Console(**self._options))
        return self._made

    def __getattr__(self, name: str) -> Any:
        return getattr(self.console, name)

    def __setattr__(self, name: str, value: Any) -> None:
        setattr(self.console, name, value)


out = LazyConsole(soft_wrap=False)
err = LazyConsole(stderr=True, soft_wrap=True)

JsonOption = typer.Option(False, "--json", help="Print JSON for machines instead of tables.")


# Optional dependencies by top-level module, and the extra (pyproject.toml) that installs each.
EXTRAS = {"matplotlib": "report", "odmlib": "report", "weasyprint": "report",
          "fastapi": "server", "starlette": "server", "uvicorn": "server", "sqlalchemy": "server",
          "alembic": "server", "argon2": "server", "jinja2": "server", "multipart": "server",
          "python_multipart": "server", "itsdangerous": "server", "anyio": "server",
          "psycopg": "postgres", "dask": "dask", "distributed": "dask"}


def command_group(help: str, **kwargs: Any) -> typer.Typer:
    """A group of commands. Help is click's plain text: Typer's rich help loads rich.markdown and
    Pygments, about 100 ms of the 300 ms a command may take to start."""
    return typer.Typer(help=help, no_args_is_help=True, rich_markup_mode=None, **kwargs)


def fail(message: str) -> NoReturn:
    err.print(f"[bold red]error:[/] {message}".replace("\n", "; "), markup=True, highlight=False)
    raise typer.Exit(2)


def command(group: typer.Typer, name: str | None = None, **kwargs) -> Callable:
    """Register a command whose input errors end as one line on stderr and exit code 2."""

    def register(fn: Callable) -> Callable:
        @functools.wraps(fn)
        def guarded(*args, **kw):
            try:
                return fn(*args, **kw)
            except INPUT_ERRORS as exc:
                fail(str(exc))
            except ImportError as exc:  # an optional dependency: name the extra, else a real bug
                extra = EXTRAS.get((exc.name or "").split(".")[0])
                if extra is None:
                    raise
                fail(f"this command needs the {extra} extra: pip install 'stroketrial\\[{extra}]' "
                     f"(no module named {exc.name!r})")

        if "epilog" in kwargs:
            kwargs["epilog"] = _examples(kwargs["epilog"])
        return group.command(name, **kwargs)(guarded)

    return register


def _examples(epilog: str) -> str:
    """'Examples: a  ·  b' as one example per line, kept as written (click rewraps text unless a
    paragraph starts with \\b, and a wrapped command line cannot be pasted)."""
    label, _, rest = epilog.partition(": ")
    examples = [e.strip() for e in rest.split("  ·  ")]
    return "\b\n" + label + ":\n" + "\n".join("  " + e for e in examples)


def emit_json(data: Any) -> None:
    sys.stdout.write(json.dumps(data, indent=2, ensure_ascii=False, default=str) + "\n")
