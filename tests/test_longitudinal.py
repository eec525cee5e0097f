"""The mixed models of repeated scores (analysis/longitudinal.py) against lme4, lmerTest and nlme.

tests/reference/make_longitudinal_reference.R made longitudinal_reference.csv from three committed long
datasets: amass2_nihss_long.csv (NIHSS at 3 visits, complete, 306 patients) and repeated_scores_long.csv
(Fugl-Meyer at 6 visits of ISIS-HERMES's schedule, incomplete and unbalanced, 60 patients) and, for a singular
fit, isis_hermes_sim_long.csv (motor NIHSS and mRS at ISIS-HERMES's 8 visits, 31 patients), the last two made by
make_repeated_scores.py. The tests never run R. Tolerances, and why:

- lme4 / lmerTest (random intercept, random slope): estimates and standard errors 1e-5, variance components
  1e-4 absolute (variances of 1 to 120): lme4's optimizer (bobyqa) stops short of the REML optimum by about
  1e-7 relative in its parameters, which is where the module's Newton-polished fit differs (at most 5e-7 on
  effects and 2.5e-5 on a variance of 100 here). Satterthwaite df 1e-5 relative: lmerTest differentiates
  numerically (numDeriv, Richardson) where the module's derivatives are analytic (they agree to 2e-7). The
  singular fits (a correlation at +-1) take the same tolerances: both fits stop on the same bound (observed
  7e-7 on a variance of 5, df within 1e-6 relative).
- nlme (unstructured MMRM): nlme's optimizer stops up to 1.3e-3 from the optimum on covariances of 100 to 280,
  so effects and standard errors agree with nlme's to 1e-4 and the covariances to 5e-5 relative (observed
  1.4e-5 and 8e-6). The R script then takes Newton steps from nlme's estimate to the optimum of its own REML
  function (checked there against nlme's log-likelihood and estimates) and computes Satterthwaite's df, which
  nlme does not give; against that optimum everything agrees to 1e-7 (observed 1e-9) and the df to 1e-6
  relative (R's Hessian is a numerical Jacobian of its analytic gradient; observed 3e-9).
- Closed forms (no R): with complete data the MMRM's REML covariance is the residual cross-product over
  n - 2, the arm effect the difference in means, and Satterthwaite's df exactly n - 2; to 1e-6 relative, the
  module's convergence.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from stroketrial.analysis import longitudinal
from stroketrial.analysis.result import AnalysisInputError

REF = Path(__file__).parent / "reference"
R = pd.read_csv(REF / "longitudinal_reference.csv").set_index("name")["value"].to_dict()
AMASS2 = pd.read_csv(REF / "amass2_nihss_long.csv")
HERMES = pd.read_csv(REF / "repeated_scores_long.csv").assign(year=lambda d: d["day"] / 365.25)
SINGULAR = pd.read_csv(REF / "isis_hermes_sim_long.csv")
SINGULAR_VISITS = ["Inclusion", "2 weeks", "1 month", "2 months", "4 months", "6 months", "1 year", "2 years"]
DATASETS = {
    "amass2": (AMASS2, ("nihss", "arm", "albumin", "control"), ["baseline", "24 h", "7 days"]),
    "hermes": (HERMES, ("fugl_meyer", "arm", "msc", "control"),
               ["Inclusion", "2 weeks", "1 month", "4 months", "1 year", "2 years"]),
}


def fit(dataset: str, **kwargs) -> list:
    data, args, order = DATASETS[dataset]
    return longitudinal.mixed_model(data, *args, order=order, **kwargs)


def key(visit: str) -> str:
    return "".join(c if c.isalnum() else "_" for c in visit)


def check_effects(results: list, prefix: str, estimate: float, df: float | None) -> None:
    """Each visit's arm effect, standard error, Satterthwaite df and p against R, and the t interval."""
    for r in results:
        v = key(r.details["visit"])
        assert r.estimate == pytest.approx(R[f"{prefix}_effect_{v}"], abs=estimate)
        assert r.details["se"] == pytest.approx(R[f"{prefix}_se_{v}"], abs=estimate)
        if df is not None:
            assert r.details["df"] == pytest.approx(R[f"{prefix}_df_{v}"], rel=df)
            assert r.p_value == pytest.approx(R[f"{prefix}_p_{v}"], abs=1e-6)
            half = stats.t.ppf(0.975, r.details["df"]) * r.details["se"]
            assert (r.ci_low, r.ci_high) == pytest.approx((r.estimate - half, r.estimate + half), abs=1e-12)


