"""Skewed continuous outcomes (infarct volume): medians, the Hodges-Lehmann shift, log-scale ANCOVA."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd
import statsmodels.api as sm
from scipy import stats

from .dataset import contrast
from .result import AnalysisInputError, Result

Z95 = stats.norm.ppf(0.975)


def hodges_lehmann(df: pd.DataFrame, outcome: str, arm: str, treatment: str, control: str) -> Result:
    """Median of all treatment-minus-control differences, with the distribution-free (Moses) interval
    from the Mann-Whitney distribution (normal approximation) and the Mann-Whitney p-value."""
    c = contrast(df, outcome, arm, treatment, control)
    a, b = c.outcome[c.treated == 1], c.outcome[c.treated == 0]
    n1, n2 = len(a), len(b)
    if n1 < 2 or n2 < 2:
        raise AnalysisInputError(f"{outcome}: each arm needs at least 2 values")
    diffs = np.sort((a[:, None] - b[None, :]).ravel())
    k = int(np.floor(n1 * n2 / 2 - Z95 * np.sqrt(n1 * n2 * (n1 + n2 + 1) / 12)))
    k = max(k, 0)
    test = stats.mannwhitneyu(a, b, alternative="two-sided", method="asymptotic")
    return Result(f"{outcome}: Hodges-Lehmann shift", float(np.median(diffs)), float(diffs[k]),
                  float(diffs[len(diffs) - 1 - k]), float(test.pvalue),
                  "Hodges-Lehmann estimate (treatment - control) with Moses interval; Mann-Whitney test", c.n,
                  "median difference", {"median_treatment": float(np.median(a)), "iqr_treatment": _iqr(a),
                                        "median_control": float(np.median(b)), "iqr_control": _iqr(b)})


def _iqr(x: np.ndarray) -> list[float]:
    return [float(v) for v in np.percentile(x, [25, 75])]


def log_ancova(df: pd.DataFrame, outcome: str, arm: str, treatment: str, control: str,
               adjust: Sequence[str] = ()) -> Result:
    """Ratio of geometric means of (volume + 1 mL), treatment over control, from OLS on the log scale."""
    c = contrast(df, outcome, arm, treatment, control, adjust)
    if (c.outcome < 0).any():
        raise AnalysisInputError(f"{outcome} holds negative values; a volume is 0 or more")
    X = sm.add_constant(pd.concat([pd.Series(c.treated, name="treated"), c.covariates], axis=1), has_constant="add")
    fit = sm.OLS(np.log(c.outcome + 1), X).fit()
    beta = float(fit.params["treated"])
    lo, hi = fit.conf_int().loc["treated"]
    label = f" adjusted for {', '.join(adjust)}" if adjust else ""
    return Result(f"{outcome}: log-scale ANCOVA", float(np.exp(beta)), float(np.exp(lo)), float(np.exp(hi)),
                  float(fit.pvalues["treated"]), f"linear regression of log({outcome} + 1){label}; ratio of geometric "
                  "means", c.n, "ratio of geometric means", {"log_ratio": beta, "se": float(fit.bse["treated"])})


def mean_difference(df: pd.DataFrame, outcome: str, arm: str, treatment: str, control: str) -> Result:
    """Difference in means (treatment - control) with Welch's t interval and test (unequal variances)."""
    c = contrast(df, outcome, arm, treatment, control)
    a, b = c.outcome[c.treated == 1], c.outcome[c.treated == 0]
    if len(a) < 2 or len(b) < 2:
        raise AnalysisInputError(f"{outcome}: each arm needs at least 2 values")
    test = stats.ttest_ind(a, b, equal_var=False)
    ci = test.confidence_interval(0.95)
    return Result(f"{outcome}: difference in means", float(a.mean() - b.mean()), float(ci.low), float(ci.high),
                  float(test.pvalue), "difference in means (treatment - control), Welch's t interval and test",
                  c.n, "mean difference", {"mean_treatment": float(a.mean()), "sd_treatment": float(a.std(ddof=1)),
                                           "mean_control": float(b.mean()), "sd_control": float(b.std(ddof=1))})
