"""Outcomes in a propensity-matched sample (a single-arm study against matched registry controls), with an
inverse-probability-weighted (IPW) sensitivity analysis.

The input is the matching's output as a plain table, one row per patient: `treated` (1 or 0), `subclass` (the
matched set; missing for an unmatched patient), `weights` (the matching weights, as MatchIt gives them: 1 for
a matched treated patient, 0 or missing for an unmatched one) and `propensity` (the fitted P(treated), every
row, for the IPW analysis), and the outcomes. MatchedColumns names the design columns.

Matched analyses use the matched rows only, with the matching weights and standard errors clustered on the
matched set; where every matched set is a 1:1 pair, the infarct volume is analysed within pairs. The IPW
sensitivity analysis uses every row with ATT weights (treated 1, controls ps / (1 - ps)) and robust (HC0)
standard errors. Each model is fitted here by its estimating equations, and its sandwich covariance is built as
R's sandwich package builds it (vcovCL, vcovHC): for a model with the treatment as its only term the weighted
least-squares and binomial GLM estimates are the weighted means and proportions of each group, and the
proportional-odds model is fitted by the project's one proportional-odds fitter (proportional_odds_fit).

A patient without a value of an outcome is left out of that outcome's analyses only; the Result says how many
(details["dropped_missing"]) and the method text says so. Bad input raises AnalysisInputError naming the
column and the value.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np
import pandas as pd
from scipy import special, stats

from . import proportional_odds_fit as po
from .continuous import hodges_lehmann
from .result import AnalysisInputError, Result

Z95 = float(stats.norm.ppf(0.975))
EXACT_LIMIT = 50  # R's wilcox.test: the exact distribution with fewer than 50 nonzero differences and no ties

Weighting = Literal["matching", "ipw"]
WEIGHTINGS: tuple[str, ...] = ("matching", "ipw")
OutcomeKind = Literal["volume", "mrs", "binary"]

__all__ = ["MatchedColumns", "MatchedComparison", "NotEstimated", "OddsRatioNotEstimable", "att_weights",
           "hodges_lehmann_shift", "log_volume_ratio", "matched_comparison", "mrs_shift", "odds_ratio",
           "risk_difference"]


class OddsRatioNotEstimable(AnalysisInputError):
    """No events (or only events) in a group: the odds ratio would be 0 or infinite, so none is given."""


@dataclass(frozen=True)
class MatchedColumns:
    """The names of the matching's columns in the data."""

    treated: str = "treated"
    subclass: str = "subclass"
    weights: str = "weights"
    propensity: str = "propensity"


@dataclass(frozen=True)
class _Sample:
    """The rows of one analysis of one outcome: treatment indicator, outcome, weights, and the cluster of each
    row (its matched set) or None where every row is its own cluster (IPW)."""

    outcome_name: str
    treated: np.ndarray
    outcome: np.ndarray
    weights: np.ndarray
    cluster: np.ndarray | None
    dropped: int
    weighting: str

    @property
    def n(self) -> int:
        return len(self.treated)

    @property
    def n_treated(self) -> int:
        return int(self.treated.sum())

    @property
    def n_control(self) -> int:
        return self.n - self.n_treated

    def design_matrix(self) -> np.ndarray:
        return np.column_stack([np.ones(self.n), self.treated])


# --- reading and checking the data ------------------------------------------------------------------------

def _require(data: pd.DataFrame, *columns: str) -> None:
    for column in columns:
        if column not in data.columns:
            raise AnalysisInputError(f"the dataset has no column {column!r}")


def _numeric(data: pd.DataFrame, column: str) -> pd.Series:
    """The column as floats (missing as NaN); a value that is not a number is an error that quotes it."""
    raw = data[column]
    values = pd.to_numeric(raw, errors="coerce").astype(float)
    bad = raw.notna() & values.isna()
    if bad.any():
        raise AnalysisInputError(f"column {column!r} holds {_plain(raw[bad].iloc[0])!r}, which is not a number")
    infinite = np.isinf(values)
    if infinite.any():
        raise AnalysisInputError(f"column {column!r} holds {values[infinite].iloc[0]!r}, which is not finite")
    return values


def _plain(value: object) -> object:
    return value.item() if isinstance(value, np.generic) else value


def _treated(data: pd.DataFrame, columns: MatchedColumns) -> pd.Series:
    _require(data, columns.treated)
    values = _numeric(data, columns.treated)
    bad = ~values.isin([0.0, 1.0])
    if bad.any():
        raise AnalysisInputError(f"column {columns.treated!r} holds {_plain(data[columns.treated][bad].iloc[0])!r}; "
                                 "it is 1 for a treated patient and 0 for a control")
    return values


