"""The thrombectomy registry's data dictionary: the screening variables plus the outcomes.

A registry file is a cohort table (CSV or Parquet) whose rows are the thrombectomy patients of a prospective
registry, the pool of matched controls for a single-arm trial. Its baseline columns are the screening variables
of dictionary.py (not the derived intervals, no attestations), read and checked exactly as a cohort table is
(cohort_table.py); its outcome columns are OUTCOME_VARIABLES. `patient_id` is required in every row; any other
cell may be blank (not recorded).

`registry_table` checks a file's frame and returns it typed: one nullable column per variable in canonical units,
the derived intervals (onset to recanalization, ...) computed from the times, columns in dictionary order.
`registry_records` and `frame_from_records` turn that typed frame into the JSON documents the platform stores
(the recorded values only) and back, unchanged.
"""

from __future__ import annotations

import difflib
import io
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from pathlib import PurePath
from typing import Any

import numpy as np
import pandas as pd

from .. import InputError
from .cohort_table import TableDataError, _Checker, encode_frame
from .dictionary import INTERVALS, VARIABLES, Variable, format_number
from .encoded_table import EncodedTable, alternate_columns
from .record import FieldError
from .scales import ETICI, MRS

MAX_PROBLEMS = 50  # problems named in one error; the rest are counted ("and N more")
REQUIRED_COLUMNS = ("patient_id",)

INFARCT_VOLUME = Variable("infarct_volume_ml", "infarct volume at 24 h", "number",
                          "Infarct volume on the follow-up CT or MRI about 24 h after thrombectomy.", unit="mL",
                          low=0, high=1000)
MRS_90D = Variable("mrs_90d", "mRS at 90 days", "score", "Modified Rankin Scale at 90 days (6 = dead).",
                   low=MRS.low, high=MRS.high, scale=MRS)
DEATH_90D = Variable("death_90d", "death within 90 days", "flag",
                     "Death from any cause within 90 days; when mrs_90d is given too, true exactly when it is 6.")
SICH = Variable("sich", "symptomatic intracranial haemorrhage within 48 h", "flag",
                "Symptomatic intracranial haemorrhage within 48 h of thrombectomy.")
OUTCOME_VARIABLES: tuple[Variable, ...] = (INFARCT_VOLUME, MRS_90D, DEATH_90D, SICH)
OUTCOMES: dict[str, Variable] = {v.name: v for v in OUTCOME_VARIABLES}
BASELINE: dict[str, Variable] = {name: v for name, v in VARIABLES.items() if v.kind != "interval"}
# Every column of the typed registry frame, in its order: the baseline, the intervals derived from its times, the
# outcomes. A file carries any of them but the intervals (and labs in another unit: alternate_columns()).
REGISTRY_VARIABLES: dict[str, Variable] = {**VARIABLES, **OUTCOMES}
RECORDED: dict[str, Variable] = {**BASELINE, **OUTCOMES}

_FRAME_DTYPES = {"number": "Float64", "integer": "Int64", "score": "Int64", "flag": "boolean", "category": "string",
                 "grade": "string", "text": "string"}
_GRADES = {g.ranks: g.value for g in ETICI}


class RegistryDataError(InputError):
    """Everything wrong with a registry file, each problem naming row, column, value and what is allowed."""

    def __init__(self, errors: Sequence[FieldError], more: int = 0):
        self.errors, self.more = list(errors), more
        extra = f" (and {more} more)" if more else ""
        count = len(self.errors) + more
        super().__init__(f"{count} problem{'' if count == 1 else 's'}: " + "; ".join(str(e) for e in self.errors)
                         + extra)


class RegistryFileError(InputError):
    """A registry file that is not a .csv or .parquet table, is empty, or cannot be read; the message names it."""


