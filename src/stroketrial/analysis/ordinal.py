"""The ordinal shift of the 90-day mRS: proportional odds, its assumption, and assumption-free alternatives.

The common odds ratio is reported as stroke trials report it: above 1 favours the
treatment arm (a shift toward lower, better mRS). statsmodels' OrderedModel models
P(mRS <= j) = F(theta_j - x beta), as MASS::polr and ordinal::clm do, so a treatment coefficient
beta < 0 means lower mRS and the reported common OR is exp(-beta).

Every Result here says in details["favours"] which way its estimate favours which arm. The
proportional-odds fit and its test give every coefficient and cut-point in details with full=True,
and take frequency weights (a column of counts, as MASS::polr's weights) with weights=.
"""

from __future__ import annotations

import dataclasses
import itertools
import warnings
from collections.abc import Sequence

import numpy as np
import pandas as pd
from scipy import optimize, special, stats
from statsmodels.miscmodels.ordinal_model import OrderedModel
from statsmodels.tools.sm_exceptions import ConvergenceWarning

from .dataset import Contrast, contrast, require_columns
from .result import AnalysisInputError, Result

Z95 = stats.norm.ppf(0.975)
CHI95 = stats.chi2.ppf(0.95, 1)
PARAMETERIZATION = ("logit P(mRS <= j) = cut_j - (coefficients . x), as MASS::polr and ordinal::clm: a coefficient "
                    "below 0 means lower mRS; 'treated' is 1 in the treatment arm")


def _codes(y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    levels = np.unique(y)
    if len(levels) < 2:
        raise AnalysisInputError("the outcome takes a single value; there is no shift to estimate")
    return np.searchsorted(levels, y), levels


class _WeightedOrderedModel(OrderedModel):
    """OrderedModel whose log-likelihood counts each row `weight` times (frequency weights, as MASS::polr's
    weights); its score and Hessian, numerical derivatives of that log-likelihood, follow."""

    def __init__(self, endog, exog, weights: np.ndarray, **kwds):
        self.frequency_weights = np.asarray(weights, float)
        super().__init__(endog, exog, **kwds)

    def loglikeobs(self, params):
        return self.frequency_weights * super().loglikeobs(params)


def _weighted_contrast(df: pd.DataFrame, outcome: str, arm: str, treatment: str, control: str,
                       adjust: Sequence[str], weights: str | None) -> tuple[Contrast, np.ndarray]:
    """The contrast for the mRS and each usable row's frequency weight (1 without `weights`); rows of weight 0
    are left out."""
    if weights is None:
        c = contrast(df, outcome, arm, treatment, control, adjust, kind="mrs")
        return c, np.ones(c.n)
    require_columns(df, weights, arm)
    if weights in (outcome, arm, *adjust):
        raise AnalysisInputError(f"column {weights!r} cannot be both the weights and the outcome, arm or a covariate")
    raw = df.loc[df[arm].astype("string").isin([treatment, control]), weights]
    values = pd.to_numeric(raw, errors="coerce")
    bad = values.isna() | ~np.isfinite(values.fillna(0)) | (values < 0)
    if bad.any():
        value = raw[bad].iloc[0]
        value = value.item() if isinstance(value, np.generic) else value
        raise AnalysisInputError(f"column {weights!r} holds {value!r}; a frequency weight is a number, 0 or more")
    c = contrast(df, outcome, arm, treatment, control, [*adjust, weights], kind="mrs")
    w = c.covariates[weights].to_numpy(float)
    keep = w > 0
    c = dataclasses.replace(c, treated=c.treated[keep], outcome=c.outcome[keep],
                            covariates=c.covariates.loc[keep, list(c.covariates.columns.drop(weights))]
                            .reset_index(drop=True))
    return c, w[keep]


def _count(x: float) -> int | float:
    return round(x) if abs(x - round(x)) < 1e-9 else float(x)


def _fit(c: Contrast, weights: np.ndarray | None = None):
    exog = pd.concat([pd.Series(c.treated, name="treated"), c.covariates], axis=1)
    codes, levels = _codes(c.outcome)
    w = np.ones(c.n) if weights is None else weights
    model = _WeightedOrderedModel(pd.Series(codes), exog, w, distr="logit")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)  # checked just below, and refitted by Newton
        result = model.fit(method="bfgs", disp=False, maxiter=2000, gtol=1e-8)
        if not result.mle_retvals.get("converged", True):
            result = model.fit(method="newton", disp=False, maxiter=200, start_params=result.params)
    return result, codes, levels


