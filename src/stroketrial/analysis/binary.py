"""Binary endpoints (mRS 0-2, death, sICH): risk difference, risk ratio and odds ratio, crude, exact and adjusted.

Newcombe's hybrid score interval for the risk difference and the log interval for the
risk ratio come from statsmodels; the conditional (exact) odds ratio with its exact
interval and Fisher's exact test from SciPy, which is what pilot-trial safety tables
with a handful of events need. The covariate-adjusted odds ratio is a logistic
regression, fitted by the project's proportional-odds fitter with two categories (as glm's
binomial logit to 1e-8; statsmodels' Logit stays a reference in the tests); the adjusted
(marginal) risk difference standardizes its predictions over the whole sample (g-computation)
with a seeded bootstrap interval, the resamples' models fitted together by the same fitter.
"""

from __future__ import annotations

import contextlib
from collections.abc import Sequence

import numpy as np
import pandas as pd
from scipy import special, stats
from scipy.stats.contingency import odds_ratio
from statsmodels.stats.proportion import confint_proportions_2indep

from ..design import batched_po_fit
from . import proportional_odds_fit as po
from .dataset import Contrast, contrast, require_estimable
from .result import AnalysisInputError, Result

Z95 = stats.norm.ppf(0.975)


def _counts(c: Contrast) -> tuple[int, int, int, int]:
    t, y = c.treated.astype(bool), c.outcome.astype(int)
    return int(y[t].sum()), int(t.sum()), int(y[~t].sum()), int((~t).sum())


def binary(df: pd.DataFrame, outcome: str, arm: str, treatment: str, control: str,
           adjust: Sequence[str] = (), bootstrap: int = 1000, seed: int = 2026) -> dict[str, Result]:
    """Every effect measure for one binary outcome (1 = event)."""
    c = contrast(df, outcome, arm, treatment, control, kind="binary")
    e1, n1, e0, n0 = _counts(c)
    if n1 == 0 or n0 == 0:
        raise AnalysisInputError("each arm needs at least one patient with the outcome recorded")
    p1, p0 = e1 / n1, e0 / n0
    base = {"events_treatment": e1, "n_treatment": n1, "events_control": e0, "n_control": n0,
            "risk_treatment": p1, "risk_control": p0, "dropped_missing": c.dropped}
    out: dict[str, Result] = {}
    lo, hi = confint_proportions_2indep(e1, n1, e0, n0, method="newcomb", compare="diff")
    fisher = stats.fisher_exact([[e1, n1 - e1], [e0, n0 - e0]])
    out["risk_difference"] = Result(f"{outcome}: risk difference", p1 - p0, float(lo), float(hi),
                                    float(fisher.pvalue), "risk difference with Newcombe hybrid score interval; "
                                    "Fisher's exact test", c.n, "risk difference", base)
    if e0 > 0 and e1 > 0:
        lo, hi = confint_proportions_2indep(e1, n1, e0, n0, method="log", compare="ratio")
        out["risk_ratio"] = Result(f"{outcome}: risk ratio", p1 / p0, float(lo), float(hi), float(fisher.pvalue),
                                   "risk ratio with log (Katz) interval; Fisher's exact test", c.n, "risk ratio", base)
    exact = odds_ratio([[e1, n1 - e1], [e0, n0 - e0]], kind="conditional")
    ci = exact.confidence_interval(0.95)
    out["odds_ratio_exact"] = Result(f"{outcome}: odds ratio (exact)", float(exact.statistic), float(ci.low),
                                     float(ci.high), float(fisher.pvalue),
                                     "conditional maximum-likelihood odds ratio with exact interval; Fisher's exact "
                                     "test", c.n, "odds ratio", base)
    if min(e1, e0, n1 - e1, n0 - e0) > 0:
        log_or = np.log(e1 * (n0 - e0) / (e0 * (n1 - e1)))
        se = np.sqrt(1 / e1 + 1 / (n1 - e1) + 1 / e0 + 1 / (n0 - e0))
        out["odds_ratio"] = Result(f"{outcome}: odds ratio", float(np.exp(log_or)), float(np.exp(log_or - Z95 * se)),
                                   float(np.exp(log_or + Z95 * se)), float(2 * stats.norm.sf(abs(log_or / se))),
                                   "odds ratio with Woolf (logit) interval and Wald test", c.n, "odds ratio", base)
    if adjust:
        adjusted = contrast(df, outcome, arm, treatment, control, adjust, kind="binary")
        out.update(_adjusted(adjusted, outcome, adjust, bootstrap, seed, base))
    return out


