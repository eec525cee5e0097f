"""Events per patient (adverse events, SAEs): the rate ratio between arms, and the patients with any event."""

from __future__ import annotations

import numpy as np
import pandas as pd
from scipy import stats

from .dataset import contrast
from .result import AnalysisInputError, Result

Z95 = stats.norm.ppf(0.975)


def rate_ratio(df: pd.DataFrame, outcome: str, arm: str, treatment: str, control: str) -> Result:
    """Events per patient, treatment / control, by Poisson regression with a robust (sandwich, HC0)
    interval, which stays valid when the counts are overdispersed (Zou, Am J Epidemiol 2004)."""
    # statsmodels' GLM (with its families) is imported here: the report loads this module for every trial
    from statsmodels.genmod.families import Poisson
    from statsmodels.genmod.generalized_linear_model import GLM
    from statsmodels.tools.tools import add_constant

    c = contrast(df, outcome, arm, treatment, control)
    y = c.outcome
    if np.any(y < 0) or np.any(y != np.round(y)):
        raise AnalysisInputError(f"{outcome}: counts are whole numbers from 0")
    a, b = y[c.treated == 1], y[c.treated == 0]
    if len(a) == 0 or len(b) == 0:
        raise AnalysisInputError(f"{outcome}: each arm needs patients")
    if a.sum() == 0 or b.sum() == 0:
        raise AnalysisInputError(f"{outcome}: an arm has no events, so the rate ratio has no finite estimate")
    X = add_constant(c.treated.astype(float))
    fit = GLM(y, X, family=Poisson()).fit(cov_type="HC0")
    log_rr, se = float(fit.params[1]), float(fit.bse[1])
    p = float(2 * stats.norm.sf(abs(log_rr / se)))
    return Result(f"{outcome}: rate ratio", float(np.exp(log_rr)), float(np.exp(log_rr - Z95 * se)),
                  float(np.exp(log_rr + Z95 * se)), p,
                  "events per patient, Poisson regression with a robust (sandwich) interval", c.n, "rate ratio",
                  {"events_treatment": int(a.sum()), "events_control": int(b.sum()),
                   "patients_with_event_treatment": int((a > 0).sum()), "patients_treatment": len(a),
                   "patients_with_event_control": int((b > 0).sum()), "patients_control": len(b)})
