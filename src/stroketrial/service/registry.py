"""The thrombectomy registry on the platform: the pool of matched controls for a single-arm trial.

A registry file (CSV or Parquet, in the columns of clinical/registry_columns.py) is imported whole or not at
all: one transaction stores every row, with one `registry_import` audit event carrying the file's SHA-256, or
an error names every bad row and column and nothing is stored. Importing is the admin's ("creating a trial");
reading is for whoever may export trial data.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from sqlalchemy import func, insert, select
from sqlalchemy.orm import Session

from .. import i18n
from ..clinical.record import FieldError
from ..clinical.registry_columns import (MAX_PROBLEMS, RegistryDataError, RegistryFileError, frame_from_records,
                                         read_registry, registry_records, registry_table, row_label)
from ..store import canonical, record
from ..store.models import AuditEvent, RegistryPatient, utcnow
from .accounts import Actor
from .errors import Conflict, Invalid
from .text import _shown, identifier

IMPORTING, READING = "creating a trial", "exporting trial data"
IMPORT_ACTION = "registry_import"
_TEXT_LIMITS = {"patient_id": 60, "site": 40}  # the patients table's and the sites table's code lengths
_CHUNK = 500  # codes per IN (...) query
_NAMED = 10  # patients already in the registry named one by one; more are named in one problem


def import_registry(session: Session, actor: Actor, path_or_bytes: str | Path | bytes,
                    name: str | None = None) -> dict[str, Any]:
    """Import a registry file (a path, or its bytes with `name`): every row, or nothing (Invalid naming each
    bad row and column; Conflict for a file imported before). Returns what was stored."""
    actor.require(IMPORTING)
    data, name = _file(path_or_bytes, name)
    sha256 = hashlib.sha256(data).hexdigest()
    _refuse_repeat(session, sha256, name)
    try:
        frame = read_registry(data, name)
    except RegistryFileError as exc:
        raise Invalid(str(exc), [{"field": "file", "value": name, "message": str(exc)}]) from None
    problems: list[FieldError] = []
    more = 0
    table: pd.DataFrame | None = None
    try:
        table = registry_table(frame)
    except RegistryDataError as exc:
        problems, more = exc.errors, exc.more
    if "patient_id" in frame.columns:
        problems += _text_problems(frame)
        problems += _already_registered(session, frame["patient_id"].astype("string"))
    if problems or table is None:
        raise _invalid(name, problems, more)
    documents = registry_records(table)
    now = utcnow()
    session.execute(insert(RegistryPatient), [
        {"code": doc["patient_id"], "data_json": canonical(doc), "source_sha256": sha256, "imported_at": now,
         "imported_by": actor.name} for doc in documents])
    summary = {"file": name, "sha256": sha256, "rows": len(documents), "columns": [str(c) for c in frame.columns],
               "stored_columns": list(table.columns),
               # the stored documents' own digest, so the table can be checked against the trail
               "data_sha256": hashlib.sha256(canonical(documents).encode("utf-8")).hexdigest()}
    record(session, actor.name, IMPORT_ACTION, "registry", sha256, after=summary)
    return {**summary, "registry_patients": _count(session)}


def _file(path_or_bytes: str | Path | bytes, name: str | None) -> tuple[bytes, str]:
    if isinstance(path_or_bytes, (bytes, bytearray)):
        if not name:
            raise Invalid(i18n.gettext("a registry file's bytes need its name (.csv or .parquet)"),
                          [{"field": "name", "value": name, "message": i18n.gettext("the file's name")}])
        return bytes(path_or_bytes), name
    path = Path(path_or_bytes)
    name = name or str(path)
    try:
        return path.read_bytes(), name
    except FileNotFoundError:
        raise Invalid(i18n.gettext("{name}: no such file").format(name=name),
                      [{"field": "file", "value": name, "message": i18n.gettext("no such file")}]) from None
    except (IsADirectoryError, PermissionError) as exc:
        raise Invalid(i18n.gettext("{name}: cannot read the file ({error})").format(name=name, error=exc.strerror),
                      [{"field": "file", "value": name, "message": i18n.gettext("a readable file")}]) from None


def _refuse_repeat(session: Session, sha256: str, name: str) -> None:
    earlier = session.execute(select(RegistryPatient.imported_at, RegistryPatient.imported_by)
                              .where(RegistryPatient.source_sha256 == sha256).limit(1)).first()
    if earlier is not None:
        when = _aware(earlier.imported_at).isoformat(timespec="seconds")
        raise Conflict(i18n.gettext("{name}: this file (SHA-256 {sha256}) was imported already, at {when} by {user}; "
                                    "nothing imported").format(name=name, sha256=sha256, when=when,
                                                               user=earlier.imported_by))


def _text_problems(frame: pd.DataFrame) -> list[FieldError]:
    """patient_id and site are identifiers people type and find again (service/text.py's rule)."""
    errors = []
    ids = frame["patient_id"].astype("string")
    for column, limit in _TEXT_LIMITS.items():
        if column not in frame.columns:
            continue
        values = frame[column].astype("string")
        for position, value in enumerate(values):
            if value is pd.NA or not str(value).strip():
                continue  # a blank patient_id is registry_table's to name; a blank site is allowed
            try:
                identifier(column, str(value), max_length=limit)
            except Invalid as exc:
                message = exc.errors[0]["message"] if exc.errors else exc.message
                errors.append(FieldError(f"{row_label(position, _shown(ids.iloc[position]))}: {column}",
                                         _shown(value), message))
    return errors


def _already_registered(session: Session, ids: pd.Series) -> list[FieldError]:
    codes = sorted({str(c) for c in ids.dropna()})
    known: set[str] = set()
    for start in range(0, len(codes), _CHUNK):
        chunk = codes[start:start + _CHUNK]
        known |= set(session.execute(select(RegistryPatient.code).where(RegistryPatient.code.in_(chunk))).scalars())
    found = [(position, code) for position, code in enumerate(ids) if code is not pd.NA and code in known]
    if len(found) <= _NAMED:
        return [FieldError(f"{row_label(position, code)}: patient_id", code,
                           i18n.gettext("{patient} is in the registry already (imported earlier); each registry "
                                        "patient once").format(patient=repr(code)))
                for position, code in found]
    # a file sent again with changes: one problem naming the first few, not thousands of lines
    named = ", ".join(f"{code} (row {position + 1})" for position, code in found[:_NAMED])
    return [FieldError("patient_id", [code for _, code in found[:_NAMED]],
                       i18n.gettext("{count} patients are in the registry already (imported earlier): {named} and "
                                    "{more} more; each registry patient once").format(
                           count=len(found), named=named, more=len(found) - _NAMED))]


def _invalid(name: str, problems: Sequence[FieldError], more: int) -> Invalid:
    shown = list(problems[:MAX_PROBLEMS])
    more += len(problems) - len(shown)
    count = len(shown) + more
    extra = i18n.gettext(" (and {more} more)").format(more=more) if more else ""
    message = i18n.ngettext("{name}: nothing imported; {count} problem: {problems}",
                            "{name}: nothing imported; {count} problems: {problems}", count).format(
        name=name, count=count, problems="; ".join(str(e) for e in shown) + extra)
    return Invalid(message, [{"field": e.field, "value": _jsonable(e.value), "message": e.message} for e in shown],
                   more=more)


def _jsonable(value: Any) -> Any:
    if value is None or value is pd.NA or (isinstance(value, float) and np.isnan(value)):
        return None
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, list):
        return [_jsonable(v) for v in value]
    return _shown(value) if isinstance(value, (str, int, float, bool)) else repr(value)


