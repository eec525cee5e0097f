"""A cohort table (CSV or Parquet, read as a DataFrame) validated column by column and encoded.

The checks are vectorised and use the same ranges as a single record; every problem in
the file is collected (up to MAX_ERRORS) and reported with row, field, value and what is allowed.
"""

from __future__ import annotations

from .. import InputError

from collections.abc import Iterable
from typing import Any

import numpy as np
import pandas as pd

from . import units
from .dictionary import INTERVALS, VARIABLES, Variable, format_number
from .encoded_table import ATTESTATION_PREFIX, EncodedTable, alternate_columns
from .record import FieldError
from .scales import ETICI

MAX_ERRORS = 20


class TableDataError(InputError):
    def __init__(self, errors: list[FieldError], more: int = 0):
        self.errors, self.more = errors, more
        extra = f" (and {more} more)" if more else ""
        super().__init__("; ".join(str(e) for e in errors) + extra)


def encode_frame(frame: pd.DataFrame, attestation_ids: Iterable[str] = ()) -> EncodedTable:
    """Validate and encode a cohort table; TableDataError names row, field, value and what is allowed."""
    checker = _Checker(frame)
    attestation_ids = set(attestation_ids)
    alternates = alternate_columns()
    n = len(frame)
    low: dict[str, np.ndarray] = {}
    high: dict[str, np.ndarray] = {}
    timestamps: dict[str, pd.Series] = {}
    entered: dict[str, np.ndarray] = {}
    for column in frame.columns:
        name = str(column)
        series = frame[column]
        if name.startswith(ATTESTATION_PREFIX):
            key = name.removeprefix(ATTESTATION_PREFIX)
            if key not in attestation_ids:
                allowed = ", ".join(sorted(attestation_ids)) or "none"
                checker.column_error(name, f"no attestation {key!r} in this protocol; allowed: {allowed}")
                continue
            low[name] = checker.flag(name, series, f"{name} is true or false")
            continue
        if name in alternates:
            base_var, unit = alternates[name]
            if base_var.name in frame.columns:
                checker.column_error(name, f"give {base_var.name} or {name}, not both")
                continue
            numbers = checker.numbers(name, series, base_var) * units.factor(base_var.conversion()[1], unit)
            checker.range(name, series, numbers, base_var)
            low[base_var.name] = numbers
            entered[base_var.name] = np.full(n, units.normalise_unit(unit), dtype=object)
            continue
        var = VARIABLES.get(name)
        if var is None or var.kind == "interval":
            checker.column_error(name, _unknown_column(name, var))
            continue
        if var.kind == "text":
            continue
        if var.kind == "timestamp":
            timestamps[name] = checker.timestamps(name, series, var)
        elif var.kind == "flag":
            low[name] = checker.flag(name, series, var.allowed())
        elif var.kind == "category":
            low[name] = checker.categories(name, series, var, {m.value: i for i, m in enumerate(var.enum_scale())})
        elif var.kind == "grade":
            low[name], high[name] = checker.grades(name, series, var)
        else:
            numbers = checker.numbers(name, series, var)
            checker.range(name, series, numbers, var)
            low[name] = numbers
    for interval in INTERVALS:
        start, end = (timestamps.get(t) for t in interval.interval_ends())
        if start is not None and end is not None:
            low[interval.name] = checker.interval(interval, start, end)
    checker.raise_if_any()
    return EncodedTable(n, low, high, entered_units=entered)


def _unknown_column(name: str, var: Variable | None) -> str:
    if var is not None:  # a derived interval
        return f"{name} is derived from {' and '.join(var.interval_ends())}; give those times instead"
    import difflib

    names = [*(n for n, v in VARIABLES.items() if v.kind != "interval"), *alternate_columns()]
    close = difflib.get_close_matches(name, names, n=1)
    return f"unknown column {name!r}; " + (f"did you mean {close[0]!r}?" if close else
                                          "see `stroketrial dictionary` for the allowed columns")


