"""A cohort table read from CSV or Parquet, with a clear error for a file that cannot be read."""

from __future__ import annotations

from .. import InputError

from pathlib import Path

import pandas as pd


class CohortFileError(InputError):
    """A cohort file that does not exist, is not .csv or .parquet, or cannot be read; the message names it."""


def read_cohort(path: str | Path) -> pd.DataFrame:
    """A cohort table from CSV or Parquet, read without guessing types beyond numbers."""
    path = Path(path)
    try:
        if path.suffix.lower() == ".parquet":
            return pd.read_parquet(path)
        if path.suffix.lower() == ".csv":
            return pd.read_csv(path, dtype={"patient_id": "string", "site": "string", "etici": "string"},
                               keep_default_na=True, na_values=[""])
    except FileNotFoundError:
        raise CohortFileError(f"{path}: no such file") from None
    except Exception as exc:  # pandas and pyarrow raise many types for a malformed file
        raise CohortFileError(f"{path}: cannot read the table ({type(exc).__name__}: {exc})") from None
    raise CohortFileError(f"{path}: a cohort is a .csv or .parquet file")
