"""Skewed continuous outcomes (infarct volume): medians, the Hodges-Lehmann shift, log-scale ANCOVA."""

from __future__ import annotations

import math
from collections.abc import Sequence
from fractions import Fraction

import numpy as np
import pandas as pd
from scipy import stats

from .dataset import contrast
from .result import AnalysisInputError, Result

Z95 = stats.norm.ppf(0.975)


EXACT_LIMIT = 50  # R's wilcox.test: the exact distribution when both arms have fewer than 50 values and no ties


def hodges_lehmann(df: pd.DataFrame, outcome: str, arm: str, treatment: str, control: str) -> Result:
    """Median of all treatment-minus-control differences, with the distribution-free (Moses) interval and the
    Mann-Whitney p-value, as R's wilcox.test(treatment, control, conf.int = TRUE) gives them.

    With fewer than 50 values in each arm and no tied values, the interval's limits are the order statistics
    of the pairwise differences at the exact 2.5% quantile of the Mann-Whitney distribution (qwilcox), and the
    p-value is exact. Otherwise both come from the normal approximation with continuity correction and the
    tie-corrected variance: the limits are where the standardized statistic of the shifted samples crosses
    +-1.96 (R's asymptotic interval), and the p-value is the asymptotic test. The method text and
    details["interval"] say which was used. The estimate is the median difference in both cases.
    """
    c = contrast(df, outcome, arm, treatment, control)
    a, b = c.outcome[c.treated == 1], c.outcome[c.treated == 0]
    n1, n2 = len(a), len(b)
    if n1 < 2 or n2 < 2:
        raise AnalysisInputError(f"{outcome}: each arm needs at least 2 values")
    diffs = np.sort((a[:, None] - b[None, :]).ravel())
    ties = len(np.unique(np.concatenate([a, b]))) < n1 + n2
    exact = n1 < EXACT_LIMIT and n2 < EXACT_LIMIT and not ties
    details: dict[str, object] = {"median_treatment": float(np.median(a)), "iqr_treatment": _iqr(a),
                                  "median_control": float(np.median(b)), "iqr_control": _iqr(b)}
    if exact:
        low, high, achieved = _exact_interval(diffs, n1, n2)
        details.update(interval="exact", achieved_confidence=achieved)
        test = stats.mannwhitneyu(a, b, alternative="two-sided", method="exact")
        how = ("exact Moses interval (Mann-Whitney distribution, no ties, fewer than 50 per arm); "
               "exact Mann-Whitney test")
    else:
        low, high = _asymptotic_interval(a, b, diffs)
        details["interval"] = "normal approximation"
        test = stats.mannwhitneyu(a, b, alternative="two-sided", method="asymptotic")
        reason = "tied values" if ties else "50 or more in an arm"
        how = (f"Moses interval by the normal approximation ({reason}; continuity and tie corrections); "
               "Mann-Whitney test, normal approximation")
    return Result(f"{outcome}: Hodges-Lehmann shift", float(np.median(diffs)), low, high, float(test.pvalue),
                  f"Hodges-Lehmann estimate (treatment - control), {how}", c.n, "median difference", details)


def _wilcox_cdf(m: int, n: int) -> np.ndarray:
    """P(U <= u), u = 0..m*n, for the Mann-Whitney U of samples of m and n without ties.

    The counts are the coefficients of the Gaussian binomial [m + n choose m], built in exact integers as
    prod_{i=1..m} (1 - q^(n+i)) / (1 - q^i); every partial product is itself a polynomial.
    """
    counts = np.zeros(m * n + 1, dtype=object)
    counts[0] = 1
    for i in range(1, m + 1):
        step = n + i
        counts[step:] = counts[step:] - counts[:-step].copy()  # times (1 - q^(n+i))
        for r in range(i):  # divided by (1 - q^i): a running sum along each residue class mod i
            counts[r::i] = np.cumsum(counts[r::i])
    total = math.comb(m + n, m)
    return np.array([float(Fraction(int(v), total)) for v in np.cumsum(counts)])


def _exact_interval(diffs: np.ndarray, n1: int, n2: int) -> tuple[float, float, float]:
    """R's exact two-sided 95% interval: qu = qwilcox(0.025, n1, n2) (at least 1), limits diffs[qu] and
    diffs[n1 n2 - qu + 1] (1-based), achieved confidence 1 - 2 P(U <= qu - 1)."""
    cdf = _wilcox_cdf(n1, n2)
    qu = max(int(np.argmax(cdf >= 0.025 - 10 * np.finfo(float).eps)), 1)  # R's qwilcox, with its fuzz
    achieved = 1 - 2 * float(cdf[qu - 1])
    return float(diffs[qu - 1]), float(diffs[n1 * n2 - qu]), achieved


def _asymptotic_interval(a: np.ndarray, b: np.ndarray, diffs: np.ndarray) -> tuple[float, float]:
    """R's asymptotic interval (wilcox.test, exact = FALSE, correct = TRUE): a limit is the shift d at which
    (U(d) - n1 n2 / 2 - 0.5 sign) / sigma crosses the normal quantile, U(d) = #{differences > d}.

    Between two consecutive distinct differences no treatment value minus d ties a control value, so U(d) is
    the count of larger differences and sigma has only the ties within each arm; the crossing is at a
    difference, found for every distinct difference at once.
    """
    n1, n2 = len(a), len(b)
    n = n1 + n2
    tie_sizes = np.concatenate([np.unique(a, return_counts=True)[1], np.unique(b, return_counts=True)[1]])
    sigma = np.sqrt(n1 * n2 / 12 * (n + 1 - np.sum(tie_sizes ** 3 - tie_sizes) / (n * (n - 1))))
    values = np.unique(diffs)
    z = (len(diffs) - np.searchsorted(diffs, values, side="right")) - n1 * n2 / 2  # just above each value
    standardized = (z - np.sign(z) * 0.5) / sigma
    limits = []
    for zq in (Z95, -Z95):
        below = np.flatnonzero(standardized < zq)  # where the statistic has crossed zq going up in d
        limits.append(float(values[below[0]]) if len(below) else float(values[-1]))
    return limits[0], limits[1]


def _iqr(x: np.ndarray) -> list[float]:
    return [float(v) for v in np.percentile(x, [25, 75])]


def log_ancova(df: pd.DataFrame, outcome: str, arm: str, treatment: str, control: str,
               adjust: Sequence[str] = ()) -> Result:
    """Ratio of geometric means of (volume + 1 mL), treatment over control, from OLS on the log scale."""
    from statsmodels.regression.linear_model import OLS
    from statsmodels.tools.tools import add_constant

    c = contrast(df, outcome, arm, treatment, control, adjust)
    if (c.outcome < 0).any():
        raise AnalysisInputError(f"{outcome} holds negative values; a volume is 0 or more")
    X = add_constant(pd.concat([pd.Series(c.treated, name="treated"), c.covariates], axis=1), has_constant="add")
    fit = OLS(np.log(c.outcome + 1), X).fit()
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