# ---- reading a file -------------------------------------------------------------------------------------------
def read_registry(data: bytes, name: str) -> pd.DataFrame:
    """The table in a registry file's bytes (`name` says its format: .csv or .parquet)."""
    suffix = PurePath(name).suffix.lower()
    if suffix not in (".csv", ".parquet"):
        raise RegistryFileError(f"{name}: a registry file is a .csv or .parquet table")
    if not data.strip():
        raise RegistryFileError(f"{name}: the file is empty")
    try:
        if suffix == ".parquet":
            frame = pd.read_parquet(io.BytesIO(data))
        else:
            if b"\x00" in data:
                raise RegistryFileError(f"{name}: not a CSV text file (it holds NUL bytes)")
            try:
                text = data.decode("utf-8-sig")
            except UnicodeDecodeError as exc:
                raise RegistryFileError(f"{name}: not UTF-8 text (byte {exc.start + 1}); save the CSV as UTF-8"
                                        ) from None
            # The options of eligibility.cohort_file.read_cohort: no type guessed beyond numbers.
            frame = pd.read_csv(io.StringIO(text), dtype={"patient_id": "string", "site": "string",
                                                          "etici": "string"},
                                keep_default_na=True, na_values=[""])
    except RegistryFileError:
        raise
    except Exception as exc:  # pandas and pyarrow raise many types for a malformed file
        raise RegistryFileError(f"{name}: cannot read the table ({type(exc).__name__}: {exc})") from None
    if len(frame) == 0:
        raise RegistryFileError(f"{name}: the table has no rows")
    return frame


# ---- checking and typing ----------------------------------------------------------------------------------------
class _Problems:
    """Problems from every check, the first MAX_PROBLEMS kept and the rest counted."""

    def __init__(self) -> None:
        self.errors: list[FieldError] = []
        self.more = 0

    def add(self, errors: Iterable[FieldError], more: int = 0) -> None:
        for error in errors:
            if len(self.errors) < MAX_PROBLEMS:
                self.errors.append(error)
            else:
                self.more += 1
        self.more += more

    def raise_if_any(self) -> None:
        if self.errors:
            raise RegistryDataError(self.errors, self.more)


def row_label(position: int, patient_id: object) -> str:
    """'row 3 (patient_id R0003)': data rows counted from 1, as cohort_table names them."""
    shown = "" if patient_id is None or patient_id is pd.NA else f" (patient_id {patient_id})"
    return f"row {position + 1}{shown}"


def registry_table(frame: pd.DataFrame) -> pd.DataFrame:
    """A registry file's frame checked and typed; RegistryDataError names every bad row and column.

    Baseline columns go through cohort_table.encode_frame (the cohort table's checks and canonical units); the
    outcome columns through the same per-column checks; then the cross-checks of a registry: a patient_id in
    every row, each once, and death_90d agreeing with mrs_90d == 6.
    """
    problems = _Problems()
    missing = [c for c in REQUIRED_COLUMNS if c not in frame.columns]
    if missing:
        raise RegistryDataError([FieldError(c, None, f"the file has no {c} column; it is required")
                                 for c in missing])
    alternates = alternate_columns()
    names = [str(c) for c in frame.columns]
    problems.add(FieldError(c, None, _unknown_column(c)) for c in names
                 if c not in RECORDED and c not in alternates)
    baseline = [c for c in names if c in BASELINE or c in alternates]
    encoded: EncodedTable | None = None
    try:
        encoded = encode_frame(frame[baseline])
    except TableDataError as exc:
        problems.add(exc.errors, exc.more)
    outcomes = _outcomes(frame, problems)
    ids = frame["patient_id"].astype("string")
    problems.add(_id_problems(ids))
    problems.add(_death_problems(frame, outcomes, ids))
    problems.raise_if_any()
    assert encoded is not None
    return _typed(frame, encoded, outcomes)