def _matched_rows(data: pd.DataFrame, columns: MatchedColumns) -> tuple[pd.Series, pd.Series]:
    """The mask of matched rows (a subclass given) and the weights, checked: a matched row's weight is above 0,
    an unmatched row's is 0 or missing, and every matched set holds a treated patient and a control."""
    _require(data, columns.subclass, columns.weights)
    treated = _treated(data, columns)
    matched = data[columns.subclass].notna()
    weights = _numeric(data, columns.weights)
    wrong = matched & ~(weights > 0)
    if wrong.any():
        row = wrong.idxmax()
        raise AnalysisInputError(f"column {columns.weights!r} holds {_plain(data.at[row, columns.weights])!r} for a "
                                 f"row of {columns.subclass} {_plain(data.at[row, columns.subclass])!r}; a matched "
                                 "patient's weight is above 0")
    stray = ~matched & (weights.fillna(0) != 0)
    if stray.any():
        raise AnalysisInputError(f"column {columns.weights!r} holds {_plain(weights[stray].iloc[0])!r} for a row "
                                 f"with no {columns.subclass}; an unmatched patient's weight is 0 or missing")
    if not matched.any():
        raise AnalysisInputError(f"no row is matched: column {columns.subclass!r} is missing in every row")
    groups = treated[matched].groupby(data.loc[matched, columns.subclass])
    one_sided = groups.min() == groups.max()
    if one_sided.any():
        subclass = one_sided.index[one_sided.to_numpy()][0]
        raise AnalysisInputError(f"{columns.subclass} {_plain(subclass)!r} holds only "
                                 f"{'treated patients' if groups.max()[subclass] == 1 else 'controls'}; every "
                                 "matched set has a treated patient and a control")
    return matched, weights


def _is_paired(data: pd.DataFrame, columns: MatchedColumns) -> bool:
    """Whether every matched set is one treated patient and one control."""
    matched, _ = _matched_rows(data, columns)
    sizes = data.loc[matched].groupby(columns.subclass).size()
    return bool((sizes == 2).all())


def att_weights(data: pd.DataFrame, columns: MatchedColumns = MatchedColumns()) -> np.ndarray:
    """ATT weights from the propensity score, for every row: 1 for a treated patient, ps / (1 - ps) for a
    control (the odds of treatment), so that the controls stand for the treated patients."""
    treated = _treated(data, columns).to_numpy()
    _require(data, columns.propensity)
    ps = _numeric(data, columns.propensity)
    bad = ps.isna() | (ps <= 0) | (ps >= 1)
    if bad.any():
        value = _plain(data[columns.propensity][bad].iloc[0])
        raise AnalysisInputError(f"column {columns.propensity!r} holds {value!r}; a propensity score is a "
                                 "probability strictly between 0 and 1")
    p = ps.to_numpy()
    return np.where(treated == 1, 1.0, p / (1 - p))


def _outcome_values(data: pd.DataFrame, outcome: str, kind: OutcomeKind) -> pd.Series:
    _require(data, outcome)
    values = _numeric(data, outcome)
    present = values.notna()
    checks: dict[str, tuple[pd.Series, str]] = {
        "volume": (values < 0, "a volume is 0 mL or more"),
        "mrs": (~values.isin(range(7)), "the modified Rankin Scale is a whole number from 0 to 6"),
        "binary": (~values.isin([0.0, 1.0]), "a yes/no outcome is 1 (yes) or 0 (no)"),
    }
    bad, allowed = checks[kind]
    bad = bad & present
    if bad.any():
        raise AnalysisInputError(f"column {outcome!r} holds {_plain(data[outcome][bad].iloc[0])!r}; {allowed}")
    return values


def _sample(data: pd.DataFrame, outcome: str, kind: OutcomeKind, columns: MatchedColumns,
            weighting: str) -> _Sample:
    """The rows of one analysis: the matched rows with the matching weights and matched sets, or (IPW) every
    row with ATT weights; rows without the outcome left out and counted."""
    if weighting not in WEIGHTINGS:
        raise AnalysisInputError(f"weighting {weighting!r} is not one of {', '.join(WEIGHTINGS)}")
    treated = _treated(data, columns)
    if weighting == "matching":
        rows, weights = _matched_rows(data, columns)
        w = weights.to_numpy()
        cluster: np.ndarray | None = data[columns.subclass].to_numpy()
    else:
        rows, w, cluster = pd.Series(True, index=data.index), att_weights(data, columns), None
    values = _outcome_values(data, outcome, kind)
    keep = (rows & values.notna()).to_numpy()
    sample = _Sample(outcome, treated.to_numpy()[keep], values.to_numpy()[keep], w[keep],
                     None if cluster is None else cluster[keep], int((rows & values.isna()).sum()), weighting)
    if sample.n_treated == 0 or sample.n_control == 0:
        group = "treated patient" if sample.n_treated == 0 else "control"
        raise AnalysisInputError(f"{outcome}: no {'matched ' if weighting == 'matching' else ''}{group} has it "
                                 "recorded")
    return sample


# --- sandwich covariance ----------------------------------------------------------------------------------