class _Checker:
    """Collects errors across columns so one run reports every problem at once."""

    def __init__(self, frame: pd.DataFrame):
        self.frame = frame
        self.errors: list[FieldError] = []
        self.more = 0
        ids = frame["patient_id"] if "patient_id" in frame.columns else None
        self.ids = None if ids is None else ids.astype("string").to_numpy()

    def column_error(self, name: str, message: str) -> None:
        self._add(FieldError(name, None, message))

    def _add(self, error: FieldError) -> None:
        if len(self.errors) < MAX_ERRORS:
            self.errors.append(error)
        else:
            self.more += 1

    def rows(self, name: str, series: pd.Series, bad: np.ndarray, message) -> None:
        positions = np.flatnonzero(bad)
        for pos in positions[:5]:
            raw = series.iloc[pos]
            who = f" (patient_id {self.ids[pos]})" if self.ids is not None else ""
            self._add(FieldError(f"row {pos + 1}{who}: {name}", raw, message(raw)))
        self.more += max(0, len(positions) - 5)

    def raise_if_any(self) -> None:
        if self.errors:
            raise TableDataError(self.errors, self.more)

    @staticmethod
    def _present(series: pd.Series) -> np.ndarray:
        present = series.notna().to_numpy()
        if series.dtype == object or pd.api.types.is_string_dtype(series.dtype):
            present = present & series.astype("string").str.strip().ne("").fillna(False).to_numpy(dtype=bool)
        return present

    def numbers(self, name: str, series: pd.Series, var: Variable) -> np.ndarray:
        if pd.api.types.is_bool_dtype(series.dtype):
            self.column_error(name, f"holds true/false; {var.allowed()}")
            return np.full(len(series), np.nan)
        if pd.api.types.is_numeric_dtype(series.dtype):
            values = series.to_numpy(dtype=float, na_value=np.nan)
        else:
            values = pd.to_numeric(series.astype("string").str.strip(), errors="coerce").to_numpy(
                dtype=float, na_value=np.nan)
            bad = self._present(series) & np.isnan(values)
            self.rows(name, series, bad, lambda raw: f"{raw!r} is not a number; {var.allowed()}")
        if var.kind in ("integer", "score"):
            with np.errstate(invalid="ignore"):
                fractional = ~np.isnan(values) & (values != np.floor(values))
            self.rows(name, series, fractional, lambda raw: f"{raw!r} is not a whole number; {var.allowed()}")
            values = np.where(fractional, np.nan, values)
        return values

    def range(self, name: str, series: pd.Series, values: np.ndarray, var: Variable) -> None:
        with np.errstate(invalid="ignore"):
            bad = (values < var.low) | (values > var.high)
        def message(raw):
            shown = format_number(float(raw)) if _is_number(raw) else repr(raw)
            return f"{shown} is out of range; {var.allowed()}"

        self.rows(name, series, bad, message)

    def decoded(self, name: str, series: pd.Series, decode, allowed: str, width: int = 1) -> np.ndarray:
        """Decode each distinct value once (a column holds few), then spread the result by code.

        `decode` returns a tuple of `width` floats, _BLANK for a blank cell, or None when not allowed.
        Far faster than casting a million cells to strings.
        """
        codes, uniques = pd.factorize(series, use_na_sentinel=True)
        lookup = np.full((len(uniques) + 1, width), np.nan)  # the last row serves missing cells (code -1)
        invalid = np.zeros(len(uniques) + 1, dtype=bool)
        for i, raw in enumerate(uniques):
            value = decode(raw)
            if value is None:
                invalid[i] = True
            elif value is not _BLANK:
                lookup[i] = value
        self.rows(name, series, invalid[codes], lambda raw: f"{raw!r} is not allowed; {allowed}")
        return lookup[codes]

    def flag(self, name: str, series: pd.Series, allowed: str) -> np.ndarray:
        if pd.api.types.is_bool_dtype(series.dtype):
            return series.to_numpy(dtype=float, na_value=np.nan)
        return self.decoded(name, series, decode_flag, f"{allowed} (or yes/no, 1/0)")[:, 0]

    def categories(self, name, series, var, codes: dict[str, float]) -> np.ndarray:
        def decode(raw):
            if not isinstance(raw, str):
                return None
            text = raw.strip().lower()
            return _BLANK if not text else (codes[text],) if text in codes else None

        return self.decoded(name, series, decode, var.allowed())[:, 0]

    def grades(self, name, series, var) -> tuple[np.ndarray, np.ndarray]:
        ranks = {g.value: g.ranks for g in ETICI}

        def decode(raw):
            # CSV readers turn grades 0, 1 and 3 into numbers.
            if isinstance(raw, (int, float, np.integer, np.floating)) and not isinstance(raw, (bool, np.bool_)):
                raw = str(int(raw)) if float(raw).is_integer() else str(raw)
            if not isinstance(raw, str):
                return None
            text = raw.strip().lower()
            return _BLANK if not text else ranks.get(text)

        both = self.decoded(name, series, decode, var.allowed(), width=2)
        return both[:, 0], both[:, 1]

    def timestamps(self, name: str, series: pd.Series, var: Variable) -> pd.Series:
        if pd.api.types.is_datetime64_any_dtype(series.dtype):
            return series
        try:
            parsed = pd.to_datetime(series.astype("string").str.strip(), format="ISO8601", errors="coerce")
        except (ValueError, TypeError) as exc:  # e.g. time zones mixed with naive times
            self.column_error(name, f"cannot read the times ({exc}); {var.allowed()}")
            return pd.Series(pd.NaT, index=series.index)
        bad = self._present(series) & parsed.isna().to_numpy()
        self.rows(name, series, bad, lambda raw: f"{raw!r} is not allowed; {var.allowed()}")
        return parsed

    def interval(self, interval: Variable, start: pd.Series, end: pd.Series) -> np.ndarray:
        try:
            delta = (end - start).dt.total_seconds().to_numpy(dtype=float, na_value=np.nan)
        except TypeError as exc:
            self.column_error(interval.name, f"cannot subtract {interval.derived_from}: {exc}")
            return np.full(len(start), np.nan)
        with np.errstate(invalid="ignore"):
            bad = delta < 0
        first, second = interval.interval_ends()
        self.rows(second, end, bad, lambda raw: f"{raw} is before {first}")
        hours = np.where(bad, np.nan, delta / 3600)
        return hours * 60 if interval.unit == "min" else hours


_BLANK = object()
_FLAG_WORDS = {"true": 1.0, "yes": 1.0, "1": 1.0, "false": 0.0, "no": 0.0, "0": 0.0}


def decode_flag(raw: Any):
    if isinstance(raw, (bool, np.bool_)):
        return (float(raw),)
    if isinstance(raw, (int, float, np.integer, np.floating)):
        return (float(raw),) if raw in (0, 1) else None
    if isinstance(raw, str):
        text = raw.strip().lower()
        return _BLANK if not text else (_FLAG_WORDS[text],) if text in _FLAG_WORDS else None
    return None


def _is_number(raw: Any) -> bool:
    try:
        float(raw)
        return True
    except (TypeError, ValueError):
        return False