def _unknown_column(name: str) -> str:
    known = [*RECORDED, *alternate_columns()]
    close = difflib.get_close_matches(name, known, n=1)
    hint = f"did you mean {close[0]!r}?" if close else "see docs/data-dictionary.md (Registry) for the columns"
    if name in VARIABLES:  # a derived interval
        hint = f"it is derived from {' and '.join(VARIABLES[name].interval_ends())}; give those times instead"
    return f"unknown column {name!r} for the registry; {hint}"


def _outcomes(frame: pd.DataFrame, problems: _Problems) -> dict[str, np.ndarray]:
    """Each outcome column present as floats (flags 1/0), NaN where blank or not allowed."""
    checker = _Checker(frame)
    out: dict[str, np.ndarray] = {}
    for name, var in OUTCOMES.items():
        if name not in frame.columns:
            continue
        series = frame[name]
        if var.kind == "flag":
            out[name] = checker.flag(name, series, var.allowed())
        else:
            out[name] = checker.numbers(name, series, var)
            checker.range(name, series, out[name], var)
            with np.errstate(invalid="ignore"):
                out[name] = np.where((out[name] < var.bounds()[0]) | (out[name] > var.bounds()[1]), np.nan,
                                     out[name])
    problems.add(checker.errors, checker.more)
    return out


def _id_problems(ids: pd.Series) -> list[FieldError]:
    errors = []
    blank = ids.isna() | ids.str.strip().eq("")
    for position in np.flatnonzero(blank.to_numpy(dtype=bool, na_value=True)):
        errors.append(FieldError(f"{row_label(int(position), None)}: patient_id", None,
                                 "required: every registry patient has a patient_id"))
    counts = Counter(code for code in ids.dropna() if str(code).strip())
    for code, n in counts.items():
        if n > 1:
            rows = [str(p + 1) for p in np.flatnonzero((ids == code).to_numpy(dtype=bool, na_value=False))]
            errors.append(FieldError(f"rows {', '.join(rows)}: patient_id", code,
                                     f"{code!r} appears {n} times in the file; each registry patient once"))
    return errors


def _death_problems(frame: pd.DataFrame, outcomes: Mapping[str, np.ndarray], ids: pd.Series) -> list[FieldError]:
    death, mrs = outcomes.get("death_90d"), outcomes.get("mrs_90d")
    if death is None or mrs is None:
        return []
    with np.errstate(invalid="ignore"):
        bad = ~np.isnan(death) & ~np.isnan(mrs) & ((death == 1) != (mrs == 6))
    errors = []
    for position in np.flatnonzero(bad):
        raw = frame["death_90d"].iloc[position]
        shown = format_number(float(raw)) if isinstance(raw, (int, float, np.number)) else repr(raw)
        said = "dead" if death[position] == 1 else "alive"
        errors.append(FieldError(f"{row_label(int(position), ids.iloc[position])}: death_90d", raw,
                                 f"death_90d {shown} ({said}) disagrees with mrs_90d {format_number(mrs[position])}; "
                                 "death_90d is 1 exactly when mrs_90d is 6"))
    return errors


def _typed(frame: pd.DataFrame, encoded: EncodedTable, outcomes: Mapping[str, np.ndarray]) -> pd.DataFrame:
    columns: dict[str, Any] = {}
    for name, var in RECORDED.items():
        if name in outcomes:
            columns[name] = _from_floats(var, outcomes[name])
        elif var.kind == "text" and name in frame.columns:
            text = frame[name].astype("string")
            columns[name] = text.mask(text.str.strip().eq("")).array
        elif var.kind == "timestamp" and name in frame.columns:
            columns[name] = timestamps(frame[name]).array
        elif name in encoded.low and var.kind not in ("text", "timestamp"):
            columns[name] = _from_floats(var, encoded.low[name], encoded.high.get(name))
    return _in_order(columns, len(frame))


