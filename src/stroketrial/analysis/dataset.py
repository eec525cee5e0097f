"""Reading an analysis dataset: the arm contrast, the outcome and covariates, checked and named in errors.

A dataset is a pandas DataFrame (the report, the platform's export) or a `CsvTable` (`stroketrial analyze ordinal`
on a CSV file). The contrast is worked out on each column's cells without pandas, so that one command can answer
without importing it: pandas alone takes longer to import (about 0.3 s) than the whole analysis.
"""

from __future__ import annotations

import csv
import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Union

import numpy as np

from .result import AnalysisInputError

if TYPE_CHECKING:
    import pandas as pd

# pandas.read_csv's default missing-value cells, so that a CSV means the same whichever reader reads it
MISSING_CELLS = frozenset({"", "#N/A", "#N/A N/A", "#NA", "-1.#IND", "-1.#QNAN", "-NaN", "-nan", "1.#IND", "1.#QNAN",
                           "<NA>", "N/A", "NA", "NULL", "NaN", "None", "n/a", "nan", "null"})


@dataclass(frozen=True)
class CsvTable:
    """A CSV file read by the standard library's csv module: each column's cells as text, None where missing."""

    source: str
    cells: dict[str, np.ndarray]  # column -> object array of str | None, one entry per row

    @property
    def columns(self) -> list[str]:
        return list(self.cells)

    def __len__(self) -> int:
        return len(next(iter(self.cells.values()), ()))


Dataset = Union["pd.DataFrame", CsvTable]


def read_csv_table(path: Path) -> CsvTable:
    """One row per patient, the first line naming the columns; blank lines skipped, short rows filled with
    missing cells (as pandas.read_csv)."""
    try:
        with path.open(newline="", encoding="utf-8-sig") as handle:
            # strict: a quote left open is an error, not a cell that swallows the rest of the file
            reader = csv.reader(handle, strict=True)
            rows, starts = [], 1
            try:
                for row in reader:
                    if row:
                        rows.append(row)
                    starts = reader.line_num + 1
            except csv.Error as exc:
                raise AnalysisInputError(f"{path}: not a readable CSV (the row starting on line {starts}: {exc}; a "
                                         'quoted cell ends with its quote, and a quote inside one is written "")'
                                         ) from None
    except UnicodeDecodeError:
        raise AnalysisInputError(f"{path}: not a readable CSV (not UTF-8 text)") from None
    if not rows:
        raise AnalysisInputError(f"{path}: not a readable CSV (the file is empty)")
    header = [name.strip() for name in rows[0]]
    for i, name in enumerate(header):
        if name in header[:i]:
            raise AnalysisInputError(f"{path}: column {name!r} is named twice in the header")
    width = len(header)
    table: list[list[str | None]] = []
    for line, row in enumerate(rows[1:], start=2):
        if len(row) > width:
            raise AnalysisInputError(f"{path}: not a readable CSV (row {line} has {len(row)} fields, the header "
                                     f"{width})")
        table.append([None if cell in MISSING_CELLS else cell for cell in row] + [None] * (width - len(row)))
    columns = list(zip(*table, strict=True)) if table else [()] * width
    return CsvTable(str(path), {name: np.array(column, dtype=object) for name, column in zip(header, columns,
                                                                                             strict=True)})


def cells(data: Dataset, column: str) -> np.ndarray:
    """A column's values as an object array, None where missing."""
    if isinstance(data, CsvTable):
        return data.cells[column]
    series = data[column]
    values = series.to_numpy(dtype=object, copy=True)  # pandas' copy-on-write hands out read-only views
    values[series.isna().to_numpy()] = None
    return values


def _number(value: Any) -> float | None:
    """A cell as a finite number, or None if it is not one: Python's float() also reads "1_000", "inf" and other
    scripts' digits ("٣"), none of which a clinical dataset means as a number."""
    if isinstance(value, str):
        text = value.strip()
        if "_" in text or not text.isascii():
            return None
        try:
            number = float(text)
        except ValueError:
            return None
        return number if math.isfinite(number) else None
    if isinstance(value, bool | int | float | np.number | np.bool_):
        number = float(value)
        return number if math.isfinite(number) else None
    return None


def numbers(values: np.ndarray) -> tuple[np.ndarray, int | None]:
    """Each cell as a float (NaN where missing) and the position of the first cell that is there but is not a
    number (None if every present cell is one)."""
    out = np.full(len(values), np.nan)
    first_bad = None
    for i, value in enumerate(values):
        if value is None:
            continue
        number = _number(value)
        if number is None:
            if first_bad is None:
                first_bad = i
        else:
            out[i] = number
    return out, first_bad


def shown(value: Any) -> Any:
    """A cell as a message shows it: a number without numpy's type name."""
    return value.item() if isinstance(value, np.generic) else value


def labels(values: np.ndarray) -> list[str | None]:
    """Each cell as text, as pandas' astype("string") writes it."""
    return [None if v is None else str(shown(v)) for v in values]