def _sandwich(scores: np.ndarray, information: np.ndarray, cluster: np.ndarray | None, hc1: bool) -> np.ndarray:
    """R's sandwich covariance: bread = the inverse information, meat = the cross-product of the score
    contributions summed within each cluster, times G / (G - 1) where there are clusters (vcovCL's cadjust),
    and times (n - 1) / (n - k) for HC1; without clusters and HC1 it is HC0 (vcovHC(type = "HC0"))."""
    n, k = scores.shape
    if cluster is None:
        meat = scores.T @ scores
    else:
        _, index = np.unique(cluster, return_inverse=True)
        sums = np.zeros((int(index.max()) + 1, k))
        np.add.at(sums, index, scores)
        g = sums.shape[0]
        if g < 2:
            raise AnalysisInputError("a cluster-robust standard error needs at least 2 matched sets")
        meat = g / (g - 1) * (sums.T @ sums)
    if hc1:
        meat = meat * (n - 1) / (n - k)
    bread = np.linalg.inv(information)
    return bread @ meat @ bread


def _robust_se(sample: _Sample, scores: np.ndarray, information: np.ndarray, lm: bool,
               index: int = 1) -> tuple[float, str]:
    """The robust SE of the treatment coefficient (parameter `index`) and how it was made, as R's vcovCL / vcovHC
    defaults make it."""
    if sample.cluster is None:
        cov, how = _sandwich(scores, information, None, hc1=False), "robust (HC0) sandwich standard error"
    elif lm:
        cov = _sandwich(scores, information, sample.cluster, hc1=True)
        how = ("cluster-robust sandwich standard error clustered on matched set (HC1: (n - 1)/(n - k) and "
               "G/(G - 1), the default of R's sandwich::vcovCL for a linear model)")
    else:
        cov = _sandwich(scores, information, sample.cluster, hc1=False)
        how = ("cluster-robust sandwich standard error clustered on matched set (HC0 with G/(G - 1), the default "
               "of R's sandwich::vcovCL for this model)")
    return float(np.sqrt(cov[index, index])), how


# --- the models -------------------------------------------------------------------------------------------

def _weighted_means(sample: _Sample, y: np.ndarray) -> tuple[float, float]:
    """The weighted means of y among the controls and the treated."""
    t = sample.treated == 1
    w = sample.weights
    return float(w[~t] @ y[~t] / w[~t].sum()), float(w[t] @ y[t] / w[t].sum())


def _weighted_least_squares(sample: _Sample, y: np.ndarray) -> tuple[float, float, str]:
    """y on treatment by weighted least squares (lm(y ~ treated, weights)): the difference in weighted means,
    with its robust standard error."""
    X = sample.design_matrix()
    mean_control, mean_treated = _weighted_means(sample, y)
    residuals = y - np.where(sample.treated == 1, mean_treated, mean_control)
    scores = (sample.weights * residuals)[:, None] * X
    information = (X * sample.weights[:, None]).T @ X
    se, how = _robust_se(sample, scores, information, lm=True)
    return mean_treated - mean_control, se, how


def _binomial_glm(sample: _Sample, link: Literal["identity", "logit"]) -> tuple[float, float, str]:
    """A weighted binomial GLM of the outcome on treatment (glm(y ~ treated, weights, quasibinomial(link))): its
    maximum-likelihood fitted risks are the weighted proportions of each group, its scores
    w (y - mu) / V(mu) dmu/deta x and its (expected) information X' diag(w (dmu/deta)^2 / V(mu)) X."""
    risk_control, risk_treated = _weighted_means(sample, sample.outcome)
    mu = np.where(sample.treated == 1, risk_treated, risk_control)
    variance = mu * (1 - mu)
    dmu_deta = np.ones_like(mu) if link == "identity" else variance
    X = sample.design_matrix()
    scores = (sample.weights * (sample.outcome - mu) * dmu_deta / variance)[:, None] * X
    information = (X * (sample.weights * dmu_deta ** 2 / variance)[:, None]).T @ X
    se, how = _robust_se(sample, scores, information, lm=False)
    if link == "identity":
        return risk_treated - risk_control, se, how
    return float(special.logit(risk_treated) - special.logit(risk_control)), se, how


def _po_scores(fitted: po.ProportionalOddsFit, codes: np.ndarray, x: np.ndarray,
               weights: np.ndarray) -> np.ndarray:
    """Each row's weighted score (cut-points, then beta) of logit P(Y <= j) = cut_j - beta x at the fit, for the
    sandwich's meat. For a row in category y, p = F(u) - F(l) with u = cut_y - beta x and l = cut_{y-1} - beta x
    (F the logistic distribution, cut_{-1} = -inf, cut_{k-1} = inf): d log p = (f(u) e_u - f(l) e_l) / p, e_u
    and e_l the gradients of u and l."""
    n, k = len(codes), fitted.cuts.size + 1
    rows = np.arange(n)
    cuts = np.concatenate([[-np.inf], fitted.cuts[0], [np.inf]])
    eta = fitted.coef[0] * x
    u, lo = cuts[codes + 1] - eta, cuts[codes] - eta
    F_u, F_l = special.expit(u), special.expit(lo)
    p = np.where(lo > 0, special.expit(-lo) - special.expit(-u), F_u - F_l)  # the accurate tail
    f_u, f_l = F_u * (1 - F_u), F_l * (1 - F_l)
    e_u, e_l = np.zeros((n, k)), np.zeros((n, k))
    e_u[:, k - 1] = e_l[:, k - 1] = -x
    top, bottom = codes == k - 1, codes == 0
    e_u[rows[~top], codes[~top]] = 1.0
    e_l[rows[~bottom], codes[~bottom] - 1] = 1.0
    return (weights * (f_u * e_u.T - f_l * e_l.T) / p).T


