"""Load protocols from YAML, with errors that give the file, the path and the reason."""

from __future__ import annotations

from .. import InputError

import json
from functools import cache
from importlib import resources
import re
from pathlib import Path

import yaml
from pydantic import ValidationError
from pydantic_core import ErrorDetails

from .model import Protocol



def _builtin_ids() -> tuple[str, ...]:
    """The protocols shipped in builtin/, in the order of the seed documents they encode (their `source`)."""
    found = []
    for entry in resources.files(__package__).joinpath("builtin").iterdir():
        if entry.name.endswith(".yaml"):
            text = entry.read_text(encoding="utf-8")
            source = re.search(r"^source: *(.+)$", text, re.M)
            found.append((source.group(1) if source else entry.name, entry.name.removesuffix(".yaml")))
    return tuple(trial for _, trial in sorted(found))


BUILTIN_IDS = _builtin_ids()


class ProtocolError(InputError):
    """A protocol that cannot be loaded; the message names file, path and reason."""


def builtin_ids() -> tuple[str, ...]:
    return BUILTIN_IDS


@cache
def load_builtin(trial_id: str) -> Protocol:
    if trial_id not in BUILTIN_IDS:
        raise ProtocolError(f"unknown trial {trial_id!r}; built-in trials are {', '.join(BUILTIN_IDS)}")
    text = resources.files(__package__).joinpath("builtin", f"{trial_id}.yaml").read_text(encoding="utf-8")
    return parse_protocol(text, f"builtin/{trial_id}.yaml")


def load_protocol(path: str | Path) -> Protocol:
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ProtocolError(f"{path}: cannot read protocol file ({exc.__class__.__name__}: {exc})") from None
    return parse_protocol(text, str(path))


def resolve(trial: str) -> Protocol:
    """A built-in id, or a path to a protocol YAML file."""
    if trial in BUILTIN_IDS:
        return load_builtin(trial)
    if trial.endswith((".yaml", ".yml")) or Path(trial).is_file():
        return load_protocol(trial)
    raise ProtocolError(f"unknown trial {trial!r}; built-in trials are {', '.join(BUILTIN_IDS)}, "
                        "or give a path to a protocol .yaml file")


def parse_protocol(text: str, filename: str) -> Protocol:
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f":{mark.line + 1}:{mark.column + 1}" if mark else ""
        problem = getattr(exc, "problem", None) or str(exc)
        raise ProtocolError(f"{filename}{where}: not valid YAML: {problem}") from None
    if not isinstance(data, dict):
        raise ProtocolError(f"{filename}: a protocol file is a YAML mapping (id, title, inclusion, ...)")
    try:
        return Protocol.model_validate(data)
    except ValidationError as exc:
        lines = [f"{filename}: {_path(err['loc'])}: {_reason(err)}" for err in exc.errors()]
        raise ProtocolError("\n".join(lines)) from None


def _path(loc: tuple) -> str:
    # Drop the tagged-union names pydantic inserts ("Compare", "AllOf") from the path.
    parts = [p for p in loc if not (isinstance(p, str) and p[:1].isupper())]
    text = ""
    for p in parts:
        text += f"[{p}]" if isinstance(p, int) else (f".{p}" if text else p)
    return text or "(top level)"


def _reason(err: ErrorDetails) -> str:
    msg = err["msg"].removeprefix("Value error, ")
    if err["type"] == "extra_forbidden":
        return "unknown key"
    if err["type"] == "missing":
        return "required key is missing"
    given = err.get("input")
    if isinstance(given, (str, int, float, bool)) and not err["type"].startswith("value_error"):
        return f"{msg} (got {given!r})"
    return msg


def protocol_json_schema() -> str:
    return json.dumps(Protocol.model_json_schema(), indent=2)
