"""Populations, missing 90-day mRS, and subgroups.

- populations: intention-to-treat (as randomized), per-protocol (rows with
  `per_protocol` true), as-treated (the arm in `treated_arm`);
- missing mRS: multiple imputation from a proportional-odds model on the arm and the
  baseline covariates (parameters drawn from their approximate posterior, categories
  drawn from the predicted probabilities; Rubin's rules on the log common OR), and a
  worst-case analysis (missing = mRS 6 in the treatment arm, 0 in the control arm);
- subgroups: the common OR within each level, and the interaction likelihood-ratio test.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd
from scipy import special, stats

from ..design import batched_po_fit
from . import proportional_odds_fit as po
from .dataset import require_columns
from .ordinal import proportional_odds
from .result import AnalysisInputError, Result

POPULATIONS = ("itt", "pp", "at")
Z95 = stats.norm.ppf(0.975)


def population(df: pd.DataFrame, which: str, arm: str = "arm") -> pd.DataFrame:
    """The rows and arm labels of an analysis population."""
    if which == "itt":
        return df
    if which == "pp":
        if "per_protocol" not in df.columns:
            raise AnalysisInputError("a per-protocol analysis needs a per_protocol column (true/false)")
        flag = df["per_protocol"].astype(str).str.lower().isin(["true", "1", "yes"])
        return df[flag]
    if which in ("at", "safety"):  # by the treatment received (safety: every patient who received one)
        if "treated_arm" not in df.columns:
            raise AnalysisInputError("an as-treated analysis needs a treated_arm column (the arm received)")
        out = df[df["treated_arm"].notna()].copy()
        out[arm] = out["treated_arm"]
        return out
    raise AnalysisInputError(f"population {which!r} is not one of itt, pp, at, safety")


def worst_case(df: pd.DataFrame, outcome: str, arm: str, treatment: str, control: str,
               adjust: Sequence[str] = ()) -> Result:
    require_columns(df, outcome, arm, *adjust)
    data = df.copy()
    missing = data[outcome].isna() & data[arm].isin([treatment, control])
    data.loc[missing & (data[arm] == treatment), outcome] = 6
    data.loc[missing & (data[arm] == control), outcome] = 0
    result = proportional_odds(data, outcome, arm, treatment, control, adjust, profile=False)
    return Result("ordinal shift, worst case for missing mRS", result.estimate, result.ci_low, result.ci_high,
                  result.p_value, result.method + f"; {int(missing.sum())} missing mRS set to 6 (treatment) "
                  "or 0 (control)", result.n, result.measure, {"imputed": int(missing.sum())})


def multiple_imputation(df: pd.DataFrame, outcome: str, arm: str, treatment: str, control: str,
                        adjust: Sequence[str], imputations: int = 20, seed: int = 2026) -> Result:
    require_columns(df, outcome, arm, *adjust)
    data = df[df[arm].isin([treatment, control])].reset_index(drop=True)
    for column in adjust:
        if data[column].isna().any():
            raise AnalysisInputError(f"multiple imputation of mRS needs complete baseline {column!r}")
    missing = data[outcome].isna().to_numpy()
    if not missing.any():
        result = proportional_odds(data, outcome, arm, treatment, control, adjust, profile=False)
        return Result("ordinal shift, multiple imputation", result.estimate, result.ci_low, result.ci_high,
                      result.p_value, result.method + "; no mRS missing, nothing imputed", result.n, result.measure,
                      {"imputed": 0})
    X = np.column_stack([(data[arm] == treatment).to_numpy(float), data[list(adjust)].to_numpy(float)])
    y = data[outcome]
    observed = ~missing
    levels = np.sort(y[observed].unique())
    k = len(levels)
    codes = np.searchsorted(levels, y[observed].to_numpy())
    fit = po.fit(codes, k, X[observed])
    # The parameters are drawn as before issue 23, as statsmodels' OrderedModel held them: the coefficients, the
    # first cut-point and the logs of the cut-points' increments, with their covariance by the delta method.
    raw, jacobian = _log_increments(fit.cuts[0])
    p = len(fit.coef)
    to_raw = np.zeros((p + k - 1, p + k - 1))
    to_raw[:p, k - 1:], to_raw[p:, :k - 1] = np.eye(p), jacobian
    rng = np.random.default_rng(seed)
    draws = rng.multivariate_normal(np.concatenate([fit.coef, raw]), to_raw @ fit.covariance @ to_raw.T,
                                    size=imputations)
    completed = np.tile(np.searchsorted(levels, y.fillna(levels[0]).to_numpy()), (imputations, 1))
    for i, params in enumerate(draws):
        cuts = np.cumsum(np.concatenate([params[p:p + 1], np.exp(params[p + 1:])]))
        below = special.expit(cuts[None, :] - (X[missing] @ params[:p])[:, None])  # P(mRS <= j) per patient
        probs = np.diff(np.column_stack([np.zeros(len(below)), below, np.ones(len(below))]), axis=1)
        u = rng.random(len(probs))
        completed[i, missing] = np.minimum((np.cumsum(probs, axis=1) < u[:, None]).sum(axis=1), k - 1)
    # every completed dataset fitted in one batch (the codes stay 0..k-1: each level is observed)
    fits = batched_po_fit.fit(completed, np.broadcast_to(X, (imputations, *X.shape)), k, max_iter=200)
    if not fits.converged.all():
        raise AnalysisInputError("the proportional-odds model did not converge on a completed dataset")
    estimates, variances = -fits.beta[:, 0], fits.se[:, 0] ** 2
    q = float(np.mean(estimates))
    within, between = float(np.mean(variances)), float(np.var(estimates, ddof=1))
    total = within + (1 + 1 / imputations) * between
    dof = (imputations - 1) * (1 + within / ((1 + 1 / imputations) * between)) ** 2 if between > 0 else np.inf
    t = stats.t.ppf(0.975, dof)
    se = np.sqrt(total)
    return Result("ordinal shift, multiple imputation", float(np.exp(q)), float(np.exp(q - t * se)),
                  float(np.exp(q + t * se)), float(2 * stats.t.sf(abs(q / se), dof)),
                  f"{imputations} imputations of {int(missing.sum())} missing mRS from a proportional-odds model on "
                  f"arm{', ' + ', '.join(adjust) if adjust else ''}; Rubin's rules (seed {seed})",
                  len(data), "common odds ratio", {"imputed": int(missing.sum()), "imputations": imputations})


def _log_increments(cuts: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The first cut-point and the logs of the increments, and their Jacobian with respect to the cut-points."""
    raw = np.concatenate([cuts[:1], np.log(np.diff(cuts))])
    jacobian = np.zeros((len(cuts), len(cuts)))
    jacobian[0, 0] = 1.0
    for j in range(1, len(cuts)):
        jacobian[j, j], jacobian[j, j - 1] = 1 / (cuts[j] - cuts[j - 1]), -1 / (cuts[j] - cuts[j - 1])
    return raw, jacobian


