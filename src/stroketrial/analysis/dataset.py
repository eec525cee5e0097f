"""Reading an analysis dataset: the arm contrast, the outcome and covariates, checked and named in errors."""

from __future__ import annotations

from dataclasses import dataclass
from collections.abc import Sequence

import numpy as np
import pandas as pd

from .result import AnalysisInputError


@dataclass(frozen=True)
class Contrast:
    """Rows usable for one analysis: treated indicator (1 = treatment arm), outcome, covariates."""

    treated: np.ndarray
    outcome: np.ndarray
    covariates: pd.DataFrame
    dropped: int  # rows left out for a missing outcome or covariate
    treatment: str
    control: str

    @property
    def n(self) -> int:
        return len(self.treated)


def require_columns(df: pd.DataFrame, *columns: str) -> None:
    missing = [c for c in columns if c not in df.columns]
    if missing:
        raise AnalysisInputError(f"the dataset has no column {missing[0]!r}")


def contrast(df: pd.DataFrame, outcome: str, arm: str, treatment: str, control: str,
             adjust: Sequence[str] = (), kind: str = "numeric") -> Contrast:
    for column in (outcome, arm, *adjust):
        if column not in df.columns:
            close = [c for c in df.columns if c.lower().startswith(column.lower()[:3])][:3]
            hint = f"; did you mean {', '.join(close)}?" if close else ""
            raise AnalysisInputError(f"the dataset has no column {column!r}{hint}")
    arms = df[arm].astype("string")
    unknown = sorted(set(arms.dropna()) - {treatment, control})
    if unknown:
        raise AnalysisInputError(f"column {arm!r} holds {unknown}, not only {treatment!r} and {control!r}; "
                                 "choose the arms with --treatment and --control, or filter the file")
    for label in (treatment, control):
        if not (arms == label).any():
            raise AnalysisInputError(f"no row has {arm} = {label!r}")
    columns = [outcome, *adjust]
    frame = df.loc[arms.isin([treatment, control]), [arm, *columns]].copy()
    y = pd.to_numeric(frame[outcome], errors="coerce")
    bad = frame[outcome].notna() & y.isna()
    if bad.any():
        raise AnalysisInputError(f"column {outcome!r} holds {frame.loc[bad, outcome].iloc[0]!r}, which is not a number")
    if kind == "mrs":
        out_of_range = y.notna() & ~y.isin(range(7))
        if out_of_range.any():
            raise AnalysisInputError(f"column {outcome!r} holds {y[out_of_range].iloc[0]!r}; the mRS is 0 to 6")
    if kind == "binary":
        out_of_range = y.notna() & ~y.isin([0, 1])
        if out_of_range.any():
            raise AnalysisInputError(f"column {outcome!r} holds {y[out_of_range].iloc[0]!r}; a binary outcome is 0 "
                                     "or 1")
    covariates = pd.DataFrame(index=frame.index)
    for column in adjust:
        series = frame[column]
        numeric = pd.to_numeric(series, errors="coerce")
        if series.notna().sum() and numeric.notna().sum() == series.notna().sum():
            covariates[column] = numeric.astype(float)
        else:  # a category: one indicator per level but the first
            dummies = pd.get_dummies(series.astype("string"), prefix=column, drop_first=True, dtype=float)
            dummies[series.isna()] = np.nan
            covariates = covariates.join(dummies)
    keep = y.notna() & covariates.notna().all(axis=1)
    return Contrast(treated=(frame.loc[keep, arm].astype("string") == treatment).to_numpy().astype(float),
                    outcome=y[keep].to_numpy(), covariates=covariates.loc[keep].reset_index(drop=True),
                    dropped=int((~keep).sum()), treatment=treatment, control=control)