@dataclass(frozen=True)
class Contrast:
    """Rows usable for one analysis: treated indicator (1 = treatment arm), outcome, covariates."""

    treated: np.ndarray
    outcome: np.ndarray
    covariate_names: tuple[str, ...]  # a category's indicators are named column_level, as pandas.get_dummies
    covariate_values: np.ndarray  # one row per usable row, one column per name
    dropped: int  # rows left out for a missing outcome or covariate
    treatment: str
    control: str

    @property
    def n(self) -> int:
        return len(self.treated)

    @property
    def covariates(self) -> pd.DataFrame:
        """The covariates as a DataFrame, for the analyses fitted by statsmodels."""
        import pandas as pd

        return pd.DataFrame(self.covariate_values, columns=list(self.covariate_names))

    def keep(self, rows: np.ndarray, drop_covariate: str | None = None) -> Contrast:
        """These rows only, and without one covariate."""
        names = [n for n in self.covariate_names if n != drop_covariate]
        columns = [self.covariate_names.index(n) for n in names]
        return Contrast(self.treated[rows], self.outcome[rows], tuple(names),
                        self.covariate_values[rows][:, columns], self.dropped, self.treatment, self.control)


def require_estimable(c: Contrast) -> None:
    """Each covariate tells the model something the arm and the covariates before it do not: one that is the same
    for every patient, or a sum of the others, has no effect of its own to estimate (the fit would stall on a
    singular information matrix and answer "did not converge", sending the user to look for separation)."""
    if not c.covariate_names:
        return
    design = np.column_stack([np.ones(c.n), c.treated, c.covariate_values])
    for j, name in enumerate(c.covariate_names, start=3):
        if np.linalg.matrix_rank(design[:, :j]) < j:
            raise AnalysisInputError(f"covariate {name!r} is the same for every patient, or a combination of the arm "
                                     "and the covariates before it, in these data: its effect cannot be estimated; "
                                     "leave it out of the adjustment")


def require_columns(df: Dataset, *columns: str) -> None:
    missing = [c for c in columns if c not in df.columns]
    if missing:
        raise AnalysisInputError(f"the dataset has no column {missing[0]!r}")


def _covariate(column: str, values: np.ndarray) -> tuple[list[str], np.ndarray]:
    """A covariate's columns: itself if every present value is a number, else one indicator per level but the
    first (levels in sorted order, as pandas.get_dummies with drop_first); NaN where the value is missing."""
    if all(v is None for v in values):
        raise AnalysisInputError(f"column {column!r} has no value in either arm: it cannot be adjusted for")
    numeric, first_bad = numbers(values)
    if first_bad is None:
        return [column], numeric[:, None]
    if not np.isnan(numeric).all():  # one typo would otherwise make a number's every value a category of its own
        raise AnalysisInputError(f"column {column!r} holds {shown(values[first_bad])!r} among numbers; a covariate "
                                 "is numbers (finite, in digits 0-9) or categories, not both")
    text = labels(values)
    levels = sorted({t for t in text if t is not None})[1:]
    matrix = np.array([[np.nan if t is None else float(t == level) for level in levels] for t in text],
                      dtype=float).reshape(len(text), len(levels))
    return [f"{column}_{level}" for level in levels], matrix


def contrast(df: Dataset, outcome: str, arm: str, treatment: str, control: str,
             adjust: Sequence[str] = (), kind: str = "numeric") -> Contrast:
    present = list(df.columns)
    for column in (outcome, arm, *adjust):
        if column not in present:
            close = [c for c in present if c.lower().startswith(column.lower()[:3])][:3]
            hint = f"; did you mean {', '.join(close)}?" if close else ""
            raise AnalysisInputError(f"the dataset has no column {column!r}{hint}")
    arms = labels(cells(df, arm))
    unknown = sorted({a for a in arms if a is not None} - {treatment, control})
    if unknown:
        raise AnalysisInputError(f"column {arm!r} holds {unknown}, not only {treatment!r} and {control!r}; "
                                 "choose the arms with --treatment and --control, or filter the file")
    for label in (treatment, control):
        if label not in arms:
            raise AnalysisInputError(f"no row has {arm} = {label!r}")
    rows = np.array([a in (treatment, control) for a in arms], dtype=bool)
    raw = cells(df, outcome)[rows]
    y, first_bad = numbers(raw)
    if first_bad is not None:
        raise AnalysisInputError(f"column {outcome!r} holds {shown(raw[first_bad])!r}, which is not a number")
    if kind in ("mrs", "binary"):
        allowed = range(7) if kind == "mrs" else (0, 1)
        outside = ~np.isnan(y) & ~np.isin(y, allowed)
        if outside.any():
            rule = "the mRS is 0 to 6" if kind == "mrs" else "a binary outcome is 0 or 1"
            raise AnalysisInputError(f"column {outcome!r} holds {float(y[outside][0])!r}; {rule}")
    names: list[str] = []
    parts = []
    for column in adjust:
        part_names, part = _covariate(column, cells(df, column)[rows])
        names += part_names
        parts.append(part)
    values = np.hstack(parts) if parts else np.empty((len(y), 0))
    keep = ~np.isnan(y) & ~np.isnan(values).any(axis=1)
    treated = np.array([a == treatment for a in np.array(arms, dtype=object)[rows]], dtype=float)
    return Contrast(treated=treated[keep], outcome=y[keep], covariate_names=tuple(names),
                    covariate_values=values[keep], dropped=int((~keep).sum()), treatment=treatment, control=control)