def check_components(results: list, prefix: str, per: float = 1.0) -> None:
    """The variance components, the same in every visit's details, against lme4::VarCorr; `per` converts a
    slope's variance from R's time unit to the one fitted here."""
    for r in results:
        d = r.details
        assert d["var_intercept"] == pytest.approx(R[f"{prefix}_var_intercept"], abs=1e-4)
        assert d["var_residual"] == pytest.approx(R[f"{prefix}_var_residual"], abs=1e-4)
        if f"{prefix}_var_slope" in R:
            assert d["var_slope"] * per**2 == pytest.approx(R[f"{prefix}_var_slope"], abs=1e-4)
            assert d["cov_intercept_slope"] * per == pytest.approx(R[f"{prefix}_cov_intercept_slope"], abs=1e-4)
        else:
            assert "var_slope" not in d
        assert d["reml_loglik"] == pytest.approx(R[f"{prefix}_reml_loglik"], abs=1e-6)
        assert d["singular"] is prefix.startswith("singular")


@pytest.mark.parametrize("dataset", ["amass2", "hermes"])
def test_random_intercept_satterthwaite_df_and_variances_match_lmertest(dataset):
    results = fit(dataset, df="satterthwaite")
    assert [r.details["visit"] for r in results] == DATASETS[dataset][2]
    check_effects(results, f"{dataset}_ri", 1e-5, 1e-5)
    check_components(results, f"{dataset}_ri")
    assert all(r.method == "linear mixed model (REML), random intercept per patient, arm x visit; t interval and p "
               "with Satterthwaite degrees of freedom" for r in results)


def test_the_default_is_still_the_wald_interval_now_with_the_variance_components():
    """The default (what the report runs) keeps its method text and normal interval, with no df; its estimates
    and variances are lme4's."""
    for r in fit("hermes"):
        assert r.method == "linear mixed model (REML), random intercept per patient, arm x visit"
        assert "df" not in r.details
        z = stats.norm.ppf(0.975)
        assert (r.ci_low, r.ci_high) == pytest.approx((r.estimate - z * r.details["se"],
                                                       r.estimate + z * r.details["se"]), abs=1e-12)
        assert r.p_value == pytest.approx(2 * stats.norm.sf(abs(r.estimate / r.details["se"])), abs=1e-12)
    check_effects(fit("hermes"), "hermes_ri", 1e-5, None)
    check_components(fit("amass2"), "amass2_ri")


@pytest.mark.parametrize("dataset", ["amass2", "hermes"])
def test_random_slope_on_visit_order_matches_lme4_and_lmertest(dataset):
    results = fit(dataset, model="random slope", df="satterthwaite")
    check_effects(results, f"{dataset}_rs_ord", 1e-5, 1e-5)
    check_components(results, f"{dataset}_rs_ord")
    assert results[0].details["slope_time"] == "visit order"
    assert "random intercept and slope on visit order per patient" in results[0].method


@pytest.mark.parametrize(("time", "per"), [("year", 1.0), ("day", 365.25)])
def test_random_slope_on_a_time_column_matches_lme4(time, per):
    """On the study day (lme4 itself cannot fit days, so R fitted years: the variances convert)."""
    results = fit("hermes", model="random slope", time=time, df="satterthwaite")
    check_effects(results, "hermes_rs_year", 1e-5, 1e-5)
    check_components(results, "hermes_rs_year", per=per)
    assert results[0].details["slope_time"] == time


@pytest.mark.parametrize("score", ["motor_nihss", "mrs"])
def test_a_singular_random_slope_fit_matches_lme4_and_lmertest(score):
    """31 patients, where lme4 finds the slope's correlation with the intercept at +1 (motor NIHSS) or -1 (mRS): a
    boundary (singular) fit. The fit lands on the same boundary, and the df, which depend on the parameters
    there, are lmerTest's because they are computed in lme4's (the relative Cholesky factor and sigma)."""
    results = longitudinal.mixed_model(SINGULAR, score, "arm", "msc", "control", order=SINGULAR_VISITS,
                                       model="random slope", df="satterthwaite")
    check_effects(results, f"singular_{score}_rs_ord", 1e-5, 1e-5)
    check_components(results, f"singular_{score}_rs_ord")
    d = results[0].details
    assert abs(d["cov_intercept_slope"]) / np.sqrt(d["var_intercept"] * d["var_slope"]) == pytest.approx(1, abs=1e-6)


@pytest.mark.parametrize("dataset", ["amass2", "hermes"])
def test_unstructured_mmrm_matches_nlme_gls(dataset):
    results = fit(dataset, model="unstructured", df="satterthwaite")
    visits = DATASETS[dataset][2]
    check_effects(results, f"{dataset}_un_nlme", 1e-4, None)
    check_effects(results, f"{dataset}_un", 1e-7, 1e-6)
    for r in results:
        cov = r.details["covariance"]
        assert list(cov) == visits
        for i, a in enumerate(visits, 1):
            for j, b in enumerate(visits[:i], 1):
                assert cov[a][b] == cov[b][a]
                assert cov[a][b] == pytest.approx(R[f"{dataset}_un_nlme_cov_{i}_{j}"], rel=5e-5)
                assert cov[a][b] == pytest.approx(R[f"{dataset}_un_cov_{i}_{j}"], rel=1e-7)
        assert r.details["reml_loglik"] == pytest.approx(R[f"{dataset}_un_nlme_reml_loglik"], abs=1e-6)
        assert r.method == ("MMRM (REML): arm x visit means, unstructured covariance across visits within patient; "
                            "t interval and p with Satterthwaite degrees of freedom")
        assert "var_intercept" not in r.details and "singular" not in r.details