def _cutpoints(raw: np.ndarray) -> np.ndarray:
    """Cut-points from the unconstrained parameters (the first, then the logs of the increments), per row."""
    return np.cumsum(np.column_stack([raw[:, :1], np.exp(raw[:, 1:])]), axis=1)


def _negll(params: np.ndarray, codes: np.ndarray, X: np.ndarray, offset: np.ndarray, weights: np.ndarray,
           groups: np.ndarray, n_groups: int, k: int) -> tuple[float, np.ndarray]:
    """Weighted negative log-likelihood of logit P(Y <= j) = cut_{g, j} - offset - X gamma and its gradient.

    g is each row's group: one group for proportional odds; with the arm as the group, the arm's effect is
    free at each cut-point (the nominal effect of ordinal::clm)."""
    m = k - 1
    raw = params[:n_groups * m].reshape(n_groups, m)
    eta = offset + X @ params[n_groups * m:]
    rows = np.arange(len(codes))
    padded = np.column_stack([np.full(len(codes), -np.inf), _cutpoints(raw)[groups], np.full(len(codes), np.inf)])
    upper, lower = padded[rows, codes + 1] - eta, padded[rows, codes] - eta
    # F(u) - F(l), in the tail where it is accurate
    prob = np.where(lower > 0, special.expit(-lower) - special.expit(-upper),
                    special.expit(upper) - special.expit(lower))
    prob = np.maximum(prob, 1e-300)
    density_u = special.expit(upper) * special.expit(-upper) / prob
    density_l = special.expit(lower) * special.expit(-lower) / prob
    grad_cuts = np.zeros((n_groups, m))
    top, bottom = codes < m, codes > 0
    np.add.at(grad_cuts, (groups[top], codes[top]), (weights * density_u)[top])
    np.add.at(grad_cuts, (groups[bottom], codes[bottom] - 1), -(weights * density_l)[bottom])
    from_end = np.cumsum(grad_cuts[:, ::-1], axis=1)[:, ::-1]  # d/d raw_i sums the cut-points j >= i
    grad_raw = from_end * np.column_stack([np.ones(n_groups), np.exp(raw[:, 1:])])
    grad_gamma = X.T @ (-weights * (density_u - density_l))
    loglik = float(np.sum(weights * np.log(prob)))
    return -loglik, -np.concatenate([grad_raw.ravel(), grad_gamma])


@dataclasses.dataclass(frozen=True)
class _Fit:
    llf: float
    cuts: np.ndarray  # (groups, k - 1)
    gamma: np.ndarray


def _max_loglik(codes: np.ndarray, k: int, X: np.ndarray, offset: np.ndarray, weights: np.ndarray,
                groups: np.ndarray, start_cuts: np.ndarray, start_gamma: np.ndarray) -> _Fit:
    """Maximum likelihood of the cumulative logit model of _negll, by BFGS with the exact gradient on centred
    and scaled covariates (the likelihood is the same), from the start given on the original scale."""
    n_groups = int(groups.max()) + 1 if len(groups) else 1
    mean = X.mean(axis=0) if X.shape[1] else np.zeros(0)
    sd = X.std(axis=0) if X.shape[1] else np.ones(0)
    sd = np.where(sd > 0, sd, 1.0)
    Xs = (X - mean) / sd
    shift = float(mean @ start_gamma)
    cuts = np.broadcast_to(start_cuts, (n_groups, k - 1)) - shift
    raw = np.column_stack([cuts[:, :1], np.log(np.maximum(np.diff(cuts, axis=1), 1e-8))])
    start = np.concatenate([raw.ravel(), start_gamma * sd])
    fitted = optimize.minimize(_negll, start, args=(codes, Xs, offset, weights, groups, n_groups, k), jac=True,
                               method="BFGS", options={"gtol": 1e-9, "maxiter": 20000})
    gamma = fitted.x[n_groups * (k - 1):] / sd
    cuts = _cutpoints(fitted.x[:n_groups * (k - 1)].reshape(n_groups, k - 1)) + float(mean @ gamma)
    return _Fit(-float(fitted.fun), cuts, gamma)


def _cut_labels(levels: np.ndarray) -> list[str]:
    return [f"{int(lo)}|{int(hi)}" for lo, hi in itertools.pairwise(levels)]


