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
from scipy import stats
from statsmodels.miscmodels.ordinal_model import OrderedModel

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
    X = pd.concat([pd.Series((data[arm] == treatment).astype(float), name="treated"),
                   data[list(adjust)].astype(float)], axis=1)
    y = data[outcome]
    observed = ~missing
    levels = np.sort(y[observed].unique())
    codes = np.searchsorted(levels, y[observed].to_numpy())
    model = OrderedModel(pd.Series(codes), X[observed].reset_index(drop=True), distr="logit")
    fit = model.fit(method="bfgs", disp=False, maxiter=2000)
    rng = np.random.default_rng(seed)
    draws = rng.multivariate_normal(fit.params.to_numpy(), fit.cov_params().to_numpy(), size=imputations)
    estimates, variances = [], []
    for params in draws:
        probs = model.predict(params, exog=X[missing].reset_index(drop=True))
        u = rng.random(len(probs))
        picked = (np.cumsum(probs, axis=1) < u[:, None]).sum(axis=1)
        completed = data.copy()
        completed.loc[missing, outcome] = levels[np.minimum(picked, len(levels) - 1)]
        r = proportional_odds(completed, outcome, arm, treatment, control, adjust, profile=False)
        estimates.append(r.details["log_or"])
        variances.append(r.details["se_log_or"] ** 2)
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
            r = proportional_odds(part, outcome, arm, treatment, control, profile=False)
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
    main = pd.concat([pd.Series(treated, name="treated"), dummies], axis=1)
    inter = main.copy()
    for column in dummies.columns:
        inter[f"treated:{column}"] = treated * dummies[column].to_numpy()
    ll0 = OrderedModel(pd.Series(codes), main, distr="logit").fit(method="bfgs", disp=False, maxiter=2000).llf
    ll1 = OrderedModel(pd.Series(codes), inter, distr="logit").fit(method="bfgs", disp=False, maxiter=2000).llf
    return float(stats.chi2.sf(max(2 * (ll1 - ll0), 0), dummies.shape[1]))