def test_unstructured_with_complete_data_is_the_closed_form():
    """Complete data, a mean per visit and arm: the REML covariance is the residual cross-product / (n - 2), the
    effect the difference in means, its variance S_tt (1/n1 + 1/n0), and Satterthwaite's df exactly n - 2 (the
    Wishart's). In the incomplete dataset the first visit, which every patient attended, has df n - 2 too."""
    visits = DATASETS["amass2"][2]
    wide = AMASS2.pivot(index="patient_id", columns="visit", values="nihss")[visits]
    treated = AMASS2.groupby("patient_id")["arm"].first().reindex(wide.index) == "albumin"
    residuals = wide - wide.groupby(treated).transform("mean")
    n, n1 = len(wide), int(treated.sum())
    s = residuals.T @ residuals / (n - 2)
    for r, v in zip(fit("amass2", model="unstructured", df="satterthwaite"), visits, strict=True):
        assert r.estimate == pytest.approx(wide.loc[treated, v].mean() - wide.loc[~treated, v].mean(), abs=1e-10)
        assert r.details["se"] == pytest.approx(np.sqrt(s.loc[v, v] * (1 / n1 + 1 / (n - n1))), rel=1e-8)
        assert r.details["df"] == pytest.approx(n - 2, rel=1e-6)
        for w in visits:
            assert r.details["covariance"][v][w] == pytest.approx(s.loc[v, w], rel=1e-8)
    first = fit("hermes", model="unstructured", df="satterthwaite")[0]
    assert first.details["df"] == pytest.approx(HERMES["patient_id"].nunique() - 2, rel=1e-6)


@pytest.mark.parametrize("model", ["random slope", "unstructured"])
def test_the_reml_derivatives_are_the_finite_differences(model):
    """The analytic gradient and observed Hessian of -2 REML log-likelihood (the df depend on them) against
    central differences, away from the optimum where every term counts."""
    captured = {}
    original = longitudinal._polish

    def capture(reml, theta, valid, **kwargs):
        captured["reml"], captured["theta"] = reml, theta
        return original(reml, theta, valid, **kwargs)

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(longitudinal, "_polish", capture)
        fit("hermes", model=model)
    reml, theta = captured["reml"], captured["theta"] * 1.05
    at = reml.evaluate(theta)
    h = 1e-6 * np.maximum(np.abs(theta), 1.0)
    for k in range(len(theta)):
        step = np.zeros_like(theta)
        step[k] = h[k]
        up, down = reml.evaluate(theta + step), reml.evaluate(theta - step)
        assert at.gradient[k] == pytest.approx((up.deviance - down.deviance) / (2 * h[k]), rel=1e-5, abs=1e-6)
        assert at.hessian[k] == pytest.approx((up.gradient - down.gradient) / (2 * h[k]), rel=1e-5, abs=1e-6)
        assert at.cov @ at.a[k] @ at.cov == pytest.approx((up.cov - down.cov) / (2 * h[k]), rel=1e-5, abs=1e-7)


def test_mixed_model_options_that_cannot_work_say_so():
    with pytest.raises(AnalysisInputError, match="unknown mixed model"):
        fit("amass2", model="compound symmetry")
    with pytest.raises(AnalysisInputError, match="unknown degrees of freedom"):
        fit("amass2", df="kenward-roger")
    with pytest.raises(AnalysisInputError, match="random-slope model only"):
        fit("hermes", model="unstructured", time="day")
    with pytest.raises(AnalysisInputError, match="no column 'days'"):
        fit("hermes", model="random slope", time="days")
    doubled = pd.concat([AMASS2, AMASS2.head(1)])
    with pytest.raises(AnalysisInputError, match="more than one score at a visit"):
        longitudinal.mixed_model(doubled, "nihss", "arm", "albumin", "control", model="unstructured")
    # no patient seen at both 24 h and 7 days: that covariance has no data
    apart = AMASS2[~((AMASS2["visit"] == "7 days") & AMASS2["patient_id"].isin(
        AMASS2.loc[AMASS2["visit"] == "24 h", "patient_id"].iloc[::2]))]
    apart = apart[~((apart["visit"] == "24 h") & ~apart["patient_id"].isin(
        AMASS2.loc[AMASS2["visit"] == "24 h", "patient_id"].iloc[::2]))]
    with pytest.raises(AnalysisInputError, match="both '24 h' and '7 days'"):
        longitudinal.mixed_model(apart, "nihss", "arm", "albumin", "control", order=DATASETS["amass2"][2],
                                 model="unstructured")
    one_arm = AMASS2[~((AMASS2["visit"] == "7 days") & (AMASS2["arm"] == "control"))]
    with pytest.raises(AnalysisInputError, match="'7 days' has scores from one arm only"):
        longitudinal.mixed_model(one_arm, "nihss", "arm", "albumin", "control")