def _full_details(fitted, levels: np.ndarray) -> dict[str, object]:
    """Every coefficient and cut-point of the fitted OrderedModel, with standard errors (the cut-points' by the
    delta method from its first-cut-point-and-log-increments parameters)."""
    params, cov = np.asarray(fitted.params, float), np.asarray(fitted.cov_params(), float)
    p, m = int(fitted.model.k_vars), len(levels) - 1
    names = list(fitted.model.exog_names)[:p]
    bse = np.sqrt(np.diag(cov))
    raw = params[p:]
    jacobian = np.tril(np.ones((m, m))) * np.concatenate([[1.0], np.exp(raw[1:])])[None, :]
    cut_cov = jacobian @ cov[p:, p:] @ jacobian.T
    cuts = _cutpoints(raw[None, :])[0]
    return {"coefficients": {name: {"estimate": float(params[i]), "se": float(bse[i])} for i, name in enumerate(names)},
            "cutpoints": {label: {"estimate": float(cuts[j]), "se": float(np.sqrt(cut_cov[j, j]))}
                          for j, label in enumerate(_cut_labels(levels))},
            "parameterization": PARAMETERIZATION}


def proportional_odds(df: pd.DataFrame, outcome: str, arm: str, treatment: str, control: str,
                      adjust: Sequence[str] = (), profile: bool = True, weights: str | None = None,
                      full: bool = False) -> Result:
    """Common odds ratio for a shift toward better mRS (above 1 favours treatment), Wald and profile CIs.

    weights: a column of frequency weights (each row counts that many patients, as MASS::polr's weights);
    n is then their sum. full: every coefficient and cut-point, with standard errors, in details."""
    c, w = _weighted_contrast(df, outcome, arm, treatment, control, adjust, weights)
    fitted, codes, levels = _fit(c, w)
    beta, se = float(fitted.params["treated"]), float(fitted.bse["treated"])
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
        ci = profile_ci(c, codes, len(levels), beta, se, float(fitted.llf), weights=w, start=fitted)
        details["profile_ci"] = [float(ci[0]), float(ci[1])]
        method += "; profile-likelihood 95% CI"
    if full:
        details.update(_full_details(fitted, levels))
    p = float(2 * stats.norm.sf(abs(beta / se)))
    return Result("ordinal shift (mRS), " + ("adjusted" if adjust else "unadjusted"), float(np.exp(-beta)),
                  float(ci[0]), float(ci[1]), p, method, round(n), "common odds ratio", details)


