"""A cohort table back to the JSON patient records it stands for, as the API and the service take them."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from .encoded_table import ATTESTATION_PREFIX
from .record import ATTESTATIONS_KEY


def records_from_frame(frame: pd.DataFrame) -> list[dict[str, Any]]:
    """Each row as the JSON patient record it stands for (missing values left out)."""
    records = []
    for row in frame.to_dict(orient="records"):
        record: dict[str, Any] = {}
        attestations: dict[str, bool] = {}
        for key, value in row.items():
            if value is None or value is pd.NA or (isinstance(value, float) and np.isnan(value)) or value is pd.NaT:
                continue
            if isinstance(value, pd.Timestamp):
                value = value.isoformat()
            elif isinstance(value, (np.bool_, bool)):
                value = bool(value)
            elif isinstance(value, (np.integer,)):
                value = int(value)
            elif isinstance(value, (np.floating,)):
                value = float(value)
            if key.startswith(ATTESTATION_PREFIX):
                attestations[key.removeprefix(ATTESTATION_PREFIX)] = value
            else:
                record[key] = value
        if attestations:
            record[ATTESTATIONS_KEY] = attestations
        records.append(record)
    return records
