"""The ordinal shift of the 90-day mRS: proportional odds, its assumption, and assumption-free alternatives.

The common odds ratio is reported as stroke trials report it: above 1 favours the
treatment arm (a shift toward lower, better mRS). statsmodels' OrderedModel models
P(mRS <= j) = F(theta_j - x beta), so a treatment coefficient beta < 0 means lower mRS and
the reported common OR is exp(-beta).
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence

import numpy as np
import pandas as pd
from scipy import optimize, stats
from statsmodels.miscmodels.ordinal_model import OrderedModel
from statsmodels.tools.sm_exceptions import ConvergenceWarning

from .dataset import Contrast, contrast
from .result import AnalysisInputError, Result

Z95 = stats.norm.ppf(0.975)
CHI95 = stats.chi2.ppf(0.95, 1)


def _codes(y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    levels = np.unique(y)
    if len(levels) < 2:
        raise AnalysisInputError("the outcome takes a single value; there is no shift to estimate")
    return np.searchsorted(levels, y), levels


def _fit(c: Contrast):
    exog = pd.concat([pd.Series(c.treated, name="treated"), c.covariates], axis=1)
    codes, levels = _codes(c.outcome)
    model = OrderedModel(pd.Series(codes), exog, distr="logit")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)  # checked just below, and refitted by Newton
        result = model.fit(method="bfgs", disp=False, maxiter=2000, gtol=1e-8)
        if not result.mle_retvals.get("converged", True):
            result = model.fit(method="newton", disp=False, maxiter=200, start_params=result.params)
    return result, codes, levels


def _loglik_thresholds(codes: np.ndarray, X: np.ndarray, offset: np.ndarray, k: int) -> float:
    """Maximised log-likelihood of the cumulative logit model with a fixed offset (for the profile)."""
    def negll(params):
        cuts = np.concatenate([[params[0]], params[0] + np.cumsum(np.exp(params[1:k - 1]))])
        eta = offset + (X @ params[k - 1:] if X.shape[1] else 0.0)
        upper = np.append(cuts, np.inf)[codes] - eta
        lower = np.insert(cuts, 0, -np.inf)[codes] - eta
        prob = stats.logistic.cdf(upper) - stats.logistic.cdf(lower)
        return -np.sum(np.log(np.maximum(prob, 1e-300)))

    start = np.concatenate([[-1.0], np.zeros(k - 2), np.zeros(X.shape[1])])
    fitted = optimize.minimize(negll, start, method="BFGS", options={"gtol": 1e-9, "maxiter": 5000})
    return -fitted.fun


def proportional_odds(df: pd.DataFrame, outcome: str, arm: str, treatment: str, control: str,
                      adjust: Sequence[str] = (), profile: bool = True) -> Result:
    """Common odds ratio for a shift toward better mRS (above 1 favours treatment), Wald and profile CIs."""
    c = contrast(df, outcome, arm, treatment, control, adjust, kind="mrs")
    fitted, codes, levels = _fit(c)
    beta, se = float(fitted.params["treated"]), float(fitted.bse["treated"])
    wald = (np.exp(-(beta + Z95 * se)), np.exp(-(beta - Z95 * se)))
    details = {"wald_ci": [float(wald[0]), float(wald[1])], "log_or": -beta, "se_log_or": se,
               "llf": float(fitted.llf), "levels": [int(v) for v in levels], "dropped_missing": c.dropped,
               "n_treatment": int(c.treated.sum()), "n_control": int((1 - c.treated).sum()),
               "adjusted_for": list(adjust)}
    ci = wald
    method = "proportional-odds logistic regression" + (f" adjusted for {', '.join(adjust)}" if adjust else "")
    if profile:
        ci = profile_ci(c, codes, len(levels), beta, se, float(fitted.llf))
        details["profile_ci"] = [float(ci[0]), float(ci[1])]
        method += "; profile-likelihood 95% CI"
    p = float(2 * stats.norm.sf(abs(beta / se)))
    return Result("ordinal shift (mRS), " + ("adjusted" if adjust else "unadjusted"), float(np.exp(-beta)),
                  float(ci[0]), float(ci[1]), p, method, c.n, "common odds ratio", details)


def profile_ci(c: Contrast, codes: np.ndarray, k: int, beta: float, se: float, llf: float) -> tuple[float, float]:
    X = c.covariates.to_numpy(float)

    def deviance_gap(b: float) -> float:
        return 2 * (llf - _loglik_thresholds(codes, X, b * c.treated, k)) - CHI95

    lower_beta = optimize.brentq(deviance_gap, beta - 6 * se, beta, xtol=1e-8)
    upper_beta = optimize.brentq(deviance_gap, beta, beta + 6 * se, xtol=1e-8)
    return float(np.exp(-upper_beta)), float(np.exp(-lower_beta))


def proportional_odds_test(df: pd.DataFrame, outcome: str, arm: str, treatment: str, control: str,
                           adjust: Sequence[str] = ()) -> Result:
    """Likelihood-ratio test of proportional odds for the arm: the PO model against the model in which
    the arm's effect differs at every cut-point (as ordinal::nominal_test does)."""
    c = contrast(df, outcome, arm, treatment, control, adjust, kind="mrs")
    fitted, codes, levels = _fit(c)
    k = len(levels)
    X = c.covariates.to_numpy(float)
    t = c.treated.astype(bool)

    def negll(params):
        base = np.concatenate([[params[0]], params[0] + np.cumsum(np.exp(params[1:k - 1]))])
        shifted = np.concatenate([[params[k - 1]], params[k - 1] + np.cumsum(np.exp(params[k:2 * k - 2]))])
        gamma = params[2 * k - 2:]
        eta = X @ gamma if X.shape[1] else np.zeros(len(codes))
        cuts = np.where(t[:, None], shifted[None, :], base[None, :])
        upper = np.concatenate([cuts, np.full((len(codes), 1), np.inf)], axis=1)[np.arange(len(codes)), codes] - eta
        lower = np.concatenate([np.full((len(codes), 1), -np.inf), cuts], axis=1)[np.arange(len(codes)), codes] - eta
        prob = stats.logistic.cdf(upper) - stats.logistic.cdf(lower)
        return -np.sum(np.log(np.maximum(prob, 1e-300)))

    start = np.concatenate([[-1.0], np.zeros(k - 2), [-1.0], np.zeros(k - 2), np.zeros(X.shape[1])])
    full = optimize.minimize(negll, start, method="BFGS", options={"gtol": 1e-9, "maxiter": 10000})
    lr = max(2 * (-full.fun - fitted.llf), 0.0)
    df_test = k - 2
    p = float(stats.chi2.sf(lr, df_test))
    return Result("proportional-odds assumption", lr, float("nan"), float("nan"), p,
                  f"likelihood-ratio test, {df_test} df (arm effect free at each cut-point)", c.n, "chi-square",
                  {"df": df_test})


