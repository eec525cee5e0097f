"""Repeated scores over visits (NIHSS, motor NIHSS, Fugl-Meyer, Barthel), as ISIS-HERMES analysed them.

A linear mixed model (statsmodels MixedLM, REML) with a random intercept per patient:
score ~ visit + treated + treated:visit; the arm effect at each visit is the treated
coefficient plus that visit's interaction, with a Wald interval from the fixed-effect
covariance. Long data: one row per patient and visit.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import statsmodels.formula.api as smf
from scipy import stats

from .result import AnalysisInputError, Result

Z95 = stats.norm.ppf(0.975)


def mixed_model(long: pd.DataFrame, score: str, arm: str, treatment: str, control: str,
                patient: str = "patient_id", visit: str = "visit", order: list | None = None) -> list[Result]:
    """The arm effect at each visit; `order` lists the visits in time order (the first is the reference),
    else a categorical column's order, else numeric then alphabetical."""
    for column in (score, arm, patient, visit):
        if column not in long.columns:
            raise AnalysisInputError(f"the long dataset has no column {column!r}")
    data = long[long[arm].isin([treatment, control])].dropna(subset=[score]).copy()
    if data[patient].nunique() < 4:
        raise AnalysisInputError("a mixed model needs repeated scores from at least 4 patients")
    data["treated"] = (data[arm] == treatment).astype(float)
    data["score_"] = pd.to_numeric(data[score], errors="coerce")
    if order is not None:
        unknown = sorted(set(data[visit].astype(str)) - {str(v) for v in order})
        if unknown:
            raise AnalysisInputError(f"visits {unknown} are not in the given order {order}")
        visits = [v for v in order if (data[visit].astype(str) == str(v)).any()]
    elif isinstance(data[visit].dtype, pd.CategoricalDtype):
        visits = [v for v in data[visit].cat.categories if (data[visit] == v).any()]
    else:
        visits = sorted(data[visit].unique(), key=lambda v: (float(v) if _is_number(v) else 0, str(v)))
    data["visit_"] = pd.Categorical(data[visit], categories=visits)
    fit = smf.mixedlm("score_ ~ C(visit_) * treated", data, groups=data[patient]).fit(reml=True, method="lbfgs")
    params, cov = fit.fe_params, fit.cov_params()
    out = []
    for v in visits:
        names = ["treated"] + ([f"C(visit_)[T.{v}]:treated"] if v != visits[0] else [])
        weights = pd.Series(0.0, index=params.index)
        weights[names] = 1.0
        estimate = float(weights @ params)
        se = float(np.sqrt(weights @ cov.loc[params.index, params.index] @ weights))
        out.append(Result(f"{score} at {v}", estimate, estimate - Z95 * se, estimate + Z95 * se,
                          float(2 * stats.norm.sf(abs(estimate / se))),
                          "linear mixed model (REML), random intercept per patient, arm x visit", int(
                              (data[visit] == v).sum()), "mean difference (treatment - control)",
                          {"visit": str(v), "se": se}))
    return out


def _is_number(value) -> bool:
    try:
        float(value)
        return True
    except (TypeError, ValueError):
        return False