def _proportional_odds(sample: _Sample) -> tuple[float, float, str]:
    """The weighted proportional-odds model of the outcome on treatment, fitted by the project's fitter
    (proportional_odds_fit: Newton's method with the analytic Hessian); the treatment coefficient and its robust
    SE from the observed information and the rows' scores, as ordinal::clm and sandwich::vcovCL / sandwich()
    give them."""
    levels = np.unique(sample.outcome)
    if len(levels) < 2:
        raise AnalysisInputError(f"{sample.outcome_name}: every patient has the same value; there is no shift")
    codes, k = np.searchsorted(levels, sample.outcome), len(levels)
    w, x = sample.weights, sample.treated.astype(float)
    try:
        fitted = po.fit(codes, k, x[:, None], weights=w)
    except AnalysisInputError:
        raise AnalysisInputError(f"{sample.outcome_name}: the proportional-odds model did not converge") from None
    information = np.linalg.inv(fitted.covariance)
    se, how = _robust_se(sample, _po_scores(fitted, codes, x, w), information, lm=False, index=k - 1)
    return float(fitted.coef[0]), se, how


# --- results ----------------------------------------------------------------------------------------------

def _label(sample: _Sample) -> str:
    return "matched" if sample.weighting == "matching" else "IPW, ATT"


def _population(sample: _Sample, what: str) -> str:
    if sample.weighting == "matching":
        return f"{what} with the matching weights, in the matched sample"
    return (f"{what} with inverse-probability-of-treatment weights for the average treatment effect in the treated "
            "(ATT), from the same propensity model as the matching (treated 1, controls ps/(1 - ps)), in every "
            "patient, matched or not")


def _missing_note(dropped: int, outcome: str, unit: str = "patient") -> str:
    """'; 3 patients without mrs_90d left out', or for pairs '; 1 pair missing infarct_volume_ml left out'."""
    if dropped == 0:
        return ""
    plural = "" if dropped == 1 else "s"
    how = "without" if unit == "patient" else "missing"
    return f"; {dropped} {unit}{plural} {how} {outcome} left out"


def _base_details(sample: _Sample) -> dict[str, Any]:
    details: dict[str, Any] = {"n_treated": sample.n_treated, "n_control": sample.n_control,
                               "dropped_missing": sample.dropped, "weighting": sample.weighting,
                               "sum_weights_control": float(sample.weights[sample.treated == 0].sum())}
    if sample.cluster is not None:
        details["matched_sets"] = len(np.unique(sample.cluster))
    return details


def _wald(sample: _Sample, name: str, measure: str, beta: float, se: float, exponentiate: bool, method: str,
          details: dict[str, Any]) -> Result:
    """A Result with the Wald 95% interval (on the log scale for a ratio) and the two-sided z test."""
    low, high = beta - Z95 * se, beta + Z95 * se
    scale: Callable[[float], float] = math.exp if exponentiate else float
    key = "log_estimate" if exponentiate else "coefficient"
    return Result(f"{sample.outcome_name}: {name} ({_label(sample)})", scale(beta), scale(low), scale(high),
                  float(2 * stats.norm.sf(abs(beta / se))), method, sample.n, measure,
                  {**_base_details(sample), key: beta, "se": se, **details})


def log_volume_ratio(data: pd.DataFrame, outcome: str,
                     columns: MatchedColumns = MatchedColumns(), weighting: Weighting = "matching",
                     offset: float = 1.0) -> Result:
    """Ratio of geometric means of (volume + offset), treated over control, on the log scale.

    Matched, every matched set a 1:1 pair: the paired t-test of the within-pair differences of
    log(volume + offset) (R: t.test(x, y, paired = TRUE)); pairs missing either volume are left out. Matched
    1:k, or IPW: weighted least squares of log(volume + offset) on treatment (R: lm(weights =)) with a
    cluster-robust SE by matched set (vcovCL, HC1) or, for IPW, a robust HC0 SE (vcovHC(type = "HC0"))."""
    if offset <= 0:
        raise AnalysisInputError(f"offset {offset!r}: the log of volume + offset needs an offset above 0")
    sample = _sample(data, outcome, "volume", columns, weighting)
    y = np.log(sample.outcome + offset)
    transform = f"log({outcome} + {offset:g})"
    if weighting == "matching" and _is_paired(data, columns):
        return _paired_log_ratio(sample, y, transform, offset)
    beta, se, how = _weighted_least_squares(sample, y)
    method = (f"ratio of geometric means of ({outcome} + {offset:g} mL), treated over control: "
              f"{_population(sample, f'weighted least squares of {transform} on treatment')}; {how}; Wald 95% CI "
              f"and z test{_missing_note(sample.dropped, outcome)}")
    return _wald(sample, "ratio of geometric means", "ratio of geometric means", beta, se, True, method,
                 {"offset_ml": offset, "favours": "below 1 favours treated (smaller infarcts)"})