def win_odds(df: pd.DataFrame, outcome: str, arm: str, treatment: str, control: str,
             lower_is_better: bool = True) -> Result:
    """Win odds: (wins + ties/2) / (losses + ties/2) for treatment over control, comparing every pair.

    The probability index theta = P(treatment better) + P(tie)/2 has its variance by the
    Brunner-Munzel placement estimator; the interval for the odds theta/(1-theta) is on the
    log scale by the delta method (Dong G et al., Stat Med 2020;39:2058-2070; the generalized
    odds ratio of Agresti, Biometrics 1980, is wins/losses, reported in details).
    """
    c = contrast(df, outcome, arm, treatment, control, kind="numeric")
    sign = -1.0 if lower_is_better else 1.0
    a, b = sign * c.outcome[c.treated == 1], sign * c.outcome[c.treated == 0]
    n1, n2 = len(a), len(b)
    if n1 < 2 or n2 < 2:
        raise AnalysisInputError("each arm needs at least 2 patients with the outcome")
    ranks = stats.rankdata(np.concatenate([a, b]))
    r1, r2 = ranks[:n1], ranks[n1:]
    theta = (r1.mean() - (n1 + 1) / 2) / n2
    placement1 = stats.rankdata(a)
    placement2 = stats.rankdata(b)
    s1 = np.var(r1 - placement1, ddof=1) / n2 ** 2
    s2 = np.var(r2 - placement2, ddof=1) / n1 ** 2
    var_theta = s1 / n1 + s2 / n2
    se_log = np.sqrt(var_theta) / (theta * (1 - theta))
    wo = theta / (1 - theta)
    diff = a[:, None] - b[None, :]
    wins, losses = float((diff > 0).mean()), float((diff < 0).mean())
    p = float(stats.brunnermunzel(a, b).pvalue)
    return Result("win odds", float(wo), float(wo * np.exp(-Z95 * se_log)), float(wo * np.exp(Z95 * se_log)), p,
                  "win odds (ties counted half) with Brunner-Munzel variance; p from the Brunner-Munzel test",
                  n1 + n2, "win odds", {"theta": float(theta), "wins": wins, "losses": losses,
                                         "ties": 1 - wins - losses,
                                         "generalized_odds_ratio": wins / losses if losses else float("inf")})


def mann_whitney(df: pd.DataFrame, outcome: str, arm: str, treatment: str, control: str) -> Result:
    c = contrast(df, outcome, arm, treatment, control, kind="numeric")
    a, b = c.outcome[c.treated == 1], c.outcome[c.treated == 0]
    test = stats.mannwhitneyu(a, b, alternative="two-sided", method="asymptotic", use_continuity=True)
    auc = float(test.statistic / (len(a) * len(b)))
    return Result("Wilcoxon-Mann-Whitney", auc, float("nan"), float("nan"), float(test.pvalue),
                  "Wilcoxon-Mann-Whitney rank-sum test (normal approximation with tie and continuity correction); "
                  "estimate: P(treatment > control) + P(tie)/2", c.n, "probability index", {"U": float(test.statistic)})


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
                  {"mean_treatment": float(a.mean()), "mean_control": float(b.mean())})
