"""What every stroketrial command shares: one-line errors with exit code 2, JSON output, consoles."""

from __future__ import annotations

import functools
import json
import sys
from typing import Any, NoReturn
from collections.abc import Callable

import typer
from rich.console import Console

from ..clinical import PatientDataError
from ..clinical.cohort_table import TableDataError
from ..eligibility import CohortFileError, ScreeningInputError
from ..protocol import ProtocolError
from ..service.errors import ServiceError

INPUT_ERRORS = (ProtocolError, PatientDataError, TableDataError, ScreeningInputError, CohortFileError, ValueError,
                OSError, ServiceError)

out = Console(soft_wrap=False)
err = Console(stderr=True, soft_wrap=True)

JsonOption = typer.Option(False, "--json", help="Print JSON for machines instead of tables.")


# Optional dependencies by top-level module, and the extra (pyproject.toml) that installs each.
EXTRAS = {"matplotlib": "report", "odmlib": "report",
          "fastapi": "server", "starlette": "server", "uvicorn": "server", "sqlalchemy": "server",
          "alembic": "server", "argon2": "server", "jinja2": "server", "multipart": "server",
          "python_multipart": "server", "itsdangerous": "server", "anyio": "server",
          "psycopg": "postgres", "dask": "dask", "distributed": "dask"}


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

        return group.command(name, **kwargs)(guarded)

    return register


def emit_json(data: Any) -> None:
    sys.stdout.write(json.dumps(data, indent=2, ensure_ascii=False, default=str) + "\n")