def _pairs(sample: _Sample, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The treated and control values of each complete 1:1 pair, in matched-set order."""
    assert sample.cluster is not None  # a matched sample
    frame = pd.DataFrame({"set": sample.cluster, "treated": sample.treated, "y": y})
    wide = frame.pivot_table(index="set", columns="treated", values="y", aggfunc="first")
    pairs = wide.reindex(columns=[1.0, 0.0]).dropna()
    return pairs[1.0].to_numpy(), pairs[0.0].to_numpy()


def _paired_log_ratio(sample: _Sample, y: np.ndarray, transform: str, offset: float) -> Result:
    treated, control = _pairs(sample, y)
    incomplete = _incomplete_pairs(sample)
    if len(treated) < 2:
        raise AnalysisInputError(f"{sample.outcome_name}: fewer than 2 matched pairs have it recorded")
    test = stats.ttest_rel(treated, control)
    ci = test.confidence_interval(0.95)
    mean = float(np.mean(treated - control))
    se = float(np.std(treated - control, ddof=1) / np.sqrt(len(treated)))
    method = (f"ratio of geometric means of ({sample.outcome_name} + {offset:g} mL), treated over control: paired "
              f"t-test of the within-pair differences in {transform} (every matched set a 1:1 pair), t interval with "
              f"{len(treated) - 1} df{_missing_note(incomplete, sample.outcome_name, 'pair')}")
    details = {**_base_details(sample), "log_estimate": mean, "se": se, "pairs": len(treated),
               "pairs_dropped": incomplete, "n_treated": len(treated), "n_control": len(control),
               "offset_ml": offset, "favours": "below 1 favours treated (smaller infarcts)"}
    return Result(f"{sample.outcome_name}: ratio of geometric means ({_label(sample)})", math.exp(mean),
                  math.exp(float(ci.low)), math.exp(float(ci.high)), float(test.pvalue), method,
                  2 * len(treated), "ratio of geometric means", details)


def _incomplete_pairs(sample: _Sample) -> int:
    """Matched pairs with at least one member left out for a missing value (counted from the kept rows: a pair
    with one member kept; a pair with both missing has no row here and is counted by the dropped rows)."""
    assert sample.cluster is not None
    sizes = pd.Series(sample.cluster).value_counts()
    one_left = int((sizes == 1).sum())
    both_missing = (sample.dropped - one_left) // 2
    return one_left + both_missing


def hodges_lehmann_shift(data: pd.DataFrame, outcome: str,
                         columns: MatchedColumns = MatchedColumns()) -> Result:
    """Hodges-Lehmann shift of the volume (mL), treated minus control, in the matched sample.

    Every matched set a 1:1 pair: the one-sample Hodges-Lehmann estimate of the within-pair differences (the
    median of their Walsh averages) with the Wilcoxon signed-rank interval and test, as R's
    wilcox.test(x, y, paired = TRUE, conf.int = TRUE) computes them. Otherwise (1:k): the two-sample estimate of
    treated against matched controls, as wilcox.test(x, y, conf.int = TRUE) (continuous.hodges_lehmann),
    unweighted and ignoring the matched sets."""
    sample = _sample(data, outcome, "volume", columns, "matching")
    if _is_paired(data, columns):
        return _paired_hodges_lehmann(sample)
    group = np.where(sample.treated == 1, "treated", "control")
    two_sample = hodges_lehmann(pd.DataFrame({"group": group, "volume": sample.outcome}), "volume", "group",
                                "treated", "control")
    method = (f"two-sample {two_sample.method}; treated against every matched control, the matching weights and "
              f"matched sets not used (the matched sets are not all 1:1 pairs)"
              f"{_missing_note(sample.dropped, outcome)}")
    return dataclasses.replace(two_sample, name=f"{outcome}: Hodges-Lehmann shift (matched)", method=method,
                               details={**_base_details(sample), **two_sample.details})


def _paired_hodges_lehmann(sample: _Sample) -> Result:
    treated, control = _pairs(sample, sample.outcome)
    incomplete = _incomplete_pairs(sample)
    differences = treated - control
    fit = _signed_rank(differences)
    if fit.exact:
        how = ("exact interval and test from the signed-rank distribution (fewer than 50 differences, no ties, "
               "no zero difference)")
    else:
        reasons = [r for r, hit in (("tied differences", fit.ties), ("zero differences", fit.zeros > 0),
                                    ("50 or more differences", fit.n >= EXACT_LIMIT)) if hit]
        how = (f"interval and test by the normal approximation with continuity correction and tie-corrected "
               f"variance ({', '.join(reasons)})")
        if fit.zeros:
            how += f"; {fit.zeros} zero difference{'s' if fit.zeros > 1 else ''} left out, as wilcox.test does"
    method = (f"Hodges-Lehmann estimate of the within-pair difference in {sample.outcome_name} (treated - control, "
              f"mL; every matched set a 1:1 pair): median of the Walsh averages, Wilcoxon signed-rank 95% CI and "
              f"test as R's wilcox.test(paired = TRUE, conf.int = TRUE): {how}"
              f"{_missing_note(incomplete, sample.outcome_name, 'pair')}")
    details = {**_base_details(sample), "pairs": len(differences), "pairs_dropped": incomplete,
               "n_treated": len(treated), "n_control": len(control), "interval": fit.interval,
               "zero_differences": fit.zeros, "favours": "below 0 favours treated (smaller infarcts)"}
    if fit.achieved_confidence is not None:
        details["achieved_confidence"] = fit.achieved_confidence
    return Result(f"{sample.outcome_name}: Hodges-Lehmann shift (matched)", fit.estimate, fit.low, fit.high,
                  fit.p_value, method, 2 * len(differences), "median difference", details)


@dataclass(frozen=True)
class _SignedRankFit:
    estimate: float
    low: float
    high: float
    p_value: float
    exact: bool
    n: int
    zeros: int
    ties: bool
    achieved_confidence: float | None = None

    @property
    def interval(self) -> str:
        return "exact" if self.exact else "normal approximation"


def _signed_rank(differences: np.ndarray) -> _SignedRankFit:
    """R's wilcox.test for one sample (the paired differences), two-sided, conf.int = TRUE.

    Zero differences are left out (ZEROES). With fewer than 50 left, no zeros and no tied |difference|: the
    exact signed-rank distribution, limits the qu-th smallest and largest Walsh averages (qu = qsignrank(0.025),
    at least 1), estimate the median Walsh average. Otherwise the normal approximation with continuity
    correction (p from the tie-corrected variance of the ranks of |difference|), the limits where the
    standardized statistic of the shifted differences crosses +-1.96."""
    zeros = int((differences == 0).sum())
    x = differences[differences != 0]
    n = len(x)
    if n == 0:
        raise AnalysisInputError("every within-pair difference is 0; the signed-rank interval is not defined")
    ranks = stats.rankdata(np.abs(x))
    ties = len(np.unique(ranks)) < n
    walsh = np.sort((x[:, None] + x[None, :])[np.triu_indices(n)] / 2)
    statistic = float(ranks[x > 0].sum())
    estimate = float(np.median(walsh))
    if n < EXACT_LIMIT and not ties and not zeros:
        counts = _signed_rank_counts(n)
        cdf = np.cumsum(counts) / 2.0 ** n
        tail = counts[int(statistic):].sum() if statistic > n * (n + 1) / 4 else counts[:int(statistic) + 1].sum()
        p = min(2 * float(tail) / 2.0 ** n, 1.0)
        qu = max(int(np.argmax(cdf >= 0.025 - 10 * np.finfo(float).eps)), 1)  # qsignrank, with R's fuzz
        low, high = float(walsh[qu - 1]), float(walsh[len(walsh) - qu])
        return _SignedRankFit(estimate, low, high, p, True, n, zeros, ties, 1 - 2 * float(cdf[qu - 1]))
    tie_sizes = np.unique(ranks, return_counts=True)[1]
    sigma = math.sqrt(n * (n + 1) * (2 * n + 1) / 24 - float(np.sum(tie_sizes ** 3 - tie_sizes)) / 48)
    z = statistic - n * (n + 1) / 4
    p = float(2 * stats.norm.sf(abs((z - np.sign(z) * 0.5) / sigma)))
    low, high = _signed_rank_interval(x, walsh)
    return _SignedRankFit(estimate, low, high, p, False, n, zeros, ties)


def _signed_rank_counts(n: int) -> np.ndarray:
    """The number of subsets of {1..n} with each rank sum 0..n(n+1)/2 (the coefficients of prod (1 + q^i)),
    exact in 64-bit integers for n < 50 (their total 2^n < 2^63)."""
    counts = np.zeros(n * (n + 1) // 2 + 1, dtype=np.int64)
    counts[0] = 1
    for i in range(1, n + 1):
        counts[i:] = counts[i:] + counts[:-i].copy()
    return counts


def _signed_rank_interval(x: np.ndarray, walsh: np.ndarray) -> tuple[float, float]:
    """R's asymptotic interval (wilcox.test, exact = FALSE, correct = TRUE): a limit is the shift d at which
    (V(d) - n(n+1)/4 - 0.5 sign) / sigma crosses the normal quantile, V(d) the signed-rank statistic of x - d.

    Between two consecutive distinct Walsh averages no x - d is 0 and |x_i - d| ties |x_j - d| only where
    x_i = x_j, so V(d) is the number of Walsh averages above d and sigma has the ties among equal differences;
    the crossing is at a Walsh average, found for each at once."""
    n = len(x)
    equal_sizes = np.unique(x, return_counts=True)[1]
    sigma = math.sqrt(n * (n + 1) * (2 * n + 1) / 24 - float(np.sum(equal_sizes ** 3 - equal_sizes)) / 48)
    values = np.unique(walsh)
    z = (len(walsh) - np.searchsorted(walsh, values, side="right")) - n * (n + 1) / 4  # just above each value
    standardized = (z - np.sign(z) * 0.5) / sigma
    limits = []
    for zq in (Z95, -Z95):
        below = np.flatnonzero(standardized < zq)
        limits.append(float(values[below[0]]) if len(below) else float(values[-1]))
    return limits[0], limits[1]


def mrs_shift(data: pd.DataFrame, outcome: str, columns: MatchedColumns = MatchedColumns(),
              weighting: Weighting = "matching") -> Result:
    """Common odds ratio for a shift toward a better (lower) mRS, treated against control, from a weighted
    proportional-odds model (R: ordinal::clm(weights =) or MASS::polr) with a cluster-robust SE by matched set
    (sandwich::vcovCL) or, for IPW, a robust HC0 SE (sandwich::sandwich). Above 1 favours treated, as in
    ordinal.proportional_odds: logit P(mRS <= j) = cut_j - beta treated, common OR = exp(-beta)."""
    sample = _sample(data, outcome, "mrs", columns, weighting)
    beta, se, how = _proportional_odds(sample)
    method = (f"common odds ratio for a shift toward a better (lower) {outcome}, treated against control: "
              f"{_population(sample, 'proportional-odds logistic regression on treatment')}; {how}; Wald 95% CI "
              f"and z test{_missing_note(sample.dropped, outcome)}")
    return _wald(sample, "ordinal shift", "common odds ratio", -beta, se, True, method,
                 {"favours": "common odds ratio > 1 favours treated (a shift toward lower, better mRS)",
                  "levels": [int(v) for v in np.unique(sample.outcome)]})


def risk_difference(data: pd.DataFrame, outcome: str, columns: MatchedColumns = MatchedColumns(),
                    weighting: Weighting = "matching") -> Result:
    """Risk difference (treated - control) of a yes/no outcome (1 = yes) from a weighted binomial GLM with the
    identity link (R: glm(weights =, family = quasibinomial("identity"))) with a cluster-robust SE by matched set
    (vcovCL) or, for IPW, a robust HC0 SE (vcovHC(type = "HC0")).

    With no events (or only events) in a group the GLM has no finite score there: the difference in weighted
    proportions then comes with Newcombe's hybrid score interval and no p-value."""
    sample = _sample(data, outcome, "binary", columns, weighting)
    risks = _risks(sample)
    degenerate = _degenerate_group(sample)
    if degenerate:
        return _newcombe_risk_difference(sample, risks, degenerate)
    beta, se, how = _binomial_glm(sample, "identity")
    return _wald(sample, "risk difference", "risk difference", beta, se, False,
                 f"risk difference (treated - control): {_population(sample, 'binomial GLM with identity link')}; "
                 f"{how}; Wald 95% CI and z test{_missing_note(sample.dropped, outcome)}", risks)


def odds_ratio(data: pd.DataFrame, outcome: str, columns: MatchedColumns = MatchedColumns(),
               weighting: Weighting = "matching") -> Result:
    """Odds ratio (treated / control) of a yes/no outcome (1 = yes) from a weighted logistic regression
    (R: glm(weights =, family = quasibinomial)) with a cluster-robust SE by matched set (vcovCL) or, for IPW, a
    robust HC0 SE (vcovHC(type = "HC0")).

    Raises OddsRatioNotEstimable where a group has no events or only events: the odds ratio would be 0 or
    infinite."""
    sample = _sample(data, outcome, "binary", columns, weighting)
    degenerate = _degenerate_group(sample)
    if degenerate:
        raise OddsRatioNotEstimable(f"{outcome}: {degenerate}; the odds ratio would be 0 or infinite, so it is not "
                                    "estimated (see the risk difference)")
    beta, se, how = _binomial_glm(sample, "logit")
    return _wald(sample, "odds ratio", "odds ratio", beta, se, True,
                 f"odds ratio (treated / control): {_population(sample, 'logistic regression (binomial GLM)')}; "
                 f"{how}; Wald 95% CI and z test{_missing_note(sample.dropped, outcome)}", _risks(sample))


def _risks(sample: _Sample) -> dict[str, Any]:
    risk_control, risk_treated = _weighted_means(sample, sample.outcome)
    return {"risk_treated": risk_treated, "risk_control": risk_control,
            "events_treated": int(sample.outcome[sample.treated == 1].sum()),
            "events_control": int(sample.outcome[sample.treated == 0].sum())}


def _degenerate_group(sample: _Sample) -> str:
    """Which group has no events or only events ('' if neither)."""
    patients = "matched " if sample.weighting == "matching" else ""
    for group, label in ((1, "treated patients"), (0, "controls")):
        events = int(sample.outcome[sample.treated == group].sum())
        n = int((sample.treated == group).sum())
        if events in (0, n):
            return f"{'none' if events == 0 else 'every one'} of the {n} {patients}{label} had it"
    return ""


def _wilson(p: float, size: float) -> tuple[float, float]:
    """Wilson's score interval for a proportion p observed in `size` patients (size may be an effective
    sample size, not a whole number)."""
    z2 = Z95 ** 2
    centre = (p + z2 / (2 * size)) / (1 + z2 / size)
    half = Z95 * math.sqrt(p * (1 - p) / size + z2 / (4 * size ** 2)) / (1 + z2 / size)
    return centre - half, centre + half


def _newcombe_risk_difference(sample: _Sample, risks: dict[str, Any], degenerate: str) -> Result:
    """The difference in weighted proportions with Newcombe's hybrid score interval (his method 10): Wilson
    limits per group on Kish's effective sample size (sum w)^2 / sum w^2, which is the number of patients
    when the weights are equal (1:1 matching)."""
    parts = []
    for group in (1, 0):
        w = sample.weights[sample.treated == group]
        size = float(w.sum() ** 2 / (w ** 2).sum())
        p = float(w @ sample.outcome[sample.treated == group] / w.sum())
        parts.append((p, size, *_wilson(p, size)))
    (p1, n1, l1, u1), (p0, n0, l0, u0) = parts
    rd = p1 - p0
    low, high = rd - math.sqrt((p1 - l1) ** 2 + (u0 - p0) ** 2), rd + math.sqrt((u1 - p1) ** 2 + (p0 - l0) ** 2)
    method = (f"risk difference (treated - control) in weighted proportions, {_label(sample)} sample, with "
              f"Newcombe's hybrid score 95% CI (Wilson limits per group on Kish's effective sample size, the "
              f"number of patients when the weights are equal); {degenerate}, so the binomial GLM and its Wald "
              f"interval are not defined: no p-value, and the matched sets are not accounted for"
              f"{_missing_note(sample.dropped, sample.outcome_name)}")
    details = {**_base_details(sample), **risks, "effective_n_treated": n1, "effective_n_control": n0}
    return Result(f"{sample.outcome_name}: risk difference ({_label(sample)})", rd, low, high, None, method, sample.n,
                  "risk difference", details)


# --- everything at once -----------------------------------------------------------------------------------

@dataclass(frozen=True)
class NotEstimated:
    """An analysis that was refused, and why."""

    name: str
    reason: str


@dataclass(frozen=True)
class MatchedComparison:
    """Every analysis of the matched comparison, and the IPW sensitivity analysis, in order; the ones refused
    (an odds ratio with no events in a group) in not_estimated."""

    results: tuple[Result, ...]
    not_estimated: tuple[NotEstimated, ...] = field(default_factory=tuple)

    def rows(self) -> list[dict[str, Any]]:
        """One row per result: name, analysis, measure, estimate, CI, p, n treated, n control, method."""
        return [{"name": r.name, "analysis": _analysis(r), "measure": r.measure, "estimate": r.estimate,
                 "ci_low": r.ci_low, "ci_high": r.ci_high, "p_value": r.p_value,
                 "n_treated": r.details["n_treated"], "n_control": r.details["n_control"],
                 "dropped_missing": r.details["dropped_missing"], "method": r.method} for r in self.results]

    def to_frame(self) -> pd.DataFrame:
        return pd.DataFrame(self.rows())

    def to_json(self) -> dict[str, Any]:
        """The rows, each with its result's details, and the refused analyses; no NaN or infinity."""
        results = [{**row, **{key: r.to_json()[key] for key in ("estimate", "ci_low", "ci_high", "p_value")},
                    "details": r.details} for row, r in zip(self.rows(), self.results, strict=True)]
        return {"results": results, "not_estimated": [dataclasses.asdict(item) for item in self.not_estimated]}


def _analysis(result: Result) -> str:
    return "matched" if result.details["weighting"] == "matching" else "IPW sensitivity (ATT)"


def matched_comparison(data: pd.DataFrame, *, infarct_volume: str, mrs: str, death: str, sich: str,
                       columns: MatchedColumns = MatchedColumns(), good_outcome_max_mrs: int = 2,
                       offset: float = 1.0, ipw_sensitivity: bool = True) -> MatchedComparison:
    """The matched comparison: infarct volume (ratio of geometric means and Hodges-Lehmann shift), the mRS shift,
    and the binary outcomes (mRS 0 to good_outcome_max_mrs, death, sICH: risk difference and odds ratio); then,
    with ipw_sensitivity, the same models with ATT weights in every patient."""
    derived = f"{mrs}_0_{good_outcome_max_mrs}"
    if derived in data.columns:
        raise AnalysisInputError(f"the dataset already has a column {derived!r}, the name of the derived good "
                                 f"outcome ({mrs} <= {good_outcome_max_mrs}); rename it")
    values = _outcome_values(data, mrs, "mrs")
    frame = data.assign(**{derived: (values <= good_outcome_max_mrs).astype(float).where(values.notna())})
    results: list[Result] = []
    refused: list[NotEstimated] = []
    weightings: tuple[Weighting, ...] = ("matching", "ipw") if ipw_sensitivity else ("matching",)
    for weighting in weightings:
        results.append(log_volume_ratio(frame, infarct_volume, columns, weighting, offset))
        if weighting == "matching":
            results.append(hodges_lehmann_shift(frame, infarct_volume, columns))
        results.append(mrs_shift(frame, mrs, columns, weighting))
        for outcome in (derived, death, sich):
            results.append(risk_difference(frame, outcome, columns, weighting))
            try:
                results.append(odds_ratio(frame, outcome, columns, weighting))
            except OddsRatioNotEstimable as refusal:
                label = "matched" if weighting == "matching" else "IPW, ATT"
                refused.append(NotEstimated(f"{outcome}: odds ratio ({label})", str(refusal)))
    return MatchedComparison(tuple(results), tuple(refused))