def _adjusted(c: Contrast, outcome: str, adjust: Sequence[str], bootstrap: int, seed: int,
              base: dict) -> dict[str, Result]:
    require_estimable(c)
    X = np.column_stack([np.asarray(c.treated, float), c.covariate_values])  # treated first
    y = np.asarray(c.outcome).astype(int)
    fit = None
    if y.min() < y.max():
        # logit P(y = 1) = X beta - alpha; po.fit refuses a model that does not reach its maximum
        with contextlib.suppress(AnalysisInputError):
            fit = po.fit(y, 2, X)
    if fit is None:  # perfect separation and the like (po.fit refuses a covariance that is not finite): no number
        raise AnalysisInputError(f"the adjusted logistic model for {outcome} cannot be fitted (it does not "
                                 "converge: too few events, or a covariate that predicts the outcome perfectly)")
    params = np.concatenate([-fit.cuts[0], fit.coef])  # the constant first
    beta, se = float(fit.coef[0]), float(fit.coef_se[0])
    p = po.p_value(beta / se)  # Wald, as glm's summary
    label = ", ".join(adjust)
    results = {"odds_ratio_adjusted": Result(
        f"{outcome}: adjusted odds ratio", float(np.exp(beta)), float(np.exp(beta - Z95 * se)),
        float(np.exp(beta + Z95 * se)), p,
        f"logistic regression adjusted for {label} (Wald interval)", c.n, "odds ratio", base)}
    rd = _standardized_rd(params, np.column_stack([np.ones(len(X)), X]))
    draws = _bootstrap_rd(y, X, bootstrap, seed, params)
    lo, hi = np.percentile(draws, [2.5, 97.5]) if len(draws) else (float("nan"), float("nan"))
    results["risk_difference_adjusted"] = Result(
        f"{outcome}: adjusted risk difference", rd, float(lo), float(hi), p,
        f"marginal risk difference by standardization (g-computation) over a logistic model adjusted for {label}; "
        f"percentile bootstrap interval ({len(draws)} resamples, seed {seed})", c.n, "risk difference", base)
    return results


def _bootstrap_rd(y: np.ndarray, X: np.ndarray, bootstrap: int, seed: int,
                  start: np.ndarray | None = None) -> np.ndarray:
    """The standardized risk difference of each bootstrap resample (rows drawn with replacement, as many as
    there are), the logistic models of every resample fitted in one batch by the proportional-odds fitter with
    two categories (logit P(y = 1) = X beta - alpha). A resample without events, or without non-events, carries
    no information and is left out; one whose fit stops at 100 iterations still gives a usable difference.

    start: the whole sample's coefficients (constant first), where every resample's Newton starts. A resample's
    estimate lies near them, so it takes about two steps fewer than from the empirical log odds; it ends at the
    same maximum to the fitter's tolerance (tests: 1e-9 on the interval)."""
    rng = np.random.default_rng(seed)
    n = len(y)
    rows = np.stack([rng.integers(0, n, n) for _ in range(bootstrap)]) if bootstrap else np.zeros((0, n), int)
    ys, Xs = y[rows], X[rows]
    events = ys.sum(axis=1)
    usable = (events > 0) & (events < n)
    if not usable.any():
        return np.zeros(0)
    initial = None if start is None else np.tile(np.concatenate([-start[:1], start[1:]]), (int(usable.sum()), 1))
    fitted = batched_po_fit.fit(ys[usable], Xs[usable], 2, max_iter=100, start=initial)
    eta = np.einsum("tnp,tp->tn", Xs[usable][..., 1:], fitted.beta[:, 1:]) - fitted.alpha
    treated, control = eta + fitted.beta[:, :1], eta  # the treated column (first) set to 1, then to 0
    differences = special.expit(treated).mean(axis=1) - special.expit(control).mean(axis=1)
    return differences[np.isfinite(differences)]  # a fit that broke down (singular information) carries none


def _standardized_rd(params: np.ndarray, X: np.ndarray) -> float:
    as_treated, as_control = X.copy(), X.copy()
    as_treated[:, 1], as_control[:, 1] = 1.0, 0.0
    expit = lambda eta: 1 / (1 + np.exp(-eta))  # noqa: E731
    return float(expit(as_treated @ params).mean() - expit(as_control @ params).mean())


def single_arm_proportion(df: pd.DataFrame, outcome: str, arm: str, which: str) -> Result:
    """The proportion of yes in one arm with its exact (Clopper-Pearson) 95% interval."""
    if outcome not in df.columns or arm not in df.columns:
        missing = outcome if outcome not in df.columns else arm
        raise AnalysisInputError(f"the dataset has no column {missing!r}")
    values = pd.to_numeric(df.loc[df[arm].astype("string") == which, outcome], errors="coerce").dropna()
    if values.empty:
        raise AnalysisInputError(f"{outcome}: no patient of arm {which!r} has it recorded")
    if not values.isin([0, 1]).all():
        raise AnalysisInputError(f"{outcome}: a yes/no outcome holds 0 or 1 (or true/false)")
    k, n = int(values.sum()), len(values)
    ci = stats.binomtest(k, n).proportion_ci(0.95, method="exact")
    return Result(f"{outcome}: proportion in {which}", k / n, float(ci.low), float(ci.high), None,
                  "proportion with the exact (Clopper-Pearson) 95% interval", n, "proportion",
                  {"events": k, "arm": which})