def subgroups(df: pd.DataFrame, outcome: str, arm: str, treatment: str, control: str,
              by: Mapping[str, Sequence | np.ndarray]) -> list[Result]:
    """Common OR per subgroup level, with the likelihood-ratio interaction p-value for each factor."""
    require_columns(df, outcome, arm)
    out = []
    for name, labels in by.items():
        data = df.assign(_subgroup=np.asarray(labels))
        data = data[data["_subgroup"].notna() & data[outcome].notna() & data[arm].isin([treatment, control])]
        interaction_p = _interaction_p(data, outcome, arm, treatment)
        for level in sorted(data["_subgroup"].unique(), key=str):
            part = data[data["_subgroup"] == level]
            if part[arm].nunique() < 2 or part[outcome].nunique() < 2 or len(part) < 10:
                continue
            try:
                r = proportional_odds(part, outcome, arm, treatment, control, profile=False)
            except AnalysisInputError:  # a level whose arms separate the outcome has no finite common OR
                continue
            out.append(Result(f"{name}: {level}", r.estimate, r.ci_low, r.ci_high, interaction_p, r.method, r.n,
                              r.measure, {"subgroup": name, "level": str(level), "interaction_p": interaction_p,
                                          "n_treatment": r.details["n_treatment"],
                                          "n_control": r.details["n_control"]}))
    return out


def _interaction_p(data: pd.DataFrame, outcome: str, arm: str, treatment: str) -> float:
    treated = (data[arm] == treatment).astype(float).to_numpy()
    dummies = pd.get_dummies(data["_subgroup"].astype(str), drop_first=True, dtype=float).reset_index(drop=True)
    levels = np.sort(data[outcome].unique())
    codes = np.searchsorted(levels, data[outcome].to_numpy())
    main = np.column_stack([treated, dummies.to_numpy(float)])
    inter = np.column_stack([main, treated[:, None] * dummies.to_numpy(float)])
    # a small subgroup level can separate the outcome; the likelihood-ratio test needs only the supremum
    ll0 = po.fit(codes, len(levels), main, converge=False).llf
    ll1 = po.fit(codes, len(levels), inter, converge=False).llf
    return float(stats.chi2.sf(max(2 * (ll1 - ll0), 0), dummies.shape[1]))
