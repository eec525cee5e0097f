"""Table 1 (baseline characteristics by arm) and the safety table."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd
from scipy import stats

from ..clinical import VARIABLES
from ..clinical.scales import LabelledEnum

BASELINE = ("age", "sex", "nihss", "aspects", "prestroke_mrs", "occlusion_site", "bridging_thrombolysis",
            "lkw_to_puncture_h", "sbp", "glucose_mmol_l", "weight_kg")


def _label(name: str) -> str:
    var = VARIABLES.get(name)
    if var is None:
        return name.replace("_", " ")
    return var.label + (f", {var.unit}" if var.unit and var.kind in ("number", "integer", "interval") else "")


def table1(df: pd.DataFrame, arm: str, arms: Sequence[str], variables: Sequence[str] = BASELINE) -> pd.DataFrame:
    """Median (IQR) for numbers and scores, n (%) for yes/no and categories; missing counts noted."""
    rows = []
    groups = {a: df[df[arm] == a] for a in arms}
    header = {a: f"{a} (n={len(g)})" for a, g in groups.items()}
    for name in variables:
        if name not in df.columns:
            continue
        series = df[name]
        kind = VARIABLES[name].kind if name in VARIABLES else ("number" if pd.api.types.is_numeric_dtype(series)
                                                                 else "category")
        if kind in ("number", "integer", "score", "interval"):
            row = {"characteristic": f"{_label(name)}, median (IQR)"}
            for a, g in groups.items():
                x = pd.to_numeric(g[name], errors="coerce").dropna()
                q1, med, q3 = np.percentile(x, [25, 50, 75]) if len(x) else (np.nan,) * 3
                row[header[a]] = f"{med:.4g} ({q1:.4g}-{q3:.4g})" + _missing(g[name])
            rows.append(row)
        elif kind == "flag":
            row = {"characteristic": f"{_label(name)}, n (%)"}
            for a, g in groups.items():
                x = g[name].dropna().astype(str).str.lower().isin(["true", "1", "yes"])
                row[header[a]] = f"{int(x.sum())} ({100 * x.mean():.1f})" + _missing(g[name])
            rows.append(row)
        else:
            # the heading row carries the missing count, as a number's row does; percentages are of the known
            rows.append({"characteristic": f"{_label(name)}, n (%)",
                         **{header[a]: _missing(g[name]).strip() for a, g in groups.items()}})
            for level, label in _levels(name, series):
                row = {"characteristic": f"    {label}"}
                for a, g in groups.items():
                    x = g[name].dropna().astype(str)
                    row[header[a]] = f"{int((x == level).sum())} ({100 * (x == level).mean():.1f})"
                rows.append(row)
    return pd.DataFrame(rows)


def _levels(name: str, series: pd.Series) -> list[tuple[str, str]]:
    """A category's levels seen in the data, each with its label (MCA M1, not m1): in the scale's order where the
    data dictionary names a scale, else sorted."""
    seen = set(series.dropna().astype(str))
    var = VARIABLES.get(name)
    scale = var.scale if var is not None else None
    if isinstance(scale, type) and issubclass(scale, LabelledEnum):
        known = [(str(m.value), m.label) for m in scale if str(m.value) in seen]
        return known + [(v, v) for v in sorted(seen - {k for k, _ in known})]
    return [(v, v) for v in sorted(seen)]


def _missing(series: pd.Series) -> str:
    n = int(series.isna().sum())
    return f" [{n} missing]" if n else ""


def safety_table(df: pd.DataFrame, arm: str, arms: Sequence[str], events: dict[str, str]) -> pd.DataFrame:
    """Events per arm as n/N (%), with Fisher's exact p-value (two arms)."""
    rows = []
    for column, label in events.items():
        if column not in df.columns:
            continue
        row = {"event": label}
        counts = []
        for a in arms:
            x = pd.to_numeric(df.loc[df[arm] == a, column], errors="coerce").dropna()
            events_ = int((x > 0).sum())
            counts.append((events_, len(x)))
            row[a] = f"{events_}/{len(x)} ({100 * events_ / len(x):.1f}%)" if len(x) else "-"
        if len(arms) == 2 and all(n for _, n in counts):
            (e1, n1), (e0, n0) = counts
            row["Fisher p"] = f"{stats.fisher_exact([[e1, n1 - e1], [e0, n0 - e0]]).pvalue:.3f}"
        rows.append(row)
    return pd.DataFrame(rows)
