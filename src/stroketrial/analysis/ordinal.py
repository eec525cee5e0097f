"""The ordinal shift of the 90-day mRS: proportional odds, its assumption, and assumption-free alternatives.

The common odds ratio is reported as stroke trials report it: above 1 favours the
treatment arm (a shift toward lower, better mRS). The proportional-odds model (`proportional_odds_fit`, the
power simulation's Newton fitter) is P(mRS <= j) = F(theta_j - x beta), as MASS::polr and ordinal::clm, so a
treatment coefficient beta < 0 means lower mRS and the reported common OR is exp(-beta).

Every Result here says in details["favours"] which way its estimate favours which arm. The
proportional-odds fit and its test give every coefficient and cut-point in details with full=True,
and take frequency weights (a column of counts, as MASS::polr's weights) with weights=.

SciPy's statistics are imported by the functions that use them: the proportional-odds fit needs none, and
`stroketrial analyze ordinal` starts faster without them.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np

from . import proportional_odds_fit as po
from .dataset import (Contrast, Dataset, cells, contrast, labels, numbers, require_columns, require_estimable,
                      shown)
from .result import AnalysisInputError, Result

if TYPE_CHECKING:
    import pandas as pd

Z95 = po.Z95
PARAMETERIZATION = ("logit P(mRS <= j) = cut_j - (coefficients . x), as MASS::polr and ordinal::clm: a coefficient "
                    "below 0 means lower mRS; 'treated' is 1 in the treatment arm")


def _codes(y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    levels = np.array(sorted(set(y.tolist())))  # np.unique imports numpy.ma: 25 ms, more than the fit
    if len(levels) < 2:
        raise AnalysisInputError("the outcome takes a single value; there is no shift to estimate")
    return np.searchsorted(levels, y), levels


def _weighted_contrast(df: Dataset, outcome: str, arm: str, treatment: str, control: str,
                       adjust: Sequence[str], weights: str | None) -> tuple[Contrast, np.ndarray]:
    """The contrast for the mRS and each usable row's frequency weight (1 without `weights`); rows of weight 0
    are left out."""
    if weights is None:
        c = contrast(df, outcome, arm, treatment, control, adjust, kind="mrs")
        return c, np.ones(c.n)
    require_columns(df, weights, arm)
    if weights in (outcome, arm, *adjust):
        raise AnalysisInputError(f"column {weights!r} cannot be both the weights and the outcome, arm or a covariate")
    rows = np.array([a in (treatment, control) for a in labels(cells(df, arm))], dtype=bool)
    raw = cells(df, weights)[rows]
    values, _ = numbers(raw)
    bad = ~np.isfinite(values) | (values < 0)
    if bad.any():
        raise AnalysisInputError(f"column {weights!r} holds {shown(raw[bad][0])!r}; a frequency weight is a number, "
                                 "0 or more")
    c = contrast(df, outcome, arm, treatment, control, [*adjust, weights], kind="mrs")
    w = c.covariate_values[:, c.covariate_names.index(weights)]
    keep = w > 0
    return c.keep(keep, drop_covariate=weights), w[keep]


def _count(x: float) -> int | float:
    return round(x) if abs(x - round(x)) < 1e-9 else float(x)


def _fit(c: Contrast, weights: np.ndarray | None = None
         ) -> tuple[po.ProportionalOddsFit, np.ndarray, np.ndarray, np.ndarray]:
    """The proportional-odds fit on the arm (first) and the covariates, the outcome codes, the levels and X."""
    codes, levels = _codes(c.outcome)
    require_estimable(c)
    X = np.column_stack([c.treated, c.covariate_values])
    return po.fit(codes, len(levels), X, weights), codes, levels, X


def _cut_labels(levels: np.ndarray) -> list[str]:
    return [f"{int(lo)}|{int(hi)}" for lo, hi in itertools.pairwise(levels)]


def _full_details(fitted: po.ProportionalOddsFit, names: list[str], levels: np.ndarray) -> dict[str, object]:
    """Every coefficient and cut-point of the fit, with standard errors."""
    se, cut_se = fitted.coef_se, fitted.cut_se[0]
    return {"coefficients": {name: {"estimate": float(fitted.coef[i]), "se": float(se[i])}
                             for i, name in enumerate(names)},
            "cutpoints": {label: {"estimate": float(fitted.cuts[0, j]), "se": float(cut_se[j])}
                          for j, label in enumerate(_cut_labels(levels))},
            "parameterization": PARAMETERIZATION}


def proportional_odds(df: Dataset, outcome: str, arm: str, treatment: str, control: str,
                      adjust: Sequence[str] = (), profile: bool = True, weights: str | None = None,
                      full: bool = False) -> Result:
    """Common odds ratio for a shift toward better mRS (above 1 favours treatment), Wald and profile CIs.

    weights: a column of frequency weights (each row counts that many patients, as MASS::polr's weights);
    n is then their sum. full: every coefficient and cut-point, with standard errors, in details."""
    c, w = _weighted_contrast(df, outcome, arm, treatment, control, adjust, weights)
    fitted, codes, levels, X = _fit(c, None if weights is None else w)
    beta, se = float(fitted.coef[0]), float(fitted.coef_se[0])
    wald = (np.exp(-(beta + Z95 * se)), np.exp(-(beta - Z95 * se)))
    details = {"wald_ci": [float(wald[0]), float(wald[1])], "log_or": -beta, "se_log_or": se,
               "llf": float(fitted.llf), "levels": [int(v) for v in levels], "dropped_missing": c.dropped,
               "n_treatment": _count(float(w @ c.treated)), "n_control": _count(float(w @ (1 - c.treated))),
               "adjusted_for": list(adjust),
               "favours": f"common odds ratio > 1 favours {treatment} (a shift toward lower, better mRS)"}
    ci = wald
    method = "proportional-odds logistic regression" + (f" adjusted for {', '.join(adjust)}" if adjust else "")
    n: int | float = c.n
    if weights is not None:
        n = _count(float(w.sum()))
        details.update(weights=weights, rows=c.n)
        method += f", frequency weights {weights}"
    if profile:
        low, high = po.profile_interval(codes, len(levels), X, 0, fitted, None if weights is None else w)
        ci = (math.exp(-high), math.exp(-low))
        details["profile_ci"] = [float(ci[0]), float(ci[1])]
        method += "; profile-likelihood 95% CI"
    if full:
        details.update(_full_details(fitted, ["treated", *c.covariate_names], levels))
    p = po.p_value(beta / se)
    return Result("ordinal shift (mRS), " + ("adjusted" if adjust else "unadjusted"), float(np.exp(-beta)),
                  float(ci[0]), float(ci[1]), p, method, round(n), "common odds ratio", details)


def proportional_odds_test(df: Dataset, outcome: str, arm: str, treatment: str, control: str,
                           adjust: Sequence[str] = (), weights: str | None = None, full: bool = False) -> Result:
    """Likelihood-ratio test of proportional odds for the arm: the PO model against the model in which
    the arm's effect differs at every cut-point (as ordinal::nominal_test does for the arm, and
    ordinal::clm(..., nominal = ~ arm) against clm without it).

    With `adjust`, both models hold the same covariates as the primary (adjusted) model, each with one common
    coefficient: only the arm's proportional odds is relaxed. `weights` as for proportional_odds.
    full: the cut-points and coefficients of both models (estimates only) in details."""
    from scipy import stats

    c, w = _weighted_contrast(df, outcome, arm, treatment, control, adjust, weights)
    w_fit = None if weights is None else w
    proportional, codes, levels, X = _fit(c, w_fit)
    k = len(levels)
    # the relaxed model starts where the PO model ends: the treatment arm's cut-points shifted by its coefficient
    cuts, beta = proportional.cuts[0], proportional.coef[0]
    relaxed = po.fit(codes, k, X[:, 1:], w_fit, groups=c.treated.astype(int), n_groups=2,
                     start=np.concatenate([cuts, cuts - beta, proportional.coef[1:]]))
    lr = max(2 * (relaxed.llf - proportional.llf), 0.0)
    df_test = k - 2
    p = float(stats.chi2.sf(lr, df_test))
    method = f"likelihood-ratio test, {df_test} df (arm effect free at each cut-point)"
    if adjust:
        method += f"; both models adjusted for {', '.join(adjust)}"
    details: dict[str, object] = {"df": df_test, "adjusted_for": list(adjust), "llf_proportional": proportional.llf,
                                  "llf_relaxed": relaxed.llf,
                                  "favours": "none: a test of the proportional-odds assumption for the arm, not of "
                                             "a treatment effect"}
    n: int | float = c.n
    if weights is not None:
        n = _count(float(w.sum()))
        details.update(weights=weights, rows=c.n)
    if full:
        labels, names = _cut_labels(levels), list(c.covariate_names)
        details["proportional"] = {"cutpoints": dict(zip(labels, map(float, proportional.cuts[0]), strict=True)),
                                   "coefficients": dict(zip(["treated", *names], map(float, proportional.coef),
                                                            strict=True))}
        details["relaxed"] = {"cutpoints_control": dict(zip(labels, map(float, relaxed.cuts[0]), strict=True)),
                              "cutpoints_treatment": dict(zip(labels, map(float, relaxed.cuts[1]), strict=True)),
                              "coefficients": dict(zip(names, map(float, relaxed.coef), strict=True))}
        details["parameterization"] = PARAMETERIZATION
    return Result("proportional-odds assumption", lr, float("nan"), float("nan"), p, method, round(n),
                  "chi-square", details)


def _better(lower_is_better: bool) -> str:
    return "lower values are better" if lower_is_better else "higher values are better"


def _win_odds_parts(a: np.ndarray, b: np.ndarray) -> tuple[float, float]:
    """theta = P(a better) + P(tie)/2 (higher is better) and its Brunner-Munzel placement variance."""
    from scipy import stats

    n1, n2 = len(a), len(b)
    ranks = stats.rankdata(np.concatenate([a, b]))
    r1, r2 = ranks[:n1], ranks[n1:]
    theta = (r1.mean() - (n1 + 1) / 2) / n2
    s1 = np.var(r1 - stats.rankdata(a), ddof=1) / n2 ** 2
    s2 = np.var(r2 - stats.rankdata(b), ddof=1) / n1 ** 2
    return float(theta), float(s1 / n1 + s2 / n2)


def win_odds(df: pd.DataFrame, outcome: str, arm: str, treatment: str, control: str,
             lower_is_better: bool = True, strata: str | None = None) -> Result:
    """Win odds: (wins + ties/2) / (losses + ties/2) for treatment over control, comparing every pair.

    The probability index theta = P(treatment better) + P(tie)/2 has its variance by the
    Brunner-Munzel placement estimator; the interval for the odds theta/(1-theta) is on the
    log scale by the delta method (Dong G et al., Stat Med 2020;39:2058-2070; the generalized
    odds ratio of Agresti, Biometrics 1980, is wins/losses, reported in details; see also
    generalized_odds_ratio for its own interval).

    strata: a column; pairs are then formed within each stratum only, and the stratum log win odds are
    combined with inverse-variance weights (each stratum's log win odds and Brunner-Munzel delta-method
    variance as above; weight 1/variance; fixed-effect pooling, the pooling genodds uses for strata). This is
    not the Mantel-Haenszel-type stratum weighting (by stratum size) of Dong G et al., J Biopharm Stat 2018.
    The p-value is then the Wald z test of the pooled log win odds, and details hold each stratum and
    Cochran's Q test of homogeneity across strata.
    """
    from scipy import stats

    if strata is not None:
        return _stratified_win_odds(df, outcome, arm, treatment, control, lower_is_better, strata)
    c = contrast(df, outcome, arm, treatment, control, kind="numeric")
    sign = -1.0 if lower_is_better else 1.0
    a, b = sign * c.outcome[c.treated == 1], sign * c.outcome[c.treated == 0]
    n1, n2 = len(a), len(b)
    if n1 < 2 or n2 < 2:
        raise AnalysisInputError("each arm needs at least 2 patients with the outcome")
    theta, var_theta = _win_odds_parts(a, b)
    se_log = np.sqrt(var_theta) / (theta * (1 - theta))
    wo = theta / (1 - theta)
    diff = a[:, None] - b[None, :]
    wins, losses = float((diff > 0).mean()), float((diff < 0).mean())
    p = float(stats.brunnermunzel(a, b).pvalue)
    return Result("win odds", float(wo), float(wo * np.exp(-Z95 * se_log)), float(wo * np.exp(Z95 * se_log)), p,
                  "win odds (ties counted half) with Brunner-Munzel variance; p from the Brunner-Munzel test",
                  n1 + n2, "win odds", {"theta": float(theta), "wins": wins, "losses": losses,
                                         "ties": 1 - wins - losses,
                                         "generalized_odds_ratio": wins / losses if losses else float("inf"),
                                         "favours": f"win odds > 1 favours {treatment} "
                                                    f"({_better(lower_is_better)})"})


def _stratified_win_odds(df: pd.DataFrame, outcome: str, arm: str, treatment: str, control: str,
                         lower_is_better: bool, strata: str) -> Result:
    from scipy import stats

    c = contrast(df, outcome, arm, treatment, control, kind="numeric")  # checks the columns and arms
    require_columns(df, strata)
    stratum_labels = df[strata].astype("string")
    sign = -1.0 if lower_is_better else 1.0
    rows: list[dict[str, object]] = []
    n = 0
    for level in sorted(stratum_labels.dropna().unique()):
        try:
            part = contrast(df[stratum_labels == level], outcome, arm, treatment, control, kind="numeric")
        except AnalysisInputError as error:
            raise AnalysisInputError(f"stratum {strata} = {level!r}: {error}") from error
        a, b = sign * part.outcome[part.treated == 1], sign * part.outcome[part.treated == 0]
        if len(a) < 2 or len(b) < 2:
            raise AnalysisInputError(f"stratum {strata} = {level!r}: each arm needs at least 2 patients with the "
                                     "outcome")
        n += len(a) + len(b)
        theta, var_theta = _win_odds_parts(a, b)
        if not 0 < theta < 1 or var_theta <= 0:
            raise AnalysisInputError(f"stratum {strata} = {level!r}: one arm wins or ties every pair, so its log win "
                                     "odds has no variance; merge it with another stratum")
        rows.append({"stratum": str(level), "n_treatment": len(a), "n_control": len(b),
                     "win_odds": theta / (1 - theta), "log_win_odds": float(np.log(theta / (1 - theta))),
                     "se_log_win_odds": float(np.sqrt(var_theta) / (theta * (1 - theta)))})
    log_wo = np.array([r["log_win_odds"] for r in rows], dtype=float)
    weight = 1 / np.array([r["se_log_win_odds"] for r in rows], dtype=float) ** 2
    pooled, se = float(weight @ log_wo / weight.sum()), float(np.sqrt(1 / weight.sum()))
    for r, share in zip(rows, weight / weight.sum(), strict=True):
        r["weight"] = float(share)
    q = float(weight @ (log_wo - pooled) ** 2)
    return Result("win odds, stratified", float(np.exp(pooled)), float(np.exp(pooled - Z95 * se)),
                  float(np.exp(pooled + Z95 * se)), po.p_value(pooled / se),
                  f"win odds (ties counted half) stratified by {strata}: stratum log win odds with Brunner-Munzel "
                  "variance, combined with inverse-variance weights; Wald z test", n, "win odds",
                  {"log_win_odds": pooled, "se_log_win_odds": se, "strata": rows, "heterogeneity_q": q,
                   "heterogeneity_df": len(rows) - 1,
                   "heterogeneity_p": float(stats.chi2.sf(q, len(rows) - 1)) if len(rows) > 1 else float("nan"),
                   "dropped_missing_stratum": int(c.n - n),
                   "favours": f"win odds > 1 favours {treatment} ({_better(lower_is_better)})"})


def generalized_odds_ratio(df: pd.DataFrame, outcome: str, arm: str, treatment: str, control: str,
                           lower_is_better: bool = True) -> Result:
    """Agresti's generalized odds ratio: P(treatment better) / P(control better) over every treatment-control
    pair, tied pairs left out (Agresti A, Generalized odds ratios for ordinal data, Biometrics 1980;36:59-67).

    Its standard error is Agresti's delta-method one for the log ratio, as the R package genodds gives it
    (genodds(..., ties = "drop"), SE of log(odds)). With Pw, Pl the proportions of pairs won and lost by the
    treatment arm and, for treatment patient i, w_i and l_i the proportions of control patients that i beats
    and loses to (for control patient j, w_j and l_j the proportions of treatment patients that beat and lose
    to j):
        var(log GenOR) = sum_i (w_i/Pw - l_i/Pl)^2 / n_T^2 + sum_j (w_j/Pw - l_j/Pl)^2 / n_C^2,
    the same as genodds' SE(odds)^2 / odds^2 = (2 / (Pd odds))^2 sum p (odds Rd - Rs)^2 / N over the 2 x K
    table. The interval is exp(log GenOR +- 1.96 SE) and p the Wald z test of log GenOR = 0.
    """
    c = contrast(df, outcome, arm, treatment, control, kind="numeric")
    sign = -1.0 if lower_is_better else 1.0
    a, b = np.sort(sign * c.outcome[c.treated == 1]), np.sort(sign * c.outcome[c.treated == 0])
    n1, n2 = len(a), len(b)
    if n1 < 1 or n2 < 1:
        raise AnalysisInputError("each arm needs a patient with the outcome")
    # for each treatment patient, the share of control patients below (beaten) and above (beating) them
    beats_t, loses_t = np.searchsorted(b, a, side="left") / n2, (n2 - np.searchsorted(b, a, side="right")) / n2
    # for each control patient, the share of treatment patients above (beating) and below them
    beaten_c, beats_c = (n1 - np.searchsorted(a, b, side="right")) / n1, np.searchsorted(a, b, side="left") / n1
    won, lost = float(beats_t.mean()), float(loses_t.mean())
    if won == 0 or lost == 0:
        raise AnalysisInputError("one arm wins or ties every pair; the generalized odds ratio is 0 or infinite")
    variance = (np.sum((beats_t / won - loses_t / lost) ** 2) / n1 ** 2
                + np.sum((beaten_c / won - beats_c / lost) ** 2) / n2 ** 2)
    log_gor, se = float(np.log(won / lost)), float(np.sqrt(variance))
    return Result("generalized odds ratio", won / lost, float(np.exp(log_gor - Z95 * se)),
                  float(np.exp(log_gor + Z95 * se)), po.p_value(log_gor / se),
                  "generalized odds ratio (Agresti 1980: wins / losses, tied pairs left out), delta-method SE of "
                  "the log ratio (as genodds, ties = \"drop\"); Wald z test", n1 + n2, "generalized odds ratio",
                  {"log_gor": log_gor, "se_log_gor": se, "wins": won, "losses": lost, "ties": 1 - won - lost,
                   "favours": f"generalized odds ratio > 1 favours {treatment} "
                              f"({_better(lower_is_better)})"})


def mann_whitney(df: pd.DataFrame, outcome: str, arm: str, treatment: str, control: str,
                 lower_is_better: bool = True) -> Result:
    """Wilcoxon-Mann-Whitney test; the estimate is P(treatment value higher) + P(tie)/2 whichever way is better
    (lower_is_better only sets details["favours"])."""
    from scipy import stats

    c = contrast(df, outcome, arm, treatment, control, kind="numeric")
    a, b = c.outcome[c.treated == 1], c.outcome[c.treated == 0]
    test = stats.mannwhitneyu(a, b, alternative="two-sided", method="asymptotic", use_continuity=True)
    auc = float(test.statistic / (len(a) * len(b)))
    winner = control if lower_is_better else treatment
    return Result("Wilcoxon-Mann-Whitney", auc, float("nan"), float("nan"), float(test.pvalue),
                  "Wilcoxon-Mann-Whitney rank-sum test (normal approximation with tie and continuity correction); "
                  "estimate: P(treatment > control) + P(tie)/2", c.n, "probability index",
                  {"U": float(test.statistic),
                   "favours": f"probability index > 0.5 favours {winner}: it is P({treatment} value higher than "
                              f"{control}) + P(tie)/2, and {_better(lower_is_better)}"})


UTILITY_WEIGHTS = (1.0, 0.91, 0.76, 0.65, 0.33, 0.0, 0.0)  # Chaisinanunkul N et al., Stroke 2015;46:2238-43


def utility_weighted(df: pd.DataFrame, outcome: str, arm: str, treatment: str, control: str) -> Result:
    """Mean utility-weighted mRS, treatment minus control, with a Welch interval."""
    from scipy import stats

    c = contrast(df, outcome, arm, treatment, control, kind="mrs")
    utility = np.asarray(UTILITY_WEIGHTS)[c.outcome.astype(int)]
    a, b = utility[c.treated == 1], utility[c.treated == 0]
    test = stats.ttest_ind(a, b, equal_var=False)
    ci = test.confidence_interval(0.95)
    return Result("utility-weighted mRS", float(a.mean() - b.mean()), float(ci.low), float(ci.high),
                  float(test.pvalue), "difference in mean utility-weighted mRS (weights 1.0, 0.91, 0.76, 0.65, 0.33, "
                  "0, 0; Chaisinanunkul et al., Stroke 2015), Welch t interval", c.n, "mean difference",
                  {"mean_treatment": float(a.mean()), "mean_control": float(b.mean()),
                   "favours": f"mean difference > 0 favours {treatment} (higher utility is better)"})