def _start(fitted, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Cut-points and covariate coefficients (without the arm's) of a fitted OrderedModel."""
    params = np.asarray(fitted.params, float)
    p = len(params) - (k - 1)
    return _cutpoints(params[None, p:])[0], params[1:p]


def profile_ci(c: Contrast, codes: np.ndarray, k: int, beta: float, se: float, llf: float,
               weights: np.ndarray | None = None, start=None) -> tuple[float, float]:
    """Profile-likelihood 95% interval of the common OR: the arm's coefficients at which the deviance has risen
    by the chi-square(1) 95% point, the cut-points and other coefficients maximised at each."""
    X = c.covariates.to_numpy(float)
    w = np.ones(len(codes)) if weights is None else weights
    if start is None:
        start_cuts, start_gamma = np.linspace(-1.0, 1.0, k - 1), np.zeros(X.shape[1])
    else:
        start_cuts, start_gamma = _start(start, k)
    groups = np.zeros(len(codes), dtype=int)

    def deviance_gap(b: float) -> float:
        fit = _max_loglik(codes, k, X, b * c.treated, w, groups, start_cuts, start_gamma)
        return 2 * (llf - fit.llf) - CHI95

    lower_beta = optimize.brentq(deviance_gap, beta - 6 * se, beta, xtol=1e-8)
    upper_beta = optimize.brentq(deviance_gap, beta, beta + 6 * se, xtol=1e-8)
    return float(np.exp(-upper_beta)), float(np.exp(-lower_beta))


def proportional_odds_test(df: pd.DataFrame, outcome: str, arm: str, treatment: str, control: str,
                           adjust: Sequence[str] = (), weights: str | None = None, full: bool = False) -> Result:
    """Likelihood-ratio test of proportional odds for the arm: the PO model against the model in which
    the arm's effect differs at every cut-point (as ordinal::nominal_test does for the arm, and
    ordinal::clm(..., nominal = ~ arm) against clm without it).

    With `adjust`, both models hold the same covariates as the primary (adjusted) model, each with one common
    coefficient: only the arm's proportional odds is relaxed. `weights` as for proportional_odds.
    full: the cut-points and coefficients of both models (estimates only) in details."""
    c, w = _weighted_contrast(df, outcome, arm, treatment, control, adjust, weights)
    fitted, codes, levels = _fit(c, w)
    k = len(levels)
    X = c.covariates.to_numpy(float)
    cuts, gamma = _start(fitted, k)
    beta = float(fitted.params["treated"])
    po = _max_loglik(codes, k, np.column_stack([c.treated, X]), np.zeros(len(codes)), w,
                     np.zeros(len(codes), dtype=int), cuts, np.concatenate([[beta], gamma]))
    # the relaxed model starts where the PO model ends: the treatment arm's cut-points shifted by its coefficient
    relaxed = _max_loglik(codes, k, X, np.zeros(len(codes)), w, c.treated.astype(int),
                          np.vstack([po.cuts[0], po.cuts[0] - po.gamma[0]]), po.gamma[1:])
    lr = max(2 * (relaxed.llf - po.llf), 0.0)
    df_test = k - 2
    p = float(stats.chi2.sf(lr, df_test))
    method = f"likelihood-ratio test, {df_test} df (arm effect free at each cut-point)"
    if adjust:
        method += f"; both models adjusted for {', '.join(adjust)}"
    details: dict[str, object] = {"df": df_test, "adjusted_for": list(adjust), "llf_proportional": po.llf,
                                  "llf_relaxed": relaxed.llf,
                                  "favours": "none: a test of the proportional-odds assumption for the arm, not of "
                                             "a treatment effect"}
    n: int | float = c.n
    if weights is not None:
        n = _count(float(w.sum()))
        details.update(weights=weights, rows=c.n)
    if full:
        labels, names = _cut_labels(levels), list(c.covariates.columns)
        details["proportional"] = {"cutpoints": dict(zip(labels, map(float, po.cuts[0]), strict=True)),
                                   "coefficients": dict(zip(["treated", *names], map(float, po.gamma), strict=True))}
        details["relaxed"] = {"cutpoints_control": dict(zip(labels, map(float, relaxed.cuts[0]), strict=True)),
                              "cutpoints_treatment": dict(zip(labels, map(float, relaxed.cuts[1]), strict=True)),
                              "coefficients": dict(zip(names, map(float, relaxed.gamma), strict=True))}
        details["parameterization"] = PARAMETERIZATION
    return Result("proportional-odds assumption", lr, float("nan"), float("nan"), p, method, round(n),
                  "chi-square", details)


def _better(lower_is_better: bool) -> str:
    return "lower values are better" if lower_is_better else "higher values are better"


def _win_odds_parts(a: np.ndarray, b: np.ndarray) -> tuple[float, float]:
    """theta = P(a better) + P(tie)/2 (higher is better) and its Brunner-Munzel placement variance."""
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
    c = contrast(df, outcome, arm, treatment, control, kind="numeric")  # checks the columns and arms
    require_columns(df, strata)
    labels = df[strata].astype("string")
    sign = -1.0 if lower_is_better else 1.0
    rows: list[dict[str, object]] = []
    n = 0
    for level in sorted(labels.dropna().unique()):
        try:
            part = contrast(df[labels == level], outcome, arm, treatment, control, kind="numeric")
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
                  float(np.exp(pooled + Z95 * se)), float(2 * stats.norm.sf(abs(pooled / se))),
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
                  float(np.exp(log_gor + Z95 * se)), float(2 * stats.norm.sf(abs(log_gor / se))),
                  "generalized odds ratio (Agresti 1980: wins / losses, tied pairs left out), delta-method SE of "
                  "the log ratio (as genodds, ties = \"drop\"); Wald z test", n1 + n2, "generalized odds ratio",
                  {"log_gor": log_gor, "se_log_gor": se, "wins": won, "losses": lost, "ties": 1 - won - lost,
                   "favours": f"generalized odds ratio > 1 favours {treatment} "
                              f"({_better(lower_is_better)})"})


def mann_whitney(df: pd.DataFrame, outcome: str, arm: str, treatment: str, control: str,
                 lower_is_better: bool = True) -> Result:
    """Wilcoxon-Mann-Whitney test; the estimate is P(treatment value higher) + P(tie)/2 whichever way is better
    (lower_is_better only sets details["favours"])."""
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