def _in_order(columns: dict[str, Any], n: int) -> pd.DataFrame:
    """The typed frame: the recorded columns with the intervals derived from their times, in dictionary order."""
    for interval in INTERVALS:
        start, end = (columns.get(name) for name in interval.interval_ends())
        dtypes = [getattr(start, "dtype", None), getattr(end, "dtype", None)]
        if not all(pd.api.types.is_datetime64_any_dtype(d) for d in dtypes) or \
                len({getattr(d, "tz", None) for d in dtypes}) > 1:
            continue  # absent, or times with a zone and times without (from different files): no interval
        hours = (pd.Series(end) - pd.Series(start)) / pd.Timedelta(hours=1)
        values = hours.to_numpy(dtype=float, na_value=np.nan)
        columns[interval.name] = pd.array(values * 60 if interval.unit == "min" else values, dtype="Float64")
    return pd.DataFrame({name: columns[name] for name in REGISTRY_VARIABLES if name in columns},
                        index=pd.RangeIndex(n))


def _from_floats(var: Variable, low: np.ndarray, high: np.ndarray | None = None) -> Any:
    """A nullable column of the variable's type from the cohort table's floats (NaN = not recorded)."""
    missing = np.isnan(low)
    if var.kind == "flag":
        return pd.arrays.BooleanArray(low == 1, missing)
    if var.kind in ("category", "grade"):
        if var.kind == "category":
            labels = np.array([m.value for m in var.enum_scale()], dtype=object)
            values = labels[np.where(missing, 0, low).astype(int)]
        else:
            upper = low if high is None else high
            values = np.array([None if m else _GRADES[(int(a), int(b))] for m, a, b in
                               zip(missing, np.nan_to_num(low), np.nan_to_num(upper), strict=True)], dtype=object)
        values[missing] = None
        return pd.array(values, dtype="string")
    return pd.array(low, dtype="Float64").astype(_FRAME_DTYPES[var.kind])


def timestamps(values: pd.Series) -> pd.Series:
    """ISO 8601 times (or datetimes) as one datetime column in microseconds; times with a zone in UTC."""
    if not pd.api.types.is_datetime64_any_dtype(values.dtype):
        values = pd.to_datetime(values.astype("string").str.strip(), format="ISO8601")
    if getattr(values.dt, "tz", None) is not None:
        values = values.dt.tz_convert("UTC")
    return values.dt.as_unit("us")


# ---- the stored JSON documents --------------------------------------------------------------------------------
def registry_records(table: pd.DataFrame) -> list[dict[str, Any]]:
    """Each row of a typed registry frame as its JSON document (missing values left out)."""
    names = [name for name in table.columns if name in RECORDED]
    lists = [_json_values(REGISTRY_VARIABLES[name], table[name]) for name in names]
    return [{name: value for name, value in zip(names, row, strict=True) if value is not None}
            for row in zip(*lists, strict=True)]


def _json_values(var: Variable, series: pd.Series) -> list[Any]:
    if var.kind == "timestamp":
        return [None if pd.isna(t) else t.isoformat() for t in series]
    values = series.tolist()
    return [None if v is pd.NA or v is None else v for v in values]


def frame_from_records(records: Sequence[Mapping[str, Any]]) -> pd.DataFrame:
    """The typed registry frame of stored JSON documents: every column some patient has, the intervals derived from
    their times, and every outcome."""
    present = {key for record in records for key in record}
    columns: dict[str, Any] = {}
    for name, var in REGISTRY_VARIABLES.items():
        if name not in present and name not in OUTCOMES:
            continue
        values = [record.get(name) for record in records]
        if var.kind == "timestamp":
            columns[name] = _stored_times(values)
        elif var.kind != "interval":
            columns[name] = pd.array(values, dtype=_FRAME_DTYPES[var.kind])
    return _in_order(columns, len(records))


def _stored_times(values: list[Any]) -> Any:
    text = pd.Series(values, dtype="string")
    try:
        return timestamps(text).array
    except (ValueError, TypeError):
        # Files imported with times in UTC and others with local times without a zone: one column cannot hold
        # both, so this one holds the times themselves.
        return pd.array([None if v is None else pd.Timestamp(v) for v in values], dtype=object)