# ---- reading -----------------------------------------------------------------------------------------------
def registry_frame(session: Session, actor: Actor) -> pd.DataFrame:
    """Every registry patient in import order: one typed column per variable (canonical units) and the
    outcome columns (clinical/registry_columns.py)."""
    actor.require(READING)
    documents = session.execute(select(RegistryPatient.data_json).order_by(RegistryPatient.id)).scalars()
    return frame_from_records([json.loads(d) for d in documents])


def registry_summary(session: Session, actor: Actor) -> dict[str, Any]:
    """How many registry patients, which columns they have and how much of each is missing, and the files
    they came from (name, SHA-256, rows, when and by whom)."""
    frame = registry_frame(session, actor)
    n = len(frame)
    counts = {str(c): int(frame[c].isna().sum()) for c in frame.columns}
    missing = {c: {"missing": k, "percent": round(100 * k / n, 1) if n else None} for c, k in counts.items()}
    present = [c for c, k in counts.items() if k < n]
    return {"patients": n, "columns": present, "missing": missing, "files": _files(session)}


def _files(session: Session) -> list[dict[str, Any]]:
    rows = session.execute(select(RegistryPatient.source_sha256, func.count(), func.min(RegistryPatient.imported_at),
                                  func.min(RegistryPatient.imported_by))
                           .group_by(RegistryPatient.source_sha256)).all()
    names = _file_names(session, [r[0] for r in rows])
    files: list[dict[str, Any]] = [{"file": names.get(sha), "sha256": sha, "rows": count,
                                    "imported_at": _aware(at).isoformat(), "imported_by": by}
                                   for sha, count, at, by in rows]
    return sorted(files, key=lambda f: (f["imported_at"], f["sha256"]))


def _file_names(session: Session, sha256s: Iterable[str]) -> dict[str, str]:
    events = session.execute(select(AuditEvent.entity_id, AuditEvent.after_json)
                             .where(AuditEvent.action == IMPORT_ACTION,
                                    AuditEvent.entity_id.in_(list(sha256s)))).all()
    return {sha: json.loads(after)["file"] for sha, after in events if after}


def _count(session: Session) -> int:
    return int(session.execute(select(func.count()).select_from(RegistryPatient)).scalar_one())


def _aware(moment: dt.datetime) -> dt.datetime:
    """SQLite returns stored UTC times without their zone; say it again."""
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=dt.UTC)
